"""MulT-style cross-modal Transformer encoder (Tsai et al., ACL 2019), as used by IMDer.

Conventions: every tensor is **batch-first**, ``(batch, length, embed_dim)``.

The encoder reproduces the fairseq-derived encoder of the MulT / IMDer
reference code:

* inputs are scaled by ``sqrt(D)`` and receive sinusoidal position embeddings
  (tensor2tensor variant, positions counted from 1);
* **padding quirk** — a time step whose *first feature* is exactly ``0`` is
  treated as padding: it gets position 0, whose embedding is the zero vector.
  The reference derives positions from ``x[..., 0]`` with padding index 0, and
  we keep that behaviour so trained weights behave identically;
* pre-LayerNorm layers (``x + Attn(LN(x), LN(ctx), LN(ctx))`` then
  ``x + FFN(LN(x))``), where the query and the key/value context share the
  layer's first LayerNorm, as in the reference;
* multi-head attention with one fused in-projection weight ``(3D, D)`` and bias
  ``(3D,)`` (Vaswani et al. 2017, eq. for MultiHead(Q, K, V));
* a ReLU feed-forward block of width ``4D``;
* an optional causal mask ``triu(-inf, 1 + |Lk - Lq|)`` (the reference's
  ``buffered_future_mask``) and a final LayerNorm.

The key and the value inputs of a cross-modal layer are the same context
tensor, but — as in the reference — the embedding dropout is drawn
independently for the key and for the value copy.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(query_len: int, key_len: int, device: torch.device | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive attention mask ``triu(-inf, 1 + |Lk - Lq|)`` of shape ``(Lq, Lk)``.

    Entry ``(i, j)`` is ``-inf`` when ``j >= i + 1 + |Lk - Lq|`` and ``0`` otherwise,
    so the first key is always visible and no softmax row is empty.  Masks are
    cached per shape, device and dtype (they never require gradients; callers
    must not modify them in place).
    """
    return _cached_causal_mask(int(query_len), int(key_len), torch.device(device or "cpu"), dtype)


