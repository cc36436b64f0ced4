"""Variance-exploding SDE and the denoising score-matching loss used by IMDer.

Song et al., "Score-Based Generative Modeling through Stochastic Differential
Equations" (ICLR 2021).  IMDer uses the SDE of the score-SDE tutorial

    dx = sigma^t dw,  t in [0, 1]                                   (Song et al. eq. 5 with f = 0, g(t) = sigma^t)

whose perturbation kernel is ``p_0t(x_t | x_0) = N(x_0, std(t)^2 I)`` with

    std(t)^2 = int_0^t sigma^(2s) ds = (sigma^(2t) - 1) / (2 ln sigma)   (Song et al. eq. 29 / App. B).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .sampling import SCORE

ScoreFn = Callable[..., torch.Tensor]


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector ``(B,)`` to broadcast against ``like (B, ...)``."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class VESDE:
    """VE-SDE ``dx = sigma^t dw`` on ``t in [0, 1]`` (see module docstring).

    Args:
        sigma: the SDE's ``sigma`` (IMDer: 25).
    """

    family = SCORE

    def __init__(self, sigma: float = 25.0) -> None:
        if sigma <= 1.0:
            raise ValueError(f"sigma must be > 1, got {sigma}")
        self.sigma = float(sigma)
        self.log_sigma = math.log(self.sigma)

    def marginal_std(self, t: torch.Tensor | float) -> torch.Tensor:
        """``std(t) = sqrt((sigma^(2t) - 1) / (2 ln sigma))`` (Song et al. 2021, eq. 29)."""
        t = torch.as_tensor(t, dtype=torch.get_default_dtype()) if not torch.is_tensor(t) else t
        # expm1 keeps precision for small t; mathematically identical to sigma^(2t) - 1.
        return torch.sqrt(torch.expm1(2.0 * t * self.log_sigma) / (2.0 * self.log_sigma))

    def diffusion_coeff(self, t: torch.Tensor | float) -> torch.Tensor:
        """Diffusion coefficient ``g(t) = sigma^t``."""
        t = torch.as_tensor(t, dtype=torch.get_default_dtype()) if not torch.is_tensor(t) else t
        return torch.exp(t * self.log_sigma)

    def time_from_std(self, std: torch.Tensor | float) -> torch.Tensor:
        """Inverse of :meth:`marginal_std`: ``t = ln(1 + 2 ln(sigma) std^2) / (2 ln sigma)``."""
        std = torch.as_tensor(std, dtype=torch.get_default_dtype()) if not torch.is_tensor(std) else std
        return torch.log1p(2.0 * self.log_sigma * std ** 2) / (2.0 * self.log_sigma)

    @property
    def prior_std(self) -> float:
        """Standard deviation of the prior ``p_1 ≈ N(0, std(1)^2 I)``."""
        return math.sqrt((self.sigma ** 2 - 1.0) / (2.0 * self.log_sigma))

    def prior_sample(self, shape: Sequence[int], generator: torch.Generator | None = None,
                     device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Draw ``x_1 ~ N(0, std(1)^2 I)`` of the given shape."""
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype) * self.prior_std

    def __repr__(self) -> str:
        return f"VESDE(sigma={self.sigma})"


def denoising_score_matching_loss(score_fn: ScoreFn, x0: torch.Tensor, sde: VESDE,
                                  condition: torch.Tensor | None = None, eps: float = 1e-5,
                                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score-matching loss of the reference ``loss_fn`` (Song et al. 2021, eq. 7).

    ``t ~ U(eps, 1)``, ``z ~ N(0, I)``, ``x_t = x0 + std(t) z``; the condition is
    perturbed with the *same* noise, ``condition + std(t) z``.  With
    ``lambda(t) = std(t)^2`` the weighted objective becomes

        mean_b  sum_{c, l} (score(x_t, t, cond_t) * std(t) + z)^2.

    Args:
        score_fn: ``score_fn(x, t)`` or ``score_fn(x, t, condition)`` returning a tensor like ``x``.
        x0: clean samples ``(B, ...)``.
        sde: the VE-SDE.
        condition: optional condition with the shape of ``x0``.
        eps: smallest diffusion time.
        generator: optional random generator (on ``x0``'s device).
    """
    if condition is not None and condition.shape != x0.shape:
        raise ValueError(f"condition shape {tuple(condition.shape)} must equal x0 shape {tuple(x0.shape)}")
    batch = x0.shape[0]
    t = torch.rand(batch, generator=generator, device=x0.device, dtype=x0.dtype) * (1.0 - eps) + eps
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    std = _expand(sde.marginal_std(t), x0)
    perturbed = x0 + z * std
    if condition is not None:
        score = score_fn(perturbed, t, condition + z * std)
    else:
        score = score_fn(perturbed, t)
    return torch.sum((score * std + z) ** 2, dim=tuple(range(1, x0.dim()))).mean()
