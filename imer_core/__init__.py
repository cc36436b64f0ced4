"""imer_core: models, recovery methods and feature handling for incomplete multimodal emotion recognition.

Importing this package is light: every name below is loaded on first access
(PEP 562), so ``import imer_core`` does not import torch; heavy or optional
dependencies (torch, Qt, MediaPipe, Whisper, transformers) are imported by
the submodules that need them.

* :func:`analyze` — offline analysis of images, audio, video and text with
  the shipped live model (see :mod:`imer_core.analysis`).
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
