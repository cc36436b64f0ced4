"""Tests of RoHyDR: DiT size, DDPM schedule and samplers, shapes, masking, the three-stage step, checkpoints."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import small_features, small_specs

from imer_core import ModelConfig
from imer_core.checkpoint import load_checkpoint, save_checkpoint
from imer_core.config import CLASSIFICATION, LIVE_EMOTIONS
from imer_core.diffusion.ddpm import AncestralSampler, DDIMSampler, GaussianDiffusion
from imer_core.diffusion.sampling import DDPM, make_sampler
from imer_core.methods.base import PRETRAIN, RECOVERY, SamplingOptions
from imer_core.methods.rohydr import AVAILABLE_KEY, MOSEI_OPTIONS, RoHyDR, RoHyDROptions
from imer_core.modalities import AVAILABLE_SUBSETS, MODALITIES, mask_from_available
from imer_core.nn.dit import DiT1d
from imer_core.nn.fusion_recovery import FusionDiscriminator, FusionReconstructor
from imer_core.registry import available_methods, create_model, default_options

FAST = {"train_sampler_steps": 2, "sampler_steps": 3, "refiner_blocks": 2}
SEEDED = SamplingOptions(seed=0)
MIXED = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=torch.bool)



def make(task: str = "regression", **options) -> RoHyDR:
    torch.manual_seed(0)
    labels = LIVE_EMOTIONS if task == CLASSIFICATION else ("sentiment",)
    config = ModelConfig("rohydr", small_specs(), task=task, labels=labels, method_options={**FAST, **options})
    return create_model(config)


@pytest.fixture(scope="module")
def model() -> RoHyDR:
    return make().eval()


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_at_reference_size() -> None:
    dit = DiT1d(32, 48, hidden_size=64, depth=6, num_heads=16, mlp_ratio=4.0)
    assert count(dit) == 490_592 and round(count(dit) / 1e6, 2) == 0.49
    assert count(FusionReconstructor(192, (80, 96))) == 42_032
    assert count(FusionDiscriminator(192, (128, 64))) == 33_409
    out = dit(torch.randn(2, 32, 48), torch.tensor([0, 999]), torch.randn(2, 32, 48))
    assert out.shape == (2, 32, 48)


def test_linear_beta_schedule() -> None:
    process = GaussianDiffusion()
    assert process.num_steps == 1000
    assert float(process.betas[0]) == pytest.approx(1e-4) and float(process.betas[-1]) == pytest.approx(0.02)
    a = process.alphas_cumprod
    assert bool((a[1:] < a[:-1]).all()) and 0 < float(a[-1]) < 1e-4
    assert float(process.alpha_bar(torch.tensor(-1))) == 1.0
    assert process.respaced_steps(1000) == list(range(999, -1, -1))
    steps = process.respaced_steps(50)
    assert steps[0] == 999 and steps[-1] == 19 and all(x > y for x, y in zip(steps, steps[1:]))
    with pytest.raises(ValueError):
        process.respaced_steps(1001)


def _eps_fn(x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    return 0.3 * x + 1e-3 * t.to(x.dtype).view(-1, 1, 1) - 0.1


def test_ddim_with_all_steps_follows_the_deterministic_recursion() -> None:
    process = GaussianDiffusion()
    noise = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampled = DDIMSampler(steps=1000).sample(_eps_fn, process, noise.shape, noise=noise)
    x, abar = noise.clone(), process.alphas_cumprod
    for t in range(999, -1, -1):                     # DDIM eq. 12 with σ = 0, written out independently
        a, a_prev = float(abar[t]), float(abar[t - 1]) if t > 0 else 1.0
        eps = _eps_fn(x, torch.full((4,), t), None)
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    assert torch.allclose(sampled, x, rtol=1e-9, atol=1e-9)


def test_few_step_samplers_are_seeded_and_ddpm_is_ddim_with_eta_one() -> None:
    process, shape = GaussianDiffusion(), (3, 2, 5)
    runs = [DDIMSampler(steps=7).sample(_eps_fn, process, shape, generator=torch.Generator().manual_seed(1))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other = DDIMSampler(steps=7).sample(_eps_fn, process, shape, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(runs[0], other)
    ancestral = AncestralSampler(steps=7).sample(_eps_fn, process, shape, generator=torch.Generator().manual_seed(3))
    eta_one = DDIMSampler(steps=7, eta=1.0).sample(_eps_fn, process, shape, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(ancestral, eta_one, atol=1e-5)
    assert isinstance(make_sampler(DDPM, "DDPM", 4), AncestralSampler) and make_sampler(DDPM, "ddim", 4).steps == 4
    with pytest.raises(ValueError):
        make_sampler(DDPM, "heun", 4)


@pytest.mark.parametrize("sampler", [DDIMSampler(steps=250), AncestralSampler(steps=1000)])
def test_samplers_with_exact_eps_reproduce_a_gaussian(sampler) -> None:
    mu, s = 1.5, 0.5
    process = GaussianDiffusion()

    def exact_eps(x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        a = process.alpha_bar(t).view(-1, 1, 1)      # ε*(x_t) = E[ε | x_t] for x_0 ~ N(μ, s²)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s ** 2 + 1 - a)

    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 1, 40_000, generator=gen, dtype=torch.float64)
    x = sampler.sample(exact_eps, process, noise.shape, noise=noise, generator=gen)
    assert float(x.mean()) == pytest.approx(mu, abs=0.02)
    assert float(x.std()) == pytest.approx(s, rel=0.02)


def test_recover_and_predict_shapes_for_every_pattern(model: RoHyDR) -> None:
    feats = small_features(3)
    proj = model.project(feats)
    for available in AVAILABLE_SUBSETS:
        mask = mask_from_available(available, 3)
        rec = model.recover(feats, mask, SEEDED)
        assert torch.equal(rec[AVAILABLE_KEY], mask)
        for m in MODALITIES:
            assert rec[m.value].shape == (3, 32, 24) and bool(torch.isfinite(rec[m.value]).all())
            if m in available:
                assert torch.allclose(rec[m.value], proj[m.value])
        pred = model.predict(feats, mask, SEEDED)
        assert pred.shape == (3, 1) and bool(torch.isfinite(pred).all())
    feats = small_features(5)
    rec = model.recover(feats, MIXED, SEEDED)
    proj = model.project(feats)
    for i, m in enumerate(MODALITIES):
        assert torch.allclose(rec[m.value][MIXED[:, i]], proj[m.value][MIXED[:, i]])
    assert model.predict_from_recovered(rec).shape == (5, 1)


def test_missing_features_cannot_leak(model: RoHyDR) -> None:
    feats = small_features(5)
    junk = {k: torch.where(MIXED[:, i].view(-1, 1, 1), v, 100 * torch.randn_like(v))
            for i, (k, v) in enumerate(feats.items())}
    for sampler in ("ddim", "ddpm"):
        options = SamplingOptions(sampler=sampler, steps=4, seed=5)
        assert torch.equal(model.predict(feats, MIXED, options), model.predict(junk, MIXED, options))


def test_training_losses_have_named_terms() -> None:
    net = make().train()
    net.prepare_stage(RECOVERY)
    out = net.training_losses(small_features(5), torch.randn(5, 1), MIXED)
    for name in ("diffusion_text", "diffusion_audio", "diffusion_vision", "reconstruction", "unimodal",
                 "task_gt", "task_lm", "task", "total"):
        assert bool(torch.isfinite(out.parts[name]))
    assert torch.allclose(out.total, out.parts["unimodal"] + out.parts["task"])
    out.total.backward()
    assert net.dits["text"].x_embedder.weight.grad is not None


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(module.parameters(), before))


def test_train_step_runs_three_stages_and_d_has_its_own_optimizer() -> None:
    net = make().train()
    net.prepare_stage(RECOVERY)
    optimizers = net.configure_optimizers(1e-3, weight_decay=1e-4)
    main_ids = {id(p) for g in optimizers["main"].param_groups for p in g["params"]}
    assert not main_ids & {id(p) for p in net.discriminator.parameters()}
    assert not main_ids & {id(p) for p in net.fusion.proj_l.parameters()}
    assert {id(p) for g in optimizers["discriminator"].param_groups for p in g["params"]} == {
        id(p) for p in net.discriminator.parameters()}
    frozen_copy = copy.deepcopy(net)
    before = {name: _snapshot(getattr(net, name)) for name in ("discriminator", "reconstructor", "dits")}
    proj_before = _snapshot(net.fusion.proj_l)
    out = net.train_step(small_features(5), torch.randn(5, 1), MIXED, optimizers, grad_clip=0.6)
    for name in ("unimodal", "discriminator", "adversarial", "fusion_l1", "task", "total"):
        assert bool(torch.isfinite(out.parts[name])), name
    assert out.prediction.shape == (5, 1)
    assert all(_changed(getattr(net, name), snap) for name, snap in before.items())
    assert not _changed(net.fusion.proj_l, proj_before)
    # With D's own optimizer at lr 0, D must not move: the main optimizer never touches it.
    frozen_opts = frozen_copy.configure_optimizers(1e-3)
    frozen_opts["discriminator"] = torch.optim.Adam(frozen_copy.discriminator.parameters(), lr=0.0)
    d_before = _snapshot(frozen_copy.discriminator)
    frozen_copy.train_step(small_features(5), torch.randn(5, 1), MIXED, frozen_opts, grad_clip=0.6)
    assert not _changed(frozen_copy.discriminator, d_before)


def test_train_step_edge_cases_and_pretrain() -> None:
    net = make().train()
    net.prepare_stage(RECOVERY)
    optimizers = net.configure_optimizers(1e-3)
    lone = torch.tensor([[1, 0, 1], [1, 1, 1], [1, 1, 1]], dtype=torch.bool)
    d_before = _snapshot(net.discriminator)
    out = net.train_step(small_features(3), torch.randn(3, 1), lone, optimizers)
    assert "discriminator" not in out.parts and bool(torch.isfinite(out.total))
    assert not _changed(net.discriminator, d_before)                 # stage 2 needs >= 2 missing rows
    out = net.train_step(small_features(3), torch.randn(3, 1), torch.ones(3, 3, dtype=torch.bool), optimizers)
    assert set(out.parts) == {"task_gt", "task_lm", "task", "total"}
    net.prepare_stage(PRETRAIN)
    assert all(p.requires_grad for p in net.fusion.proj_l.parameters())
    optimizers = net.configure_optimizers(1e-3)
    proj_before = _snapshot(net.fusion.proj_l)
    out = net.train_step(small_features(3), torch.randn(3, 1), lone, optimizers)
    assert bool(torch.isfinite(out.total)) and _changed(net.fusion.proj_l, proj_before)


def test_classification_outputs_logits() -> None:
    net = make(CLASSIFICATION).train()
    net.prepare_stage(RECOVERY)
    out = net.training_losses(small_features(5), torch.tensor([0, 3, 6, 1, 2]), MIXED)
    assert bool(torch.isfinite(out.total)) and out.prediction.shape == (5, len(LIVE_EMOTIONS))
    assert net.eval().predict(small_features(5), MIXED, SEEDED).shape == (5, len(LIVE_EMOTIONS))


def test_options_and_registry() -> None:
    assert "rohydr" in available_methods()
    defaults = default_options("rohydr")
    assert defaults["diffusion_steps"] == 1000 and defaults["sampler"] == "ddim"
    assert (defaults["lambda_g"], defaults["lambda_al"], defaults["lambda_c"]) == (1.0, 0.5, 0.4)
    assert RoHyDROptions(**MOSEI_OPTIONS).discriminator_hidden == (80, 32)
    assert RoHyDROptions(reconstructor_hidden=[10, 20]).reconstructor_hidden == (10, 20)
    with pytest.raises(ValueError, match="unknown RoHyDROptions"):
        make(not_an_option=1)
    for bad in ({"sampler": "heun"}, {"sampler_steps": 1001}, {"lambda_c": 1.5}):
        with pytest.raises(ValueError):
            RoHyDROptions(**bad)


def test_checkpoint_round_trip_reproduces_predictions(model: RoHyDR, tmp_path) -> None:
    path = save_checkpoint(model, tmp_path / "rohydr.pt", {"note": "test"})
    loaded = load_checkpoint(path, expected_method="rohydr")
    assert isinstance(loaded, RoHyDR) and loaded.options == model.options
    feats = small_features(5)
    options = SamplingOptions(steps=3, seed=11)
    assert torch.equal(loaded.predict(feats, MIXED, options), model.predict(feats, MIXED, options))
