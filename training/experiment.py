"""Experiment configuration: tiny TOML files in ``training/configs``.

An experiment file has three tables::

    [data]    dataset, path (or synthetic = true), synthetic sizes / folds / seq_lens
    [model]   method, task, any FusionConfig field, and [model.options]
    [train]   any TrainConfig field

Command-line ``--set train.batch_size=8`` style overrides are applied on top.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser as the tomli backport (a dependency there)
    import tomli as tomllib

from imer_core.config import REGRESSION, FusionConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


MMIN_DATASET_NAMES: tuple[str, ...] = ("iemocap", "msp")
"""Datasets read from the MMIN feature release (six-scenario protocol); others are MMSA pickles."""


SYNTHETIC_KINDS = ("shared-latent", "linear-gaussian")
"""Generators of the synthetic MMSA benchmark (``[data] synthetic_kind``)."""


@dataclass(frozen=True)
class DataConfig:
    """Where the features come from.

    Attributes:
        dataset: ``"mosi"`` / ``"mosei"`` (MMSA pickles, missing-rate protocol),
            ``"iemocap"`` / ``"msp"`` (MMIN feature release, six-scenario protocol) or
            ``"live"`` (the live-model corpora, :mod:`training.live`).
        path: MMSA pickle (``aligned_50.pkl``), MMIN feature root
            (``IEMOCAP_features_2021``) or live feature cache (``runs/live_cache``);
            ignored when ``synthetic``.
        synthetic: generate a schema-exact synthetic benchmark instead of reading files.
        synthetic_sizes: train/valid/test sizes of the synthetic MMSA benchmark.
        synthetic_seed: seed of the synthetic generators.
        synthetic_dims: (text, audio, vision) dims of the synthetic MMSA benchmark
            (empty: the dataset's published dims; small values for tests).
        synthetic_seq_len: time steps of the synthetic MMSA benchmark (aligned: 50).
        synthetic_utterances: utterances of the synthetic MMIN release (spread over all speakers).
        synthetic_kind: generator of the synthetic MMSA benchmark: ``"shared-latent"``
            (:mod:`training.data.synthetic`) or ``"linear-gaussian"``
            (:mod:`training.data.linear_gaussian`: a task whose Bayes-optimal recovery
            error and accuracy are known, reported by ``imer-train compare``).
        expected_sha256: optional checksum of ``path`` (MMSA only).
        verify_sha256: check a file named ``aligned_50.pkl`` / ``unaligned_50.pkl``
            against the digest published in the MMSA README (MMSA only).
        trust_pickle: unpickle the MMSA file without the restricted unpickler.
            The file can then execute arbitrary code: only for files you trust.
        folds: MMIN cross-validation folds to run (numbered from 1; empty: all).
        seq_lens: fixed (text, audio, vision) lengths of MMIN features (empty: derived
            from the data, the longest sequence of each modality, so nothing is truncated;
            MMIN's fixed-length exports used (22, 60, 50) for IEMOCAP and (22, 50, 50) for
            MSP-IMPROV, ComParE audio at 10 frames/s).
        audio_norm: MMIN audio normalisation, ``"published"``, ``"train"`` or ``"none"``.
        live: options of the ``"live"`` data source (``[data.live]``: pseudo-paired live
            corpora read from the feature cache at ``path``; see
            :class:`training.live.dataset.LiveDataOptions`).
    """

    dataset: str = "mosi"
    path: str = ""
    synthetic: bool = False
    synthetic_sizes: tuple[int, int, int] = (1284, 229, 686)
    synthetic_seed: int = 0
    synthetic_dims: tuple[int, ...] = ()
    synthetic_seq_len: int = 50
    synthetic_utterances: int = 200
    synthetic_kind: str = "shared-latent"
    expected_sha256: str = ""
    verify_sha256: bool = True
    trust_pickle: bool = False
    folds: tuple[int, ...] = ()
    seq_lens: tuple[int, ...] = ()
    audio_norm: str = "published"
    live: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kind = str(self.synthetic_kind).strip().lower()
        if kind not in SYNTHETIC_KINDS:
            raise ValueError(f"synthetic_kind must be one of {', '.join(SYNTHETIC_KINDS)}, got {self.synthetic_kind!r}")
        object.__setattr__(self, "synthetic_kind", kind)

    @property
    def is_mmin(self) -> bool:
        """Whether the dataset comes from the MMIN release (IEMOCAP / MSP-IMPROV)."""
        return self.dataset.lower() in MMIN_DATASET_NAMES


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (IMDer reference values for MOSI by default).

    Attributes:
        batch_size, learning_rate: Adam settings (the reference trainer's Adam
            uses no weight decay although its config lists 0.005).
        scheduler_patience: ReduceLROnPlateau patience (factor 0.5) on the validation loss.
        early_stop: epochs without validation improvement before stopping a stage.
        grad_clip: gradient *value* clip (``clip_grad_value_``); <= 0 disables it.
        max_epochs: upper bound per stage (the reference loops until early stop).
        pretrain_max_epochs: upper bound for stage 1 (complete-data pre-training).
        key_eval: validation metric that selects the best epoch (``"Loss"``: lower is better).
        eval_sampler, eval_sampler_steps: sampler used on valid/test (``""``/0: the method default).
        eval_batch_size: samples per evaluation batch (batched sampling; halved on CUDA
            out-of-memory; 0: ``batch_size``).
        device: ``"auto"`` (CUDA when present), ``"cuda"`` or ``"cpu"``.
        num_workers: DataLoader workers.
    """

    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    scheduler_patience: int = 24
    scheduler_factor: float = 0.5
    early_stop: int = 20
    grad_clip: float = 1.0
    max_epochs: int = 200
    pretrain_max_epochs: int = 200
    key_eval: str = "Loss"
    eval_sampler: str = ""
    eval_sampler_steps: int = 0
    eval_batch_size: int = 256
    device: str = "auto"
    num_workers: int = 0


@dataclass(frozen=True)
class Experiment:
    """One experiment file, parsed."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    method: str = "imder"
    task: str = REGRESSION
    fusion: FusionConfig = field(default_factory=FusionConfig)
    method_options: Mapping[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary, written into every run folder."""
        return {
            "name": self.name,
            "data": asdict(self.data),
            "model": {"method": self.method, "task": self.task, **asdict(self.fusion),
                      "options": dict(self.method_options)},
            "train": asdict(self.train),
        }


def available_experiments() -> list[str]:
    """Names of the experiment files shipped in ``training/configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def load_experiment(name_or_path: str, overrides: list[str] | None = None) -> Experiment:
    """Load an experiment by shipped name (``imder_mosi``) or TOML path, then apply overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise FileNotFoundError(f"experiment config {name_or_path!r} not found; shipped configs: "
                                f"{', '.join(available_experiments())}")
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    for item in overrides or []:
        _apply_override(raw, item)
    return _experiment_from_dict(path.stem, raw)


def _experiment_from_dict(name: str, raw: Mapping[str, Any]) -> Experiment:
    unknown = set(raw) - {"data", "model", "train"}
    if unknown:
        raise ValueError(f"{name}: unknown section(s) {sorted(unknown)}")
    model = dict(raw.get("model", {}))
    options = dict(model.pop("options", {}))
    method = str(model.pop("method", "imder"))
    task = str(model.pop("task", REGRESSION))
    return Experiment(
        name=name,
        data=_build(DataConfig, raw.get("data", {}), f"{name} [data]"),
        method=method,
        task=task,
        fusion=_build(FusionConfig, model, f"{name} [model]"),
        method_options=options,
        train=_build(TrainConfig, raw.get("train", {}), f"{name} [train]"),
    )


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**converted)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply ``section.key=value`` (``model.options.key=value`` for method options)."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like section.key=value")
    dotted, value_text = item.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) < 2 or parts[0] not in ("data", "model", "train"):
        raise ValueError(f"override {item!r}: key must start with data., model. or train.")
    try:
        value = tomllib.loads(f"v = {value_text}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text  # bare strings such as train.device=cpu
    node = raw
    for key in parts[:-1]:
        node = node.setdefault(key, {})
    node[parts[-1]] = value


def with_train(experiment: Experiment, **changes: Any) -> Experiment:
    """Copy of ``experiment`` with some training settings replaced."""
    return replace(experiment, train=replace(experiment.train, **changes))
