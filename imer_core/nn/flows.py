"""RealNVP normalizing flows with affine coupling layers (Dinh, Sohl-Dickstein, Bengio; ICLR 2017).

Conventions: a flow ``f`` maps a *data* vector ``x (B, D)`` to a *base* vector
``z = f(x) (B, D)`` (:meth:`RealNVP.forward`) and back (:meth:`RealNVP.inverse`).
Both directions return the exact log-determinant of their Jacobian.

An affine coupling layer with a binary mask ``b`` (1 = passed through) computes
(Dinh et al. 2017, eq. 9)::

    y = b ⊙ x + (1 - b) ⊙ (x ⊙ exp(s(b ⊙ x, c)) + t(b ⊙ x, c)),

whose Jacobian is triangular with log-determinant ``Σ_j (1 - b_j) s_j`` (eq. 6,
10).  ``c`` is an optional conditioning vector (a *conditional* flow).  The
scale is soft-clamped, ``s = κ tanh(s_raw / κ)``, to keep training stable; the
clamp is part of ``s`` so the log-determinant stays exact.  Consecutive layers
alternate between a parity mask, its complement, a half/half mask and its
complement, so every coordinate is transformed twice per group of four layers.

:class:`ConditionalGaussianFlow` puts a conditional diagonal Gaussian base
``N(μ_c, diag σ_c²)`` under a conditional RealNVP and gives the exact
log-likelihood by the change of variables (Dinh et al. 2017, eq. 3)::

    log p(x | c) = log N(f(x; c); μ_c, σ_c²) + log |det ∂f(x; c)/∂x|.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn


def coupling_masks(dim: int, layers: int) -> list[torch.Tensor]:
    """Binary masks (1 = identity half) for ``layers`` coupling layers of width ``dim``.

    The sequence is parity, ¬parity, lower half, ¬lower half, parity, ... so the
    masks alternate and every coordinate is updated by every second layer.
    """
    if dim < 2:
        raise ValueError(f"a coupling flow needs at least 2 dimensions, got {dim}")
    index = torch.arange(dim)
    bases = ((index % 2 == 0), (index < dim // 2))
    masks = []
    for k in range(layers):
        base = bases[(k // 2) % 2]
        masks.append((~base if k % 2 else base).to(torch.float32))
    return masks


class AffineCoupling(nn.Module):
    """One RealNVP affine coupling layer (see module docstring).

    Args:
        dim: data dimension ``D``.
        mask: ``(D,)`` binary mask, 1 for the coordinates passed through unchanged.
        hidden: width of the scale/translation network.
        cond_dim: width of the conditioning vector (0: unconditional).
        scale_clamp: ``κ`` of the soft clamp ``s = κ tanh(s_raw / κ)``.
    """

    mask: torch.Tensor

    def __init__(self, dim: int, mask: torch.Tensor, hidden: int, cond_dim: int = 0,
                 scale_clamp: float = 3.0) -> None:
        super().__init__()
        if mask.shape != (dim,):
            raise ValueError(f"mask must have shape ({dim},), got {tuple(mask.shape)}")
        self.dim, self.cond_dim, self.scale_clamp = dim, cond_dim, float(scale_clamp)
        self.register_buffer("mask", mask.to(torch.float32), persistent=False)   # derived from the config
        last = nn.Linear(hidden, 2 * dim)
        self.net = nn.Sequential(nn.Linear(dim + cond_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), last)
        nn.init.zeros_(last.weight)                          # identity map at initialisation
        nn.init.zeros_(last.bias)

    def _scale_shift(self, x_id: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cond_dim:
            if cond is None or cond.shape[-1] != self.cond_dim:
                raise ValueError(f"this coupling layer needs a conditioning vector of width {self.cond_dim}")
            x_id = torch.cat([x_id, cond.to(x_id.dtype)], dim=-1)
        raw_s, t = self.net(x_id).chunk(2, dim=-1)
        free = 1.0 - self.mask.to(x_id.dtype)
        s = self.scale_clamp * torch.tanh(raw_s / self.scale_clamp) * free
        return s, t * free

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``y = b x + (1 - b)(x e^s + t)``; returns ``(y, log|det ∂y/∂x|)`` with shapes ``(B, D), (B,)``."""
        b = self.mask.to(x.dtype)
        x_id = x * b
        s, t = self._scale_shift(x_id, cond)
        y = x_id + (1.0 - b) * (x * torch.exp(s) + t)          # Dinh et al. 2017, eq. 9
        return y, s.sum(dim=-1)                                 # eq. 6: log-det = Σ (1 - b) s

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = b y + (1 - b)(y - t) e^{-s}``; returns ``(x, log|det ∂x/∂y|)``."""
        b = self.mask.to(y.dtype)
        y_id = y * b
        s, t = self._scale_shift(y_id, cond)                    # b ⊙ y = b ⊙ x, so s and t are recomputable
        x = y_id + (1.0 - b) * (y - t) * torch.exp(-s)          # Dinh et al. 2017, eq. 8
        return x, -s.sum(dim=-1)


class RealNVP(nn.Module):
    """A stack of :class:`AffineCoupling` layers with alternating masks, optionally conditional.

    Args:
        dim: data dimension ``D``.
        layers: number of coupling layers (0: the identity map, for ablations).
        hidden: width of each coupling network.
        cond_dim: width of the conditioning vector (0: unconditional).
        scale_clamp: soft clamp of the log-scales.
    """

    def __init__(self, dim: int, layers: int, hidden: int, cond_dim: int = 0, scale_clamp: float = 3.0) -> None:
        super().__init__()
        if layers < 0:
            raise ValueError(f"a flow needs a non-negative number of coupling layers, got {layers}")
        self.dim = dim
        masks = coupling_masks(dim, layers) if layers else []
        self.couplings = nn.ModuleList([AffineCoupling(dim, mask, hidden, cond_dim, scale_clamp) for mask in masks])

    def _layers(self) -> list[AffineCoupling]:
        return [cast(AffineCoupling, layer) for layer in self.couplings]   # the list holds nothing else

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Data → base: ``(z, log|det ∂z/∂x|)``; log-determinants of the layers add up (chain rule)."""
        logdet = x.new_zeros(x.shape[0])
        for layer in self._layers():
            x, ld = layer(x, cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Base → data: ``(x, log|det ∂x/∂z|)``."""
        logdet = z.new_zeros(z.shape[0])
        for layer in reversed(self._layers()):
            z, ld = layer.inverse(z, cond)
            logdet = logdet + ld
        return z, logdet


def diagonal_gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``log N(z; μ, diag σ²)`` summed over the last dimension, shape ``(B,)``."""
    standard = (z - mu) / sigma
    return (-0.5 * standard.pow(2) - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(dim=-1)


class ConditionalGaussianFlow(nn.Module):
    """Conditional RealNVP on top of a conditional diagonal Gaussian base (see module docstring).

    Args:
        dim: data dimension ``D``.
        context_dim: width of the conditioning vector fed to every coupling network.
        layers: coupling layers.
        hidden: width of the coupling networks.
        scale_clamp: soft clamp of the log-scales.
    """

    def __init__(self, dim: int, context_dim: int, layers: int, hidden: int, scale_clamp: float = 3.0) -> None:
        super().__init__()
        self.flow = RealNVP(dim, layers, hidden, cond_dim=context_dim, scale_clamp=scale_clamp)

    def log_prob(self, x: torch.Tensor, base_mu: torch.Tensor, base_sigma: torch.Tensor,
                 context: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x | c)`` per row ``(B,)``: base log-density of ``f(x; c)`` plus the log-det."""
        z, logdet = self.flow(x, context)
        return diagonal_gaussian_log_prob(z, base_mu, base_sigma) + logdet   # Dinh et al. 2017, eq. 3

    def generate(self, base_mu: torch.Tensor, base_sigma: torch.Tensor, context: torch.Tensor,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """``x = f⁻¹(z; c)`` with ``z = μ_c`` (``noise`` None) or ``z = μ_c + σ_c ⊙ noise``."""
        z = base_mu if noise is None else base_mu + base_sigma * noise
        x, _ = self.flow.inverse(z, context)
        return x
