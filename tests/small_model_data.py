"""Small feature specs and random features for model tests.

A light module (torch and imer_core only): processes spawned by a test import it without
pulling in conftest's fixtures (media clips, the desktop window's Qt).
"""

from __future__ import annotations

import torch

from imer_core.modalities import FeatureSpecs

SMALL_DIMS = (16, 5, 20)
SMALL_LEN = 26  # projections 26 → 24, divisible by 8 for the score U-Net


def small_specs() -> FeatureSpecs:
    """Specs of three small modalities (text 16-d, audio 5-d, vision 20-d; 26 steps)."""
    return FeatureSpecs.from_dims(SMALL_DIMS, SMALL_LEN)


def small_features(batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Standard-normal features of :func:`small_specs`, reproducible for a seed."""
    gen = torch.Generator().manual_seed(seed)
    return {s.modality.value: torch.randn(batch, s.seq_len, s.dim, generator=gen) for s in small_specs()}
