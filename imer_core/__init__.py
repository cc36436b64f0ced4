"""imer_core: models, recovery methods and feature handling for incomplete multimodal emotion recognition.

Importing this package is light: every name below is loaded on first access
(PEP 562), so ``import imer_core`` does not import torch; heavy or optional
dependencies (torch, Qt, MediaPipe, Whisper, transformers) are imported by
the submodules that need them.

* :func:`analyze` — offline analysis of images, audio, video and text with
  the shipped live model (see :mod:`imer_core.analysis`).
"""

from __future__ import annotations

from typing import Any

from imer_core.lazy_exports import lazy_attributes

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "CLASSIFICATION": "config", "LIVE_EMOTIONS": "config", "REGRESSION": "config",
    "FusionConfig": "config", "ModelConfig": "config",
    "MODALITIES": "modalities", "FeatureSpec": "modalities", "FeatureSpecs": "modalities", "Modality": "modalities",
    "available_methods": "registry", "create_model": "registry", "get_method_class": "registry",
    "register_method": "registry",
    "analyze": "analysis", "AnalysisRow": "analysis", "evaluate_labels": "analysis",
}

__all__ = ["__version__", *_EXPORTS]


_lazy_getattr, __dir__ = lazy_attributes(__name__, _EXPORTS, globals(), __all__)


def __getattr__(name: str) -> Any:  # a def, so that type checkers see a module-level __getattr__
    """Import the submodule that defines ``name`` on first access (PEP 562)."""
    return _lazy_getattr(name)
