"""Offline analysis: files, folders and texts through the live extractors and model, as fast as the CPU allows.

:func:`iter_analyze` yields one :class:`AnalysisRow` per image, short audio
clip and text, and one per window (with its start and end time) of each video
and long recording; :func:`analyze` returns them as a list.  A file that
cannot be read gives a row with the reason in :attr:`AnalysisRow.error`; the
run goes on.  Predictions are made in batches of ``batch_size`` windows.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..modalities import MODALITIES, Modality, as_modality
from .inputs import CollectedInputs, collect_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisOptions:
    """How :func:`analyze` runs.

    Attributes:
        method: recovery method (``None``: CM-ARR when available, as in the app).
        checkpoints: live checkpoint files (empty: the shipped ``assets/models``).
        modalities: modalities used (extracted); the others are recovered.
        batch_size: windows per model call.
        hop_s: time between the windows of a video or long recording.
        windows_above_s: recordings longer than this get one row per window,
            shorter ones one row (their loudest window); videos always get windows.
        video_fps: frames per second analysed in videos (the model's steps are 10 Hz).
        sampler_steps: sampling steps of diffusion methods (``None``: the checkpoint's default).
        seed: seed of the diffusion samplers' noise (same input, same output).
        device: ``cpu`` or ``cuda`` (``auto``: CUDA when present).
        asr: speech recognition backend (``auto``, ``faster-whisper``, ``openai-whisper``).
        text_column: column of ``.csv`` files that holds the text.
    """

    method: str | None = None
    checkpoints: tuple[str, ...] = ()
    modalities: tuple[str, ...] = tuple(m.value for m in MODALITIES)
    batch_size: int = 32
    hop_s: float = 1.0
    windows_above_s: float = 10.0
    video_fps: float = 10.0
    sampler_steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    asr: str = "auto"
    text_column: str = "text"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        for name in ("hop_s", "video_fps"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds/frames, got {value}")
        if not self.windows_above_s >= 0:
            raise ValueError(f"windows_above_s must be >= 0, got {self.windows_above_s}")
        used = [as_modality(m) for m in self.modalities]  # raises on unknown names
        if not used:
            raise ValueError("at least one modality must be used")

    @property
    def used(self) -> frozenset[Modality]:
        return frozenset(as_modality(m) for m in self.modalities)


@dataclass(frozen=True)
class AnalysisRow:
    """One prediction (or the reason there is none) for a file, a window of it, or a text.

    Attributes:
        path: file path, ``file.txt:LINE``, ``file.csv:ROW`` or ``text:N``.
        kind: ``image``, ``audio``, ``video``, ``text`` or ``invalid``.
        start_s, end_s: the window in the file (seconds; ``None`` for images and texts).
        observed: modalities whose features went into the model.
        recovered: modalities the method generated (missing or not used).
        method: recovery method of the prediction.
        labels: class names, in the order of ``probabilities``.
        probabilities: class probabilities (``None`` when there is no prediction).
        face_found: for images and video windows, whether a face was found (else ``None``).
        transcript: the recognised speech (audio, video) or the text analysed.
        error: why there is no prediction ("" when there is one).
        note: degraded but predicted (e.g. speech recognition unavailable, so text was recovered).
    """

    path: str
    kind: str
    start_s: float | None = None
    end_s: float | None = None
    observed: tuple[str, ...] = ()
    recovered: tuple[str, ...] = ()
    method: str | None = None
    labels: tuple[str, ...] = ()
    probabilities: tuple[float, ...] | None = None
    face_found: bool | None = None
    transcript: str | None = None
    error: str = ""
    note: str = ""

    @property
    def top_emotion(self) -> str | None:
        """The most probable class (``None`` without a prediction)."""
        if self.probabilities is None:
            return None
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def top_probability(self) -> float | None:
        return None if self.probabilities is None else float(max(self.probabilities))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (probabilities as ``{label: p}``)."""
        probs = None if self.probabilities is None else {
            label: round(float(p), 6) for label, p in zip(self.labels, self.probabilities)}
        return {"path": self.path, "kind": self.kind, "start_s": _round(self.start_s), "end_s": _round(self.end_s),
                "observed": list(self.observed), "recovered": list(self.recovered), "method": self.method,
                "top_emotion": self.top_emotion, "top_probability": _round(self.top_probability, 6),
                "probabilities": probs, "face_found": self.face_found, "transcript": self.transcript,
                "error": self.error, "note": self.note}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def analyze(paths: Iterable["str | os.PathLike[str]"] = (), text: "str | Sequence[str]" = (), *,
            progress: bool = False, **options: Any) -> list[AnalysisRow]:
    """Analyse files, folders (recursively) and texts with the live model; one row per file, window or text.

    Args:
        paths: images, audio files, videos, ``.txt`` (one text per line) and
            ``.csv`` files (one text per row of ``text_column``), and folders.
        text: a text or several to analyse as they are.
        progress: show a progress bar on stderr.
        **options: fields of :class:`AnalysisOptions` (``method``, ``checkpoints``,
            ``modalities``, ``batch_size``, ``hop_s``, ...).

    Returns:
        The rows in input order; unreadable inputs have :attr:`AnalysisRow.error` set.

    Raises:
        imer_core.live.models.LiveModelError: no usable checkpoint.
        ValueError: invalid options.

    Example::

        from imer_core import analyze
        rows = analyze(["photos/"], text="What a lovely day!")
        for row in rows:
            print(row.path, row.top_emotion, row.error)
    """
    texts = [text] if isinstance(text, str) else list(text)
    return list(iter_analyze(collect_inputs(paths, texts, options.get("text_column", "text")),
                             AnalysisOptions(**_tuples(options)), progress=progress))


def _tuples(options: dict[str, Any]) -> dict[str, Any]:
    out = dict(options)
    for key in ("checkpoints", "modalities"):
        if key in out and out[key] is not None and not isinstance(out[key], tuple):
            out[key] = (out[key],) if isinstance(out[key], (str, os.PathLike)) else tuple(out[key])
        if key in out and out[key] is None:
            del out[key]
    return out


def iter_analyze(collected: CollectedInputs, options: AnalysisOptions = AnalysisOptions(),
                 progress: bool = False) -> Iterator[AnalysisRow]:
    """Rows of :func:`analyze`, yielded as their batches are predicted (see :func:`collect_inputs`)."""
    from .runner import Analyzer

    analyzer = Analyzer(options)
    try:
        yield from analyzer.run(collected.inputs, progress)
    finally:
        analyzer.close()
