"""imer_core: models, recovery methods and feature handling for incomplete multimodal emotion recognition.

Heavy or optional dependencies (Qt, MediaPipe, Whisper, transformers) are never
imported here; the app and the training package import what they need lazily.
"""

__version__ = "0.1.0"

from typing import Any

# The package's names are imported on first use (PEP 562): importing a light
# submodule (``imer_core.live.smoothing``, for the ``imer --help`` text) must
# not import torch through this file.
_LAZY = {
    **dict.fromkeys(("CLASSIFICATION", "LIVE_EMOTIONS", "REGRESSION", "FusionConfig", "ModelConfig"), "config"),
    **dict.fromkeys(("MODALITIES", "FeatureSpec", "FeatureSpecs", "Modality"), "modalities"),
    **dict.fromkeys(("available_methods", "create_model", "get_method_class", "register_method"), "registry"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "__version__", "CLASSIFICATION", "LIVE_EMOTIONS", "REGRESSION", "FusionConfig", "ModelConfig",
    "MODALITIES", "FeatureSpec", "FeatureSpecs", "Modality",
    "available_methods", "create_model", "get_method_class", "register_method",
]
