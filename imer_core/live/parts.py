"""What the pipeline is built from: sources and extractor back-ends, each replaceable.

:class:`PipelineParts` holds factories so tests (and the app) can swap any
part — a fake camera, an ASR backend that hangs — without touching the
pipeline.  The defaults build the real things, lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..features.base import ExtractorFactory, ExtractorSpec, as_factory
from ..features.registry import default_extractor_specs, extractor_factories
from ..modalities import Modality
from .sources.base import AudioSource, VideoSource
from .sources.kinds import WEBCAM, SourceKind, source_kind


@dataclass(frozen=True)
class SourceSpec:
    """Where frames and audio come from.

    Attributes:
        source: ``"webcam"`` (camera + microphone), a media file path, or a value of
            any other registered kind (:mod:`imer_core.live.sources.kinds`).
        camera: OpenCV camera index.
        width, height, fps: requested camera format.
        microphone: device name (substring) or index; ``None`` = default.
        loop: replay a recording (a media file) forever.
    """

    source: str = WEBCAM
    camera: int = 0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    microphone: "str | int | None" = None
    loop: bool = False

    @property
    def kind(self) -> SourceKind:
        """The registered kind of :attr:`source`."""
        return source_kind(self.source)

    @property
    def is_file(self) -> bool:
        """A recording that plays (and ends, and may loop), not a live device."""
        return not self.kind.live

    def describe(self) -> str:
        return self.kind.describe(self)


def open_sources(spec: SourceSpec) -> tuple[VideoSource, AudioSource]:
    """Build the video and audio source of ``spec`` with its kind (no device opened, no thread started).

    Raises:
        SourceOpenError: ``spec`` cannot be used (e.g. a file that is not a media file).
    """
    return spec.kind.open(spec)


def default_embedder(device: str = "cpu") -> ExtractorFactory[Any]:
    """A factory of the default sentence embedder (MiniLM) on ``device``."""
    return extractor_factories(device)[Modality.TEXT]


def default_asr(backend: str = "auto", model: "str | Path | None" = None, device: str = "cpu") -> Callable[[], Any]:
    """A factory of the speech recogniser (see :func:`imer_core.asr.load_asr`)."""
    def build() -> Any:
        from ..asr import load_asr
        return load_asr(backend, model=model, device=device)
    return build


def _default(modality: Modality) -> Callable[[], ExtractorFactory[Any]]:
    def build() -> ExtractorFactory[Any]:
        return extractor_factories()[modality]
    return build


@dataclass(frozen=True)
class PipelineParts:
    """Factories of everything the pipeline runs (all called lazily, in worker threads).

    The three extractors are :class:`~imer_core.features.base.ExtractorFactory`
    objects: the pipeline sizes its feature tracks and checks every checkpoint
    against their specs before any of them is built.  A bare callable (a test
    fake, a wrapper that delays a load) is accepted too: with a ``spec``
    attribute it is wrapped with it, without one it stands for the default
    extractor of its modality.
    """

    sources: Callable[[SourceSpec], tuple[VideoSource, AudioSource]] = open_sources
    face_extractor: Callable[..., Any] = field(default_factory=_default(Modality.VISION))
    voice_extractor: Callable[..., Any] = field(default_factory=_default(Modality.AUDIO))
    asr: Callable[[], Any] = default_asr()
    embedder: Callable[..., Any] = field(default_factory=_default(Modality.TEXT))

    def __post_init__(self) -> None:
        defaults = default_extractor_specs()
        for name, modality in _EXTRACTOR_FIELDS.items():
            factory = as_factory(getattr(self, name), defaults[modality])
            if factory.spec.modality is not modality:
                raise ValueError(f"{name}: extractor {factory.spec.extractor_id!r} makes "
                                 f"{factory.spec.modality.value} features, not {modality.value} ones")
            object.__setattr__(self, name, factory)

    @property
    def extractors(self) -> dict[Modality, ExtractorFactory[Any]]:
        """``{modality: extractor factory}``."""
        return {modality: getattr(self, name) for name, modality in _EXTRACTOR_FIELDS.items()}

    @property
    def extractor_specs(self) -> dict[Modality, ExtractorSpec]:
        """``{modality: what its extractor produces}`` (nothing is built)."""
        return {modality: factory.spec for modality, factory in self.extractors.items()}

    @classmethod
    def for_device(cls, device: str,
                   extractors: Mapping[Modality, str] | Mapping[str, str] | None = None) -> "PipelineParts":
        """The real parts: registered extractors (the defaults, or the ``extractors`` ids per modality)
        and speech recognition, with the sentence embedder and the recogniser on ``device`` (cpu/cuda).

        Raises:
            ValueError: an unknown extractor id, or one of another modality.
        """
        factories = extractor_factories(device, extractors)
        return cls(asr=default_asr(device=device), face_extractor=factories[Modality.VISION],
                   voice_extractor=factories[Modality.AUDIO], embedder=factories[Modality.TEXT])


#: The extractor fields of :class:`PipelineParts` and the modality of each.
_EXTRACTOR_FIELDS: dict[str, Modality] = {"face_extractor": Modality.VISION, "voice_extractor": Modality.AUDIO,
                                          "embedder": Modality.TEXT}
