"""A read-only snapshot of a live pipeline: what the window, ``imer run`` and the recorder show and record.

:meth:`LivePipeline.snapshot <imer_core.live.pipeline.LivePipeline.snapshot>`
returns one; the readers never reach into the pipeline's bank, engine or
sources, so those can change without touching the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..modalities import Modality
from .buffers import SourceStatus


@dataclass(frozen=True)
class PipelineView:
    """What a pipeline runs at one moment.

    Attributes:
        device: where the models run (``cpu`` / ``cuda``).
        methods: recovery methods with a checkpoint; ``checkpoints``: ``{method: path}``.
        refused: ``{method: why}`` of the checkpoints that were tried and cannot run here.
        method: the method predicting now (``None`` without a model); ``sampler_steps``: its steps
            (``None``: the checkpoint's default); ``model_error``: why no model predicts (``""``).
        config: the pipeline's :class:`~imer_core.live.pipeline.PipelineConfig` (current sources included).
        enabled: the modality switches.
        started: the pipeline runs (:meth:`start` was called, :meth:`stop` not since); its
            sources exist from the construction on, but are opened only by the start.
        stream_statuses: ``(name, status)`` of the camera/video and microphone/audio streams.
        playing: a stream runs; ``ended``: a media file reached its end on every stream.
        file_duration_s: length of a media file source (``None`` for devices or when unknown).
    """

    device: str
    methods: tuple[str, ...]
    checkpoints: Mapping[str, Path]
    method: str | None
    sampler_steps: int | None
    model_error: str
    config: Any
    refused: Mapping[str, str] = field(default_factory=dict)
    enabled: Mapping[Modality, bool] = field(default_factory=dict)
    started: bool = False
    stream_statuses: tuple[tuple[str, SourceStatus], ...] = ()
    playing: bool = False
    ended: bool = False
    file_duration_s: float | None = None
