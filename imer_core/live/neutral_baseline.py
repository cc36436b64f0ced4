"""A person's neutral baseline: a few seconds of resting face and calm voice, used to normalise their features.

Many people's resting face reads as sad or angry to a model trained on other
faces: the model compares their features with the training faces' average, and
a resting face that sits away from the training *neutral* faces looks like an
expression.  The baseline step records the person at rest (face relaxed, a calm
sentence read aloud) for a few seconds; :class:`NeutralBaseline` keeps the mean
of their face vectors and of their voice steps with speech.  The engine then
shifts that person's features so that their resting mean lands on the training
neutral mean the checkpoint stores (``metadata["neutral_reference"]``, raw
feature units, the mean of the neutral-class training samples):

    x' = x − (baseline_mean − neutral_reference)

before the checkpoint's usual normalisation.  The full calibration
(:mod:`.calibration`, fine-tuning on acted emotions) keeps working: it records
raw features, independent of this shift.  The voice's per-speaker running
statistics (:mod:`.speaker_norm`), once enough speech is heard, remove the
speaker's offset on their own and are applied to the unshifted features.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..modalities import Modality

BASELINE_FILE = "neutral_baseline.json"
#: Modalities a baseline covers (text has no resting state).
BASELINE_MODALITIES: tuple[Modality, ...] = (Modality.VISION, Modality.AUDIO)
#: Voice steps with at least this VAD speech fraction count as speech.
MIN_SPEECH_FRACTION = 0.5
#: Fewest steps of a modality for its baseline to be used (0.5 s at 10 Hz; vision counts frames).
MIN_STEPS = 5
DEFAULT_BASELINE_S = 6.0
INSTRUCTION = "Neutral baseline: relax your face, look at the camera and read calmly: " \
              "\"The meeting starts at ten and ends at eleven.\""


class NeutralBaselineError(ValueError):
    """A baseline could not be taken or read (too little face or speech, or a corrupt file)."""


@dataclass(frozen=True)
class NeutralBaseline:
    """Mean resting features of one person, per modality (raw feature units).

    Attributes:
        means: ``{modality: (dim,) mean}`` of the modalities with enough samples.
        counts: samples behind each mean (face frames, voice steps with speech).
        seconds: length of the recording.
    """

    means: Mapping[Modality, np.ndarray]
    counts: Mapping[Modality, int] = field(default_factory=dict)
    seconds: float = 0.0

    def offset(self, modality: Modality, reference: Mapping[str, Any] | None) -> np.ndarray | None:
        """``baseline_mean − neutral_reference`` of ``modality`` (``None`` without both or on a size mismatch)."""
        mean = self.means.get(modality)
        if mean is None or not reference or modality.value not in reference:
            return None
        ref = np.asarray(reference[modality.value], np.float64)
        if ref.shape != mean.shape or not np.isfinite(ref).all():
            return None
        return (mean - ref).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"means": {m.value: v.tolist() for m, v in self.means.items()},
                "counts": {m.value: int(c) for m, c in self.counts.items()}, "seconds": float(self.seconds)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "NeutralBaseline":
        """Parse :meth:`to_json` output.

        Raises:
            NeutralBaselineError: malformed data or non-finite values.
        """
        try:
            means = {Modality(k): np.asarray(v, np.float64) for k, v in dict(data["means"]).items()}
            counts = {Modality(k): int(v) for k, v in dict(data.get("counts", {})).items()}
            seconds = float(data.get("seconds", 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise NeutralBaselineError(f"not a neutral baseline: {exc}") from exc
        if any(v.ndim != 1 or v.size == 0 or not np.isfinite(v).all() for v in means.values()):
            raise NeutralBaselineError("a neutral baseline holds non-finite, empty or non-vector means")
        return cls(means, counts, seconds)

    def save(self, folder: str | Path) -> Path:
        """Write ``neutral_baseline.json`` into ``folder``."""
        path = Path(folder) / BASELINE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "NeutralBaseline":
        """Read a baseline file (or the one in a session folder).

        Raises:
            NeutralBaselineError: missing, unreadable or malformed.
        """
        path = Path(path)
        if path.is_dir():
            path = path / BASELINE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
            raise NeutralBaselineError(f"cannot read neutral baseline {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise NeutralBaselineError(f"{path} is not a neutral baseline (a JSON {type(data).__name__})")
        return cls.from_json(data)


def baseline_from_tracks(tracks: Mapping[Modality, Any], speech_track: Any, t_from: float, t_end: float,
                         min_steps: int = MIN_STEPS) -> NeutralBaseline:
    """Baseline of the samples between ``t_from`` and ``t_end`` of the feature tracks.

    Vision: every face vector (frames without a face are not in the track).
    Audio: the steps whose speech fraction (``speech_track``, same times) is at
    least :data:`MIN_SPEECH_FRACTION`.  Non-finite samples are skipped.

    Raises:
        NeutralBaselineError: neither modality has ``min_steps`` samples.
    """
    means: dict[Modality, np.ndarray] = {}
    counts: dict[Modality, int] = {}
    for modality in BASELINE_MODALITIES:
        times, values = tracks[modality].between(t_from, t_end)
        values = np.asarray(values, np.float64)
        if modality is Modality.AUDIO and len(times):
            keep = np.zeros(len(times), bool)
            if speech_track is not None:
                s_times, speech = speech_track.between(t_from, t_end)
                if len(s_times):
                    index = np.minimum(np.searchsorted(s_times, times), len(s_times) - 1)
                    found = np.isclose(s_times[index], times)
                    keep[found] = speech[index[found], 0] >= MIN_SPEECH_FRACTION
            values = values[keep]
        values = values[np.isfinite(values).all(axis=1)] if len(values) else values
        counts[modality] = int(len(values))
        if len(values) >= min_steps:
            means[modality] = values.mean(axis=0)
    if not means:
        raise NeutralBaselineError(f"no neutral baseline: only {counts.get(Modality.VISION, 0)} face frames and "
                                   f"{counts.get(Modality.AUDIO, 0)} speech steps in {t_end - t_from:.1f} s "
                                   f"(need {min_steps}); check that the camera sees the face and speak a sentence")
    return NeutralBaseline(means, counts, float(t_end - t_from))


def record_neutral_baseline(pipeline: Any, seconds: float = DEFAULT_BASELINE_S,
                            on_progress: Callable[[float], None] | None = None,
                            should_stop: Callable[[], bool] = lambda: False) -> NeutralBaseline:
    """Record ``seconds`` of the running pipeline, apply the baseline to its engine and return it.

    ``on_progress(seconds_left)`` is called about 20 times a second.

    Raises:
        NeutralBaselineError: too little face and speech, or stopped before the end.
    """
    if not seconds > 0:
        raise NeutralBaselineError(f"the baseline needs a positive duration, got {seconds}")
    started = time.monotonic()
    while (left := seconds - (time.monotonic() - started)) > 0:
        if should_stop():
            raise NeutralBaselineError("the neutral baseline was stopped before its end")
        if on_progress is not None:
            on_progress(left)
        time.sleep(0.05)
    baseline = baseline_from_tracks(pipeline.tracks, getattr(pipeline, "speech_track", None), started,
                                    time.monotonic())
    pipeline.set_neutral_baseline(baseline)
    return baseline


def neutral_reference(pools: Mapping[str, Any], neutral_label: int = 0) -> dict[str, list[float]]:
    """``{modality: mean}`` of the raw **training** features of the neutral class (for checkpoint metadata).

    ``pools``: ``{modality: pool}`` with ``features`` (N, [T,] D), ``labels`` and ``splits`` (see
    :func:`training.live.dataset.load_pools`).
    """
    out = {}
    for modality in BASELINE_MODALITIES:
        pool = pools.get(modality.value)
        if pool is None:
            continue
        rows = (np.asarray(pool.labels) == neutral_label) & (np.asarray(pool.splits).astype(str) == "train")
        if rows.any():
            features = np.asarray(pool.features[rows], np.float64)
            out[modality.value] = features.reshape(-1, features.shape[-1]).mean(axis=0).tolist()
    return out
