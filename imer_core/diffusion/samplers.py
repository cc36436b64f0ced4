"""Samplers of the ``"score"`` family (the VE-SDE), separate from the score network and from the SDE.

Every sampler follows the contract of :mod:`imer_core.diffusion.sampling`::

    sampler.sample(score_fn, sde, shape, condition=None, generator=None, device=None, noise=None) -> Tensor

where ``score_fn(x, t, condition)`` returns the score of ``x (B, ...)`` at times
``t (B,)`` (``condition`` may be ``None``).  When given, the condition must have
the shape of the samples: like the training loss, the samplers perturb it with
noise of that shape.  Step counts are constructor arguments, so the same
trained network can be sampled with different budgets; build them by name with
``make_sampler("score", name, steps, eps=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .sampling import SCORE, register_sampler
from .sde import VESDE

ScoreFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _bcast(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape(-1, *([1] * (ndim - 1)))


def _check(shape: Sequence[int], condition: torch.Tensor | None) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if condition is not None and tuple(condition.shape) != shape:
        raise ValueError(f"condition shape {tuple(condition.shape)} must equal the sample shape {shape}")
    return shape


def _noise(shape: tuple[int, ...], noise: torch.Tensor | None, generator: torch.Generator | None,
           device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if noise is None:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if tuple(noise.shape) != shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} must equal the sample shape {shape}")
    return noise.to(device=device, dtype=dtype)


def _device(condition: torch.Tensor | None, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return condition.device if condition is not None else torch.device("cpu")


class _ScoreSampler:
    """What the score samplers share: their family and ``steps`` (= ``num_steps``)."""

    family = SCORE
    num_steps: int

    @property
    def steps(self) -> int:
        """Number of sampler steps (the contract's name of ``num_steps``)."""
        return self.num_steps


@register_sampler
class EulerMaruyamaSampler(_ScoreSampler):
    """Euler–Maruyama solver of the reverse-time SDE (Song et al. 2021, eq. 6), as the IMDer reference.

    Time grid ``linspace(1, eps, N)`` with step ``Δt = grid[0] - grid[1]``
    (``1 - eps`` when ``N = 1``); ``x_1 ~ N(0, std(1)^2 I)``; at each step the
    condition is re-noised with *fresh* noise ``cond + std(t) ε``, then

        mean_x = x + g(t)^2 score(x, t, cond_t) Δt,    x = mean_x + sqrt(Δt) g(t) z,

    and the last ``mean_x`` (no noise on the final step) is returned.  ``noise`` (standard
    normal, of the sample shape) replaces the draw of ``x_1 / std(1)``.
    """

    name = "euler-maruyama"

    def __init__(self, num_steps: int = 100, eps: float = 1e-3) -> None:
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.num_steps = int(num_steps)
        self.eps = float(eps)

    @torch.no_grad()
    def sample(self, score_fn: ScoreFn, sde: VESDE, shape: Sequence[int], condition: torch.Tensor | None = None,
               generator: torch.Generator | None = None, device: torch.device | str | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw samples of ``shape`` (see class docstring)."""
        shape = _check(shape, condition)
        device = _device(condition, device)
        batch, ndim = shape[0], len(shape)
        dtype = condition.dtype if condition is not None else torch.get_default_dtype()
        if noise is None:
            x = sde.prior_sample(shape, generator=generator, device=device, dtype=dtype)
        else:
            x = _noise(shape, noise, generator, device, dtype) * sde.prior_std
        grid = torch.linspace(1.0, self.eps, self.num_steps, device=device, dtype=dtype)
        step = grid[0] - grid[1] if self.num_steps > 1 else torch.tensor(1.0 - self.eps, device=device, dtype=dtype)
        mean_x = x
        for i in range(self.num_steps):
            t = grid[i].expand(batch)                  # no host synchronisation (CUDA-graph capturable)
            g = _bcast(sde.diffusion_coeff(t), ndim)
            cond_t = None
            if condition is not None:
                fresh = torch.randn(shape, generator=generator, device=device, dtype=dtype)
                cond_t = condition + fresh * _bcast(sde.marginal_std(t), ndim)
            mean_x = x + g ** 2 * score_fn(x, t, cond_t) * step
            x = mean_x + torch.sqrt(step) * g * torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return mean_x

    def __repr__(self) -> str:
        return f"EulerMaruyamaSampler(num_steps={self.num_steps}, eps={self.eps})"


@register_sampler
class HeunSampler(_ScoreSampler):
    """Deterministic Heun solver of the probability-flow ODE in σ-space (Karras et al. 2022, Alg. 1).

    For the VE-SDE, ``d std(t)^2 / dt = g(t)^2``, so the probability-flow ODE
    ``dx/dt = -½ g(t)^2 ∇log p_t(x)`` (Song et al. 2021, eq. 13) becomes
    ``dx/dσ = -σ · score(x, σ)`` with ``σ = std(t)``.  The σ grid is the EDM
    schedule (Karras et al. 2022, eq. 5)

        σ_i = (σ_max^(1/ρ) + i/(N-1) (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ,  i = 0..N-1,  σ_N = 0,

    with ``σ_max = std(1)``, ``σ_min = std(eps)``; σ is turned back into the
    network's time with :meth:`VESDE.time_from_std`.  Each step uses Heun's
    second-order correction except the last one (to σ = 0), which is an Euler
    (i.e. Tweedie denoising) step, so ``N`` steps cost ``2N - 1`` score calls.

    Condition handling (``condition_noise``): ``z_T ~ N(0, I)`` is drawn once
    (from ``generator`` when given), ``x_T = σ_max z_T``, and at every evaluation
    the condition is perturbed as

    * ``"shared"`` (default): ``cond + σ z_T`` — the sample's own noise, as the
      training loss noises the condition with the same ``z`` as ``x``; the result
      is a deterministic function of the condition and of the seed;
    * ``"fresh"``: ``cond + σ ε`` with a new ``ε`` per evaluation, as the
      reference's Euler–Maruyama sampler (stochastic);
    * ``"none"``: the clean condition.

    Why ``"shared"``: the training loss noises ``x`` and the condition with one
    ``z``, so its minimiser is ``-E[z | x0 + σz, c + σz] / σ``, which reads the noise
    off the condition instead of learning ``∇ log p(x_σ | c)``; no sampler then draws
    from ``p(x0 | c)`` exactly.  With that exact minimiser on jointly Gaussian toy
    data ``"shared"`` had the smallest error to ``x0`` in two of three cases and the
    reference's Euler–Maruyama the largest or second largest in all
    (``benchmarks/bench_heun_condition.py``, ``docs/heun_condition_noise.md``,
    ``tests/test_heun_condition_noise.py``).

    Being deterministic, the ODE keeps the mismatch between the prior
    ``N(0, σ_max^2)`` and the true marginal at ``t = 1``: for data of mean ``μ`` and
    scale ``s`` the sample mean is off by about ``μ s / σ_max`` (≈ 5 % of ``μ`` at
    ``s = 0.5``), whereas the stochastic sampler forgets its initial state.
    """

    name = "heun"

    CONDITION_NOISE = ("shared", "fresh", "none")

    def __init__(self, num_steps: int = 10, eps: float = 1e-3, rho: float = 7.0,
                 condition_noise: str = "shared") -> None:
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if condition_noise not in self.CONDITION_NOISE:
            raise ValueError(f"condition_noise must be one of {', '.join(self.CONDITION_NOISE)}, "
                             f"got {condition_noise!r}")
        self.num_steps = int(num_steps)
        self.eps = float(eps)
        self.rho = float(rho)
        self.condition_noise = condition_noise

    def sigmas(self, sde: VESDE, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``N + 1`` noise levels ``σ_0 > ... > σ_{N-1} = std(eps) > σ_N = 0``."""
        s_max = float(sde.marginal_std(torch.tensor(1.0, dtype=torch.float64)))
        s_min = float(sde.marginal_std(torch.tensor(self.eps, dtype=torch.float64)))
        n = self.num_steps
        if n == 1:
            ramp = torch.zeros(1, dtype=torch.float64)
        else:
            ramp = torch.arange(n, dtype=torch.float64) / (n - 1)
        inv = 1.0 / self.rho
        grid = (s_max ** inv + ramp * (s_min ** inv - s_max ** inv)) ** self.rho
        return torch.cat([grid, grid.new_zeros(1)]).to(device=device, dtype=dtype)

    @torch.no_grad()
    def sample(self, score_fn: ScoreFn, sde: VESDE, shape: Sequence[int], condition: torch.Tensor | None = None,
               generator: torch.Generator | None = None, device: torch.device | str | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Integrate the probability-flow ODE from ``σ_max`` to 0 (see class docstring).

        ``noise`` (shape ``shape``) replaces the drawn ``z_T``: the result is then a
        deterministic function of ``(noise, condition)`` (used by distillation).
        """
        shape = _check(shape, condition)
        device = _device(condition, device)
        batch = shape[0]
        dtype = condition.dtype if condition is not None else torch.get_default_dtype()
        z = _noise(shape, noise, generator, device, dtype)
        sigmas = self.sigmas(sde, device=device, dtype=dtype)

        def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            # dx/dσ = -σ · score(x, t(σ))
            t = sde.time_from_std(sigma).expand(batch)
            cond_t = condition
            if condition is not None and self.condition_noise == "shared":
                cond_t = condition + z * sigma
            elif condition is not None and self.condition_noise == "fresh":
                cond_t = condition + sigma * torch.randn(shape, generator=generator, device=device, dtype=dtype)
            return -sigma * score_fn(x, t, cond_t)

        x = z * sigmas[0]
        for i in range(self.num_steps):
            s_cur, s_next = sigmas[i], sigmas[i + 1]
            d_cur = velocity(x, s_cur)
            x_euler = x + (s_next - s_cur) * d_cur
            if i == self.num_steps - 1:                # last step (to σ = 0): Euler
                x = x_euler
            else:                                      # Heun's 2nd-order correction
                x = x + (s_next - s_cur) * 0.5 * (d_cur + velocity(x_euler, s_next))
        return x

    def __repr__(self) -> str:
        return (f"HeunSampler(num_steps={self.num_steps}, eps={self.eps}, rho={self.rho}, "
                f"condition_noise={self.condition_noise!r})")


@register_sampler
class DistilledSampler(_ScoreSampler):
    """Few-step deterministic sampler for a score network distilled from the probability-flow ODE.

    The network is read as a denoiser ``D(x, σ) = x + σ² score(x, t(σ), cond + σ z)``
    (Tweedie's formula; the condition is noised with the sample's ``z`` as in
    :class:`HeunSampler`).  With ``N`` steps on the grid ``σ_0 = std(1) > σ_1 > ...
    > σ_N = 0`` (the EDM schedule of :class:`HeunSampler` over ``N + 1`` levels, last
    one replaced by 0) each step is the Euler / DDIM step of ``dx/dσ = (x - D)/σ``:

        x ← D + (σ_{i+1} / σ_i) (x - D),

    so one step costs one network evaluation and ``N = 1`` returns ``D(σ_0 z, σ_0)``.
    Driven by the *teacher's* score it is a coarse Euler solver of the ODE; driven by
    a student trained with :func:`imer_core.diffusion.distill.fit_student` it is the
    distilled one/two-evaluation generator.
    """

    name = "distilled"

    def __init__(self, num_steps: int = 1, eps: float = 1e-3, rho: float = 7.0) -> None:
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.num_steps = int(num_steps)
        self.eps = float(eps)
        self.rho = float(rho)

    def sigmas(self, sde: VESDE, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``N + 1`` levels ``σ_0 = std(1) > ... > σ_{N-1} > σ_N = 0``."""
        grid = HeunSampler(self.num_steps + 1, self.eps, self.rho).sigmas(sde, dtype=torch.float64)
        return torch.cat([grid[:self.num_steps], grid.new_zeros(1)]).to(device=device, dtype=dtype)

    def trajectory(self, score_fn: ScoreFn, sde: VESDE, z: torch.Tensor,
                   condition: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Denoised estimates ``D`` after each step (the last one is the sample), with autograd.

        ``z`` is the standard-normal noise of shape ``shape``; the 1-step output is
        the first entry, so one call trains every prefix of the schedule.
        """
        batch = z.shape[0]
        sigmas = self.sigmas(sde, device=z.device, dtype=z.dtype)
        x, outputs = z * sigmas[0], []
        for i in range(self.num_steps):
            sigma, nxt = sigmas[i], sigmas[i + 1]
            t = sde.time_from_std(sigma).expand(batch)
            cond_t = None if condition is None else condition + z * sigma
            denoised = x + sigma ** 2 * score_fn(x, t, cond_t)
            outputs.append(denoised)
            x = denoised + (nxt / sigma) * (x - denoised)
        return outputs

    @torch.no_grad()
    def sample(self, score_fn: ScoreFn, sde: VESDE, shape: Sequence[int], condition: torch.Tensor | None = None,
               generator: torch.Generator | None = None, device: torch.device | str | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw samples of ``shape`` in ``num_steps`` network evaluations (see class docstring)."""
        shape = _check(shape, condition)
        device = _device(condition, device)
        dtype = condition.dtype if condition is not None else torch.get_default_dtype()
        return self.trajectory(score_fn, sde, _noise(shape, noise, generator, device, dtype), condition)[-1]

    def __repr__(self) -> str:
        return f"DistilledSampler(num_steps={self.num_steps}, eps={self.eps}, rho={self.rho})"
