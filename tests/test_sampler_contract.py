"""One sampler contract for both diffusion families (imer_core.diffusion.sampling)."""

from __future__ import annotations

import pytest
import torch

from imer_core.diffusion.ddpm import GaussianDiffusion, ReferenceDDIMSampler, ScaledClipSampler
from imer_core.diffusion.samplers import EulerMaruyamaSampler
from imer_core.diffusion.sampling import DDPM, FAMILIES, SCORE, Sampler, available_samplers, make_sampler
from imer_core.diffusion.sde import VESDE

PROCESSES = {SCORE: VESDE(25.0), DDPM: GaussianDiffusion(100)}
SHAPE = (3, 4, 8)


def _net(x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    """A stand-in network of either family: any smooth function of (x, t, condition)."""
    c = 0.0 if condition is None else condition
    return -0.1 * x + 0.05 * c + 0.01 * t.float().view(-1, 1, 1)


def test_both_families_register_their_samplers_in_one_place():
    assert available_samplers(SCORE) == ["distilled", "euler-maruyama", "heun"]
    assert available_samplers(DDPM) == ["ddim", "ddpm"]
    assert all(process.family == family for family, process in PROCESSES.items()) and set(FAMILIES) == set(PROCESSES)
    with pytest.raises(ValueError, match="unknown diffusion family"):
        available_samplers("flow")
    with pytest.raises(ValueError, match="unknown sampler 'ddim'"):
        make_sampler(SCORE, "ddim", 4)
    with pytest.raises(ValueError, match="unknown sampler 'heun'"):
        make_sampler(DDPM, "heun", 4)


@pytest.mark.parametrize("family,name", [(f, n) for f in FAMILIES for n in available_samplers(f)])
def test_every_sampler_takes_the_same_call_and_noise_fixes_its_start(family: str, name: str):
    sampler = make_sampler(family, name, 3)
    assert isinstance(sampler, Sampler) and sampler.family == family and sampler.name == name and sampler.steps == 3
    process, cond = PROCESSES[family], torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    runs = [sampler.sample(_net, process, SHAPE, cond, torch.Generator().manual_seed(2), None, z) for _ in range(2)]
    assert runs[0].shape == SHAPE and torch.isfinite(runs[0]).all()
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)      # noise + seed: reproducible
    other = sampler.sample(_net, process, SHAPE, cond, torch.Generator().manual_seed(2), None, -z)
    assert not torch.equal(runs[0], other)                             # the noise is used


def test_euler_maruyama_noise_is_its_first_draw():
    sde, cond = PROCESSES[SCORE], torch.randn(SHAPE)
    sampler = EulerMaruyamaSampler(4)
    drawn = sampler.sample(_net, sde, SHAPE, cond, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    z = torch.randn(SHAPE, generator=generator)
    given = sampler.sample(_net, sde, SHAPE, cond, generator, noise=z)
    torch.testing.assert_close(given, drawn, rtol=0, atol=0)


def test_rohydrs_wrapped_and_reference_samplers_follow_the_contract():
    inner = make_sampler(DDPM, "ddim", 3)
    for sampler in (ScaledClipSampler(inner, 2.0), ReferenceDDIMSampler(3)):
        assert isinstance(sampler, Sampler) and sampler.family == DDPM and sampler.steps == 3
        out = sampler.sample(_net, PROCESSES[DDPM], SHAPE, None, None, None, torch.randn(SHAPE))
        assert out.shape == SHAPE
