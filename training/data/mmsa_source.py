"""The MMSA data source: CMU-MOSI / CMU-MOSEI feature pickles (or their synthetic stand-ins), missing-rate protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imer_core.modalities import FeatureSpecs

from .linear_gaussian import LINEAR_GAUSSIAN_NOTE, LinearGaussianTask, make_linear_gaussian_mmsa
from .mmsa import DATASET_DIMS, MMSADataset, load_mmsa
from .source import RATE, DataSource, LoadedData
from .synthetic import SYNTHETIC_NOTE, make_synthetic_mmsa, write_pickle_atomically

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from training.experiment import Experiment

MMSA_CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")
"""Class names of the MMSA ``classification_labels`` (ids 0, 1, 2)."""

SYNTHETIC_KINDS = ("shared-latent", "linear-gaussian")
"""Generators of the synthetic MMSA benchmark (``[data] synthetic_kind``)."""


@dataclass(frozen=True)
class MMSAOptions:
    """Options of the MMSA source (``[data]`` keys).

    Attributes:
        synthetic_sizes: train/valid/test sizes of the synthetic benchmark.
        synthetic_dims: (text, audio, vision) dims of the synthetic benchmark
            (empty: the dataset's published dims; small values for tests).
        synthetic_seq_len: time steps of the synthetic benchmark (aligned: 50).
        synthetic_kind: generator of the synthetic benchmark: ``"shared-latent"``
            (:mod:`training.data.synthetic`) or ``"linear-gaussian"``
            (:mod:`training.data.linear_gaussian`: a task whose Bayes-optimal recovery
            error and accuracy are known, reported by ``imer-train compare``).
        expected_sha256: optional checksum of ``path``.
        verify_sha256: check a file named ``aligned_50.pkl`` / ``unaligned_50.pkl``
            against the digest published in the MMSA README.
        trust_pickle: unpickle the file without the restricted unpickler.  The
            file can then execute arbitrary code: only for files you trust.
    """

    synthetic_sizes: tuple[int, int, int] = (1284, 229, 686)
    synthetic_dims: tuple[int, ...] = ()
    synthetic_seq_len: int = 50
    synthetic_kind: str = "shared-latent"
    expected_sha256: str = ""
    verify_sha256: bool = True
    trust_pickle: bool = False

    def __post_init__(self) -> None:
        kind = str(self.synthetic_kind).strip().lower()
        if kind not in SYNTHETIC_KINDS:
            raise ValueError(f"synthetic_kind must be one of {', '.join(SYNTHETIC_KINDS)}, got {self.synthetic_kind!r}")
        object.__setattr__(self, "synthetic_kind", kind)


def uses_bert_tokens(experiment: Experiment) -> bool:
    """Whether the model reads MMSA's ``text_bert`` token ids (``model.options.text_encoder = "bert"``)."""
    return str(experiment.method_options.get("text_encoder", "features")).strip().lower() == "bert"


def load_mmsa_data(experiment: Experiment, cache_dir: Path, fold: int | None = None) -> LoadedData:
    """An MMSA pickle, or the synthetic benchmark generated into ``cache_dir`` first and then read
    by the same loader (so the code path a user with the real corpora runs is the one exercised)."""
    cfg = experiment.data
    opts: MMSAOptions = cfg.options
    oracle = None
    if cfg.synthetic:
        sizes = tuple(int(s) for s in opts.synthetic_sizes)
        dims = tuple(int(d) for d in opts.synthetic_dims) or None
        dims_name = "-".join(map(str, dims)) if dims else "default"
        shape = f"_d{dims_name}_l{opts.synthetic_seq_len}" if dims or opts.synthetic_seq_len != 50 else ""
        linear = opts.synthetic_kind == "linear-gaussian"
        path = Path(cache_dir) / (f"synthetic_{cfg.dataset}_aligned_50_{'-'.join(map(str, sizes))}"
                                  f"{shape}{'_lingauss' if linear else ''}_s{cfg.synthetic_seed}.pkl")
        if not path.exists():
            make = make_linear_gaussian_mmsa if linear else make_synthetic_mmsa
            write_pickle_atomically(path, make(dataset=cfg.dataset, seed=cfg.synthetic_seed, sizes=sizes, dims=dims,
                                               seq_len=opts.synthetic_seq_len))
        splits = load_mmsa(path)
        source, note = str(path), LINEAR_GAUSSIAN_NOTE if linear else SYNTHETIC_NOTE
        if linear:
            oracle = LinearGaussianTask(dims or DATASET_DIMS[cfg.dataset.lower()], opts.synthetic_seq_len,
                                        cfg.synthetic_seed)
    else:
        path = Path(cfg.path).expanduser()
        corpus = cfg.dataset.lower() if cfg.dataset.lower() in ("mosi", "mosei") else None  # "mmsa": either
        splits = load_mmsa(path, expected_sha256=opts.expected_sha256 or None, dataset=corpus,
                           verify_sha256=opts.verify_sha256, trust_pickle=opts.trust_pickle)
        source, note = str(path), ""
    train = splits["train"]
    dims = (train.text.shape[2], train.audio.shape[2], train.vision.shape[2])
    lens = (train.text.shape[1], train.audio.shape[1], train.vision.shape[1])
    extractor = "synthetic-mmsa" if cfg.synthetic else f"mmsa-{Path(source).stem}"
    specs = FeatureSpecs.from_dims(dims, lens, extractor=extractor)
    regression = experiment.task == "regression"
    label_key = "regression_labels" if regression else "classification_labels"
    text_key = "text_bert" if uses_bert_tokens(experiment) else "text"
    datasets: dict[str, Dataset] = {name: MMSADataset(split, text_key=text_key, label_key=label_key)
                                    for name, split in splits.items()}
    labels = ("sentiment",) if regression else MMSA_CLASSES
    return LoadedData(datasets, specs, source, cfg.synthetic, note, labels, oracle=oracle)


MMSA_SOURCE = DataSource("mmsa", ("mosi", "mosei", "mmsa"), load_mmsa_data, default_protocol="batch:0.3",
                         protocol_kind=RATE, options=MMSAOptions,
                         description="MMSA pickle")

#: Discovered by :mod:`training.data.source`.
DATA_SOURCES = (MMSA_SOURCE,)
