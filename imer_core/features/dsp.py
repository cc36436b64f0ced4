"""Small numpy signal-processing helpers for :mod:`imer_core.features.voice`."""

from __future__ import annotations

import numpy as np

__all__ = ["frames", "mel_filterbank", "runs", "yin"]

_EPS = 1e-10


def frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    """``(len(x) // hop, length)`` frames whose centres are at ``(i + 0.5) * hop`` (zero padded)."""
    left = (length - hop) // 2
    padded = np.pad(x, (left, length - left))
    n = len(x) // hop
    return np.lib.stride_tricks.sliding_window_view(padded, length)[: n * hop: hop]


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, hz * 3.0 / 200.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * 200.0 / 3.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular Slaney-normalised filters (``librosa.filters.mel``)."""
    fmax = sr / 2 if fmax is None else fmax
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lower = (freqs[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - freqs[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def yin(frames: np.ndarray, sr: int, f0_min: float, f0_max: float,
        threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised YIN on ``(n, W)`` frames → (f0 Hz, voicing probability, voiced flag)."""
    n, width = frames.shape
    tau_min, tau_max = int(sr // f0_max), int(np.ceil(sr / f0_min))
    if width < 2 * tau_max:
        raise ValueError(f"YIN frames of {width} samples are too short for f0_min={f0_min}")
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
    span = width - tau_max
    x = frames.astype(np.float64)
    nfft = 1 << int(np.ceil(np.log2(width + span)))
    corr = np.fft.irfft(np.conj(np.fft.rfft(x[:, :span], nfft)) * np.fft.rfft(x, nfft), nfft)[:, : tau_max + 1]
    energy = np.concatenate([np.zeros((n, 1)), np.cumsum(x * x, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    e_tau = energy[:, taus + span] - energy[:, taus]
    diff = np.maximum(e_tau[:, :1] + e_tau - 2.0 * corr, 0.0)
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = np.where(cum > _EPS, diff[:, 1:] * taus[1:] / np.maximum(cum, _EPS), 1.0)
    mid = cmnd[:, tau_min:tau_max]
    trough = (mid < cmnd[:, tau_min - 1:tau_max - 1]) & (mid <= cmnd[:, tau_min + 1:tau_max + 1])
    candidate = trough & (mid < threshold)
    voiced = candidate.any(axis=1)
    best = np.where(voiced, candidate.argmax(axis=1), mid.argmin(axis=1)) + tau_min
    rows = np.arange(n)
    left, centre, right = cmnd[rows, best - 1], cmnd[rows, best], cmnd[rows, np.minimum(best + 1, tau_max)]
    denom = left - 2.0 * centre + right
    shift = np.where(np.abs(denom) > _EPS, 0.5 * (left - right) / np.where(denom == 0, 1.0, denom), 0.0)
    period = best + np.clip(shift, -1.0, 1.0)
    return sr / period, np.clip(1.0 - centre, 0.0, 1.0), voiced


def runs(mask: np.ndarray) -> np.ndarray:
    """``(k, 2)`` start/stop (exclusive) indices of the True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)
