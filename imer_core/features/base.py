"""What a feature extractor is: its spec, its calls, and a factory that knows the spec before building.

Every extractor the live pipeline (and ``imer analyze``) runs describes what
it produces with an :class:`ExtractorSpec` — the modality, an id that
checkpoints name, the dimension of one step and, for extractors that emit at a
fixed rate, the step rate.  The live engine compares these specs with a
checkpoint's :class:`~imer_core.modalities.FeatureSpec` before it runs it
(:func:`imer_core.live.models.compatibility_problems`).

Extractors are built lazily, in worker threads (a MediaPipe graph or a
sentence encoder takes seconds to load), so the pipeline holds
:class:`ExtractorFactory` objects: the spec now, the extractor later.

The calls of each kind (structural protocols, nothing to inherit):

* :class:`FrameExtractor` (vision): ``process(image, timestamp_ms)`` → an
  object with ``detected`` and ``vector``; ``close()``.
* :class:`AudioExtractor` (audio): ``extract(audio, start_time)`` → an object
  with ``times``, ``vector`` and ``speech_fraction`` per step; ``sample_rate``
  and ``step_samples``.
* :class:`TextEmbedder` (text): ``embed(texts)`` → ``(N, dim)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from ..modalities import FeatureSpec, Modality, as_modality


@dataclass(frozen=True)
class ExtractorSpec:
    """What an extractor produces.

    Attributes:
        modality: the modality its features feed.
        extractor_id: the id checkpoints name (:attr:`FeatureSpec.extractor`).
        dim: values per step.
        rate_hz: steps per second for an extractor that emits at a fixed rate
            (a checkpoint must be trained at that rate); ``None`` for one that
            emits per event (a video frame, an utterance), whose features the
            pipeline resamples at the model's own rate.
    """

    modality: Modality
    extractor_id: str
    dim: int
    rate_hz: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "modality", as_modality(self.modality))
        if self.dim <= 0:
            raise ValueError(f"{self.extractor_id}: dim must be positive, got {self.dim}")
        if not self.extractor_id:
            raise ValueError("an extractor needs a non-empty id")

    def feature_spec(self, seq_len: int, rate_hz: float | None = None) -> FeatureSpec:
        """The :class:`FeatureSpec` of a model fed by this extractor: ``seq_len`` steps at ``rate_hz``.

        ``rate_hz`` defaults to the extractor's own rate; an extractor with a
        fixed rate cannot feed a model at another one.
        """
        rate = self.rate_hz if rate_hz is None else float(rate_hz)
        if self.rate_hz is not None and rate is not None and abs(rate - self.rate_hz) > 1e-6:
            raise ValueError(f"{self.extractor_id} emits {self.rate_hz} steps/s, not {rate}")
        return FeatureSpec(self.modality, self.dim, int(seq_len), rate, self.extractor_id)

    def problems_with(self, spec: FeatureSpec) -> list[str]:
        """Why a model with input ``spec`` cannot run on this extractor's features (empty when it can)."""
        name = spec.modality.value
        problems = []
        if spec.extractor != self.extractor_id or spec.dim != self.dim:
            problems.append(f"{name} features: checkpoint expects {spec.extractor or 'unnamed'!r} "
                            f"({spec.dim}-d), the pipeline runs {self.extractor_id!r} ({self.dim}-d)")
        if spec.rate_hz is None or spec.rate_hz <= 0:
            problems.append(f"{name} features: no step rate in the checkpoint's spec")
        elif self.rate_hz is not None and abs(spec.rate_hz - self.rate_hz) > 1e-6:
            problems.append(f"{name} features at {spec.rate_hz} Hz; the {self.extractor_id} extractor "
                            f"runs at {self.rate_hz} Hz")
        return problems


@runtime_checkable
class FeatureExtractor(Protocol):
    """Anything that says what it produces."""

    @property
    def spec(self) -> ExtractorSpec: ...


class FrameFeatures(Protocol):
    """Features of one video frame."""

    @property
    def detected(self) -> bool: ...

    @property
    def vector(self) -> np.ndarray: ...


@runtime_checkable
class FrameExtractor(FeatureExtractor, Protocol):
    """Vision: one feature vector per video frame (``timestamp_ms`` strictly increasing)."""

    def process(self, frame: np.ndarray, timestamp_ms: float | None = None) -> FrameFeatures: ...

    def close(self) -> None: ...


class AudioFeatures(Protocol):
    """Features of a stretch of audio: per step its time, vector and share of speech."""

    times: np.ndarray
    vector: np.ndarray
    speech_fraction: np.ndarray


@runtime_checkable
class AudioExtractor(FeatureExtractor, Protocol):
    """Audio: features of a mono window at a fixed step (whole steps aligned to the window's end).

    An extractor whose steps need more audio before them than the live worker's context
    declares it as a ``context_s`` attribute (seconds); its ``extract`` then also takes
    ``keep_from`` (the time of the first step the caller keeps), e.g.
    :class:`~imer_core.features.voice_whisper.WhisperVoiceExtractor` (callers:
    :func:`~imer_core.features.voice.extract_from`).
    """

    @property
    def sample_rate(self) -> int: ...

    @property
    def step_samples(self) -> int: ...

    def extract(self, audio: np.ndarray, start_time: float = 0.0) -> AudioFeatures: ...


@runtime_checkable
class TextEmbedder(FeatureExtractor, Protocol):
    """Text: ``(N, dim)`` embeddings of N texts."""

    def embed(self, texts: Any) -> np.ndarray: ...


E = TypeVar("E", covariant=True)


@dataclass(frozen=True)
class ExtractorFactory(Generic[E]):
    """Builds an extractor later, and says now what it will produce.

    ``build`` gets the keyword options of :meth:`__call__` (the face factory
    takes ``color`` and ``still_images``; see :mod:`imer_core.features.extractors`).
    """

    spec: ExtractorSpec
    build: Callable[..., E]

    def __call__(self, **options: Any) -> E:
        return self.build(**options)


@dataclass(frozen=True)
class ExtractorEntry:
    """How a module declares an extractor for the registry (:mod:`imer_core.features.registry`).

    A module of :mod:`imer_core.features` with a module-level ``EXTRACTORS``
    tuple of these is discovered on first use of the registry; code elsewhere
    calls :func:`~imer_core.features.registry.register_extractor`.

    Attributes:
        spec: what the extractor produces.
        build: ``build(device="cpu", **options) -> extractor`` (vision options:
            ``color`` ``"bgr"``/``"rgb"`` and ``still_images``).
        default: the default extractor of its modality (one per modality).
    """

    spec: ExtractorSpec
    build: Callable[..., Any]
    default: bool = False


def as_factory(value: Any, default: ExtractorSpec) -> ExtractorFactory[Any]:
    """``value`` as an :class:`ExtractorFactory`.

    An :class:`ExtractorFactory` is kept; a callable with a ``spec``
    attribute (an extractor class with a class-level spec) is wrapped with
    it; any other callable (a fake, a wrapper that delays loading) stands
    for the built-in extractor of its modality and gets ``default``.
    """
    if isinstance(value, ExtractorFactory):
        return value
    if not callable(value):
        raise TypeError(f"an extractor factory must be callable, got {type(value).__name__}")
    spec = getattr(value, "spec", None)
    return ExtractorFactory(spec if isinstance(spec, ExtractorSpec) else default, value)
