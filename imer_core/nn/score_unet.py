"""Conditional time-dependent score network (1-D U-Net) of IMDer.

The network follows the score-SDE tutorial U-Net (Song et al. 2021) adapted to
``(B, C, L)`` feature sequences, with IMDer's cross-modal conditioning: at every
resolution the feature map ``h`` (query) cross-attends to the condition
(key/value) through a 2-layer :class:`~imer_core.nn.transformer.TransformerEncoder`
and the result is added to ``h``.  The condition follows its own strided /
transposed convolution path so that its resolution matches ``h``.

Structure with ``channels = (c0, c1, c2, c3)`` (reference ordering quirks kept):

* encoder level 1: ``conv1`` (k3 s1 p1) → +cross-attn(cond) → +Dense(t) → GroupNorm(4) → swish;
* encoder levels 2..n: ``conv`` (k3 s2 p1) and ``cond_conv`` (same shape) →
  +cross-attn → +Dense(t) → GroupNorm(32) → swish;
* decoder: the deepest transposed conv takes the bottleneck **without** a skip
  connection; the next ones take ``cat([h, h_skip])``; each is followed by
  +cross-attn → +Dense(t) → GroupNorm(32) → swish;
* the last transposed conv (k3 s1 p1, with bias) takes ``cat([h, h1])`` and only
  gets the cross-attention (no Dense, no GroupNorm, no activation);
* the output is divided by ``std(t)`` (Song et al. 2021, score ≈ -z / std(t)).

Lengths: ``L → L/2 → L/4 → L/8 → ... → L``; ``L`` must be divisible by
``2^(n-1)`` (48 → 24 → 12 → 6 in IMDer).  Convolutions have no bias except the
last level, as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .transformer import TransformerEncoder


def swish(x: torch.Tensor) -> torch.Tensor:
    """Swish / SiLU activation ``x * sigmoid(x)``."""
    return x * torch.sigmoid(x)


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of the time ``[sin(2π W t), cos(2π W t)]`` (Tancik et al. 2020).

    ``W ~ N(0, scale^2)`` is a fixed, non-trainable parameter (kept as a
    parameter so that checkpoints and parameter counts match the reference).
    """

    def __init__(self, embed_dim: int, scale: float = 30.0) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(embed_dim // 2) * scale, requires_grad=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Embed ``t (B,)`` into ``(B, embed_dim)``."""
        proj = t[:, None] * self.W[None, :] * 2.0 * math.pi
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class ConditionalScoreUNet1d(nn.Module):
    """Score network ``s_θ(x_t, t, condition) ≈ ∇ log p_t(x_t | condition)`` (see module docstring).

    Args:
        in_channels: channels of ``x`` and of the condition (IMDer: ``d = 32``).
        channels: channels per resolution level (at least two levels).
        embed_dim: width of the time embedding.
        num_heads: heads of every cross-attention Transformer.
        attn_layers: layers of every cross-attention Transformer.
        marginal_std: ``std(t)`` of the SDE, used to normalise the output.
    """

    def __init__(self, in_channels: int = 32, channels: Sequence[int] = (32, 64, 128, 256), embed_dim: int = 256,
                 num_heads: int = 8, attn_layers: int = 2,
                 marginal_std: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        if marginal_std is None:
            raise ValueError("marginal_std (the SDE's std(t)) is required")
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ValueError("the U-Net needs at least two resolution levels")
        self.in_channels = in_channels
        self.channels = channels
        self.marginal_std = marginal_std
        n = len(channels)

        def attention(width: int) -> TransformerEncoder:
            return TransformerEncoder(width, num_heads, attn_layers, attn_mask=True)

        def down(c_in: int, c_out: int) -> nn.Conv1d:
            return nn.Conv1d(c_in, c_out, 3, stride=2, padding=1, bias=False)

        def up(c_in: int, c_out: int) -> nn.ConvTranspose1d:
            return nn.ConvTranspose1d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=False)

        self.embed = nn.Sequential(GaussianFourierProjection(embed_dim), nn.Linear(embed_dim, embed_dim))
        # Encoder (level 0 keeps the resolution, the others halve it).
        self.enc_convs = nn.ModuleList([nn.Conv1d(in_channels, channels[0], 3, stride=1, padding=1, bias=False)]
                                       + [down(channels[k - 1], channels[k]) for k in range(1, n)])
        self.enc_cond_convs = nn.ModuleList([down(channels[k - 1], channels[k]) for k in range(1, n)])
        self.enc_attns = nn.ModuleList([attention(c) for c in channels])
        self.enc_denses = nn.ModuleList([nn.Linear(embed_dim, c) for c in channels])
        self.enc_norms = nn.ModuleList([nn.GroupNorm(4 if k == 0 else 32, c) for k, c in enumerate(channels)])
        # Decoder: level k (n-1 .. 1) maps channels[k] (+ skip except at the deepest) to channels[k-1].
        levels = range(n - 1, 0, -1)
        self.dec_convs = nn.ModuleList([up(channels[k] * (1 if k == n - 1 else 2), channels[k - 1]) for k in levels])
        self.dec_cond_convs = nn.ModuleList([up(channels[k], channels[k - 1]) for k in levels])
        self.dec_attns = nn.ModuleList([attention(channels[k - 1]) for k in levels])
        self.dec_denses = nn.ModuleList([nn.Linear(embed_dim, channels[k - 1]) for k in levels])
        self.dec_norms = nn.ModuleList([nn.GroupNorm(32, channels[k - 1]) for k in levels])
        # Output level (full resolution, with bias, no Dense/GroupNorm).
        self.out_conv = nn.ConvTranspose1d(2 * channels[0], in_channels, 3, stride=1, padding=1)
        self.out_cond_conv = nn.ConvTranspose1d(channels[0], in_channels, 3, stride=1, padding=1)
        self.out_attn = attention(in_channels)

    @staticmethod
    def _cross(attn: nn.Module, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Cross-attention of ``h (B, C, L)`` to ``cond (B, C, L')``, back in ``(B, C, L)``."""
        return attn(h.transpose(1, 2), cond.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Score of ``x (B, C, L)`` at times ``t (B,)`` given an optional ``condition (B, C, L)``."""
        depth = 2 ** (len(self.channels) - 1)
        if x.shape[-1] % depth != 0:
            raise ValueError(f"sequence length {x.shape[-1]} must be divisible by {depth}")
        embed = swish(self.embed(t))
        cond = condition
        skips = []
        h = x
        for k in range(len(self.channels)):
            h = self.enc_convs[k](h)
            if cond is not None:
                if k > 0:
                    cond = self.enc_cond_convs[k - 1](cond)         # align the condition with h
                h = h + self._cross(self.enc_attns[k], h, cond)
            h = h + self.enc_denses[k](embed)[..., None]
            h = swish(self.enc_norms[k](h))
            skips.append(h)

        for j in range(len(self.dec_convs)):
            level = len(self.channels) - 1 - j                       # channels[level] → channels[level - 1]
            h = self.dec_convs[j](h if j == 0 else torch.cat([h, skips[level]], dim=1))
            if cond is not None:
                cond = self.dec_cond_convs[j](cond)
                h = h + self._cross(self.dec_attns[j], h, cond)
            h = h + self.dec_denses[j](embed)[..., None]
            h = swish(self.dec_norms[j](h))

        h = self.out_conv(torch.cat([h, skips[0]], dim=1))
        if cond is not None:
            cond = self.out_cond_conv(cond)
            h = h + self._cross(self.out_attn, h, cond)
        std = self.marginal_std(t).to(h.dtype)
        return h / std.reshape(-1, *([1] * (h.dim() - 1)))
