"""Discrete Gaussian diffusion (DDPM) with DDIM and ancestral samplers, as used by RoHyDR.

Three separate objects:

* :class:`GaussianDiffusion` — the *process*: a linear β schedule
  ``β_t = linspace(β_1, β_T, T)`` (Ho et al. 2020, Sec. 4: ``β_1 = 1e-4``,
  ``β_T = 0.02``, ``T = 1000``), ``ᾱ_t = ∏_{s≤t} (1 - β_s)``, the forward
  marginal ``q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I)`` (Ho et al. eq. 4) and the
  ε-prediction loss ``L_simple = E ||ε - ε_θ(x_t, t, c)||²`` (Ho et al. eq. 14);
* the network, any ``eps_fn(x_t, t, condition) -> ε̂`` with integer times
  ``t ∈ {0, …, T-1}`` (e.g. :class:`imer_core.nn.dit.DiT1d`);
* the samplers :class:`DDIMSampler` (Song et al. 2021, eq. 12) and
  :class:`AncestralSampler` (Ho et al. eq. 6-7), which run on a *respaced*
  subset of the **same** T-step training schedule: the step count is a
  sampler argument, and the ᾱ of the visited steps are those of the training
  schedule (Nichol & Dhariwal 2021, Sec. 4: ``β'_i = 1 - ᾱ_{τ_i} / ᾱ_{τ_{i-1}}``).

Visited steps use "trailing" spacing, ``τ_i = round(T - i T / S) - 1``, so
sampling always starts at the last training step ``T - 1`` (where
``x_T ≈ N(0, I)`` holds best) and ``S = T`` visits every step.

The samplers follow the contract of :mod:`imer_core.diffusion.sampling` (family
``"ddpm"``); build them by name with ``make_sampler("ddpm", name, steps, clip_denoised=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .sampling import DDPM, Sampler, register_sampler

EpsFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


class GaussianDiffusion:
    """DDPM forward process with a linear β schedule (see module docstring).

    Args:
        num_steps: number of training diffusion steps ``T``.
        beta_start: ``β_1``.
        beta_end: ``β_T``.
    """

    family = DDPM

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        self.num_steps = int(num_steps)
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        # float64 tables: ᾱ_t is a product of 1000 factors.
        self.betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self._alpha_bar = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod])   # index t + 1

    def alpha_bar(self, t: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """``ᾱ_t`` for integer steps ``t``; ``t = -1`` gives ``ᾱ = 1`` (the clean data)."""
        t = torch.as_tensor(t, dtype=torch.long)
        return self._alpha_bar[(t + 1).cpu()].to(device if device is not None else t.device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε`` (Ho et al. eq. 4)."""
        a = _bcast(self.alpha_bar(t, x0.device), x0)
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise

    def training_loss(self, eps_fn: EpsFn, x0: torch.Tensor, condition: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``L_simple``: MSE between ε and ``ε_θ(x_t, t, c)`` with ``t ~ U{0..T-1}`` (Ho et al. eq. 14)."""
        t = torch.randint(0, self.num_steps, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        prediction = eps_fn(self.q_sample(x0, t, noise), t, condition)
        return torch.nn.functional.mse_loss(prediction, noise)

    def respaced_steps(self, steps: int) -> list[int]:
        """``S`` visited steps of the T-step schedule, decreasing, "trailing" spacing."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"sampler steps must be in [1, {self.num_steps}], got {steps}")
        stride = self.num_steps / steps
        return [int(round(self.num_steps - i * stride)) - 1 for i in range(steps)]

    def __repr__(self) -> str:
        return f"GaussianDiffusion(T={self.num_steps}, beta={self.beta_start}..{self.beta_end}, linear)"


class _Sampler:
    """Shared loop of the DDIM and ancestral samplers (reverse process on respaced steps)."""

    name = ""
    family = DDPM

    def __init__(self, steps: int = 50, clip_denoised: float | None = None) -> None:
        if steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {steps}")
        self.steps = int(steps)
        self.clip_denoised = float(clip_denoised) if clip_denoised else None

    def sample(self, eps_fn: EpsFn, process: GaussianDiffusion, shape: Sequence[int],
               condition: torch.Tensor | None = None, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Run the reverse process from ``x_T ~ N(0, I)`` (or ``noise``) to ``x_0``.

        Gradients flow through the chain unless the caller disables them.
        """
        device = torch.device(device) if device is not None else (
            condition.device if condition is not None else torch.device("cpu"))
        x = noise if noise is not None else torch.randn(tuple(shape), device=device, generator=generator)
        visited = process.respaced_steps(self.steps)
        for i, t in enumerate(visited):
            t_prev = visited[i + 1] if i + 1 < len(visited) else -1
            a_t = float(process.alpha_bar(torch.tensor(t)))
            a_prev = float(process.alpha_bar(torch.tensor(t_prev)))
            t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            eps = eps_fn(x, t_batch, condition)
            x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5          # x̂_0 (Ho et al. eq. 15)
            if self.clip_denoised is not None:
                x0 = x0.clamp(-self.clip_denoised, self.clip_denoised)
                eps = (x - a_t ** 0.5 * x0) / (1.0 - a_t) ** 0.5     # ε consistent with the clipped x̂_0
            x = self._step(x, x0, eps, a_t, a_prev, last=t_prev < 0, generator=generator)
        return x

    def _step(self, x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, a_t: float, a_prev: float,
              last: bool, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.steps}, clip_denoised={self.clip_denoised})"


@register_sampler
class DDIMSampler(_Sampler):
    """DDIM (Song et al. 2021, eq. 12) with ``σ_t = η √((1-ᾱ_prev)/(1-ᾱ_t)) √(1-ᾱ_t/ᾱ_prev)`` (eq. 16).

    ``η = 0`` (default) is the deterministic sampler; ``η = 1`` is ancestral
    DDPM sampling with the posterior variance.

    Args:
        steps: number of sampler steps ``S`` (respaced training schedule).
        eta: ``η``.
        clip_denoised: clamp ``x̂_0`` to ``[-c, c]`` (``None``/0: no clamping).
    """

    name = "ddim"

    def __init__(self, steps: int = 50, eta: float = 0.0, clip_denoised: float | None = None) -> None:
        super().__init__(steps, clip_denoised)
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.eta = float(eta)

    def _step(self, x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, a_t: float, a_prev: float,
              last: bool, generator: torch.Generator | None) -> torch.Tensor:
        sigma = self.eta * ((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)) ** 0.5
        x_prev = a_prev ** 0.5 * x0 + max(1.0 - a_prev - sigma ** 2, 0.0) ** 0.5 * eps   # eq. 12
        if sigma > 0 and not last:
            x_prev = x_prev + sigma * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return x_prev

    def __repr__(self) -> str:
        return f"DDIMSampler(steps={self.steps}, eta={self.eta}, clip_denoised={self.clip_denoised})"


@register_sampler
class AncestralSampler(_Sampler):
    """Ancestral DDPM sampling ``x_{t-1} ~ N(μ̃_t(x_t, x̂_0), β̃_t I)`` (Ho et al. eq. 6-7).

    On respaced steps ``β'_t = 1 - ᾱ_t / ᾱ_prev`` and
    ``μ̃ = √ᾱ_prev β'_t/(1-ᾱ_t) x̂_0 + √(1-β'_t)(1-ᾱ_prev)/(1-ᾱ_t) x_t``,
    ``β̃_t = (1-ᾱ_prev)/(1-ᾱ_t) β'_t`` (fixed, not learned); no noise at the last step.
    """

    name = "ddpm"

    def _step(self, x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, a_t: float, a_prev: float,
              last: bool, generator: torch.Generator | None) -> torch.Tensor:
        beta = 1.0 - a_t / a_prev
        mean = (a_prev ** 0.5 * beta / (1.0 - a_t)) * x0 + ((1.0 - beta) ** 0.5 * (1.0 - a_prev) / (1.0 - a_t)) * x
        if last:
            return mean
        var = (1.0 - a_prev) / (1.0 - a_t) * beta
        return mean + var ** 0.5 * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)


class ReferenceDDIMSampler:
    """The RoHyDR release's inference loop: diffusers ``DDIMScheduler(num_train_timesteps=S)``, defaults.

    Reproduced semantics (η = 0, ``set_alpha_to_one``, ``clip_sample`` with range 1,
    ``prediction_type="epsilon"``, "leading" spacing with ``S`` inference steps):

    * its *own* linear β schedule of ``S`` steps (``β = linspace(1e-4, 0.02, S)``),
      not the network's ``T``-step training schedule;
    * the network is queried at ``t = S-1, …, 0`` — integer times of the ``T``-step
      schedule it was trained on, i.e. at nearly clean noise levels;
    * ``x̂_0`` is clamped to ``[-clip, clip]`` and ε is *not* recomputed from it;
    * ``x_{t-1} = √ᾱ_{t-1} x̂_0 + √(1-ᾱ_{t-1}) ε`` with ``ᾱ_{-1} = 1``.

    Kept to measure the released method; :class:`DDIMSampler` is the consistent one.
    """

    name = "ddim-reference"
    family = DDPM

    def __init__(self, steps: int = 50, clip_denoised: float | None = 1.0, beta_start: float = 1e-4,
                 beta_end: float = 0.02) -> None:
        if steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {steps}")
        self.steps = int(steps)
        self.clip_denoised = float(clip_denoised) if clip_denoised else None
        betas = torch.linspace(beta_start, beta_end, self.steps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    def sample(self, eps_fn: EpsFn, process: GaussianDiffusion, shape: Sequence[int],
               condition: torch.Tensor | None = None, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Reverse loop as in the release (``process`` only checks that ``S <= T``)."""
        if self.steps > process.num_steps:
            raise ValueError(f"reference DDIM with {self.steps} steps exceeds the {process.num_steps}-step process")
        device = torch.device(device) if device is not None else (
            condition.device if condition is not None else torch.device("cpu"))
        x = noise if noise is not None else torch.randn(tuple(shape), device=device, generator=generator)
        for t in range(self.steps - 1, -1, -1):
            eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), condition)
            x = self.step(x, eps, t)
        return x

    def step(self, x: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """One step ``x_t → x_{t-1}`` of the loop (diffusers ``DDIMScheduler.step`` with the release's settings)."""
        a_t = float(self.alphas_cumprod[t])
        a_prev = float(self.alphas_cumprod[t - 1]) if t > 0 else 1.0
        x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5
        if self.clip_denoised is not None:
            x0 = x0.clamp(-self.clip_denoised, self.clip_denoised)           # ε kept as predicted
        return a_prev ** 0.5 * x0 + (1.0 - a_prev) ** 0.5 * eps

    def __repr__(self) -> str:
        return f"ReferenceDDIMSampler(steps={self.steps}, clip_denoised={self.clip_denoised})"


class ScaledClipSampler:
    """A sampler whose ``x̂_0`` clamp range is set per call (``clip``: a float or a 0-dim tensor)."""

    family = DDPM

    def __init__(self, inner: Sampler, clip: "float | torch.Tensor") -> None:
        if not isinstance(inner, _Sampler):
            raise TypeError(f"{inner!r} has no x̂_0 clamp to scale")
        self.inner, self.clip = inner, float(clip)
        self.name = inner.name
        self.steps = inner.steps

    def sample(self, eps_fn: EpsFn, process: GaussianDiffusion, shape: Sequence[int],
               condition: torch.Tensor | None = None, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``inner`` with ``clip_denoised`` = this object's range."""
        saved = self.inner.clip_denoised
        self.inner.clip_denoised = self.clip
        try:
            return self.inner.sample(eps_fn, process, shape, condition, generator, device, noise)
        finally:
            self.inner.clip_denoised = saved
