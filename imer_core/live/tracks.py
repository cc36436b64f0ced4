"""Time-stamped feature tracks and the fixed-rate windows the model consumes.

Every feature worker appends ``(time, vector)`` samples to a
:class:`FeatureTrack`; the inference engine asks each track for the window
its checkpoint expects (``seq_len`` steps at ``rate_hz`` ending at a given
time).  Samples falling into one step are averaged (faces at 30 fps become
10 Hz steps); a step without samples holds the previous value, as long as that
value is at most ``hold_s`` old.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class TrackWindow:
    """A model-ready window of one modality.

    Attributes:
        values: ``(seq_len, dim)`` float32.
        coverage: share of steps that hold a (possibly held) value.
        newest_time: time of the newest sample used (``None`` if none).
    """

    values: np.ndarray
    coverage: float
    newest_time: float | None


class FeatureTrack:
    """Thread-safe bounded history of ``(time, vector)`` samples of one modality.

    Args:
        dim: feature dimension.
        capacity_s: samples older than this (relative to the newest) are dropped.
    """

    def __init__(self, dim: int, capacity_s: float = 30.0) -> None:
        self.dim = int(dim)
        self.capacity_s = float(capacity_s)
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, np.ndarray]] = deque()

    def __len__(self) -> int:
        return len(self._samples)

    def append(self, t: float, vector: np.ndarray) -> None:
        """Add one sample; samples must arrive in time order (older ones are dropped)."""
        v = np.asarray(vector, np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(f"feature vector has {v.shape[0]} values, the track expects {self.dim}")
        with self._lock:
            if self._samples and t < self._samples[-1][0]:
                return
            self._samples.append((float(t), v))
            while self._samples and self._samples[0][0] < t - self.capacity_s:
                self._samples.popleft()

    def extend(self, times: np.ndarray, vectors: np.ndarray) -> None:
        """Append several samples (``times`` ascending)."""
        for t, v in zip(np.asarray(times, np.float64), np.asarray(vectors)):
            self.append(float(t), v)

    @property
    def newest_time(self) -> float | None:
        """Time of the newest sample (``None`` when empty)."""
        with self._lock:
            return self._samples[-1][0] if self._samples else None

    def clear(self) -> None:
        """Forget every sample (a disabled modality keeps nothing)."""
        with self._lock:
            self._samples.clear()

    def between(self, t_from: float, t_end: float) -> tuple[np.ndarray, np.ndarray]:
        """Times ``(n,)`` and vectors ``(n, dim)`` of the samples with ``t_from <= t <= t_end``."""
        with self._lock:
            items = [(t, v) for t, v in self._samples if t_from <= t <= t_end]
        if not items:
            return np.zeros(0), np.zeros((0, self.dim), np.float32)
        return np.array([t for t, _ in items]), np.stack([v for _, v in items])

    def window(self, t_end: float, seq_len: int, rate_hz: float, hold_s: float = 0.5) -> TrackWindow | None:
        """The ``seq_len`` steps of ``1/rate_hz`` s ending at ``t_end``.

        Returns ``None`` when no sample at most ``hold_s`` older than the
        window's start (or inside it) exists.
        """
        step = 1.0 / float(rate_hz)
        t_start = t_end - seq_len * step
        times, vectors = self.between(t_start - hold_s, t_end)
        if len(times) == 0:
            return None
        edges = t_start + step * np.arange(seq_len + 1)
        out = np.zeros((seq_len, self.dim), np.float32)
        filled = np.zeros(seq_len, bool)
        slot = np.searchsorted(edges, times, side="right") - 1  # -1: before the window
        last_value, last_time = None, -np.inf
        before = slot < 0
        if before.any():
            last_value, last_time = vectors[before][-1], times[before][-1]
        for k in range(seq_len):
            inside = slot == k
            if inside.any():
                out[k] = vectors[inside].mean(axis=0)
                last_value, last_time = vectors[inside][-1], times[inside][-1]
                filled[k] = True
            elif last_value is not None and edges[k + 1] - last_time <= hold_s + step:
                out[k] = last_value
                filled[k] = True
        if not filled.any():
            return None
        first = int(np.argmax(filled))
        out[:first] = out[first]  # the start of the window before the first sample
        return TrackWindow(out, float(filled.mean()), float(times[-1]))
