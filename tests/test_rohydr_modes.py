"""RoHyDR's reference mode (the release's numerics) and improved mode (consistent schedule, scale-aware clamp)."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import small_features
from test_rohydr import MIXED, _changed, _snapshot, make

from imer_core.diffusion.ddpm import GaussianDiffusion, ReferenceDDIMSampler, ScaledClipSampler
from imer_core.methods.base import RECOVERY
from training.compare import run_compare
from training.distributed import DistContext
from training.experiment import load_experiment
from training.runner import build_model, load_data


def test_reference_ddim_follows_the_diffusers_loop_by_hand() -> None:
    queried = []

    def eps_fn(x, t, condition):
        queried.append(int(t[0]))
        return 0.5 * x

    steps = 3
    sampler = ReferenceDDIMSampler(steps, clip_denoised=1.0)
    x = torch.tensor([[[3.0, -0.2]]])
    out = sampler.sample(eps_fn, GaussianDiffusion(1000), x.shape, noise=x.clone())
    assert queried == [2, 1, 0]                                       # t of the 1000-step schedule the DiT learnt
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, steps, dtype=torch.float64), 0)
    expected = x.double()
    for t in (2, 1, 0):
        a, a_prev = float(alpha_bar[t]), float(alpha_bar[t - 1]) if t else 1.0
        eps = 0.5 * expected
        x0 = ((expected - (1 - a) ** 0.5 * eps) / a ** 0.5).clamp(-1, 1)   # ε not recomputed
        expected = a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
    torch.testing.assert_close(out.double(), expected)
    with pytest.raises(ValueError, match="exceeds"):
        ReferenceDDIMSampler(20).sample(eps_fn, GaussianDiffusion(10), x.shape, noise=x)


def test_reference_mode_puts_d_in_the_main_optimizer_and_uses_the_release_sampler() -> None:
    net = make(mode="reference").train()
    net.prepare_stage(RECOVERY)
    optimizers = net.configure_optimizers(1e-3)
    main_ids = {id(p) for g in optimizers["main"].param_groups for p in g["params"]}
    assert {id(p) for p in net.discriminator.parameters()} <= main_ids
    assert isinstance(net._make_sampler("ddim", 3), ReferenceDDIMSampler)
    with pytest.raises(ValueError, match="release's DDIM loop only"):
        net._make_sampler("ddpm", 3)
    # D's own Adam at lr 0: D still moves, through the main optimizer (as in the release).
    optimizers["discriminator"] = torch.optim.Adam(net.discriminator.parameters(), lr=0.0)
    before = _snapshot(net.discriminator)
    out = net.train_step(small_features(5), torch.randn(5, 1), MIXED, optimizers, grad_clip=0.6)
    assert bool(torch.isfinite(out.total)) and _changed(net.discriminator, before)


def test_improved_mode_clamps_at_a_multiple_of_the_running_target_rms(tmp_path) -> None:
    net = make(clip_rms_multiple=3.0).train()
    net.prepare_stage(RECOVERY)
    feats = {k: 7.0 * v for k, v in small_features(5).items()}        # RMS far from 1
    assert float(net.target_rms) == 1.0
    net.train_step(feats, torch.randn(5, 1), MIXED, net.configure_optimizers(1e-3))
    truth = net.project(feats)
    rms = float(torch.sqrt(torch.mean(torch.cat([truth[m][~MIXED[:, i]].reshape(-1)
                                                 for i, m in enumerate(("text", "audio", "vision"))]) ** 2)))
    assert float(net.target_rms) == pytest.approx(rms, rel=1e-5)
    sampler = net._make_sampler("ddim", 3)
    assert isinstance(sampler, ScaledClipSampler) and sampler.clip == pytest.approx(3.0 * rms, rel=1e-5)
    assert sampler.inner.clip_denoised is None                        # restored after each call
    state = {k: v for k, v in net.state_dict().items() if k != "target_rms"}   # a checkpoint from before
    fresh = make()
    fresh.load_state_dict(state)
    assert float(fresh.target_rms) == 1.0
    assert make(clip_rms_multiple=0)._make_sampler("ddim", 3).clip_denoised is None
    with pytest.raises(ValueError, match="mode must be"):
        make(mode="faithful")


def test_reference_mode_transformers_have_no_position_embeddings() -> None:
    """The release builds its MulT encoders with ``position_embedding=False``: order-equivariant queries."""
    from imer_core.nn.transformer import TransformerEncoder

    encoders = lambda net: [m for m in net.fusion.modules() if isinstance(m, TransformerEncoder)]  # noqa: E731
    assert all(not e.positions for e in encoders(make(mode="reference")))
    assert all(e.positions for e in encoders(make(mode="improved")))
    torch.manual_seed(0)
    x, context, order = torch.randn(2, 6, 8), torch.randn(2, 5, 8), torch.tensor([3, 0, 5, 1, 4, 2])
    plain = TransformerEncoder(8, 2, 2, positions=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x[:, order], context), plain(x, context)[:, order])
        positional = TransformerEncoder(8, 2, 2).eval()
        positional.load_state_dict(plain.state_dict())
        assert not torch.allclose(positional(x[:, order], context), positional(x, context)[:, order], atol=1e-3)


@pytest.mark.parametrize("mode", ["reference", "improved"])
def test_text_dropout_is_drawn_once_per_batch(mode: str) -> None:
    """Condition and target share one text projection (one dropout draw), as the release's forward."""
    net = make(mode=mode).train()
    net.prepare_stage(RECOVERY)
    calls = []
    project = net.fusion.project
    net.fusion.project = lambda feats: calls.append(1) or project(feats)  # type: ignore[method-assign]
    net.forward(small_features(5), torch.randn(5, 1), MIXED, phase="unimodal")
    assert len(calls) == 1
    truth = {k: torch.randn(5, 4, 3) for k in ("text", "audio", "vision")}
    masked = net._masked_projections(truth, MIXED)
    assert torch.equal(masked["text"][0], truth["text"][0]) and not masked["audio"][0].any()


def test_compare_runs_the_reference_mode_config_beside_the_default_mode(tmp_path) -> None:
    """``--set`` of compare applies to every config, so the reference mode has its own shipped config."""
    from test_cv_compare import MMSA_TINY, TINY, TRAIN

    sets = ["data.synthetic=true", 'data.synthetic_kind="linear-gaussian"', *MMSA_TINY, *TRAIN, *TINY["rohydr"]]
    names = ("quick_compare_rohydr", "quick_compare_rohydr_reference")
    experiments = [load_experiment(name, sets) for name in names]
    assert [e.method_options.get("mode", "improved") for e in experiments] == ["improved", "reference"]
    result = run_compare(experiments, tmp_path / "cmp", DistContext(), "batch", [0.5], [1], progress=False,
                         latency_runs=1, fast_steps=2)
    assert [s.experiment.name for s in result.methods] == list(names)
    data = load_data(experiments[1], tmp_path / "data")
    model = build_model(experiments[1], data.specs, data.labels)
    assert model.options.mode == "reference" and isinstance(model._make_sampler("ddim", 2), ReferenceDDIMSampler)
    rows = list(csv.DictReader(result.csv_path.open()))
    assert [r["config"] for r in rows] == list(names)
    assert all(float(r["bayes_recovery_mse_mean"]) > 0 for r in rows)
    optimum = result.markdown_path.read_text().split("## Distance to the Bayes optimum")[1]
    assert all(f"| RoHyDR | {name} | 0.50 |" in optimum for name in names)   # the two rows tell the modes apart
