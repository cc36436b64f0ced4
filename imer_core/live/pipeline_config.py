"""What a live pipeline is built from: :class:`PipelineConfig`, and the ``--disable`` parser.

Kept apart from :mod:`.pipeline` (which re-exports both) so the settings can be
read and built without the pipeline's machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..modalities import Modality, as_modality
from .health import HealthConfig
from .parts import SourceSpec
from .smoothing import DEFAULT_SMOOTHING_S
from .speech_worker import SpeechConfig


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs to start.

    Attributes:
        sources: where frames and audio come from.
        disabled: modalities switched off from the start.
        checkpoints: live checkpoint files (one per method); empty → the
            shipped ``assets/models/live_*.pt`` when ``use_shipped``.
        method: recovery method to start with.
        sampler_steps: diffusion sampling steps (``None``: checkpoint default).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        hop_s: time between predictions.
        file_model_wait_s: a media file starts playing only once the face
            and speech models have loaded (so no part of a clip is lost to a
            slow model load), waiting at most this long; 0 starts at once.
            Live sources always start at once.
        smoothing_s: time constant of the displayed (smoothed) probabilities;
            0 shows the raw ones (:mod:`.smoothing`).
        extractors: registered feature extractor ids per modality
            (:mod:`imer_core.features.registry`); unnamed modalities run the default one.
    """

    sources: SourceSpec = field(default_factory=SourceSpec)
    disabled: frozenset[Modality] = frozenset()
    checkpoints: tuple[str, ...] = ()
    use_shipped: bool = True
    method: str | None = None
    sampler_steps: int | None = None
    device: str = "auto"
    hop_s: float = 0.15
    tick_s: float = 0.1
    file_model_wait_s: float = 60.0
    smoothing_s: float = DEFAULT_SMOOTHING_S
    health: HealthConfig = field(default_factory=HealthConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    extractors: Mapping[Modality, str] = field(default_factory=dict)


def disabled_from_text(text: str | None) -> frozenset[Modality]:
    """Parse ``"vision,text"`` (or ``v,l``) into modalities."""
    if not text:
        return frozenset()
    return frozenset(as_modality(part) for part in text.split(",") if part.strip())
