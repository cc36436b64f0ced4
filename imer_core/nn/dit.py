"""Conditional 1-D Diffusion Transformer (DiT, Peebles & Xie 2023) as configured in RoHyDR.

The network predicts the noise ``ε_θ(x_t, t, c)`` of a feature sequence
``x_t (B, C, L)``:

* tokens are the ``L`` time steps (patch size 1): ``Linear(C → h)`` plus a
  learned positional embedding ``(1, L, h)`` initialised from ``N(0, 1)``;
* the conditioning vector is ``c = TimestepEmbed(t) + Linear(mean_L(cond))``:
  the diffusion step through DiT's sinusoidal embedding (256 frequencies) and
  a 2-layer SiLU MLP, the condition (the available modality, or the 1×1 conv
  of the two available ones, ``(B, C_c, L)``) through its *time average* — the
  reference RoHyDR conditions the DiT only on this pooled vector;
* ``depth`` adaLN-Zero blocks (DiT Sec. 3.2): ``x += g₁ · Attn(mod(LN(x), s₁, b₁))``,
  ``x += g₂ · MLP(mod(LN(x), s₂, b₂))`` with ``(b₁, s₁, g₁, b₂, s₂, g₂) = Linear(SiLU(c))``
  zero-initialised, non-affine LayerNorm (eps 1e-6), GELU-tanh MLP;
* the final adaLN layer projects to ``2C`` channels (the width DiT reserves for
  a learned σ; RoHyDR feeds it to a ``Linear(2C → C)`` and predicts ε only, so
  no variance is learned), then ``Linear(2C → C)``.

With the reference configuration (``C = 32``, ``L = 48``, ``h = 64``, 6 blocks,
16 heads, MLP ratio 4, condition width 32) the network has 490,592 parameters
(≈0.49 M), the count of the reference ``DiTDiffusionModule``.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .layers import linear_at


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation ``x (1 + scale) + shift`` with per-sample ``(B, h)`` shift/scale."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding of (integer) diffusion steps followed by a SiLU MLP (DiT / GLIDE)."""

    def __init__(self, hidden_size: int, frequency_size: int = 256, max_period: float = 10000.0) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))

    def sinusoidal(self, t: torch.Tensor) -> torch.Tensor:
        """``[cos(t ω_k), sin(t ω_k)]`` with ``ω_k = max_period^(-k / half)``, shape ``(B, frequency_size)``."""
        half = self.frequency_size // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.frequency_size % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Embed steps ``t (B,)`` into ``(B, hidden_size)``."""
        return self.mlp(self.sinusoidal(t))


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused, biased QKV projection (timm ``Attention``)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the tokens of ``x (B, L, dim)``."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning (DiT Sec. 3.2)."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        width = int(hidden_size * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, width), nn.GELU(approximate="tanh"),
                                 nn.Linear(width, hidden_size))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Apply the block to tokens ``x (B, L, h)`` conditioned on ``c (B, h)``."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm and linear output layer of DiT."""

    def __init__(self, hidden_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Map tokens ``(B, L, h)`` to ``(B, L, out_channels)``."""
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT1d(nn.Module):
    """ε-prediction DiT over feature sequences (see module docstring).

    Args:
        channels: feature channels ``C`` of ``x`` (the projected width ``d``).
        seq_len: sequence length ``L`` (projected length).
        hidden_size: token width ``h``.
        depth: number of DiT blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width / ``h``.
        cond_channels: channels of the condition (default ``channels``).
    """

    def __init__(self, channels: int, seq_len: int, hidden_size: int = 64, depth: int = 6, num_heads: int = 16,
                 mlp_ratio: float = 4.0, cond_channels: int | None = None) -> None:
        super().__init__()
        self.channels, self.seq_len = channels, seq_len
        self.x_embedder = nn.Linear(channels, hidden_size)
        self.pos_embed = nn.Parameter(torch.randn(1, seq_len, hidden_size))
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.cond_embedder = nn.Linear(cond_channels or channels, hidden_size)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, 2 * channels)
        self.out = nn.Linear(2 * channels, channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT initialisation of the blocks (xavier, adaLN-Zero, zero output layer); the
        token/condition embedders and the output linear keep PyTorch defaults, as the reference."""
        for module in [*self.blocks.modules(), *self.final_layer.modules(), *self.t_embedder.modules()]:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(linear_at(self.t_embedder.mlp, 0).weight, std=0.02)
        nn.init.normal_(linear_at(self.t_embedder.mlp, 2).weight, std=0.02)
        for block in self.blocks:
            modulation = linear_at(cast(DiTBlock, block).adaLN_modulation, -1)   # the list holds DiT blocks only
            nn.init.zeros_(modulation.weight)
            nn.init.zeros_(modulation.bias)
        for layer in (linear_at(self.final_layer.adaLN_modulation, -1), self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Predict ε for ``x (B, C, L)`` at steps ``t (B,)`` given ``condition (B, C_c, L_c)``."""
        if x.dim() != 3 or x.shape[1] != self.channels or x.shape[2] != self.seq_len:
            raise ValueError(f"DiT1d expects x of shape (B, {self.channels}, {self.seq_len}), got {tuple(x.shape)}")
        h = self.x_embedder(x.transpose(1, 2)) + self.pos_embed
        c = self.t_embedder(t) + self.cond_embedder(condition.mean(dim=2))
        for block in self.blocks:
            h = block(h, c)
        return self.out(self.final_layer(h, c)).transpose(1, 2)
