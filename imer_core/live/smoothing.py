"""Temporal smoothing of the displayed probabilities, and agreement between two predictors.

A prediction every 150 ms on a still face flickers between classes whose
probabilities are close.  :class:`ProbabilitySmoother` is a first-order
low-pass filter in continuous time (an exponential moving average whose
weight follows the real gap between predictions)::

    p̄(t) = p̄(t - Δ) + α · (p(t) - p̄(t - Δ)),   α = 1 - exp(-Δ / τ)

so the displayed distribution follows a step change with time constant τ
(63 % after τ seconds) whatever the prediction rate.  A convex combination of
distributions stays a distribution.  It restarts from the raw value after a
gap without predictions (a source switch, every modality off) or when the
labels change, so it never blends unrelated stretches.
"""

from __future__ import annotations

import math
from collections import deque

#: Default time constant of the displayed probabilities (seconds; 0 shows the raw values).
DEFAULT_SMOOTHING_S = 1.0
#: A gap without predictions longer than this restarts the average.
RESET_AFTER_S = 2.0


class ProbabilitySmoother:
    """Exponential moving average of probability vectors with time constant ``time_constant_s``."""

    def __init__(self, time_constant_s: float = DEFAULT_SMOOTHING_S, reset_after_s: float = RESET_AFTER_S) -> None:
        self.time_constant_s = time_constant_s
        self.reset_after_s = float(reset_after_s)
        self._state: tuple[float, ...] | None = None
        self._labels: tuple[str, ...] = ()
        self._t = -math.inf

    @property
    def time_constant_s(self) -> float:
        return self._tau

    @time_constant_s.setter
    def time_constant_s(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"the smoothing time constant must be a finite number >= 0, got {value}")
        self._tau = value

    def reset(self) -> None:
        """Forget the average (the next value is shown as it is)."""
        self._state = None

    def update(self, t: float, labels: tuple[str, ...], probabilities: tuple[float, ...] | None
               ) -> tuple[float, ...] | None:
        """The smoothed distribution at time ``t`` (``None`` when there is no prediction)."""
        if probabilities is None:
            return None
        gap = t - self._t
        if self._tau == 0 or self._state is None or labels != self._labels or not 0 <= gap <= self.reset_after_s:
            self._state = tuple(float(p) for p in probabilities)
        else:
            alpha = 1.0 - math.exp(-gap / self._tau)
            self._state = tuple(s + alpha * (float(p) - s) for s, p in zip(self._state, probabilities))
        self._labels, self._t = labels, t
        return self._state


class AgreementWindow:
    """How often two predictors chose the same top class over the last ``span_s`` seconds."""

    def __init__(self, span_s: float = 60.0) -> None:
        self.span_s = float(span_s)
        self._events: deque[tuple[float, object, bool]] = deque()

    def add(self, t: float, key: object, agree: bool) -> tuple[float, int]:
        """Record one window of comparison ``key``; returns (agreement fraction, windows) for that key."""
        self._events.append((t, key, bool(agree)))
        while self._events and self._events[0][0] < t - self.span_s:
            self._events.popleft()
        same = [a for _, k, a in self._events if k == key]
        return sum(same) / len(same), len(same)

    def clear(self) -> None:
        self._events.clear()
