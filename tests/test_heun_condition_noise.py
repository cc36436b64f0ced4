"""The Heun sampler's condition noise, measured against the exact minimiser of IMDer's training loss."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from imer_core.diffusion.samplers import HeunSampler
from imer_core.diffusion.sde import VESDE, denoising_score_matching_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_heun_condition import conditional_score, optimal_score, toy_results  # noqa: E402

SDE = VESDE(25.0)


def test_the_closed_form_minimiser_minimises_the_training_loss() -> None:
    """Shared noise on x and condition: -E[z | x0+σz, c+σz]/σ beats the true conditional score on the loss."""
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(20000, 1, 1, generator=gen)
    x0 = 0.8 * c + 0.3 * torch.randn(c.shape, generator=gen)
    optimum = optimal_score(SDE, 0.8, 0.3)
    losses = {}
    for name, fn in (("optimum", optimum), ("conditional", conditional_score(SDE, 0.8, 0.3))):
        losses[name] = float(denoising_score_matching_loss(fn, x0, SDE, c, generator=torch.Generator().manual_seed(1)))
    assert losses["optimum"] < 0.9 * losses["conditional"]
    # ... and is the least-squares regression of z on (x_σ, c_σ) at a fixed σ.
    z = torch.randn(c.shape, generator=gen)
    t = torch.full((c.shape[0],), 0.6)
    s = SDE.marginal_std(t).view(-1, 1, 1)
    u, v = x0 + s * z, c + s * z
    coef = torch.linalg.lstsq(torch.cat([u, v], dim=1).view(-1, 2), z.view(-1, 1)).solution.view(-1)
    probe = torch.tensor([[[1.0]], [[0.0]]]), torch.tensor([[[0.0]], [[1.0]]])
    expected = -optimum(probe[0], t[:2], probe[1]).view(-1) * s[:2].view(-1)
    torch.testing.assert_close(coef, expected, atol=0.02, rtol=0.02)


def test_condition_noise_variants_on_the_exact_minimiser() -> None:
    """Sharing z_T (the default) gives the smallest error to x0 in two of the three toy cases (documented numbers)."""
    rows = toy_results(n=2000, steps=10)
    by = {(r["case"], r["sampler"]): r["mse_to_x0"] for r in rows}
    cases = sorted({r["case"] for r in rows})
    shared_best = [c for c in cases if by[(c, "heun-shared")] < min(by[(c, "heun-fresh")], by[(c, "heun-none")])]
    assert len(shared_best) == 2 and "a=0.8 b=0.3 μ=2.0" not in shared_best
    for case in cases:                                # the sampler itself is right: the control is consistent
        control = next(r for r in rows if r["case"] == case and r["sampler"].startswith("control"))
        assert control["slope"] == pytest.approx(control["true_slope"], abs=0.08)
        assert control["resid_std"] == pytest.approx(control["true_std"], rel=0.12)


def test_condition_noise_option() -> None:
    def score(x, t, cond):
        seen.append(cond.clone())
        return -x

    cond = torch.ones(2, 1, 3)
    for variant, check in (("none", lambda c: torch.equal(c, cond)),
                           ("shared", lambda c: not torch.equal(c, cond))):
        seen = []
        HeunSampler(2, condition_noise=variant).sample(score, SDE, cond.shape, cond,
                                                       generator=torch.Generator().manual_seed(0))
        assert all(check(c) for c in seen)
    seen = []
    noise = torch.randn(2, 1, 3)
    HeunSampler(2, condition_noise="shared").sample(score, SDE, cond.shape, cond, noise=noise)
    first = seen[0] - cond
    assert torch.allclose(first / first.norm(), noise / noise.norm(), atol=1e-5)     # the sample's own z_T
    seen = []
    HeunSampler(2, condition_noise="fresh").sample(score, SDE, cond.shape, cond, noise=noise,
                                                   generator=torch.Generator().manual_seed(0))
    assert not torch.allclose((seen[0] - cond) / (seen[0] - cond).norm(), noise / noise.norm(), atol=1e-3)
    with pytest.raises(ValueError, match="condition_noise"):
        HeunSampler(2, condition_noise="sometimes")
