"""Tests of the VE-SDE, the score-matching loss, the samplers and the score U-Net."""

from __future__ import annotations

import math

import pytest
import torch

from imer_core.diffusion.samplers import EulerMaruyamaSampler, HeunSampler
from imer_core.diffusion.sampling import SCORE, available_samplers, make_sampler
from imer_core.diffusion.sde import VESDE, denoising_score_matching_loss
from imer_core.nn.score_unet import ConditionalScoreUNet1d

SDE = VESDE(25.0)
MU, S = 0.4, 0.6                                      # target distribution N(MU, S^2) per coordinate



def gaussian_score(x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
    """Exact score of the perturbed marginal N(MU, S^2 + std(t)^2); ignores the condition."""
    var = S ** 2 + SDE.marginal_std(t).reshape(-1, *([1] * (x.dim() - 1))) ** 2
    return -(x - MU) / var


def test_marginal_std_closed_form_and_integral() -> None:
    sigma = 25.0
    for t in (1e-4, 0.01, 0.3, 0.7, 1.0):
        closed = math.sqrt((sigma ** (2 * t) - 1) / (2 * math.log(sigma)))
        s = torch.linspace(0.0, t, 20_001, dtype=torch.float64)
        integral = torch.trapezoid(SDE.diffusion_coeff(s) ** 2, s).item()   # ∫0^t g(s)^2 ds
        got = SDE.marginal_std(torch.tensor(t, dtype=torch.float64)).item()
        assert got == pytest.approx(closed, rel=1e-9)
        assert got ** 2 == pytest.approx(integral, rel=1e-6)
    assert SDE.diffusion_coeff(0.5).item() == pytest.approx(5.0, rel=1e-6)
    assert SDE.prior_std == pytest.approx(SDE.marginal_std(torch.tensor(1.0, dtype=torch.float64)).item())
    t = torch.tensor([1e-3, 0.2, 0.9], dtype=torch.float64)
    torch.testing.assert_close(SDE.time_from_std(SDE.marginal_std(t)), t)
    x = SDE.prior_sample((20_000,), generator=torch.Generator().manual_seed(0))
    assert x.std().item() == pytest.approx(SDE.prior_std, rel=0.03)
    with pytest.raises(ValueError):
        VESDE(1.0)


def test_dsm_loss_zero_score_and_exact_score() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = MU + S * torch.randn(4000, 2, 3, generator=g)
    zero = denoising_score_matching_loss(lambda x, t: torch.zeros_like(x), x0, SDE, generator=g)
    assert zero.item() == pytest.approx(6.0, rel=0.05)                # E||z||^2 = C * L
    exact = denoising_score_matching_loss(lambda x, t: gaussian_score(x, t), x0, SDE, generator=g)
    assert exact.item() < 0.5 * zero.item()


def test_dsm_loss_perturbs_condition_with_the_same_noise() -> None:
    x0, cond = torch.randn(5, 2, 4), torch.randn(5, 2, 4)
    seen = {}

    def score_fn(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        seen["dx"], seen["dc"] = x - x0, c - cond
        return torch.zeros_like(x)

    denoising_score_matching_loss(score_fn, x0, SDE, condition=cond, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(seen["dx"], seen["dc"])
    with pytest.raises(ValueError):
        denoising_score_matching_loss(score_fn, x0, SDE, condition=cond[:, :1])


def _check_gaussian(x: torch.Tensor) -> None:
    assert abs(x.mean().item() - MU) < 0.05
    assert x.std().item() == pytest.approx(S, rel=0.05)


def test_euler_maruyama_reproduces_gaussian_with_condition() -> None:
    shape = (4000, 2)
    x = EulerMaruyamaSampler(100).sample(gaussian_score, SDE, shape, condition=torch.zeros(shape),
                                         generator=torch.Generator().manual_seed(0))
    assert x.shape == shape
    _check_gaussian(x)


def test_heun_reproduces_gaussian_and_exact_flow() -> None:
    shape, seed = (4000, 2), 0
    sampler = HeunSampler(20)
    x = sampler.sample(gaussian_score, SDE, shape, generator=torch.Generator().manual_seed(seed))
    _check_gaussian(x)
    # Pathwise: the exact probability-flow map of x_T = std(1) z, then the final (Tweedie) Euler step.
    z = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    s_max, s_min = SDE.prior_std, SDE.marginal_std(torch.tensor(1e-3)).item()
    x_min = MU + (s_max * z - MU) * math.sqrt(S ** 2 + s_min ** 2) / math.sqrt(S ** 2 + s_max ** 2)
    expected = MU + (x_min - MU) * S ** 2 / (S ** 2 + s_min ** 2)
    assert (x - expected).abs().max().item() < 0.05
    coarse = HeunSampler(10).sample(gaussian_score, SDE, shape, generator=torch.Generator().manual_seed(seed))
    assert (coarse - expected).abs().max().item() < 0.2


def test_heun_is_deterministic_and_uses_shared_condition_noise() -> None:
    cond = torch.randn(3, 2, 4)
    calls = []

    def score_fn(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        calls.append((x.clone(), t.clone(), c.clone()))
        return torch.zeros_like(x)

    sampler = HeunSampler(4)
    a = sampler.sample(score_fn, SDE, cond.shape, condition=cond, generator=torch.Generator().manual_seed(3))
    assert len(calls) == 2 * 4 - 1
    x0, t0, c0 = calls[0]
    torch.testing.assert_close(t0, torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(c0 - cond, x0, atol=1e-4, rtol=1e-4)          # same z_T for x and condition
    b = sampler.sample(score_fn, SDE, cond.shape, condition=cond, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    sig = sampler.sigmas(SDE, dtype=torch.float64)
    assert sig.shape == (5,) and sig[-1] == 0 and torch.all(sig[:-1] > sig[1:])
    assert sig[-2].item() == pytest.approx(SDE.marginal_std(torch.tensor(1e-3, dtype=torch.float64)).item())


def test_make_sampler_registry() -> None:
    assert available_samplers(SCORE) == ["distilled", "euler-maruyama", "heun"]
    assert isinstance(make_sampler(SCORE, "euler-maruyama", None), EulerMaruyamaSampler)
    assert make_sampler(SCORE, "euler-maruyama", None).num_steps == 100
    assert make_sampler(SCORE, "Heun", None).num_steps == 10 and make_sampler(SCORE, "heun", 3).num_steps == 3
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler(SCORE, "ddim", 10)
    with pytest.raises(ValueError, match=">= 1"):
        make_sampler(SCORE, "heun", 0)
    with pytest.raises(ValueError):
        EulerMaruyamaSampler(2).sample(gaussian_score, SDE, (2, 3), condition=torch.zeros(2, 4))
    one = EulerMaruyamaSampler(1).sample(gaussian_score, SDE, (2, 3))
    assert one.shape == (2, 3) and torch.isfinite(one).all()


def test_score_unet_parameter_count_and_shapes() -> None:
    torch.manual_seed(0)
    net = ConditionalScoreUNet1d(marginal_std=SDE.marginal_std)
    n = sum(p.numel() for p in net.parameters())
    assert n == 3_457_664 and round(n / 1e6, 2) == 3.46
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == n - 128   # fixed Fourier weights
    x, cond, t = torch.randn(2, 32, 48), torch.randn(2, 32, 48), torch.tensor([0.3, 0.9])
    out = net(x, t, cond)
    assert out.shape == (2, 32, 48) and torch.isfinite(out).all()
    assert net(x, t).shape == (2, 32, 48)
    assert not torch.allclose(out, net(x, t))                   # the condition is used
    short = net(torch.randn(2, 32, 16), t, torch.randn(2, 32, 16))   # no hard-coded length
    assert short.shape == (2, 32, 16)
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(2, 32, 20), t)
    # The network drives the samplers with any step count.
    sample = make_sampler(SCORE, "heun", 2).sample(net, SDE, (2, 32, 16), condition=torch.randn(2, 32, 16))
    assert sample.shape == (2, 32, 16)
