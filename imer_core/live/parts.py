"""What the pipeline is built from: sources and extractor back-ends, each replaceable.

:class:`PipelineParts` holds factories so tests (and the app) can swap any
part — a fake camera, an ASR backend that hangs — without touching the
pipeline.  The defaults build the real things, lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sources.base import AudioSource, VideoSource

WEBCAM = "webcam"


@dataclass(frozen=True)
class SourceSpec:
    """Where frames and audio come from.

    Attributes:
        source: ``"webcam"`` (camera + microphone) or a media file path.
        camera: OpenCV camera index.
        width, height, fps: requested camera format.
        microphone: device name (substring) or index; ``None`` = default.
        loop: replay a media file forever.
    """

    source: str = WEBCAM
    camera: int = 0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    microphone: "str | int | None" = None
    loop: bool = False

    @property
    def is_file(self) -> bool:
        return self.source != WEBCAM

    def describe(self) -> str:
        if self.is_file:
            return f"file {Path(self.source).name}" + (" (looping)" if self.loop else "")
        mic = "default microphone" if self.microphone is None else f"microphone {self.microphone!r}"
        return f"camera {self.camera} + {mic}"


def open_sources(spec: SourceSpec) -> tuple[VideoSource, AudioSource]:
    """Build (not start) the video and audio source of ``spec``."""
    if spec.is_file:
        from .sources.media import MediaFileSource
        media = MediaFileSource(spec.source, loop=spec.loop)
        return media.video, media.audio
    from .sources.camera import CameraSource
    from .sources.microphone import MicrophoneSource
    return (CameraSource(spec.camera, spec.width, spec.height, spec.fps),
            MicrophoneSource(device=spec.microphone))


def default_face_extractor() -> Any:
    """The live face extractor: MediaPipe plus the shipped face network (built in the face worker's thread)."""
    from ..features.face import live_face_extractor
    return live_face_extractor()


def default_voice_extractor() -> Any:
    """The voice feature extractor."""
    from ..features.voice import VoiceFeatureExtractor
    return VoiceFeatureExtractor()


def default_embedder(device: str = "cpu") -> Callable[[], Any]:
    """A factory of the MiniLM sentence embedder on ``device``."""
    def build() -> Any:
        from ..text_features import SentenceEmbedder
        return SentenceEmbedder(device=device)
    return build


def default_asr(backend: str = "auto", model: "str | Path | None" = None, device: str = "cpu") -> Callable[[], Any]:
    """A factory of the speech recogniser (see :func:`imer_core.asr.load_asr`)."""
    def build() -> Any:
        from ..asr import load_asr
        return load_asr(backend, model=model, device=device)
    return build


@dataclass(frozen=True)
class PipelineParts:
    """Factories of everything the pipeline runs (all called lazily, in worker threads)."""

    sources: Callable[[SourceSpec], tuple[VideoSource, AudioSource]] = open_sources
    face_extractor: Callable[[], Any] = default_face_extractor
    voice_extractor: Callable[[], Any] = default_voice_extractor
    asr: Callable[[], Any] = default_asr()
    embedder: Callable[[], Any] = default_embedder()

    @classmethod
    def for_device(cls, device: str) -> "PipelineParts":
        """The real parts, with speech recognition and the sentence embedder on ``device`` (cpu/cuda)."""
        return cls(asr=default_asr(device=device), embedder=default_embedder(device))
