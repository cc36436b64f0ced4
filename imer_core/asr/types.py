"""Data types shared by the ASR backends: words, segments, transcripts and the backend protocol.

All timestamps are *absolute* seconds on the caller's clock: a backend adds the
``start_time`` passed to :meth:`ASRBackend.transcribe` to the offsets the
recogniser reports, so segments from consecutive audio chunks can be merged
(see :class:`imer_core.features.text.TranscriptWindow`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE: int = 16_000
"""Sample rate (Hz) every backend expects: float32 mono audio in ``[-1, 1]``."""


class ASRUnavailable(RuntimeError):
    """An ASR backend cannot be used: its package or its model weights are missing."""


@dataclass(frozen=True)
class Word:
    """One recognised word with absolute timestamps (seconds)."""

    text: str
    start: float
    end: float
    probability: float | None = None


@dataclass(frozen=True)
class Segment:
    """One recognised segment (a phrase) with absolute timestamps and decoder confidences.

    Attributes:
        text: the recognised text, stripped of surrounding whitespace.
        start: absolute start time in seconds.
        end: absolute end time in seconds.
        avg_logprob: mean token log-probability of the decoded text (higher is more confident).
        no_speech_prob: probability of the ``<|nospeech|>`` token for the window the segment came from.
        compression_ratio: gzip compression ratio of the text (high values mean repetition loops).
        words: word-level timestamps, empty when the backend did not compute them.
    """

    text: str
    start: float
    end: float
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float | None = None
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """Result of transcribing one audio chunk.

    Attributes:
        segments: the segments kept by the hallucination guard, in time order.
        start_time: absolute time of the first audio sample (seconds).
        duration: length of the transcribed audio (seconds).
        backend: name of the backend that produced it.
        language: language code the recogniser used (``"en"``).
        processing_s: wall-clock seconds spent in :meth:`ASRBackend.transcribe`.
        gated: ``True`` when the audio was judged silent and never sent to the recogniser.
        dropped: segments removed by the hallucination guard (kept for diagnostics).
    """

    segments: tuple[Segment, ...]
    start_time: float
    duration: float
    backend: str
    language: str = "en"
    processing_s: float = 0.0
    gated: bool = False
    dropped: tuple[Segment, ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        """All kept segments joined by single spaces."""
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def end_time(self) -> float:
        """Absolute time just after the last audio sample (seconds)."""
        return self.start_time + self.duration

    @property
    def real_time_factor(self) -> float:
        """Processing time divided by audio duration (``< 1`` is faster than real time)."""
        return self.processing_s / self.duration if self.duration > 0 else 0.0


@runtime_checkable
class ASRBackend(Protocol):
    """A speech recogniser turning 16 kHz mono float32 audio into a :class:`Transcript`."""

    name: str

    def transcribe(self, audio: np.ndarray, *, start_time: float = 0.0) -> Transcript:
        """Transcribe ``audio`` (float32, 16 kHz, mono); timestamps are offset by ``start_time``."""
        ...


def as_mono_float32(audio: np.ndarray) -> np.ndarray:
    """Validate and convert audio to a contiguous 1-D float32 array.

    Accepts ``(n,)`` arrays, or ``(n, channels)`` / ``(channels, n)`` arrays, which
    are averaged to mono (the shorter axis is taken to be the channel axis).  Integer
    PCM is scaled to ``[-1, 1]``.

    Raises:
        ValueError: the array is empty, has more than two dimensions, or holds non-finite values.
    """
    arr = np.asarray(audio)
    if arr.ndim == 2:
        arr = arr.mean(axis=0 if arr.shape[0] < arr.shape[1] else 1)
    elif arr.ndim != 1:
        raise ValueError(f"audio must be 1-D mono (or 2-D multi-channel), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("audio holds NaN or infinite samples")
    return arr
