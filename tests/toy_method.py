"""A fourth recovery method defined by test code alone (no edit of imer_core, training or app).

It recovers a missing modality as the mean of the available modalities' linear
encodings and predicts with one linear layer: small, fast and deterministic, so
the tests can train it through the real trainer and run it through the real
live engine and window.  ``registered_toy`` registers it for one test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from imer_core.config import ModelConfig, options_from_dict
from imer_core.methods.base import Features, LossOutput, RecoveryModel, SamplingOptions
from imer_core.modalities import MODALITIES, validate_mask
from imer_core.registry import register_method, unregister_method

TOY = "toy"


@dataclass(frozen=True)
class ToyOptions:
    """Width of the per-modality encodings; the only "sampler" is the deterministic mean."""

    width: int = 8
    sampler: str = "mean"


class ToyRecovery(RecoveryModel):
    """Missing modality = mean of the available encodings (test-only method)."""

    name = TOY
    options_class = ToyOptions
    display_name = "Toy method"
    summary = "mean of the available modalities' encodings (a test's method)"
    fast_sampler = "mean"
    uses_sampler_steps = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.options: ToyOptions = options_from_dict(ToyOptions, config.method_options)
        width = self.options.width
        self.encoders = nn.ModuleDict({s.modality.value: nn.Linear(s.dim, width) for s in config.specs})
        self.head = nn.Linear(len(MODALITIES) * width, config.output_dim)

    def project(self, features: Features) -> dict[str, torch.Tensor]:
        return {m.value: self.encoders[m.value](features[m.value]).mean(dim=1).unsqueeze(-1) for m in MODALITIES}

    def _recover(self, features: Features, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        masked = self.mask_features(features, mask)
        mask = validate_mask(mask, self.check_features(features)).to(next(iter(masked.values())).device)
        proj = self.project(masked)
        weights = mask.to(proj["text"].dtype).view(mask.shape[0], len(MODALITIES), 1, 1)
        stacked = torch.stack([proj[m.value] for m in MODALITIES], dim=1)
        mean = (stacked * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return {m.value: torch.where(mask[:, i].view(-1, 1, 1), proj[m.value], mean) for i, m in enumerate(MODALITIES)}

    def recover(self, features: Features, mask: torch.Tensor,
                sampling: SamplingOptions | None = None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self._recover(features, mask)

    def predict_from_recovered(self, recovered: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(torch.cat([recovered[m.value].flatten(1) for m in MODALITIES], dim=1))

    def training_losses(self, features: Features, labels: torch.Tensor, mask: torch.Tensor) -> LossOutput:
        prediction = self.predict_from_recovered(self._recover(features, mask))
        task = self.task_loss(prediction, labels.to(prediction.device))
        return LossOutput(total=task, parts={"task": task, "total": task}, prediction=prediction)


@contextmanager
def registered_toy() -> Iterator[type[ToyRecovery]]:
    """The toy method registered for the duration of the block."""
    register_method(ToyRecovery)
    try:
        yield ToyRecovery
    finally:
        unregister_method(TOY)
