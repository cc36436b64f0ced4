"""Datasets: the MMSA feature-pickle loader and a schema-exact synthetic generator."""

from .mmsa import (
    DATASET_DIMS, DATASET_SIZES, KNOWN_SHA256, REQUIRED_KEYS, SPLITS, MMSADataset, MMSAFormatError,
    MMSASplit, file_sha256, load_mmsa,
)
from .synthetic import SYNTHETIC_NOTE, make_synthetic_mmsa, synthetic_file_name, write_synthetic_mmsa

__all__ = [
    "DATASET_DIMS", "DATASET_SIZES", "KNOWN_SHA256", "REQUIRED_KEYS", "SPLITS", "MMSADataset",
    "MMSAFormatError", "MMSASplit", "file_sha256", "load_mmsa",
    "SYNTHETIC_NOTE", "make_synthetic_mmsa", "synthetic_file_name", "write_synthetic_mmsa",
]
