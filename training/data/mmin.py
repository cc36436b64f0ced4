"""Loader for the MMIN feature release of IEMOCAP and MSP-IMPROV.

The layout is the one read by MMIN (Zhao et al., ACL 2021; AIM3-RUC/MMIN,
``data/multimodal_dataset.py`` and ``data/multimodal_miss_dataset.py``) and
its follow-ups (IF-MMIN, CM-ARR)::

    <root>/A/comparE.h5            IEMOCAP: utt id -> (T_a, 130) ComParE frames (variable T_a)
    <root>/A/comparE_mean_std.h5   IEMOCAP: "<fold>" -> {"mean": (130,), "std": (130,)}
    <root>/A/comparE_raw.h5        MSP-IMPROV: utt id -> (T_a, 130) un-normalised ComParE
    <root>/V/denseface.h5          utt id -> (T_v, 342) DenseFace frames (stored zero-padded)
    <root>/L/bert_large.h5         utt id -> (T_l, 1024) BERT-large word vectors (zero-padded)
    <root>/target/<fold>/{trn,val,tst}_label.npy
    <root>/target/<fold>/{trn,val,tst}_int2name.npy

Each h5 key is an utterance id holding a 2-D dataset (written as
``h5[utt_id] = array``; a group with a ``feat`` dataset, as in MMIN's
``preprocess/*/make_aligned.py``, is accepted too).  Folds are numbered from
1: 10 for IEMOCAP (leave one session out; one of its speakers is validation,
the other test), 12 for MSP-IMPROV.

IEMOCAP labels are one-hot ``(N, 4)`` rows and MMIN takes their ``argmax``;
its ``int2name`` is an ``(N, 1)`` bytes array (``x[0].decode()``).  MSP-IMPROV
labels are ``(N,)`` class ids and its ``int2name`` holds plain strings.  Both
forms are accepted for either corpus.  Class order (ang, hap, neu, sad) is not
written in the MMIN repository; it is the one documented by the same lab for
these folds (AIM3-RUC/MEmoBert ``preprocess/iemocap/anote.md``), IEMOCAP
"happiness" including "excited" (5531 utterances).  MSP-IMPROV is assumed to
use the same order.

Audio normalisation follows MMIN's ``--norm_method=trn`` (``audio_norm=
"published"``): IEMOCAP uses the fold's training-set statistics from
``comparE_mean_std.h5``; MSP-IMPROV (``A_type=comparE_raw``) uses mean/std over
all frames of all utterances in ``comparE_raw.h5`` (transductive: test
utterances included, exactly as MMIN's ``calc_mean_std``).  ``"train"`` uses
the fold's training frames instead, ``"none"`` keeps raw values.

MMIN pads each batch to its longest sequence; our models need fixed lengths,
so every modality is zero-padded (after normalisation, as MMIN's
``pad_sequence``) to ``seq_lens`` (text, audio, vision).  By default
(``seq_lens=None``) the lengths are derived from the data: per modality the
longest valid sequence over the fold's utterances (train, valid and test: the
whole corpus in MMIN's folds), so nothing is truncated, as with MMIN's
per-batch padding.  For scale: ``comparE.h5`` / ``comparE_raw.h5`` hold
openSMILE ComParE_2016 low-level descriptors (10 ms hop) resampled by
``resample_poly(down=10)`` in MMIN's ``preprocess/*/make_comparE.py``, i.e.
**10 frames per second**, so the fixed 60 / 50 audio frames of MMIN's
fixed-length exports (``preprocess/IEMOCAP/migrate_compaeE_tonpy.py``,
``preprocess/MSP/make_comparE.py``; :attr:`MMINDatasetInfo.seq_lens`, which
a config can still request: text 22, audio 60 / 50, vision 50) keep only
the first 6 / 5 seconds of an utterance.  ``lengths`` keeps the valid steps: the
position after the last non-zero raw step (the release stores V/L already
zero-padded; an utterance without a detected face is all zeros, length 0),
capped at the fixed length.  Steps after ``lengths`` are always zero; this
differs from MMIN only for MSP-IMPROV audio, whose stored zero padding MMIN
normalises into constant non-zero frames.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .common import ThreeModalityArrays

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "valid", "test")
FILE_SPLITS: dict[str, str] = {"train": "trn", "valid": "val", "test": "tst"}
AUDIO_NORMS: tuple[str, ...] = ("published", "train", "none")


#: Largest feature array one utterance may declare (a 10-minute utterance of
#: 1024-d BERT-large steps at 100 Hz is about 240 MB; the release holds seconds).
MAX_UTTERANCE_BYTES = 256 << 20


class MMINFormatError(ValueError):
    """A file of the MMIN feature release is missing or does not follow its layout."""


@dataclass(frozen=True)
class MMINDatasetInfo:
    """Published facts about one corpus: ``n_folds`` (numbered from 1), class names
    (index = id), (text, audio, vision) ``dims``, default fixed ``seq_lens`` and h5
    ``feature_files`` relative to the root, and the per-fold ``audio_stats_file``
    (``None``: MMIN computes audio statistics over the whole audio file)."""

    name: str
    n_folds: int
    classes: tuple[str, ...]
    dims: tuple[int, int, int]
    seq_lens: tuple[int, int, int]
    feature_files: tuple[str, str, str]
    audio_stats_file: str | None


_CLASSES = ("anger", "happiness", "neutral", "sadness")
MMIN_DATASETS: dict[str, MMINDatasetInfo] = {
    "iemocap": MMINDatasetInfo("iemocap", 10, _CLASSES, (1024, 130, 342), (22, 60, 50),
                               ("L/bert_large.h5", "A/comparE.h5", "V/denseface.h5"),
                               "A/comparE_mean_std.h5"),
    "msp": MMINDatasetInfo("msp", 12, _CLASSES, (1024, 130, 342), (22, 50, 50),
                           ("L/bert_large.h5", "A/comparE_raw.h5", "V/denseface.h5"), None),
}
_MODALITY_NAMES = ("text", "audio", "vision")


@dataclass(frozen=True, eq=False)
class MMINSplit(ThreeModalityArrays):
    """One split of one fold, padded to fixed lengths.

    Attributes:
        name: ``"train"``, ``"valid"`` or ``"test"``.
        text: (N, L_t, 1024) float32 BERT-large word vectors.
        audio: (N, L_a, 130) float32 ComParE frames (normalised per ``audio_norm``).
        vision: (N, L_v, 342) float32 DenseFace frames.
        lengths: (N, 3) int64 valid steps (text, audio, vision), <= the fixed lengths.
        labels: (N,) int64 class ids.
        ids: (N,) str utterance ids.
        fold: fold number (from 1).
        dataset: ``"iemocap"`` or ``"msp"``.
    """

    name: str
    text: np.ndarray
    audio: np.ndarray
    vision: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    fold: int
    dataset: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])



    @property
    def classes(self) -> tuple[str, ...]:
        """Class names of the corpus."""
        return MMIN_DATASETS[self.dataset].classes


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading the MMIN feature release needs h5py: pip install h5py") from exc
    return h5py


def load_mmin_fold(root: "str | Path", dataset: str = "iemocap", fold: int = 1, *,
                   seq_lens: Sequence[int] | None = None, target_root: "str | Path | None" = None,
                   audio_norm: str = "published") -> dict[str, MMINSplit]:
    """Load one cross-validation fold of the MMIN release.

    Args:
        root: feature root (``IEMOCAP_features_2021`` / ``MSP-IMPROV_features_2021``)
            holding ``A``, ``V``, ``L`` and ``target``.
        dataset: ``"iemocap"`` or ``"msp"``.
        fold: fold number, 1 ... 10 (IEMOCAP) or 1 ... 12 (MSP-IMPROV).
        seq_lens: fixed (text, audio, vision) lengths; ``None``: derived from the data
            (:func:`data_seq_lens`: the longest valid sequence of each modality, no truncation).
        target_root: label folder; default ``<root>/target``.
        audio_norm: ``"published"`` (MMIN's), ``"train"`` or ``"none"`` (module docstring).

    Returns:
        ``{"train": MMINSplit, "valid": MMINSplit, "test": MMINSplit}`` (files trn/val/tst).

    Raises:
        MMINFormatError: missing root, feature or statistics file, target
            folder, fold folder or label file; utterance ids absent from an h5
            file; wrong feature dimension; label / int2name count mismatch;
            malformed labels or ids.
        ValueError: unknown dataset, fold out of range, bad ``seq_lens`` or ``audio_norm``.
        ImportError: h5py is not installed.
    """
    key = str(dataset).lower()
    if key not in MMIN_DATASETS:
        raise ValueError(f"unknown MMIN dataset {dataset!r}; expected one of {sorted(MMIN_DATASETS)}")
    info = MMIN_DATASETS[key]
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 1 <= fold <= info.n_folds:
        raise ValueError(f"fold must be an int in 1..{info.n_folds} for {key}, got {fold!r}")
    lens = tuple(int(n) for n in seq_lens) if seq_lens is not None else (1, 1, 1)
    if len(lens) != 3 or min(lens) < 1:
        raise ValueError(f"seq_lens must be three positive ints (text, audio, vision), got {seq_lens!r}")
    if audio_norm not in AUDIO_NORMS:
        raise ValueError(f"audio_norm must be one of {AUDIO_NORMS}, got {audio_norm!r}")
    h5py = _import_h5py()
    root = Path(root)
    if not root.is_dir():
        raise MMINFormatError(f"MMIN feature root not found: {root}")
    target = Path(target_root) if target_root is not None else root / "target"
    if not target.is_dir():
        raise MMINFormatError(f"MMIN target folder not found: {target}")
    fold_dir = target / str(int(fold))
    if not fold_dir.is_dir():
        found = sorted(p.name for p in target.iterdir() if p.is_dir())
        raise MMINFormatError(f"fold {fold} not found: {fold_dir} (target folder has {found})")
    targets = {split: _read_target(fold_dir, FILE_SPLITS[split], info) for split in SPLITS}
    paths = [root / rel for rel in info.feature_files]
    for modality, path in zip(_MODALITY_NAMES, paths):
        if not path.is_file():
            raise MMINFormatError(f"{modality} feature file not found: {path}")

    raw: dict[str, list[list[np.ndarray]]] = {split: [] for split in SPLITS}
    stats: tuple[np.ndarray, np.ndarray] | None = None
    for modality, path, dim in zip(_MODALITY_NAMES, paths, info.dims):
        try:
            with h5py.File(path, "r") as h5:
                for split in SPLITS:
                    raw[split].append(_read_features(h5, path, targets[split][0], dim, split))
                if modality == "audio" and audio_norm == "published" and info.audio_stats_file is None:
                    stats = _mean_std([_feature(h5[k], path, k, dim) for k in h5.keys()])
        except (OSError, KeyError, TypeError, RuntimeError) as exc:  # h5py's errors for corrupt files
            raise MMINFormatError(f"{path} is not a readable HDF5 feature file ({type(exc).__name__}: "
                                  f"{exc})") from exc
    if audio_norm == "published" and info.audio_stats_file is not None:
        stats = _read_stats(h5py, root / info.audio_stats_file, int(fold), info.dims[1])
    elif audio_norm == "train":
        stats = _mean_std([x[:_valid_length(x)] for x in raw["train"][1]])

    if seq_lens is None:
        lens = data_seq_lens([[x for split in SPLITS for x in raw[split][m]] for m in range(3)])
        logger.info("MMIN %s fold %d: sequence lengths from the data (text, audio, vision) = %s", key, fold, lens)
    splits = {}
    for split in SPLITS:
        ids, labels = targets[split]
        arrays, lengths = [], []
        for index, (values, length, dim) in enumerate(zip(raw.pop(split), lens, info.dims)):
            valid = np.array([min(_valid_length(x), length) for x in values], dtype=np.int64)
            values = [x[:n] for x, n in zip(values, valid)]
            if index == 1 and stats is not None:
                values = [(x - stats[0]) / stats[1] for x in values]
            arrays.append(_pad(values, length, dim))
            lengths.append(valid)
        splits[split] = MMINSplit(split, arrays[0], arrays[1], arrays[2], np.stack(lengths, axis=1),
                                  labels, ids, int(fold), key)
    logger.info("loaded MMIN %s fold %d from %s: %s", key, fold, root,
                ", ".join(f"{n}={len(s)}" for n, s in splits.items()))
    return splits


def _read_npy(path: Path) -> np.ndarray:
    """A plain ``.npy`` array; its header is checked against the file size before the data is read."""
    if not path.is_file():
        raise MMINFormatError(f"label file not found: {path}")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = reader(handle)
            left = path.stat().st_size - handle.tell()
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise MMINFormatError(f"{path} is truncated or not a .npy file ({exc})") from exc
    if dtype.hasobject:
        raise MMINFormatError(f"{path} holds Python objects, not a plain numpy array (refused: loading "
                              "it would need pickle)")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > left:
        raise MMINFormatError(f"{path} declares {declared} bytes of {dtype} {shape} but holds {left}: "
                              "truncated or corrupt")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MMINFormatError(f"{path} is truncated or not a .npy file ({exc})") from exc


def _read_target(fold_dir: Path, prefix: str, info: MMINDatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    names_path, label_path = fold_dir / f"{prefix}_int2name.npy", fold_dir / f"{prefix}_label.npy"
    names, labels = _read_npy(names_path), _read_npy(label_path)
    if names.ndim == 2 and names.shape[1] == 1:
        names = names[:, 0]
    if names.ndim != 1 or names.dtype.kind not in "SU":
        raise MMINFormatError(f"{names_path}: expected (N,) or (N, 1) strings, got {names.dtype} "
                              f"{names.shape}")
    ids = np.array([n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names.tolist()])
    if labels.shape[:1] != ids.shape:
        raise MMINFormatError(f"{label_path} has {labels.shape[0] if labels.ndim else 0} labels but "
                              f"{names_path} has {ids.shape[0]} utterance ids")
    n_classes = len(info.classes)
    if labels.dtype.kind not in "biuf" or not np.isfinite(labels.astype(np.float64)).all():
        raise MMINFormatError(f"{label_path}: expected finite numeric labels, got {labels.dtype}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2:
        if labels.shape[1] != n_classes:
            raise MMINFormatError(f"{label_path}: one-hot labels need {n_classes} columns, "
                                  f"got shape {labels.shape}")
        classes = labels.argmax(axis=1).astype(np.int64)  # MMIN: np.argmax(label, axis=1)
    elif labels.ndim == 1:
        classes = np.rint(labels).astype(np.int64)
        if not np.array_equal(classes, labels) or (classes.size and not 0 <= classes.min() <= classes.max()
                                                   < n_classes):
            raise MMINFormatError(f"{label_path}: expected class ids in 0..{n_classes - 1}")
    else:
        raise MMINFormatError(f"{label_path}: expected (N,) ids or (N, {n_classes}) one-hot rows, "
                              f"got shape {labels.shape}")
    return ids, classes


def _feature(node: Any, path: Path, uid: str, dim: int) -> np.ndarray:
    if hasattr(node, "keys"):  # group layout of make_aligned.py: {"feat", "start", "end"}
        if "feat" not in node:
            raise MMINFormatError(f"{path}[{uid!r}] is a group without a 'feat' dataset")
        node = node["feat"]
    shape, dtype = getattr(node, "shape", None), getattr(node, "dtype", None)
    if shape is None or dtype is None:
        raise MMINFormatError(f"{path}[{uid!r}] is not a dataset")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > MAX_UTTERANCE_BYTES:
        raise MMINFormatError(f"{path}[{uid!r}] declares {declared / 2**20:.0f} MiB ({dtype} {shape}); "
                              f"the limit per utterance is {MAX_UTTERANCE_BYTES >> 20} MiB")
    array = np.asarray(node[()])
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        raise MMINFormatError(f"{path}[{uid!r}]: expected a numeric (T, {dim}) array, got "
                              f"{array.dtype} {array.shape}")
    if array.shape[1] != dim:
        raise MMINFormatError(f"{path}[{uid!r}]: expected feature dim {dim}, got {array.shape[1]}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise MMINFormatError(f"{path}[{uid!r}]: {int((~np.isfinite(array)).sum())} NaN/inf values")
    return array


def _read_features(h5: Any, path: Path, ids: np.ndarray, dim: int, split: str) -> list[np.ndarray]:
    names = [str(uid) for uid in ids]
    missing = [uid for uid in names if uid not in h5]
    if missing:
        raise MMINFormatError(f"{len(missing)} {split} utterance id(s) from int2name are not in {path}, "
                              f"e.g. {missing[:3]}")
    return [_feature(h5[uid], path, uid, dim) for uid in names]


def _read_stats(h5py: Any, path: Path, fold: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise MMINFormatError(f"audio statistics file not found: {path}")
    try:
        with h5py.File(path, "r") as h5:
            if str(fold) not in h5 or any(k not in h5[str(fold)] for k in ("mean", "std")):
                raise MMINFormatError(f"{path}: missing group '{fold}' with 'mean' and 'std'")
            nodes = [h5[str(fold)][k] for k in ("mean", "std")]
            if any(getattr(n, "shape", None) != (dim,) for n in nodes):
                raise MMINFormatError(f"{path}['{fold}']: expected mean/std of shape ({dim},), "
                                      f"got {[getattr(n, 'shape', None) for n in nodes]}")
            mean, std = (np.asarray(n[()], dtype=np.float32) for n in nodes)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, MMINFormatError):
            raise
        raise MMINFormatError(f"{path} is not a readable statistics file ({type(exc).__name__}: {exc})") from exc
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise MMINFormatError(f"{path}['{fold}']: NaN or infinite mean/std")
    return mean, np.where(std == 0.0, np.float32(1.0), std)


def _mean_std(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    frames = np.concatenate(arrays, axis=0).astype(np.float64)
    mean, std = frames.mean(axis=0), frames.std(axis=0)
    std[std == 0.0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def data_seq_lens(values: Sequence[Sequence[np.ndarray]]) -> tuple[int, int, int]:
    """Per modality, the longest valid sequence (steps up to the last non-zero one) of ``values[m]`` (≥ 1)."""
    if len(values) != 3:
        raise ValueError("need the (text, audio, vision) feature lists")
    text, audio, vision = (max([1, *(_valid_length(x) for x in arrays)]) for arrays in values)
    return text, audio, vision


def _valid_length(x: np.ndarray) -> int:
    nonzero = np.flatnonzero(np.any(x != 0, axis=1))
    return int(nonzero[-1]) + 1 if nonzero.size else 0


def _pad(values: list[np.ndarray], length: int, dim: int) -> np.ndarray:
    out = np.zeros((len(values), length, dim), dtype=np.float32)
    for i, x in enumerate(values):
        steps = min(length, x.shape[0])
        out[i, :steps] = x[:steps]
    return out


class MMINDataset(Dataset):
    """A :class:`torch.utils.data.Dataset` over one :class:`MMINSplit`.

    Items are ``{"index": int, "text": (L_t, 1024), "audio": (L_a, 130),
    "vision": (L_v, 342)`` float32, ``"label": ()`` int64 class id,
    ``"lengths": (3,)`` int64 valid steps (text, audio, vision)``}``.
    """

    def __init__(self, split: MMINSplit) -> None:
        """Wrap ``split`` (tensors share its memory)."""
        self.split = split
        self._text = torch.from_numpy(np.ascontiguousarray(split.text))
        self._audio = torch.from_numpy(np.ascontiguousarray(split.audio))
        self._vision = torch.from_numpy(np.ascontiguousarray(split.vision))
        self._labels = torch.from_numpy(np.ascontiguousarray(split.labels, dtype=np.int64))
        self._lengths = torch.from_numpy(np.ascontiguousarray(split.lengths, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "index": int(index),
            "text": self._text[index],
            "audio": self._audio[index],
            "vision": self._vision[index],
            "label": self._labels[index],
            "lengths": self._lengths[index],
        }