@functools.lru_cache(maxsize=128)
def _cached_causal_mask(query_len: int, key_len: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    with torch.inference_mode(False):              # a normal tensor even when first built under inference_mode
        full = torch.full((query_len, key_len), float("-inf"), device=device, dtype=dtype)
        return torch.triu(full, diagonal=1 + abs(key_len - query_len))


@functools.lru_cache(maxsize=128)
def _position_table(length: int, embed_dim: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal embeddings ``(L, embed_dim)`` of positions 1..L (float32), cached per length and device."""
    half = embed_dim // 2
    with torch.inference_mode(False):
        steps = torch.arange(1, length + 1, device=device, dtype=torch.float32)
        freq = torch.exp(torch.arange(half, device=device, dtype=torch.float32)
                         * -(math.log(10000.0) / max(half - 1, 1)))
        angles = steps.unsqueeze(-1) * freq                                  # (L, half)
        emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        if embed_dim % 2 == 1:
            emb = torch.cat([emb, emb.new_zeros(length, 1)], dim=-1)
        return emb


def sinusoidal_positions(x: torch.Tensor, embed_dim: int) -> torch.Tensor:
    """Sinusoidal position embeddings ``(B, L, embed_dim)`` for a batch-first input ``x``.

    tensor2tensor variant (first half sines, second half cosines, frequency
    ``10000^(-k / (half - 1))``).  Positions run 1..L, except that time steps whose
    first feature equals exactly 0 count as padding: position 0, zero embedding.
    """
    length = x.shape[1]
    not_pad = (x[..., 0] != 0).to(torch.float32)                        # (B, L)
    # Position p's embedding is the cached table row; padding (position 0) is the zero vector.
    table = _position_table(int(length), int(embed_dim), x.device)
    return (table.unsqueeze(0) * not_pad.unsqueeze(-1)).to(x.dtype)


class MultiheadAttention(nn.Module):
    """Multi-head attention with a fused ``(3D, D)`` in-projection, as fairseq / MulT."""

    def __init__(self, embed_dim: int, num_heads: int, attn_dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend ``query (B, Lq, D)`` to ``key``/``value (B, Lk, D)`` (self-attention when omitted)."""
        d = self.embed_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        if key is None and value is None:
            q, k, v = F.linear(query, w, b).chunk(3, dim=-1)
        else:
            key = query if key is None else key
            value = key if value is None else value
            q = F.linear(query, w[:d], b[:d])
            if value is key:
                k, v = F.linear(key, w[d:], b[d:]).chunk(2, dim=-1)
            else:
                k = F.linear(key, w[d:2 * d], b[d:2 * d])
                v = F.linear(value, w[2 * d:], b[2 * d:])
        batch, q_len, k_len = query.shape[0], query.shape[1], k.shape[1]
        head_dim = d // self.num_heads
        q = q.reshape(batch, q_len, self.num_heads, head_dim).transpose(1, 2)
        k = k.reshape(batch, k_len, self.num_heads, head_dim).transpose(1, 2)
        v = v.reshape(batch, k_len, self.num_heads, head_dim).transpose(1, 2)
        # softmax(q k^T / sqrt(d_head) + mask) v  (Vaswani et al. 2017, eq. 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.attn_dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(batch, q_len, d))


class TransformerEncoderLayer(nn.Module):
    """Pre-LayerNorm encoder layer: attention block then ReLU FFN block, each residual."""

    def __init__(self, embed_dim: int, num_heads: int, attn_dropout: float = 0.0, relu_dropout: float = 0.0,
                 res_dropout: float = 0.0, attn_mask: bool = False) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(embed_dim, num_heads, attn_dropout)
        self.attn_mask = attn_mask
        self.relu_dropout = relu_dropout
        self.res_dropout = res_dropout
        self.fc1 = nn.Linear(embed_dim, 4 * embed_dim)
        self.fc2 = nn.Linear(4 * embed_dim, embed_dim)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        self.layer_norms = nn.ModuleList([nn.LayerNorm(embed_dim) for _ in range(2)])

    def forward(self, x: torch.Tensor, key: torch.Tensor | None = None,
                value: torch.Tensor | None = None) -> torch.Tensor:
        """One layer on ``x (B, Lq, D)``; ``key``/``value (B, Lk, D)`` give cross-attention."""
        norm = self.layer_norms[0]
        residual = x
        x = norm(x)
        k_len = x.shape[1] if key is None else key.shape[1]
        mask = causal_mask(x.shape[1], k_len, x.device, x.dtype) if self.attn_mask else None
        if key is None:
            x = self.self_attn(x, attn_mask=mask)
        else:
            key_n = norm(key)
            value_n = key_n if value is None or value is key else norm(value)
            x = self.self_attn(x, key_n, value_n, attn_mask=mask)
        x = residual + F.dropout(x, p=self.res_dropout, training=self.training)

        residual = x
        x = F.relu(self.fc1(self.layer_norms[1](x)))
        x = F.dropout(x, p=self.relu_dropout, training=self.training)
        x = F.dropout(self.fc2(x), p=self.res_dropout, training=self.training)
        return residual + x


class TransformerEncoder(nn.Module):
    """Stack of :class:`TransformerEncoderLayer` with input embedding and a final LayerNorm.

    Args:
        embed_dim: model width ``D``.
        num_heads: attention heads (``D`` must be divisible by it).
        layers: number of layers.
        attn_dropout: dropout on the attention weights.
        relu_dropout: dropout after the FFN's ReLU.
        res_dropout: dropout on each residual branch.
        embed_dropout: dropout on the embedded inputs (query, key and value).
        attn_mask: apply the causal mask :func:`causal_mask`.
        positions: add the sinusoidal position embeddings (MulT/IMDer: yes; the RoHyDR
            release builds its encoders with ``position_embedding=False``).
    """

    def __init__(self, embed_dim: int, num_heads: int, layers: int, attn_dropout: float = 0.0,
                 relu_dropout: float = 0.0, res_dropout: float = 0.0, embed_dropout: float = 0.0,
                 attn_mask: bool = False, positions: bool = True) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.positions = positions
        self.embed_scale = math.sqrt(embed_dim)
        self.embed_dropout = embed_dropout
        self.layers = nn.ModuleList([
            TransformerEncoderLayer(embed_dim, num_heads, attn_dropout, relu_dropout, res_dropout, attn_mask)
            for _ in range(layers)
        ])
        self.layer_norm = nn.LayerNorm(embed_dim)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        if not self.positions:
            return self.embed_scale * x
        return self.embed_scale * x + sinusoidal_positions(x, self.embed_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Encode ``x (B, Lq, D)``; with ``context (B, Lk, D)`` each layer cross-attends to it.

        Returns a tensor of shape ``(B, Lq, D)``.
        """
        drop = self.embed_dropout if self.training else 0.0
        h = F.dropout(self._embed(x), p=drop, training=self.training)
        key = value = None
        if context is not None:
            ctx = self._embed(context)
            # Independent embedding dropout for the key and the value copies (reference behaviour).
            key = F.dropout(ctx, p=drop, training=self.training)
            value = F.dropout(ctx, p=drop, training=self.training) if drop > 0 else key
        for layer in self.layers:
            h = layer(h, key, value)
        return self.layer_norm(h)
