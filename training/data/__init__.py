"""Datasets: the MMSA feature-pickle loader and a schema-exact synthetic generator."""

from .mmsa import (
    DATASET_DIMS,
    DATASET_SIZES,
    KNOWN_SHA256,
    REQUIRED_KEYS,
    SPLITS,
    MMSADataset,
    MMSAFormatError,
    MMSASplit,
    file_sha256,
    load_mmsa,
)
from .synthetic import SYNTHETIC_NOTE, make_synthetic_mmsa, synthetic_file_name, write_synthetic_mmsa

__all__ = [
    "DATASET_DIMS", "DATASET_SIZES", "KNOWN_SHA256", "REQUIRED_KEYS", "SPLITS", "MMSADataset",
    "MMSAFormatError", "MMSASplit", "file_sha256", "load_mmsa",
    "SYNTHETIC_NOTE", "make_synthetic_mmsa", "synthetic_file_name", "write_synthetic_mmsa",
]

from .mmin import (  # noqa: E402  (appended: MMIN feature release of IEMOCAP / MSP-IMPROV)
    MMIN_DATASETS,
    MMINDataset,
    MMINDatasetInfo,
    MMINFormatError,
    MMINSplit,
    load_mmin_fold,
)
from .mmin_synthetic import SYNTHETIC_MMIN_NOTE, write_synthetic_mmin  # noqa: E402

__all__ += [
    "MMIN_DATASETS", "MMINDataset", "MMINDatasetInfo", "MMINFormatError", "MMINSplit", "load_mmin_fold",
    "SYNTHETIC_MMIN_NOTE", "write_synthetic_mmin",
]
