"""Tests of issue 16: distilled few-step sampling, traced score networks, CUDA-graph replay, caches."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from imer_core.diffusion.distill import DistillOptions, distillation_loss, fit_student, teacher_pairs
from imer_core.diffusion.fast import CudaGraphRunner, InferenceCache, check_backend, trace_score_net
from imer_core.diffusion.samplers import DistilledSampler, HeunSampler
from imer_core.diffusion.sampling import SCORE, make_sampler
from imer_core.diffusion.sde import VESDE
from imer_core.nn.score_unet import ConditionalScoreUNet1d

SDE = VESDE(25.0)
MU, S = 0.4, 0.6


def gaussian_score(x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
    """Exact score of the perturbed marginal N(MU, S^2 + std(t)^2) (as tests/test_diffusion.py)."""
    var = S ** 2 + SDE.marginal_std(t).reshape(-1, *([1] * (x.dim() - 1))) ** 2
    return -(x - MU) / var


class AffineStudent(nn.Module):
    """Denoiser ``D = w_k x + b_k`` per step ``k`` of a 1- or 2-step schedule, returned as a score."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2, dims))
        self.b = nn.Parameter(torch.zeros(2, dims))

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        first = (t > 0.99)[:, None]                                   # t = 1: first step
        w, b = torch.where(first, self.w[0], self.w[1]), torch.where(first, self.b[0], self.b[1])
        sigma = SDE.marginal_std(t)[:, None]
        return (w * x + b - x) / sigma ** 2


@pytest.mark.parametrize("steps", [1, 2])
def test_distilled_generator_reproduces_gaussian_mean_and_variance(steps: int) -> None:
    shape = (4000, 2)
    g = torch.Generator().manual_seed(0)
    pairs = teacher_pairs(gaussian_score, SDE, None, shape, teacher_steps=20, generator=g)
    student = AffineStudent(2)
    sampler = DistilledSampler(steps)
    before = sampler.sample(student, SDE, shape, generator=torch.Generator().manual_seed(1))
    assert before.std().item() > 5 * S                               # untrained: far from the target
    options = DistillOptions(steps=steps, epochs=60, batch_size=500, learning_rate=0.05)
    report = fit_student({"x": student}, {"x": pairs}, SDE, options)
    assert report.valid_loss < 0.01 * report.initial_valid_loss
    x = sampler.sample(student, SDE, shape, generator=torch.Generator().manual_seed(1))
    assert abs(x.mean().item() - MU) < 0.05
    assert x.std().item() == pytest.approx(S, rel=0.05)
    # pathwise: the student reproduces the teacher's ODE endpoint for the same noise
    z = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    teacher = HeunSampler(20).sample(gaussian_score, SDE, shape, noise=z)
    assert (sampler.sample(student, SDE, shape, noise=z) - teacher).abs().max().item() < 0.05


def test_distilled_sampler_schedule_and_teacher_consistency() -> None:
    one = DistilledSampler(1).sigmas(SDE, dtype=torch.float64)
    two = DistilledSampler(2).sigmas(SDE, dtype=torch.float64)
    assert one.tolist() == pytest.approx([SDE.prior_std, 0.0])
    assert two.shape == (3,) and two[0] == one[0] and 0 < two[1] < two[0] and two[2] == 0
    assert make_sampler(SCORE, "distilled", None).num_steps == 1 and make_sampler(SCORE, "Distilled", 2).num_steps == 2
    # Driven by the exact score, one step is Tweedie's denoiser at sigma_max: E[x0 | x_T].
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    out = DistilledSampler(1).sample(gaussian_score, SDE, (6, 2), noise=z)
    s_max = SDE.prior_std
    expected = MU + (s_max * z - MU) * S ** 2 / (S ** 2 + s_max ** 2)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="noise shape"):
        DistilledSampler(1).sample(gaussian_score, SDE, (6, 2), noise=torch.zeros(3, 2))
    with pytest.raises(ValueError):
        DistillOptions(steps=0)


