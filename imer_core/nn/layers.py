"""Small tensor and layer helpers shared by the networks and methods.

:func:`linear_at` gives typed access to the layers inside ``nn.Sequential`` containers;
:func:`zero_missing` zeroes the rows of a missing modality by selection.
"""

from __future__ import annotations

import torch
from torch import nn


def linear_at(sequence: nn.Sequential, index: int) -> nn.Linear:
    """The :class:`nn.Linear` at ``index`` of ``sequence``; ``TypeError`` if that layer is another kind."""
    layer = sequence[index]
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"expected nn.Linear at index {index} of the sequence, found {type(layer).__name__}")
    return layer


def zero_missing(x: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
    """``x (B, ...)`` with the rows whose ``available (B,)`` flag is false set to zero.

    A selection, not a product with the mask: a NaN or infinite value in a missing
    modality's features would survive a multiplication by zero (``NaN * 0`` is NaN).
    """
    keep = available.bool().to(x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
