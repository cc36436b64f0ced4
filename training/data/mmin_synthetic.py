"""Synthetic data in the exact layout of the MMIN feature release, for tests and smoke runs.

:func:`write_synthetic_mmin` writes the directory tree that
:func:`training.data.mmin.load_mmin_fold` reads (``A/comparE.h5`` +
``A/comparE_mean_std.h5`` or ``A/comparE_raw.h5``, ``V/denseface.h5``,
``L/bert_large.h5``, ``target/<fold>/{trn,val,tst}_{label,int2name}.npy``)
with the published dimensions, dtypes and conventions: IEMOCAP labels are
one-hot ``(N, 4)`` float32 rows with ``(N, 1)`` bytes ids, MSP-IMPROV labels
``(N,)`` int64 with ``(N,)`` str ids; V/L are stored zero-padded to 50 / 22
steps, IEMOCAP audio has variable length, MSP-IMPROV audio is zero-padded to
50 frames.  Nothing inside the arrays marks the data as synthetic (that would
break schema-exactness); every utterance id contains ``synthetic``, and tables
built on it must carry :data:`SYNTHETIC_MMIN_NOTE`.

Speakers and folds mimic the corpora: ``n_folds / 2`` sessions of two speakers
(F, M); fold ``k`` leaves out session ``ceil(k / 2)``, whose F speaker
(odd ``k``) or M speaker (even ``k``) is the validation set and the other
speaker the test set.

Generative model (maps drawn once from ``seed``)::

    y_n ~ uniform over the 4 classes
    s_n = mu[y_n] + N(0, I_8)                 shared latent, class prototypes mu
    z_nt = s_n + 0.5 * r_nt                   r: unit-variance AR(1), rho = 0.9
    x^m_nt = z_nt V_m L_m + sigma_m * eps     rank-r_m view (text 6, audio 4, vision 5)

so each modality alone predicts the label above chance, all three together
best, and a missing modality is partly recoverable from the others.  Audio
gets a per-dimension raw offset and scale (so normalisation matters); about
5 % of the utterances have no detected face (all-zero vision, length 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .mmin import FILE_SPLITS, MMIN_DATASETS, SPLITS, MMINDatasetInfo

SYNTHETIC_MMIN_NOTE = ("Synthetic data (MMIN release layout, shared-latent generator, "
                       "training.data.mmin_synthetic) - not IEMOCAP / MSP-IMPROV; numbers are not "
                       "comparable to published results.")

LATENT_DIM = 8
_RANKS = (6, 4, 5)  # (text, audio, vision) rank of the shared-latent view
_NOISE = (0.5, 0.6, 0.6)
_PROTOTYPE_SCALE = 1.2
_NO_FACE_FRACTION = 0.05
_STORED_AUDIO_LEN = {"iemocap": None, "msp": 50}  # None: variable length, as published
_MIN_STEPS = (3, 12, 8)  # shortest valid (text, audio, vision) sequence
_MAX_AUDIO = 90


def _import_h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("writing the synthetic MMIN release needs h5py: pip install h5py") from exc
    return h5py


def fold_speakers(fold: int, n_folds: int) -> tuple[str, str]:
    """(validation, test) speakers of ``fold``, e.g. fold 3 -> ("S02F", "S02M")."""
    if not 1 <= fold <= n_folds:
        raise ValueError(f"fold must lie in 1..{n_folds}, got {fold}")
    session = math.ceil(fold / 2)
    first, second = (f"S{session:02d}F", f"S{session:02d}M")
    return (first, second) if fold % 2 else (second, first)


def write_synthetic_mmin(root: "str | Path", dataset: str = "iemocap", *, n_utterances: int = 200,
                         folds: Sequence[int] | None = None, seed: int = 0) -> Path:
    """Write a synthetic MMIN-layout feature root (see the module docstring).

    Args:
        root: folder to create (the ``IEMOCAP_features_2021`` equivalent).
        dataset: ``"iemocap"`` (10 folds) or ``"msp"`` (12 folds).
        n_utterances: total utterances, spread evenly over the ``n_folds`` speakers.
        folds: fold numbers to write target folders for; default all.
        seed: seed of everything (maps, latents, noise, lengths).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    key = str(dataset).lower()
    if key not in MMIN_DATASETS:
        raise ValueError(f"unknown MMIN dataset {dataset!r}; expected one of {sorted(MMIN_DATASETS)}")
    info = MMIN_DATASETS[key]
    folds = list(range(1, info.n_folds + 1)) if folds is None else [int(f) for f in folds]
    for fold in folds:
        fold_speakers(fold, info.n_folds)
    if n_utterances < 2 * info.n_folds:
        raise ValueError(f"n_utterances must be at least {2 * info.n_folds} (two per speaker)")
    h5py = _import_h5py()
    rng = np.random.default_rng(seed)
    root = Path(root)

    speakers = [f"S{s:02d}{g}" for s in range(1, info.n_folds // 2 + 1) for g in "FM"]
    speaker_of = [speakers[i % len(speakers)] for i in range(n_utterances)]
    ids = [_utterance_id(key, spk, i) for i, spk in enumerate(speaker_of)]
    labels = rng.integers(0, len(info.classes), size=n_utterances)
    prototypes = rng.standard_normal((len(info.classes), LATENT_DIM)) * _PROTOTYPE_SCALE
    static = prototypes[labels] + rng.standard_normal((n_utterances, LATENT_DIM))
    features = _make_features(rng, info, static)

    for rel, values in zip(info.feature_files, features):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as h5:
            for uid, value in zip(ids, values):
                h5.create_dataset(uid, data=value)

    members = {spk: [i for i, s in enumerate(speaker_of) if s == spk] for spk in speakers}
    stats_path = root / info.audio_stats_file if info.audio_stats_file else None
    stats = h5py.File(stats_path, "w") if stats_path else None
    try:
        for fold in folds:
            val_spk, tst_spk = fold_speakers(fold, info.n_folds)
            split_index = {
                "valid": members[val_spk], "test": members[tst_spk],
                "train": sorted(i for s, m in members.items() if s not in (val_spk, tst_spk) for i in m),
            }
            fold_dir = root / "target" / str(fold)
            fold_dir.mkdir(parents=True, exist_ok=True)
            for split in SPLITS:
                _write_target(fold_dir, FILE_SPLITS[split], key, info, ids, labels, split_index[split])
            if stats is not None:  # make_comparE.py normlize_on_trn: training frames of the fold
                frames = np.concatenate([features[1][i] for i in split_index["train"]], axis=0)
                std = frames.std(axis=0)
                std[std == 0.0] = 1.0
                group = stats.create_group(str(fold))
                group["mean"], group["std"] = frames.mean(axis=0), std
    finally:
        if stats is not None:
            stats.close()
    return root


def _utterance_id(dataset: str, speaker: str, index: int) -> str:
    session, gender = int(speaker[1:3]), speaker[3]
    if dataset == "iemocap":
        return f"Ses{session:02d}{gender}_synthetic_{gender}{index:04d}"
    return f"MSP-IMPROV-synthetic-S{session:02d}-{gender}-{index:04d}"


def _write_target(fold_dir: Path, prefix: str, dataset: str, info: MMINDatasetInfo,
                  ids: list[str], labels: np.ndarray, rows: list[int]) -> None:
    names = [ids[i] for i in rows]
    classes = labels[rows].astype(np.int64)
    label_array: np.ndarray
    if dataset == "iemocap":  # one-hot float rows, (N, 1) bytes names
        label_array = np.eye(len(info.classes), dtype=np.float32)[classes]
        name_array = np.array([[n.encode("utf-8")] for n in names], dtype="S")
    else:  # class ids, (N,) str names
        label_array, name_array = classes, np.array(names, dtype=str)
    np.save(fold_dir / f"{prefix}_label.npy", label_array)
    np.save(fold_dir / f"{prefix}_int2name.npy", name_array)


def _make_features(rng: np.random.Generator, info: MMINDatasetInfo,
                   static: np.ndarray) -> list[list[np.ndarray]]:
    """Per-modality lists of stored (T, D) float32 arrays, in (text, audio, vision) order."""
    n = static.shape[0]
    stored = (info.seq_lens[0], _STORED_AUDIO_LEN[info.name], info.seq_lens[2])
    max_steps = (info.seq_lens[0], _MAX_AUDIO, info.seq_lens[2])
    audio_offset = rng.normal(0.0, 3.0, info.dims[1]).astype(np.float32)
    audio_scale = rng.uniform(0.5, 5.0, info.dims[1]).astype(np.float32)
    out: list[list[np.ndarray]] = []
    for m, (dim, rank, noise) in enumerate(zip(info.dims, _RANKS, _NOISE)):
        view = rng.standard_normal((LATENT_DIM, rank)) / np.sqrt(LATENT_DIM)
        lift = rng.standard_normal((rank, dim)) / np.sqrt(rank)
        shared = (view @ lift).astype(np.float32)
        lengths = rng.integers(_MIN_STEPS[m], max_steps[m] + 1, size=(n,))
        values = []
        for i in range(n):
            steps = int(lengths[i])
            latent = static[i] + 0.5 * _ar1(rng, steps)
            x = (latent @ shared + noise * rng.standard_normal((steps, dim))).astype(np.float32)
            if m == 1:
                x = x * audio_scale + audio_offset
            if m == 2 and rng.random() < _NO_FACE_FRACTION:
                x[:] = 0.0
            stored_len = stored[m]
            if stored_len is not None:
                padded = np.zeros((stored_len, dim), dtype=np.float32)
                padded[:min(steps, stored_len)] = x[:stored_len]
                x = padded
            values.append(x)
        out.append(values)
    return out


def _ar1(rng: np.random.Generator, steps: int, rho: float = 0.9) -> np.ndarray:
    """Unit-variance AR(1) trajectory of shape (steps, LATENT_DIM)."""
    out = np.empty((steps, LATENT_DIM))
    out[0] = rng.standard_normal(LATENT_DIM)
    innov = rng.standard_normal((steps, LATENT_DIM)) * np.sqrt(1.0 - rho * rho)
    for t in range(1, steps):
        out[t] = rho * out[t - 1] + innov[t]
    return out
