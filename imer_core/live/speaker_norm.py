"""Per-speaker normalisation of voice features: running statistics of the current session.

Voices differ in pitch, loudness and timbre far more than one voice differs
between emotions, so a voice model does better on features measured against
the speaker's own average.  :class:`RunningSpeakerStats` keeps the running
mean and variance (Welford) of the voice feature steps of the current source
that contain speech (VAD speech fraction ≥ ``min_speech_fraction``).

Before much speech has been heard the running estimate is unreliable, so the
statistics used are shrunk towards the corpus-wide ones stored in the
checkpoint: with ``n`` speech steps and a prior weight of ``k`` steps,

    mean = (n · running_mean + k · prior_mean) / (n + k)

and likewise for the variance (each around its own mean).  With no speech at
all this is exactly the checkpoint's global normalisation; after ``k`` steps
the session's own statistics weigh half; after ``9 k`` steps, 90 %.  Training
(:func:`speaker_statistics`) normalises every clip by its speaker's
statistics over all their speech steps, the limit the running estimate tends
to.  A change of audio source resets the statistics (:meth:`reset`).

A checkpoint opts in with metadata ``"speaker_normalization"``:
``{"audio": {"prior_steps": k, "min_speech_fraction": f}}``; the engine
applies running normalisation only to the modalities listed there.

**Switch-over** (``"mode": "expert"``, ``"switch_after_steps": s``): the
running statistics need about 30-40 s of speech before they beat the
corpus-wide normalisation (``docs/perception.md``), and a model trained on
per-speaker features does much worse than the global one before that.  So a
checkpoint with an expert-fusion head keeps feeding its method and its
global audio expert globally normalised features, and only once ``s`` steps
of speech have been counted also passes the running-normalised window as
``"audio@speaker"``, which swaps the global audio expert for the one trained
on per-speaker features (:func:`use_speaker_features`).  A reset (new
source) goes back to the global expert.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .checkpoint_keys import SPEAKER_NORMALIZATION

#: Speech fraction of a 100 ms step from which it counts as speech.
DEFAULT_MIN_SPEECH_FRACTION = 0.5
#: Prior weight in steps (10 Hz): 100 steps = 10 s of speech for the session's own statistics to weigh half.
DEFAULT_PRIOR_STEPS = 100
STD_FLOOR = 1e-3


class RunningSpeakerStats:
    """Running mean / variance of one speaker's voice feature steps, shrunk towards a prior.

    Args:
        prior_mean, prior_std: corpus-wide statistics (the checkpoint's ``feature_normalization``).
        prior_steps: weight of the prior, in steps of speech.
        min_speech_fraction: steps with a lower VAD speech fraction are not counted.

    Thread-safe: the voice worker updates, the engine reads.
    """

    def __init__(self, prior_mean: np.ndarray, prior_std: np.ndarray, prior_steps: float = DEFAULT_PRIOR_STEPS,
                 min_speech_fraction: float = DEFAULT_MIN_SPEECH_FRACTION) -> None:
        self.prior_mean = np.asarray(prior_mean, np.float64).copy()
        self.prior_var = np.square(np.maximum(np.asarray(prior_std, np.float64), STD_FLOOR))
        if self.prior_mean.shape != self.prior_var.shape or self.prior_mean.ndim != 1:
            raise ValueError("prior mean and std must be vectors of the same length")
        if not prior_steps >= 0:
            raise ValueError(f"prior_steps must be >= 0, got {prior_steps}")
        self.prior_steps = float(prior_steps)
        self.min_speech_fraction = float(min_speech_fraction)
        self._lock = threading.Lock()
        self.reset()

    @property
    def dim(self) -> int:
        return int(self.prior_mean.shape[0])

    def reset(self) -> None:
        """Forget the session (a new source or a new speaker)."""
        with self._lock:
            self._n = 0
            self._mean = np.zeros(self.dim)
            self._m2 = np.zeros(self.dim)

    @property
    def speech_steps(self) -> int:
        """Steps of speech counted since the last reset."""
        return self._n

    def update(self, values: np.ndarray, speech_fraction: np.ndarray) -> int:
        """Count the speech steps of ``values (n, dim)``; returns how many were counted.

        Steps with non-finite values are skipped (never folded into the statistics).
        """
        values = np.asarray(values, np.float64).reshape(-1, self.dim)
        speech = np.asarray(speech_fraction, np.float64).reshape(-1)
        if len(speech) != len(values):
            raise ValueError(f"{len(values)} steps but {len(speech)} speech fractions")
        keep = (speech >= self.min_speech_fraction) & np.all(np.isfinite(values), axis=1)
        batch = values[keep]
        if not len(batch):
            return 0
        with self._lock:  # Chan et al. parallel update of (n, mean, M2)
            n_b, mean_b = len(batch), batch.mean(axis=0)
            m2_b = np.square(batch - mean_b).sum(axis=0)
            total = self._n + n_b
            delta = mean_b - self._mean
            self._mean = self._mean + delta * n_b / total
            self._m2 = self._m2 + m2_b + np.square(delta) * self._n * n_b / total
            self._n = total
        return int(n_b)

    def running(self) -> tuple[np.ndarray, np.ndarray]:
        """The session's own mean and (population) std, without the prior (zeros before any speech)."""
        with self._lock:
            n = self._n
            return self._mean.copy(), np.sqrt(self._m2 / n) if n else np.zeros(self.dim)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """The statistics to normalise with: running ones shrunk towards the prior (see the module doc)."""
        with self._lock:
            n, k = float(self._n), self.prior_steps
            if n + k <= 0:
                return self.prior_mean.copy(), np.sqrt(self.prior_var)
            var_run = self._m2 / n if n else np.zeros(self.dim)
            mean = (n * self._mean + k * self.prior_mean) / (n + k)
            var = (n * var_run + k * self.prior_var) / (n + k)
        return mean, np.maximum(np.sqrt(var), STD_FLOOR)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """``(values - mean) / std`` with :meth:`mean_std` (float32)."""
        mean, std = self.mean_std()
        return ((np.asarray(values, np.float64) - mean) / std).astype(np.float32)


def speaker_statistics(features: np.ndarray, speakers: np.ndarray, speech_fraction: np.ndarray | None = None,
                       min_speech_fraction: float = DEFAULT_MIN_SPEECH_FRACTION) -> dict[str, tuple[np.ndarray,
                                                                                                    np.ndarray]]:
    """``{speaker: (mean, std)}`` over the speech steps of every clip of each speaker (training side).

    Args:
        features: ``(N, T, D)`` voice feature windows.
        speakers: ``(N,)`` speaker ids.
        speech_fraction: ``(N, T)`` VAD speech fractions (``None``: every step counts).
    """
    features = np.asarray(features, np.float64)
    speakers = np.asarray(speakers).astype(str)
    fraction = np.ones(features.shape[:2]) if speech_fraction is None else np.asarray(speech_fraction)
    out = {}
    for speaker in sorted(set(speakers.tolist())):
        rows = speakers == speaker
        steps = features[rows].reshape(-1, features.shape[-1])
        keep = fraction[rows].reshape(-1) >= min_speech_fraction
        steps = steps[keep] if keep.any() else steps
        out[speaker] = (steps.mean(axis=0), np.maximum(steps.std(axis=0), STD_FLOOR))
    return out


def normalise_by_speaker(features: np.ndarray, speakers: np.ndarray,
                         stats: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each clip of ``features (N, T, D)`` normalised with its speaker's ``(mean, std)``."""
    features = np.asarray(features, np.float64)
    out = np.empty_like(features)
    for i, speaker in enumerate(np.asarray(speakers).astype(str)):
        mean, std = stats[speaker]
        out[i] = (features[i] - mean) / std
    return out.astype(np.float32)


#: ``mode`` of a speaker normalisation entry: normalise the modality itself with the running statistics.
REPLACE_MODE = "replace"
#: ``mode``: keep the global normalisation and add the running-normalised features for a speaker expert.
EXPERT_MODE = "expert"


def speaker_normalization_settings(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{modality: {prior_steps, min_speech_fraction, mode, switch_after_steps}}`` of a checkpoint (empty: none)."""
    raw = metadata.get(SPEAKER_NORMALIZATION) or {}
    if not isinstance(raw, Mapping):
        return {}
    out = {}
    for modality, entry in raw.items():
        entry = entry if isinstance(entry, Mapping) else {}
        mode = str(entry.get("mode", REPLACE_MODE))
        out[str(modality)] = {"prior_steps": float(entry.get("prior_steps", DEFAULT_PRIOR_STEPS)),
                              "min_speech_fraction": float(entry.get("min_speech_fraction",
                                                                     DEFAULT_MIN_SPEECH_FRACTION)),
                              "mode": mode if mode in (REPLACE_MODE, EXPERT_MODE) else REPLACE_MODE,
                              "switch_after_steps": float(entry.get("switch_after_steps", 0.0))}
    return out


def use_speaker_features(stats: RunningSpeakerStats, settings: Mapping[str, Any]) -> bool:
    """Whether the speaker expert takes over: expert mode and at least ``switch_after_steps`` of speech."""
    return settings.get("mode") == EXPERT_MODE and stats.speech_steps >= float(settings.get("switch_after_steps", 0))


def route_voice_window(values: np.ndarray, stats: RunningSpeakerStats | None, settings: Mapping[str, Any],
                       global_normalise: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """One voice window normalised as a checkpoint asks: ``(model features, speaker-expert features or None)``.

    The one rule the live engine, ``imer analyze`` and the evaluation scripts share.  Without
    running statistics the window is normalised globally (``global_normalise``).  In
    ``replace`` mode the running statistics normalise the window itself.  In ``expert`` mode
    the method and the global expert keep the global normalisation, and once
    :func:`use_speaker_features` holds the running-normalised window is returned as well,
    for the speaker expert (``"<modality>@speaker"``); it is ``None`` when not finite.
    """
    if stats is not None and settings.get("mode") != EXPERT_MODE:
        return stats.normalise(values), None
    normalised = global_normalise(values)
    if stats is None or not use_speaker_features(stats, settings):
        return normalised, None
    by_speaker = stats.normalise(values).astype(np.float32)
    return normalised, (by_speaker if np.isfinite(by_speaker).all() else None)
