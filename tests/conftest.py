"""Shared fixtures: small models and a small synthetic MMSA-schema file."""

from __future__ import annotations

import pytest
import torch

from imer_core.config import ModelConfig
from imer_core.modalities import FeatureSpecs
from imer_core.registry import create_model


SMALL_DIMS = (16, 5, 20)
SMALL_LEN = 26  # projections 26 → 24, divisible by 8 for the score U-Net


def small_specs() -> FeatureSpecs:
    return FeatureSpecs.from_dims(SMALL_DIMS, SMALL_LEN)


def small_features(batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {s.modality.value: torch.randn(batch, s.seq_len, s.dim, generator=gen) for s in small_specs()}


@pytest.fixture
def small_imder():
    torch.manual_seed(0)
    config = ModelConfig(method="imder", specs=small_specs(),
                         method_options={"sampler_steps": 3, "train_sampler_steps": 2})
    return create_model(config).eval()
