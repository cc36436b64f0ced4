"""Loader for the MMSA feature pickles of CMU-MOSI / CMU-MOSEI.

The files are the ones distributed by the MMSA framework (THUIAR) and used
unchanged by IMDer: ``aligned_50.pkl`` and ``unaligned_50.pkl``.  Each is a
pickled ``dict`` with the top-level keys ``train``, ``valid`` and ``test``;
every split is a ``dict`` holding

==========================  ==================================================
key                         content
==========================  ==================================================
``raw_text``                (N,) transcripts
``id``                      (N,) clip ids
``text``                    (N, 50, 768) pre-extracted BERT features
``text_bert``               (N, 3, 50) token ids, attention mask, segment ids
``audio``                   (N, L_a, D_a) COVAREP features (may hold ``-inf``)
``vision``                  (N, L_v, D_v) Facet features
``audio_lengths``           (N,) valid audio steps (list or array)
``vision_lengths``          (N,) valid vision steps (list or array)
``annotations``             (N,) "Negative" / "Neutral" / "Positive"
``classification_labels``   (N,) 0 / 1 / 2 (negative / neutral / positive)
``regression_labels``       (N,) sentiment in [-3, 3]
==========================  ==================================================

Aligned files have ``L_a = L_v = 50``; feature dims are 768/5/20 (MOSI) and
768/74/35 (MOSEI).  As in the reference loaders, ``-inf`` audio values are
replaced by 0.  Per-sample vectors stored as ``(N, 1)`` columns are accepted
and flattened; lengths may be lists or arrays.

Security: the files are Python pickles by publication, and :func:`pickle.load`
can execute arbitrary code.  :func:`load_mmsa` therefore reads them with the
restricted unpickler of :mod:`training.data.safe_pickle`, which resolves only
numpy arrays, dtypes and scalars (dicts, lists, strings and numbers need no
global) and refuses anything else with an error naming the global.  The
published files are also checked against the SHA-256 digests of the MMSA
README (:data:`KNOWN_SHA256`) when their name is a published one.
``trust_pickle=True`` (``imer-train --trust-pickle``) turns the restriction
off for files that need other globals: such a file can then run any code with
your permissions, so only use it for a file you made yourself or got from a
source you trust.  ``verify_sha256=False`` (``--skip-sha256``) skips the
digest check for a renamed or re-extracted file.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .common import ThreeModalityArrays
from .safe_pickle import ForbiddenGlobalError, restricted_load

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "valid", "test")
REQUIRED_KEYS: tuple[str, ...] = (
    "raw_text", "id", "text", "text_bert", "audio", "vision", "audio_lengths",
    "vision_lengths", "annotations", "classification_labels", "regression_labels",
)
# (text, audio, vision) feature dimensions of the published files.
DATASET_DIMS: dict[str, tuple[int, int, int]] = {"mosi": (768, 5, 20), "mosei": (768, 74, 35)}
# Published (train, valid, test) sizes.
DATASET_SIZES: dict[str, tuple[int, int, int]] = {
    "mosi": (1284, 229, 686), "mosei": (16326, 1871, 4659),
}

# SHA-256 digests of the published feature files, keyed by "<dataset>/<file name>",
# as listed in the thuiar/MMSA README ("SHA-256 for feature files", files
# MOSI/Processed/*.pkl and MOSEI/Processed/*.pkl).
KNOWN_SHA256: dict[str, str] = {
    "mosi/unaligned_50.pkl": "78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524",
    "mosi/aligned_50.pkl": "d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9",
    "mosei/unaligned_50.pkl": "ad8b23d50557045e7d47959ce6c5b955d8d983f2979c7d9b7b9226f6dd6fec1f",
    "mosei/aligned_50.pkl": "45eccfb748a87c80ecab9bfac29582e7b1466bf6605ff29d3b338a75120bf791",
}

_CHUNK = 512  # samples per chunk when scanning large feature arrays


class MMSAFormatError(ValueError):
    """A feature file is missing, corrupt, or does not follow the MMSA schema."""


@dataclass(frozen=True, eq=False)
class MMSASplit(ThreeModalityArrays):
    """One split (train / valid / test) of an MMSA feature file.

    Attributes:
        name: split name.
        text: (N, L_t, D_t) float32 BERT features.
        text_bert: (N, 3, L_t) int64 token ids, attention mask and segment ids.
        audio: (N, L_a, D_a) float32 audio features (``-inf`` already set to 0).
        vision: (N, L_v, D_v) float32 vision features.
        audio_lengths: (N,) int64 valid audio steps.
        vision_lengths: (N,) int64 valid vision steps.
        regression_labels: (N,) float32 sentiment scores.
        classification_labels: (N,) int64 classes (0 neg, 1 neu, 2 pos).
        annotations: (N,) str class names.
        ids: (N,) str clip ids.
        raw_text: (N,) str transcripts.
    """

    name: str
    text: np.ndarray
    text_bert: np.ndarray
    audio: np.ndarray
    vision: np.ndarray
    audio_lengths: np.ndarray
    vision_lengths: np.ndarray
    regression_labels: np.ndarray
    classification_labels: np.ndarray
    annotations: np.ndarray
    ids: np.ndarray
    raw_text: np.ndarray

    def __len__(self) -> int:
        return int(self.regression_labels.shape[0])




def file_sha256(path: "str | Path", chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def known_digests(path: Path, dataset: str | None) -> list[str]:
    """Published digests a file named like ``path`` may have (``[]``: not a published name)."""
    datasets = [dataset] if dataset else sorted(DATASET_DIMS)
    return [KNOWN_SHA256[key] for key in (f"{d}/{path.name}" for d in datasets) if key in KNOWN_SHA256]


def load_mmsa(path: "str | Path", *, expected_sha256: str | None = None,
              dataset: str | None = None, verify_sha256: bool = True,
              trust_pickle: bool = False) -> dict[str, MMSASplit]:
    """Load and validate an MMSA ``aligned_50.pkl`` / ``unaligned_50.pkl`` file.

    Args:
        path: the pickle file, read with a restricted unpickler that only
            builds dicts, lists, strings, numbers and numpy arrays.
        expected_sha256: if given, the file's SHA-256 must match (checked before
            unpickling).  Otherwise, with ``verify_sha256``, a file named
            ``aligned_50.pkl`` / ``unaligned_50.pkl`` must match the published
            digest of :data:`KNOWN_SHA256` (of ``dataset``, or of either corpus
            when ``dataset`` is ``None``).
        dataset: ``"mosi"`` or ``"mosei"`` to also check the feature dimensions
            against the published ones; ``None`` skips that check.
        verify_sha256: ``False`` skips the published-digest check (a renamed
            or re-extracted file); ``expected_sha256`` is still checked.
        trust_pickle: ``True`` unpickles with :func:`pickle.load` semantics:
            the file can then execute arbitrary code.  Only for files you trust.

    Returns:
        ``{"train": MMSASplit, "valid": MMSASplit, "test": MMSASplit}``.

    Raises:
        MMSAFormatError: missing file, checksum mismatch, corrupt/truncated
            pickle, missing split or key, wrong shape, inconsistent sample
            counts, non-finite labels or features.
        ValueError: unknown ``dataset`` name.
    """
    path = Path(path)
    if dataset is not None:
        dataset = dataset.lower()
        if dataset not in DATASET_DIMS:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASET_DIMS)}")
    if not path.is_file():
        raise MMSAFormatError(f"MMSA feature file not found: {path}")
    if expected_sha256:
        actual = file_sha256(path)
        if actual.lower() != expected_sha256.strip().lower():
            raise MMSAFormatError(
                f"SHA-256 mismatch for {path}: expected {expected_sha256.lower()}, got {actual}; "
                "the file is corrupt or a different version - re-download it")
    elif verify_sha256 and (published := known_digests(path, dataset)):
        actual = file_sha256(path)
        if actual.lower() not in published:
            raise MMSAFormatError(
                f"{path} does not match the published SHA-256 of {path.name} (MMSA README): got {actual}; "
                "the file is corrupt or another version - re-download it, or pass --skip-sha256 "
                "if you extracted it yourself")
    raw = _unpickle(path, trust_pickle)
    if not isinstance(raw, Mapping):
        raise MMSAFormatError(f"{path}: top level must be a dict with keys {list(SPLITS)}, "
                              f"got {type(raw).__name__}")
    missing = [s for s in SPLITS if s not in raw]
    if missing:
        raise MMSAFormatError(f"{path}: missing split(s) {missing}; found keys {sorted(map(str, raw))}")
    splits = {name: _parse_split(path, name, raw[name], dataset) for name in SPLITS}
    logger.info("loaded %s: %s", path,
                ", ".join(f"{n}={len(s)}" for n, s in splits.items()))
    return splits


def _unpickle(path: Path, trust: bool = False) -> Any:
    try:
        with open(path, "rb") as handle:
            return restricted_load(handle, trust=trust)
    except ForbiddenGlobalError as exc:
        raise MMSAFormatError(
            f"{path} is not a plain MMSA feature file: it names the Python global "
            f"{exc.module}.{exc.name}, and MMSA files contain only dicts, lists, strings, numbers and "
            "numpy arrays; refusing to load it (if you made it yourself and trust it, "
            "--trust-pickle loads it anyway, which lets the file run any code)") from None
    except MemoryError as exc:
        raise MMSAFormatError(f"{path} declares more data than fits in memory; it is corrupt") from exc
    except (EOFError, pickle.UnpicklingError, ValueError, IndexError, OverflowError, TypeError,
            KeyError, struct.error, UnicodeDecodeError, RecursionError) as exc:
        raise MMSAFormatError(
            f"{path} is truncated or corrupt ({type(exc).__name__}: {exc}); re-download the file"
        ) from exc
    except (ModuleNotFoundError, AttributeError, ImportError) as exc:
        raise MMSAFormatError(
            f"{path} references Python objects that cannot be imported ({exc}); it is not an "
            "MMSA feature pickle or needs another numpy version") from exc


def _parse_split(path: Path, name: str, data: Any, dataset: str | None) -> MMSASplit:
    where = f"{path}[{name!r}]"
    if not isinstance(data, Mapping):
        raise MMSAFormatError(f"{where} must be a dict, got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise MMSAFormatError(f"{where}: missing key(s) {missing}")

    text = _float_array(where, "text", data["text"], ndim=3)
    text_bert = _numeric_array(where, "text_bert", data["text_bert"], ndim=3)
    audio = _float_array(where, "audio", data["audio"], ndim=3)
    vision = _float_array(where, "vision", data["vision"], ndim=3)
    n = text.shape[0]
    if text_bert.shape[1:] != (3, text.shape[1]):
        raise MMSAFormatError(f"{where}['text_bert']: expected shape (N, 3, {text.shape[1]}), "
                              f"got {text_bert.shape}")
    if dataset is not None:
        expected_dims = DATASET_DIMS[dataset]
        got = (text.shape[2], audio.shape[2], vision.shape[2])
        for key, want, have in zip(("text", "audio", "vision"), expected_dims, got):
            if want != have:
                raise MMSAFormatError(f"{where}[{key!r}]: expected feature dim {want} for "
                                      f"{dataset}, got {have} (shape {data[key].shape})")

    vectors = {}
    for key in ("audio_lengths", "vision_lengths", "regression_labels", "classification_labels",
                "id", "raw_text", "annotations"):
        vectors[key] = np.asarray(data[key])
        if vectors[key].ndim == 2 and vectors[key].shape[1] == 1:  # tolerate (N, 1) columns
            vectors[key] = vectors[key].reshape(-1)
        if vectors[key].ndim != 1:
            raise MMSAFormatError(f"{where}[{key!r}]: expected shape (N,), got {vectors[key].shape}")
    counts = {"text": n, "text_bert": text_bert.shape[0], "audio": audio.shape[0],
              "vision": vision.shape[0], **{k: v.shape[0] for k, v in vectors.items()}}
    if len(set(counts.values())) != 1:
        raise MMSAFormatError(f"{where}: sample counts differ across keys: {counts}")

    labels = _labels(where, vectors["regression_labels"])
    classes = _classes(where, vectors["classification_labels"])
    n_neginf = _replace_neginf(audio)
    if n_neginf:
        logger.debug("%s: replaced %d -inf audio values by 0", where, n_neginf)
    for key, array in (("text", text), ("audio", audio), ("vision", vision)):
        n_nan, n_inf = _count_nonfinite(array)
        if n_nan or n_inf:
            raise MMSAFormatError(f"{where}[{key!r}]: {n_nan} NaN and {n_inf} infinite feature "
                                  f"values (after -inf audio -> 0)")
    return MMSASplit(
        name=name, text=text, text_bert=text_bert.astype(np.int64), audio=audio, vision=vision,
        audio_lengths=_lengths(where, "audio_lengths", vectors["audio_lengths"]),
        vision_lengths=_lengths(where, "vision_lengths", vectors["vision_lengths"]),
        regression_labels=labels, classification_labels=classes,
        annotations=vectors["annotations"].astype(str), ids=vectors["id"].astype(str),
        raw_text=vectors["raw_text"].astype(str),
    )


def _numeric_array(where: str, key: str, value: Any, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise MMSAFormatError(f"{where}[{key!r}]: expected a numeric array, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise MMSAFormatError(f"{where}[{key!r}]: expected {ndim} dimensions "
                              f"(N, L, D), got shape {array.shape}")
    return array


def _float_array(where: str, key: str, value: Any, ndim: int) -> np.ndarray:
    array = _numeric_array(where, key, value, ndim).astype(np.float32, copy=False)
    if not array.flags.writeable:
        array = array.copy()
    return array


def _labels(where: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise MMSAFormatError(f"{where}['regression_labels']: expected numbers, got {values.dtype}")
    labels = values.astype(np.float32)
    n_nan, n_inf = int(np.isnan(labels).sum()), int(np.isinf(labels).sum())
    if n_nan or n_inf:
        raise MMSAFormatError(f"{where}['regression_labels']: {n_nan} NaN and {n_inf} infinite labels")
    return labels


def _classes(where: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise MMSAFormatError(f"{where}['classification_labels']: expected numbers, got {values.dtype}")
    as_float = values.astype(np.float64)
    n_bad = int((~np.isfinite(as_float)).sum())
    if n_bad:
        raise MMSAFormatError(f"{where}['classification_labels']: {n_bad} NaN or infinite labels")
    classes = np.rint(as_float).astype(np.int64)
    if not np.array_equal(classes, as_float):
        raise MMSAFormatError(f"{where}['classification_labels']: expected integer class ids")
    return classes


def _lengths(where: str, key: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise MMSAFormatError(f"{where}[{key!r}]: expected integers, got dtype {values.dtype}")
    lengths = values.astype(np.int64)
    if (lengths < 0).any():
        raise MMSAFormatError(f"{where}[{key!r}]: negative lengths")
    return lengths


def _replace_neginf(array: np.ndarray) -> int:
    """Set ``-inf`` to 0 in place (chunked to bound memory); return how many."""
    total = 0
    for start in range(0, array.shape[0], _CHUNK):
        block = array[start:start + _CHUNK]
        hit = np.isneginf(block)
        count = int(hit.sum())
        if count:
            block[hit] = 0.0
            total += count
    return total


def _count_nonfinite(array: np.ndarray) -> tuple[int, int]:
    """(NaN count, inf count) of a large array, scanned in chunks."""
    n_nan = n_inf = 0
    for start in range(0, array.shape[0], _CHUNK):
        block = array[start:start + _CHUNK]
        if np.isfinite(block).all():
            continue
        n_nan += int(np.isnan(block).sum())
        n_inf += int(np.isinf(block).sum())
    return n_nan, n_inf


class MMSADataset(Dataset):
    """A :class:`torch.utils.data.Dataset` over one :class:`MMSASplit`.

    Items are ``{"index": int, "text": (L_t, D) float32, "audio": (L_a, D_a)
    float32, "vision": (L_v, D_v) float32, "label": () float32}``, so the
    default ``collate_fn`` stacks them into batch tensors (``"label"`` is the
    int64 class id with ``label_key="classification_labels"``).  With
    ``text_key="text_bert"`` the text entry is the (3, L_t) token-id /
    mask / segment array as float32, exactly like MMSA's loader (BERT
    encoders cast it back to ``long``).
    """

    def __init__(self, split: MMSASplit, text_key: str = "text",
                 label_key: str = "regression_labels") -> None:
        """Wrap ``split``; ``text_key`` is ``"text"`` (BERT features) or ``"text_bert"``,
        ``label_key`` is ``"regression_labels"`` or ``"classification_labels"``
        (0 negative / 1 neutral / 2 positive)."""
        if text_key not in ("text", "text_bert"):
            raise ValueError(f"text_key must be 'text' or 'text_bert', got {text_key!r}")
        if label_key not in ("regression_labels", "classification_labels"):
            raise ValueError(f"label_key must be 'regression_labels' or 'classification_labels', got {label_key!r}")
        self.split = split
        self.text_key = text_key
        text = split.text if text_key == "text" else split.text_bert.astype(np.float32)
        self._text = torch.from_numpy(np.ascontiguousarray(text))
        self._audio = torch.from_numpy(np.ascontiguousarray(split.audio))
        self._vision = torch.from_numpy(np.ascontiguousarray(split.vision))
        self.label_key = label_key
        labels = (split.regression_labels if label_key == "regression_labels"
                  else split.classification_labels.astype(np.int64))
        self._labels = torch.from_numpy(np.ascontiguousarray(labels))

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "index": int(index),
            "text": self._text[index],
            "audio": self._audio[index],
            "vision": self._vision[index],
            "label": self._labels[index],
        }
