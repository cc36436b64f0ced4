"""RCAN-style refiner for 1-D feature sequences (Zhang et al., ECCV 2018), as used by IMDer.

IMDer refines each diffusion-generated modality with a residual group of
residual channel-attention blocks (RCAB) operating on ``(B, C, L)`` tensors.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Channel attention: ``x * sigmoid(W_U relu(W_D avgpool(x)))`` (RCAN, eq. 6-7)."""

    def __init__(self, num_channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = num_channels // reduction
        if hidden < 1:
            raise ValueError(f"reduction {reduction} is too large for {num_channels} channels")
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.gate = nn.Sequential(
            nn.Conv1d(num_channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv1d(hidden, num_channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the channels of ``x (B, C, L)``."""
        return x * self.gate(self.pool(x))


class ResidualChannelAttentionBlock(nn.Module):
    """RCAB: ``x + res_scale * CA(conv(relu(conv(x))))`` (RCAN, eq. 8)."""

    def __init__(self, num_channels: int, reduction: int = 16, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(num_channels, num_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv1d(num_channels, num_channels, 3, padding=1),
            ChannelAttention(num_channels, reduction),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x (B, C, L)``."""
        return x + self.res_scale * self.body(x)


class ResidualGroup(nn.Module):
    """Residual group: ``x + conv(RCAB_n(...RCAB_1(x)))`` (RCAN, eq. 4)."""

    def __init__(self, num_channels: int, num_blocks: int = 20, reduction: int = 16,
                 res_scale: float = 1.0) -> None:
        super().__init__()
        blocks: list[nn.Module] = [ResidualChannelAttentionBlock(num_channels, reduction, res_scale)
                                   for _ in range(num_blocks)]
        blocks.append(nn.Conv1d(num_channels, num_channels, 3, padding=1))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the group to ``x (B, C, L)``."""
        return x + self.body(x)


class Refiner(nn.Module):
    """IMDer's refiner: ``Conv1d(d→2d, 1) → ResidualGroup(2d) → Conv1d(2d→d, 1)``.

    About 0.52 M parameters at ``d = 32`` with 20 blocks and reduction 16.
    """

    def __init__(self, d_model: int, num_blocks: int = 20, reduction: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(d_model, 2 * d_model, 1),
            ResidualGroup(2 * d_model, num_blocks, reduction),
            nn.Conv1d(2 * d_model, d_model, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine ``x (B, d, L)`` into a tensor of the same shape."""
        return self.body(x)
