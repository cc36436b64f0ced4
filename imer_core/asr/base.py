"""Shared transcription flow: input checks, silence gate, timestamp offsetting and the hallucination guard."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from .guard import DEFAULT_GUARD, GuardConfig, filter_segments, is_silent
from .types import SAMPLE_RATE, Segment, Transcript, Word, as_mono_float32

logger = logging.getLogger(__name__)


def shift_segment(segment: Segment, offset: float) -> Segment:
    """Copy of ``segment`` with its (and its words') timestamps shifted by ``offset`` seconds."""
    words = tuple(Word(w.text, w.start + offset, w.end + offset, w.probability) for w in segment.words)
    return Segment(text=segment.text, start=segment.start + offset, end=segment.end + offset,
                   avg_logprob=segment.avg_logprob, no_speech_prob=segment.no_speech_prob,
                   compression_ratio=segment.compression_ratio, words=words)


class GuardedBackend(ABC):
    """Base class of the Whisper backends.

    Subclasses implement :meth:`_decode`, which returns segments with offsets
    relative to the start of the audio; :meth:`transcribe` adds the silence gate,
    absolute timestamps, the hallucination guard and timing.

    Args:
        guard: hallucination-guard thresholds (see :mod:`imer_core.asr.guard`).
    """

    name: str = "whisper"
    selection_reason: str = ""
    """Why :func:`imer_core.asr.load_asr` picked this backend (empty when constructed directly)."""
    greedy: bool = False
    """Decode greedily (beam 1, no temperature fallback) instead of with the configured beam: set by the
    live speech worker while recognition cannot keep up with the speech (a loaded CPU)."""

    def __init__(self, guard: GuardConfig = DEFAULT_GUARD) -> None:
        self.guard = guard

    @abstractmethod
    def _decode(self, audio: np.ndarray) -> Sequence[Segment]:
        """Run the recogniser on validated audio; timestamps relative to ``audio[0]``."""

    def transcribe(self, audio: np.ndarray, *, start_time: float = 0.0) -> Transcript:
        """Transcribe float32 16 kHz mono ``audio`` whose first sample is at absolute time ``start_time``.

        Silent audio (see :func:`imer_core.asr.guard.is_silent`) returns an empty
        transcript with ``gated=True`` without running the recogniser.
        """
        t0 = time.perf_counter()
        audio = as_mono_float32(audio)
        duration = audio.size / SAMPLE_RATE
        if is_silent(audio, self.guard):
            return Transcript(segments=(), start_time=float(start_time), duration=duration, backend=self.name,
                              processing_s=time.perf_counter() - t0, gated=True)
        segments = [shift_segment(s, float(start_time)) for s in self._decode(audio)]
        kept, dropped = filter_segments(segments, audio, float(start_time), self.guard)
        if dropped:
            logger.debug("%s: hallucination guard dropped %s", self.name, [s.text for s in dropped])
        return Transcript(segments=kept, start_time=float(start_time), duration=duration, backend=self.name,
                          processing_s=time.perf_counter() - t0, dropped=dropped)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={getattr(self, 'model_name', None)!r}, " \
               f"device={getattr(self, 'device', None)!r})"
