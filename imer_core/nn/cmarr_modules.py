"""Building blocks of CM-ARR: Gaussian modality encoders, refiners and the token fusion head.

* :class:`GaussianEncoder` — ``(B, L, D)`` features → diagonal Gaussian
  ``(μ, σ)`` of width ``d``: temporal Conv1d (kernel 3, same padding) + GELU,
  optional pre-LN Transformer layers over time, LayerNorm, mean pooling over
  time and two linear heads; ``σ = softplus(·) + σ_min``.
* :class:`ResidualRefiner` — ``x + W2 GELU(W1 LN(x))`` on one modality's
  representation (the refinement module that SupCon shapes).
* :class:`TokenFusion` — the three modality representations as three tokens
  (plus learned modality embeddings) through pre-LN Transformer layers, mean
  over tokens, then an MLP head to ``output_dim``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _transformer(width: int, heads: int, layers: int, dropout: float) -> nn.TransformerEncoder | None:
    if layers <= 0:
        return None
    layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class GaussianEncoder(nn.Module):
    """Features ``(B, L, D)`` → ``(μ, σ)``, each ``(B, d)`` (see module docstring).

    Args:
        input_dim: feature dimension ``D``.
        hidden: width of the convolution / Transformer.
        latent_dim: width ``d`` of the Gaussian.
        layers: Transformer layers over time (0: convolution only).
        heads: attention heads.
        dropout: dropout inside the Transformer and before the heads.
        min_std: ``σ_min`` added to the softplus so ``σ > 0``.
    """

    def __init__(self, input_dim: int, hidden: int, latent_dim: int, layers: int = 1, heads: int = 4,
                 dropout: float = 0.1, min_std: float = 1e-3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(input_dim, hidden, kernel_size=3, padding=1)
        self.temporal = _transformer(hidden, heads, layers, dropout)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = dropout
        self.mu = nn.Linear(hidden, latent_dim)
        self.raw_sigma = nn.Linear(hidden, latent_dim)
        self.min_std = float(min_std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation ``(B, d)`` of the modality's Gaussian."""
        h = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)       # (B, L, hidden)
        if self.temporal is not None:
            h = self.temporal(h)
        h = self.norm(h).mean(dim=1)                                    # mean pooling over time
        h = F.dropout(h, p=self.dropout, training=self.training)
        return self.mu(h), F.softplus(self.raw_sigma(h)) + self.min_std


class ResidualRefiner(nn.Module):
    """``x + W2 GELU(W1 LN(x))`` on ``(..., d)`` representations."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refined representation, same shape as ``x``."""
        h = F.dropout(F.gelu(self.fc1(self.norm(x))), p=self.dropout, training=self.training)
        return x + self.fc2(h)


class TokenFusion(nn.Module):
    """Cross-modal fusion of ``(B, M, d)`` modality tokens and the output head.

    Args:
        dim: token width ``d``.
        tokens: number of modality tokens ``M``.
        heads: attention heads.
        layers: Transformer layers across the tokens.
        head_hidden: width of the output MLP.
        output_dim: number of outputs.
        dropout: dropout in the Transformer and the head.
    """

    def __init__(self, dim: int, tokens: int, heads: int, layers: int, head_hidden: int, output_dim: int,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.modality_embedding = nn.Parameter(torch.zeros(tokens, dim))
        nn.init.normal_(self.modality_embedding, std=0.02)
        self.encoder = _transformer(dim, heads, layers, dropout)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(dim, head_hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(head_hidden, output_dim))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(prediction (B, output_dim), fused (B, d))``."""
        h = tokens + self.modality_embedding.to(tokens.dtype)
        if self.encoder is not None:
            h = self.encoder(h)
        fused = self.norm(h).mean(dim=1)
        return self.head(fused), fused
