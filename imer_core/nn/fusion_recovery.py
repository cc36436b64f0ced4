"""Adversarial multimodal fusion recovery of RoHyDR (Jin et al., 2025): reconstructor ``R`` and discriminator ``D``.

``R`` maps the fused representation of recovered + available features
``F_lm`` towards the one of complete features ``F_gt``; ``D`` tells them apart.
Layer orders follow the reference ``decoder_v1`` / ``disc_two_class``.  The
helpers compute ``D``'s loss and evaluate ``D`` with frozen weights for ``R``'s
adversarial loss; ``D``'s optimisation step is the trainer's
(:meth:`imer_core.methods.base.StepHelpers.step_detached`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FusionReconstructor(nn.Sequential):
    """``R``: Linear → Dropout → LeakyReLU → Linear → Dropout → BatchNorm → LeakyReLU → Linear → Tanh.

    Args:
        dim: width of the fused representation (``6d`` for MulT).
        hidden: the two hidden widths (reference MOSI: 80, 96).
        dropout: dropout probability (reference MOSI: 0.4).
    """

    def __init__(self, dim: int, hidden: tuple[int, int] = (80, 96), dropout: float = 0.4) -> None:
        h1, h2 = hidden
        super().__init__(nn.Linear(dim, h1), nn.Dropout(dropout), nn.LeakyReLU(0.2),
                         nn.Linear(h1, h2), nn.Dropout(dropout), nn.BatchNorm1d(h2), nn.LeakyReLU(0.2),
                         nn.Linear(h2, dim), nn.Tanh())


class FusionDiscriminator(nn.Sequential):
    """``D``: BatchNorm → Linear → LeakyReLU → Linear → Tanh → Linear(→ 1) → Sigmoid (P(real)).

    Args:
        dim: width of the fused representation.
        hidden: the two hidden widths (reference MOSI: 128, 64).
    """

    def __init__(self, dim: int, hidden: tuple[int, int] = (128, 64)) -> None:
        h1, h2 = hidden
        super().__init__(nn.BatchNorm1d(dim), nn.Linear(dim, h1), nn.LeakyReLU(0.2),
                         nn.Linear(h1, h2), nn.Tanh(), nn.Linear(h2, 1), nn.Sigmoid())


def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                       weight: float = 0.1) -> torch.Tensor:
    """``weight · [BCE(D(real), 1) + BCE(D(fake), 0)]`` on detached inputs (RoHyDR stage 2, D step)."""
    p_real, p_fake = discriminator(real.detach()), discriminator(fake.detach())
    return weight * (F.binary_cross_entropy(p_real, torch.ones_like(p_real))
                     + F.binary_cross_entropy(p_fake, torch.zeros_like(p_fake)))


def frozen_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with detached parameters: gradients reach ``x`` but never the module's weights."""
    frozen = {name: p.detach() for name, p in module.named_parameters()}
    return torch.func.functional_call(module, frozen, (x,))
