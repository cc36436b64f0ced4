"""Experiment configuration: tiny TOML files in ``training/configs``.

An experiment file has three tables::

    [data]    dataset, path (or synthetic = true), and the options of the dataset's source
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

from imer_core.config import REGRESSION, FusionConfig, options_from_dict

from .data.source import DataSource, data_source

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


#: ``[data]`` keys every data source has; the others belong to the source's options.
COMMON_DATA_KEYS: tuple[str, ...] = ("dataset", "path", "synthetic", "synthetic_seed")


@dataclass(frozen=True)
class DataConfig:
    """Where the features come from: the dataset (which picks its registered
    :class:`~training.data.source.DataSource`) and that source's options.

    Attributes:
        dataset: ``"mosi"`` / ``"mosei"`` / ``"mmsa"`` (MMSA pickles, missing-rate protocol),
            ``"iemocap"`` / ``"msp"`` (MMIN feature release, six-scenario protocol),
            ``"live"`` (the live-model corpora, :mod:`training.live`), or any other
            registered dataset (:func:`training.data.source.available_datasets`).
        path: MMSA pickle (``aligned_50.pkl``), MMIN feature root
            (``IEMOCAP_features_2021``), live feature cache (``runs/live_cache``), ...;
            ignored when ``synthetic``.
        synthetic: generate a schema-exact synthetic benchmark instead of reading files.
        synthetic_seed: seed of the synthetic generators.
        options: the source's options dataclass
            (:class:`~training.data.mmsa_source.MMSAOptions`,
            :class:`~training.data.mmin_source.MMINOptions`,
            :class:`~training.live.dataset.LiveDataOptions`, ...): in a file, the other
            ``[data]`` keys and the ``[data.<source name>]`` table.  ``None``: its defaults.
    """

    dataset: str = "mosi"
    path: str = ""
    synthetic: bool = False
    synthetic_seed: int = 0
    options: Any = None

    def __post_init__(self) -> None:
        source = self.source
        wanted = source.options
        if self.options is None or (wanted is not None and not isinstance(self.options, wanted)):
            object.__setattr__(self, "options", source.default_options())

    @property
    def source(self) -> DataSource:
        """The registered data source of :attr:`dataset` (``ValueError`` for an unknown one)."""
        return data_source(self.dataset)

    def option(self, name: str, default: Any = None) -> Any:
        """One option of the source (``default`` when the source has no such option)."""
        return getattr(self.options, name, default)

    def with_options(self, **changes: Any) -> "DataConfig":
        """A copy with some options replaced (names the source does not have are ignored)."""
        known = {f.name for f in fields(self.options)} if self.options is not None else set()
        keep = {k: v for k, v in changes.items() if k in known}
        return replace(self, options=replace(self.options, **keep)) if keep else self

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary: the common keys and the options (flat, as in a file)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in COMMON_DATA_KEYS}
        out.update(asdict(self.options) if self.options is not None else {})
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "[data]") -> "DataConfig":
        """From a ``[data]`` table: the common keys, then the source's options from the other keys
        and from a ``[data.<source name>]`` table (unknown keys rejected with the known ones)."""
        common = {k: values[k] for k in COMMON_DATA_KEYS if k in values}
        probe = cls(**common)
        source = probe.source
        rest = {k: v for k, v in values.items() if k not in COMMON_DATA_KEYS}
        table = rest.pop(source.name, None)
        if isinstance(table, Mapping):
            rest = {**rest, **table}
        elif table is not None:
            rest[source.name] = table
        known = {f.name for f in fields(source.options)} if source.options is not None else set()
        unknown = sorted(set(rest) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown} for dataset {probe.dataset!r}; known: "
                             f"{sorted(set(COMMON_DATA_KEYS) | known)}")
        if source.options is None:
            return probe
        return replace(probe, options=options_from_dict(source.options, rest))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (IMDer reference values for MOSI by default).

    Attributes:
        batch_size, learning_rate: Adam settings (the reference trainer's Adam
            uses no weight decay although its config lists 0.005).
        pretrain_batch_size: training batch size of stage 1 (0: ``batch_size``; MMIN's
            MSP-IMPROV utterance-fusion stage uses 64 while its recovery stage uses 128).
        scheduler_patience: ReduceLROnPlateau patience (factor 0.5) on the validation loss
            (``lr_policy = "plateau"``).
        lr_policy: ``"plateau"`` (ReduceLROnPlateau on the validation loss) or ``"linear"``
            (MMIN's policy: constant, then linear decay; :mod:`training.schedule`).
        linear_constant_epochs, linear_decay_epochs: the linear policy's epochs at the full
            rate and of decay in the recovery stage (MMIN's ``--niter`` / ``--niter_decay``).
        pretrain_linear_constant_epochs, pretrain_linear_decay_epochs: the same for stage 1.
        adam_beta1, pretrain_adam_beta1: Adam β1 of the main optimiser in the recovery stage
            and in stage 1 (β2 0.999).
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
    pretrain_batch_size: int = 0
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    scheduler_patience: int = 24
    scheduler_factor: float = 0.5
    lr_policy: str = "plateau"
    linear_constant_epochs: int = 0
    linear_decay_epochs: int = 0
    pretrain_linear_constant_epochs: int = 0
    pretrain_linear_decay_epochs: int = 0
    adam_beta1: float = 0.9
    pretrain_adam_beta1: float = 0.9
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

    def __post_init__(self) -> None:
        if self.lr_policy not in ("plateau", "linear"):
            raise ValueError(f"train.lr_policy must be \"plateau\" or \"linear\", got {self.lr_policy!r}")
        for name in ("adam_beta1", "pretrain_adam_beta1"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"train.{name} must be in [0, 1), got {value}")
        for name in ("linear_constant_epochs", "linear_decay_epochs", "pretrain_linear_constant_epochs",
                     "pretrain_linear_decay_epochs", "pretrain_batch_size"):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"train.{name} must be an integer >= 0, got {count!r}")


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
            "data": self.data.to_dict(),
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
        data=DataConfig.from_dict(raw.get("data", {}), f"{name} [data]"),
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
