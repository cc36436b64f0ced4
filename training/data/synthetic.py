"""Synthetic data in the exact MMSA pickle schema, for tests and smoke runs.

The generated dictionary has the same keys, dtypes and shapes as the
published MOSI (or MOSEI) ``aligned_50.pkl`` (see :mod:`training.data.mmsa`),
so every code path of the real pipeline runs on it.  Nothing inside the data
marks it as synthetic (that would break schema-exactness); instead files are
named ``synthetic_<dataset>_aligned_50.pkl`` by convention, ids look like
``synthetic_000123`` and every ``raw_text`` says it is synthetic.  Tables built
on it must carry :data:`SYNTHETIC_NOTE`.

Generative model (all maps drawn once from ``seed``)::

    s_n   ~ N(0, I_k)                          shared static latent, k = 8
    r_nt  = AR(1) with rho = 0.9, unit var     slow shared trajectory
    z_nt  = s_n + 0.5 * r_nt
    x^m   = EMA_m(z) P_m^T C_m^T               rank-r_m view of z, smoothed
            + q^m_n B_m^T                      modality-private static part
            + sigma_m * eps                    i.i.d. noise
    y_n   = 3 * tanh(0.7 * (w . s_n + 0.2 * e_n)),  rounded to multiples of 1/3

Each modality sees a different random rank-``r_m`` projection of the shared
latent (text 6, audio 4, vision 5 of k = 8 dimensions), so the label is
partially predictable from any single modality and best predictable from all
three, and a missing modality is partially recoverable from the others.
Labels are rounded to a 1/3 grid (averages of three integer ratings, as MOSEI
annotations are), which yields about 6 % exact zeros, so ``Has0`` and
``Non0`` metrics differ as on the real data.  ``classification_labels`` follow
MMSA: 0 negative (y < 0), 1 neutral (y == 0), 2 positive (y > 0).  About
1e-4 of the audio values are ``-inf`` (as in COVAREP features) to exercise the
``-inf -> 0`` path.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .mmsa import DATASET_DIMS, SPLITS

SYNTHETIC_NOTE = ("Synthetic data (MMSA schema, shared-latent generator, training.data.synthetic) "
                  "- not CMU-MOSI/MOSEI; numbers are not comparable to published results.")

LATENT_DIM = 8
_RANKS = (6, 4, 5)  # rank of the shared-latent view seen by text, audio, vision
_PRIVATE_DIM = 4
_NOISE = (0.6, 0.6, 0.6)
_SMOOTHING = (0.0, 0.5, 0.8)  # EMA coefficient per modality (0 = none)
_NEGINF_FRACTION = 1e-4
_LABEL_STEP = 1.0 / 3.0
_CLASS_NAMES = ("Negative", "Neutral", "Positive")
_VOCAB = (1000, 30000)  # token id range for fake BERT ids


def synthetic_file_name(dataset: str = "mosi") -> str:
    """Conventional file name of a synthetic feature file, e.g. ``synthetic_mosi_aligned_50.pkl``."""
    return f"synthetic_{dataset.lower()}_aligned_50.pkl"


def make_synthetic_mmsa(dataset: str = "mosi", *, seed: int = 0,
                        sizes: Sequence[int] = (1284, 229, 686), seq_len: int = 50,
                        dims: Sequence[int] | None = None, noise_scale: float = 1.0,
                        private_scale: float = 1.0, feature_scale: float = 1.0) -> dict[str, dict[str, Any]]:
    """Generate a synthetic feature dictionary in the MMSA ``aligned_50.pkl`` schema.

    Args:
        dataset: ``"mosi"`` (dims 768/5/20) or ``"mosei"`` (768/74/35).
        seed: seed of everything (maps, latents, noise).
        sizes: (train, valid, test) sample counts; the default is MOSI's
            (MOSEI's are in :data:`training.data.mmsa.DATASET_SIZES`).
        seq_len: time steps of every modality (aligned data).
        dims: (text, audio, vision) feature dims overriding the dataset's
            (for tiny tests).
        noise_scale: multiplier of the i.i.d. per-step noise of every modality.
        private_scale: multiplier of the modality-private static part.  Values
            below 1 make the modalities more predictable from each other
            (stronger cross-modal coupling); the defaults give the benchmark.
        feature_scale: global multiplier of every feature value (the tiny test
            configurations use it to reach the magnitude of MOSI-sized projections).

    Returns:
        ``{"train": {...}, "valid": {...}, "test": {...}}`` with the MMSA keys.
    """
    dataset = dataset.lower()
    if dataset not in DATASET_DIMS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASET_DIMS)}")
    dims = tuple(int(d) for d in (dims if dims is not None else DATASET_DIMS[dataset]))
    sizes = tuple(int(s) for s in sizes)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"dims must be three positive ints, got {dims}")
    if len(sizes) != 3 or min(sizes) < 1:
        raise ValueError(f"sizes must be three positive ints (train, valid, test), got {sizes}")
    if noise_scale < 0 or private_scale < 0 or feature_scale <= 0:
        raise ValueError("noise_scale and private_scale must be non-negative, feature_scale positive")
    if seq_len < 3:
        raise ValueError(f"seq_len must be at least 3 (token ids need [CLS] and [SEP]), got {seq_len}")

    rng = np.random.default_rng(seed)
    maps = _draw_maps(rng, dims, noise_scale, private_scale)
    out: dict[str, dict[str, Any]] = {}
    offset = 0
    for split, n in zip(SPLITS, sizes):
        out[split] = _make_split(rng, maps, n, seq_len, offset)
        if feature_scale != 1.0:
            for key in ("text", "audio", "vision"):
                out[split][key] *= np.float32(feature_scale)
        offset += n
    return out


def write_synthetic_mmsa(path: "str | Path", **kwargs: Any) -> Path:
    """Generate with :func:`make_synthetic_mmsa` (``kwargs`` forwarded) and pickle to ``path``."""
    return write_pickle_atomically(path, make_synthetic_mmsa(**kwargs))


def write_pickle_atomically(path: "str | Path", data: Any) -> Path:
    """Pickle ``data`` to ``path`` through a private temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a private temporary name and rename: concurrent writers (DDP
    # ranks) and interrupted runs never leave a half-written file behind.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _draw_maps(rng: np.random.Generator, dims: tuple[int, int, int], noise_scale: float = 1.0,
               private_scale: float = 1.0) -> dict[str, Any]:
    """Fixed random maps: per-modality shared view, private loadings, scales."""
    readout = rng.standard_normal(LATENT_DIM)
    maps: dict[str, Any] = {"readout": readout / np.linalg.norm(readout), "modalities": []}
    for dim, rank, noise, smooth in zip(dims, _RANKS, _NOISE, _SMOOTHING):
        rank = min(rank, dim)
        view = rng.standard_normal((rank, LATENT_DIM)) / np.sqrt(LATENT_DIM)
        lift = rng.standard_normal((dim, rank)) / np.sqrt(rank)
        shared = (lift @ view).T.astype(np.float32)  # (k, dim)
        private = (rng.standard_normal((dim, _PRIVATE_DIM)) * 0.5 * private_scale / np.sqrt(_PRIVATE_DIM)).T
        maps["modalities"].append({
            "shared": shared, "private": private.astype(np.float32),
            "scale": rng.uniform(0.5, 2.0, dim).astype(np.float32),
            "offset": rng.normal(0.0, 0.5, dim).astype(np.float32),
            "noise": np.float32(noise * noise_scale), "smooth": smooth,
        })
    return maps


def _make_split(rng: np.random.Generator, maps: dict[str, Any], n: int, seq_len: int,
                offset: int) -> dict[str, Any]:
    static = rng.standard_normal((n, LATENT_DIM))
    latent = static[:, None, :] + 0.5 * _ar1(rng, n, seq_len, rho=0.9)  # (n, T, k)
    latent = latent.astype(np.float32)

    features = [_modality(rng, _ema(latent, spec["smooth"]), spec) for spec in maps["modalities"]]
    text, audio, vision = features
    n_neginf = max(1, int(round(audio.size * _NEGINF_FRACTION)))
    audio.reshape(-1)[rng.choice(audio.size, size=n_neginf, replace=False)] = -np.inf

    score = static @ maps["readout"] + 0.2 * rng.standard_normal(n)
    labels = np.round(3.0 * np.tanh(0.7 * score) / _LABEL_STEP) * _LABEL_STEP
    labels = labels.astype(np.float32)
    labels[labels == 0] = 0.0  # no negative zeros
    classes = np.where(labels < 0, 0, np.where(labels > 0, 2, 1)).astype(np.int64)
    ids = np.array([f"synthetic_{offset + i:06d}" for i in range(n)])
    return {
        "raw_text": np.array([f"synthetic utterance {offset + i} (not real data)" for i in range(n)]),
        "id": ids,
        "text": text,
        "text_bert": _token_ids(rng, n, seq_len),
        "audio": audio,
        "vision": vision,
        "audio_lengths": [seq_len] * n,
        "vision_lengths": [seq_len] * n,
        "annotations": np.array([_CLASS_NAMES[c] for c in classes]),
        "classification_labels": classes,
        "regression_labels": labels,
    }


def _modality(rng: np.random.Generator, latent: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Features of one modality, built in sample chunks that stay cache-resident."""
    n, steps, _ = latent.shape
    dim = spec["shared"].shape[1]
    shared = spec["shared"] * spec["scale"]
    sigma = spec["noise"] * spec["scale"]
    private = rng.standard_normal((n, _PRIVATE_DIM)).astype(np.float32) @ (spec["private"] * spec["scale"])
    private += spec["offset"]
    out = np.empty((n, steps, dim), dtype=np.float32)
    chunk = max(1, (1 << 18) // (steps * dim))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = out[start:stop]
        rng.standard_normal(block.shape, dtype=np.float32, out=block)
        block *= sigma
        block += private[start:stop, None]
        block += latent[start:stop] @ shared
    return out


def _ar1(rng: np.random.Generator, n: int, steps: int, rho: float) -> np.ndarray:
    """Unit-variance AR(1) trajectories of shape (n, steps, LATENT_DIM)."""
    innov = rng.standard_normal((n, steps, LATENT_DIM)) * np.sqrt(1.0 - rho * rho)
    out = np.empty_like(innov)
    out[:, 0] = rng.standard_normal((n, LATENT_DIM))
    for t in range(1, steps):
        out[:, t] = rho * out[:, t - 1] + innov[:, t]
    return out


def _ema(latent: np.ndarray, alpha: float) -> np.ndarray:
    """Causal exponential moving average along time (``alpha`` = weight of the past)."""
    if alpha <= 0.0:
        return latent
    out = np.empty_like(latent)
    out[:, 0] = latent[:, 0]
    for t in range(1, latent.shape[1]):
        out[:, t] = alpha * out[:, t - 1] + (1.0 - alpha) * latent[:, t]
    return out


def _token_ids(rng: np.random.Generator, n: int, seq_len: int) -> np.ndarray:
    """(n, 3, seq_len) int64: BERT-like token ids ([CLS] ... [SEP] pad), mask, segment ids."""
    lengths = rng.integers(min(8, seq_len), seq_len + 1, size=n)
    positions = np.arange(seq_len)[None, :]
    mask = (positions < lengths[:, None]).astype(np.int64)
    ids = rng.integers(*_VOCAB, size=(n, seq_len)) * mask
    ids[:, 0] = 101
    ids[np.arange(n), lengths - 1] = 102
    return np.stack([ids, mask, np.zeros_like(ids)], axis=1)