def test_distillation_loss_is_zero_for_the_exact_map() -> None:
    pairs = teacher_pairs(gaussian_score, SDE, None, (50, 3), teacher_steps=5,
                          generator=torch.Generator().manual_seed(0))
    student = AffineStudent(3)
    assert float(distillation_loss(student, SDE, DistilledSampler(1), pairs)) > 1.0
    with torch.no_grad():                                            # D(x_T) = teacher endpoint exactly? fit w, b
        x_t = pairs.noise * SDE.prior_std
        w = ((x_t - x_t.mean(0)) * (pairs.target - pairs.target.mean(0))).sum(0) / ((x_t - x_t.mean(0)) ** 2).sum(0)
        student.w[0] = w
        student.b[0] = pairs.target.mean(0) - w * x_t.mean(0)
    assert float(distillation_loss(student, SDE, DistilledSampler(1), pairs)) < 1e-6


def _score_net() -> ConditionalScoreUNet1d:
    torch.manual_seed(0)
    return ConditionalScoreUNet1d(32, (32, 32), 16, num_heads=4, marginal_std=SDE.marginal_std).eval()


@pytest.mark.parametrize("conditioned", [True, False])
def test_traced_score_net_matches_eager(conditioned: bool) -> None:
    net = _score_net()
    x, t = torch.randn(3, 32, 12), torch.tensor([0.9, 0.2, 0.5])
    cond = torch.randn(3, 32, 12) if conditioned else None
    traced = trace_score_net(net, x, t, cond)
    x2, t2 = torch.randn(3, 32, 12), torch.tensor([0.1, 0.7, 1.0])
    c2 = torch.randn(3, 32, 12) if conditioned else None
    args = (x2, t2, c2) if conditioned else (x2, t2)
    with torch.inference_mode():
        torch.testing.assert_close(traced(*args), net(*args), atol=1e-5, rtol=1e-5)
    # a whole sampler run through the traced network agrees with the eager one
    sampler = make_sampler(SCORE, "heun", 3)
    shape = (3, 32, 12)
    a = sampler.sample(traced, SDE, shape, condition=c2, generator=torch.Generator().manual_seed(4))
    b = sampler.sample(net, SDE, shape, condition=c2, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_trace_refuses_a_network_it_cannot_reproduce() -> None:
    class Random(nn.Module):
        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return x + torch.rand(()).item()                         # data-dependent Python value: untraceable

    with pytest.raises(RuntimeError, match="disagrees"):
        trace_score_net(Random(), torch.randn(2, 3), torch.rand(2), None)


def test_inference_cache_is_bounded_and_not_copied() -> None:
    cache = InferenceCache(capacity=2)
    built = []
    for key in ("a", "b", "a", "c", "b"):
        cache.get(key, lambda key=key: built.append(key) or key.upper())
    assert built == ["a", "b", "c", "b"] and len(cache) == 2
    assert len(copy.deepcopy(cache)) == 0
    assert check_backend(" Traced ") == "traced"
    with pytest.raises(ValueError, match="unknown inference backend"):
        check_backend("compiled")


def test_cuda_graph_runner_falls_back_to_eager_on_cpu() -> None:
    runner = CudaGraphRunner()
    calls = []
    out = runner.run("k", lambda c: calls.append(1) or c * 2, torch.ones(2))
    assert torch.equal(out, torch.full((2,), 2.0)) and calls == [1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-graph replay needs a CUDA GPU; none is present")
def test_cuda_graph_sampler_replay_matches_eager() -> None:
    device = torch.device("cuda")
    net = _score_net().to(device)
    cond = torch.randn(2, 32, 12, device=device)
    sampler = make_sampler(SCORE, "heun", 4)
    runner = CudaGraphRunner()
    z = torch.randn(2, 32, 12, device=device)

    def fn(c: torch.Tensor) -> torch.Tensor:
        return sampler.sample(net, SDE, tuple(c.shape), condition=c, noise=z)

    first = runner.run("heun4", fn, cond)
    second = runner.run("heun4", fn, cond + 1.0)                    # replay with new inputs
    torch.testing.assert_close(first, fn(cond), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(second, fn(cond + 1.0), atol=1e-4, rtol=1e-4)
    em = make_sampler(SCORE, "euler-maruyama", 10)
    out = runner.run("em10", lambda c: em.sample(net, SDE, tuple(c.shape), condition=c), cond)
    assert out.shape == cond.shape and torch.isfinite(out).all()
