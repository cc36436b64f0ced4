"""Typed access to the layers inside ``nn.Sequential`` containers."""

from __future__ import annotations

from torch import nn


def linear_at(sequence: nn.Sequential, index: int) -> nn.Linear:
    """The :class:`nn.Linear` at ``index`` of ``sequence``; ``TypeError`` if that layer is another kind."""
    layer = sequence[index]
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"expected nn.Linear at index {index} of the sequence, found {type(layer).__name__}")
    return layer
