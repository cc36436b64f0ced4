"""Hallucination guard: silence gate and segment filters for Whisper-family recognisers.

Whisper invents text for silence or noise ("Thank you.", "you", lone
punctuation) and can loop on repeated phrases.  Two defences apply to every
backend:

1. **Silence gate** (before decoding): the audio is cut into 30 ms frames and
   its *level* is the 95th percentile of the frame RMS values.  Audio whose level
   is below :attr:`GuardConfig.silence_rms` (default ``0.005`` ≈ −46 dBFS) is never
   sent to the recogniser.  Using a high percentile instead of the global RMS
   keeps a short utterance inside a mostly silent chunk above the gate.
2. **Segment filter** (after decoding): a segment is dropped when

   * its text is empty or punctuation only;
   * ``no_speech_prob > 0.6`` *and* ``avg_logprob < -1.0`` (Whisper's own rule,
     applied per segment instead of per 30 s window);
   * ``no_speech_prob >= 0.9`` *and* ``avg_logprob < -0.5`` (near-certain
     silence decoded with mediocre confidence; tiny.en says " You" on digital
     silence with ``no_speech_prob ≈ 0.95``, ``avg_logprob ≈ -0.96``);
   * ``avg_logprob < -2.0`` (mean token probability below ~0.14: the decoder is
     guessing, whatever the no-speech probability says);
   * ``compression_ratio > 2.4`` (repetition loop, Whisper's threshold);
   * its text is a known silence hallucination (:data:`SILENCE_HALLUCINATIONS`)
     *and* either the audio under the segment is quiet (level below
     :attr:`GuardConfig.quiet_rms`, default ``0.02`` ≈ −34 dBFS) or
     ``no_speech_prob > 0.5``.  A loud, confident "Thank you." is kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .types import SAMPLE_RATE, Segment

SILENCE_HALLUCINATIONS: frozenset[str] = frozenset({
    "you", "thank you", "thank you very much", "thank you so much", "thanks", "thank you for watching",
    "thanks for watching", "thank you for watching and see you next time", "thanks for listening",
    "thank you for listening", "please subscribe", "subscribe", "like and subscribe",
    "please like and subscribe", "bye", "bye bye", "goodbye", "so", "okay", "oh", "uh", "um", "hmm",
    "the end", "music", "applause", "silence", "laughter", "blank audio", "no audio", "inaudible",
    "subtitles by the amaraorg community", "transcription by castingwords",
})
"""Normalised texts (lower case, no punctuation) Whisper is known to produce on silence or noise."""

_FRAME_S = 0.03
_LEVEL_PERCENTILE = 95.0


@dataclass(frozen=True)
class GuardConfig:
    """Thresholds of the hallucination guard (see the module docstring for the rules).

    Attributes:
        silence_rms: audio whose level (95th percentile of 30 ms frame RMS) is below this is not decoded.
        quiet_rms: level under which a segment reading as a known silence hallucination is dropped.
        no_speech_prob: Whisper's no-speech threshold (used together with ``logprob``).
        logprob: Whisper's average log-probability threshold.
        strong_no_speech_prob: no-speech probability treated as near-certain silence.
        strong_logprob: log-probability under which a near-certain-silence segment is dropped.
        min_logprob: segments decoded with a lower average log-probability are always dropped.
        compression_ratio: segments whose text compresses better than this are repetition loops.
        hallucination_no_speech_prob: a known hallucination phrase is dropped above this no-speech probability.
    """

    silence_rms: float = 0.005
    quiet_rms: float = 0.02
    no_speech_prob: float = 0.6
    logprob: float = -1.0
    strong_no_speech_prob: float = 0.9
    strong_logprob: float = -0.5
    min_logprob: float = -2.0
    compression_ratio: float = 2.4
    hallucination_no_speech_prob: float = 0.5


DEFAULT_GUARD = GuardConfig()


def audio_level(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Loudness of ``audio``: the 95th percentile of its 30 ms frame RMS values (0 for empty audio)."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size == 0:
        return 0.0
    frame = max(1, int(round(_FRAME_S * sample_rate)))
    n_frames = max(1, x.size // frame)
    frames = x[: n_frames * frame].reshape(n_frames, frame) if x.size >= frame else x.reshape(1, -1)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return float(np.percentile(rms, _LEVEL_PERCENTILE))


def is_silent(audio: np.ndarray, config: GuardConfig = DEFAULT_GUARD, sample_rate: int = SAMPLE_RATE) -> bool:
    """``True`` when the audio level is below the silence gate (the recogniser is not run)."""
    return audio_level(audio, sample_rate) < config.silence_rms


def normalise_text(text: str) -> str:
    """Lower case, punctuation and symbols removed, whitespace collapsed (``" Thank you."`` → ``"thank you"``)."""
    kept = "".join(ch if not unicodedata.category(ch).startswith(("P", "S")) else " " for ch in text.lower())
    return re.sub(r"\s+", " ", kept).strip()


def drop_reason(segment: Segment, audio: np.ndarray, start_time: float,
                config: GuardConfig = DEFAULT_GUARD, sample_rate: int = SAMPLE_RATE) -> str | None:
    """Why ``segment`` should be dropped, or ``None`` to keep it.

    Args:
        segment: a segment with absolute timestamps.
        audio: the transcribed chunk (used to measure the level under the segment).
        start_time: absolute time of ``audio[0]``.
        config: guard thresholds.
        sample_rate: sample rate of ``audio``.
    """
    norm = normalise_text(segment.text)
    if not norm:
        return "empty or punctuation-only text"
    if segment.no_speech_prob > config.no_speech_prob and segment.avg_logprob < config.logprob:
        return f"no_speech_prob {segment.no_speech_prob:.2f} > {config.no_speech_prob} and avg_logprob " \
               f"{segment.avg_logprob:.2f} < {config.logprob}"
    if segment.no_speech_prob >= config.strong_no_speech_prob and segment.avg_logprob < config.strong_logprob:
        return f"no_speech_prob {segment.no_speech_prob:.2f} >= {config.strong_no_speech_prob} and " \
               f"avg_logprob {segment.avg_logprob:.2f} < {config.strong_logprob}"
    if segment.avg_logprob < config.min_logprob:
        return f"avg_logprob {segment.avg_logprob:.2f} < {config.min_logprob} (decoder is guessing)"
    if segment.compression_ratio is not None and segment.compression_ratio > config.compression_ratio:
        return f"compression_ratio {segment.compression_ratio:.2f} > {config.compression_ratio} (repetition)"
    if norm in SILENCE_HALLUCINATIONS:
        lo = max(0, int((segment.start - start_time) * sample_rate))
        hi = min(len(audio), int(np.ceil((segment.end - start_time) * sample_rate)))
        span = audio[lo:hi] if hi > lo else audio
        level = audio_level(span, sample_rate)
        if level < config.quiet_rms:
            return f"known silence hallucination {norm!r} over quiet audio (level {level:.4f} < {config.quiet_rms})"
        if segment.no_speech_prob > config.hallucination_no_speech_prob:
            return f"known silence hallucination {norm!r} with no_speech_prob {segment.no_speech_prob:.2f}"
    return None


def filter_segments(segments: Iterable[Segment], audio: np.ndarray, start_time: float,
                    config: GuardConfig = DEFAULT_GUARD,
                    sample_rate: int = SAMPLE_RATE) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    """Split segments into ``(kept, dropped)`` according to :func:`drop_reason`."""
    kept: list[Segment] = []
    dropped: list[Segment] = []
    for segment in segments:
        (dropped if drop_reason(segment, audio, start_time, config, sample_rate) else kept).append(segment)
    return tuple(kept), tuple(dropped)
