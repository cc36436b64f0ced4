"""Live feature extractors shared by the desktop app and the training code.

Importing this package is cheap: the submodules are loaded on first attribute
access, and the heavy back-ends (MediaPipe for faces, optional openSMILE for
voice) are only imported when an extractor is constructed.

* :mod:`imer_core.features.base`: what an extractor is — :class:`ExtractorSpec`
  (modality, id, dim, rate), the call protocols and :class:`ExtractorFactory`.
* :mod:`imer_core.features.registry`: the registered extractors
  (:func:`register_extractor`) and :func:`extractor_factories`, which the live
  pipeline and ``imer analyze`` both build their extractors with.
* :mod:`imer_core.features.face`: :class:`FaceFeatureExtractor` (MediaPipe
  FaceLandmarker: 52 blendshapes + head pose per video frame).
* :mod:`imer_core.features.voice`: :class:`VoiceFeatureExtractor` (numpy
  eGeMAPS-like low-level descriptors at a fixed output rate) and voice activity
  detection.
* :mod:`imer_core.features.text`: :class:`SentenceEmbedder` (MiniLM) and the
  :class:`TranscriptWindow` of recent speech.
"""

from __future__ import annotations

from typing import Any

from imer_core.lazy_exports import lazy_attributes

_EXPORTS: dict[str, str] = {
    "AudioExtractor": "base",
    "ExtractorEntry": "base",
    "ExtractorFactory": "base",
    "ExtractorSpec": "base",
    "FeatureExtractor": "base",
    "FrameExtractor": "base",
    "TextEmbedder": "base",
    "available_extractors": "registry",
    "extractor_factories": "registry",
    "extractor_factory": "registry",
    "register_extractor": "registry",
    "FACE_EXTRACTOR_SPEC": "face",
    "VOICE_EXTRACTOR_SPEC": "voice",
    "TEXT_EXTRACTOR_SPEC": "text",
    "SentenceEmbedder": "text",
    "TranscriptWindow": "text",
    "FACE_BLENDSHAPE_NAMES": "face",
    "FACE_EXTRACTOR_ID": "face",
    "FACE_FEATURE_DIM": "face",
    "FACE_FEATURE_NAMES": "face",
    "FaceFeatureExtractor": "face",
    "FaceFrameFeatures": "face",
    "default_face_model_path": "face",
    "face_feature_spec": "face",
    "VOICE_EXTRACTOR_ID": "voice",
    "VOICE_FEATURE_DIM": "voice",
    "VOICE_FEATURE_NAMES": "voice",
    "VOICE_LLD_NAMES": "voice",
    "VadConfig": "voice",
    "VoiceActivity": "voice",
    "VoiceConfig": "voice",
    "VoiceFeatureExtractor": "voice",
    "VoiceFeatures": "voice",
    "voice_feature_spec": "voice",
}

__all__ = sorted(_EXPORTS)


_lazy_getattr, __dir__ = lazy_attributes(__name__, _EXPORTS, globals(), __all__)


def __getattr__(name: str) -> Any:  # a def, so that type checkers see a module-level __getattr__
    """Import the submodule that defines ``name`` on first access (PEP 562)."""
    return _lazy_getattr(name)
