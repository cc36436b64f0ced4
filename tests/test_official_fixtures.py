"""Numeric fixtures produced by running the OFFICIAL IMDer and RoHyDR code (outputs only).

``fixtures/imder_official`` and ``fixtures/rohydr_official`` hold outputs of the
released code (commits in ``meta.json``), run outside this project on seeded
weights (every parameter ``randn(shape, seed=crc32(key)) * 0.2``) and inputs; no
code of the references is in this project.  Here the same weights are loaded into
the project's modules (reference key → project key) and the project must
reproduce the outputs:

* IMDer: the score-matching loss (``loss_fn``) and the Euler–Maruyama sampler,
  which draw their randomness in the same order from the same seed;
* RoHyDR: the DiT (``DiTDiffusionModule``), its release inference loop with
  diffusers' ``DDIMScheduler(num_train_timesteps=50)`` (the shipped default
  ``clip_sample=True``, range 1: the fixtures' ``x̂_0`` exceed it), and single
  ``DDIMScheduler.step`` calls.

The score U-Net, MulT (through the full prediction) and RCAN refiners are covered
by the converter fixture (``test_imder_reference_weights.py``).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from imer_core.diffusion.ddpm import GaussianDiffusion, ReferenceDDIMSampler
from imer_core.diffusion.samplers import EulerMaruyamaSampler
from imer_core.diffusion.sde import VESDE, denoising_score_matching_loss
from imer_core.methods.imder_reference import reference_key_to_project
from imer_core.nn.dit import DiT1d
from imer_core.nn.score_unet import ConditionalScoreUNet1d

FIXTURES = Path(__file__).parent / "fixtures"
IMDER_META = json.loads((FIXTURES / "imder_official" / "meta.json").read_text())
IMDER_OUT = dict(np.load(FIXTURES / "imder_official" / "outputs.npz"))
ROHYDR_META = json.loads((FIXTURES / "rohydr_official" / "meta.json").read_text())
ROHYDR_OUT = dict(np.load(FIXTURES / "rohydr_official" / "outputs.npz"))
SDE = VESDE(25.0)


def _seeded(key: str, shape: list[int]) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(zlib.crc32(key.encode()))) * 0.2


@pytest.fixture(scope="module")
def score_net() -> ConditionalScoreUNet1d:
    net = ConditionalScoreUNet1d(32, (32, 64, 128, 256), 256, marginal_std=SDE.marginal_std).eval()
    prefix = "score_nets.text."
    state = {reference_key_to_project(key)[len(prefix):]: _seeded(key, shape) for key, shape in IMDER_META["keys"]}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("_float_tensor") or "version" in k for k in missing), missing
    return net


def _dit_key(reference: str) -> str:
    key = reference.removeprefix("dit.")
    for old, new in (("x_embedder.0.", "x_embedder."), ("y_embedder.", "cond_embedder."), ("mlp.fc1.", "mlp.0."),
                     ("mlp.fc2.", "mlp.2."), ("unpatchify.0.", "out.")):
        key = key.replace(old, new)
    return key


@pytest.fixture(scope="module")
def dit() -> DiT1d:
    cfg = ROHYDR_META["config"]
    net = DiT1d(cfg["in_channels"], cfg["seq_len"], cfg["hidden_size"], cfg["depth"], cfg["num_heads"],
                cfg["mlp_ratio"], cond_channels=cfg["cond_dim"]).eval()
    net.load_state_dict({_dit_key(k): _seeded(k, shape) for k, shape in ROHYDR_META["keys"]})
    return net


def test_fixtures_record_the_reference_commits() -> None:
    for meta, repo in ((IMDER_META, "mdswyz/IMDer"), (ROHYDR_META, "Siowllience/RoHyDR")):
        assert meta["reference"].endswith(repo) and len(meta["commit"]) == 40


def test_imder_score_matching_loss_matches_the_official_loss_fn(score_net) -> None:
    x, cond = torch.from_numpy(IMDER_OUT["x"]), torch.from_numpy(IMDER_OUT["cond"])
    with torch.no_grad():
        loss = denoising_score_matching_loss(score_net, x, SDE, cond, generator=torch.Generator().manual_seed(7))
        plain = denoising_score_matching_loss(lambda a, t: score_net(a, t, None), x, SDE,
                                              generator=torch.Generator().manual_seed(8))
    assert float(loss) == pytest.approx(float(IMDER_OUT["loss_seed7"]), rel=1e-5)
    assert float(plain) == pytest.approx(float(IMDER_OUT["loss_uncond_seed8"]), rel=1e-5)


@pytest.mark.parametrize("steps", [5, 100])
def test_imder_euler_maruyama_matches_the_official_sampler(score_net, steps) -> None:
    cond = torch.from_numpy(IMDER_OUT["cond"])
    out = EulerMaruyamaSampler(steps).sample(score_net, SDE, cond.shape, cond,
                                             generator=torch.Generator().manual_seed(11))
    np.testing.assert_allclose(out.numpy(), IMDER_OUT[f"em{steps}_seed11"], rtol=1e-4, atol=1e-4)


def test_rohydr_dit_matches_the_official_module(dit) -> None:
    x, cond, t = (torch.from_numpy(ROHYDR_OUT[k]) for k in ("x", "cond", "t"))
    with torch.no_grad():
        np.testing.assert_allclose(dit(x, t, cond).numpy(), ROHYDR_OUT["dit"], rtol=1e-4, atol=1e-5)


def test_rohydr_reference_ddim_loop_matches_the_release_with_its_clip(dit) -> None:
    cond, noise = torch.from_numpy(ROHYDR_OUT["cond"]), torch.from_numpy(ROHYDR_OUT["noise"])
    sampler = ReferenceDDIMSampler(50)                      # the shipped default: clip_denoised=1.0
    with torch.no_grad():
        out = sampler.sample(dit, GaussianDiffusion(1000), noise.shape, cond, noise=noise)
        np.testing.assert_allclose(out.numpy(), ROHYDR_OUT["ddim_sample"], rtol=1e-4, atol=1e-5)
        unclipped = ReferenceDDIMSampler(50, clip_denoised=None).sample(dit, GaussianDiffusion(1000), noise.shape,
                                                                          cond, noise=noise)
    assert np.abs(unclipped.numpy() - ROHYDR_OUT["ddim_sample"]).max() > 1e-2   # the clamp is what matches


@pytest.mark.parametrize("t", [10, 0])
def test_rohydr_reference_ddim_step_matches_diffusers(t) -> None:
    eps, x = torch.from_numpy(ROHYDR_OUT["step_eps"]), torch.from_numpy(ROHYDR_OUT["step_x"])
    out = ReferenceDDIMSampler(50).step(x, eps, t)
    np.testing.assert_allclose(out.numpy(), ROHYDR_OUT[f"ddim_step_t{t}"], rtol=1e-5, atol=1e-6)
