"""imer_core: models, recovery methods and feature handling for incomplete multimodal emotion recognition.

Heavy or optional dependencies (Qt, MediaPipe, Whisper, transformers) are never
imported here; the app and the training package import what they need lazily.
"""

__version__ = "0.1.0"

from .config import CLASSIFICATION, LIVE_EMOTIONS, REGRESSION, FusionConfig, ModelConfig  # noqa: E402
from .modalities import MODALITIES, FeatureSpec, FeatureSpecs, Modality  # noqa: E402
from .registry import available_methods, create_model, get_method_class, register_method  # noqa: E402

__all__ = [
    "__version__", "CLASSIFICATION", "LIVE_EMOTIONS", "REGRESSION", "FusionConfig", "ModelConfig",
    "MODALITIES", "FeatureSpec", "FeatureSpecs", "Modality",
    "available_methods", "create_model", "get_method_class", "register_method",
]
