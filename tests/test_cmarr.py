"""Tests of CM-ARR: flows, Wasserstein/contrastive losses and the recovery model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import small_features, small_specs
from scipy.stats import norm

from imer_core import ModelConfig, available_methods, create_model
from imer_core.checkpoint import load_checkpoint, save_checkpoint
from imer_core.config import CLASSIFICATION
from imer_core.methods.base import PRETRAIN, RECOVERY, SamplingOptions
from imer_core.methods.cmarr import CMARR, CMARROptions
from imer_core.modalities import AVAILABLE_SUBSETS, FeatureSpecs, full_mask, mask_from_available
from imer_core.nn.contrastive import (
    gaussian_w2_squared,
    kl_standard_normal,
    pairwise_w2_squared,
    product_of_experts,
    supervised_contrastive_loss,
    wasserstein_info_nce,
)
from imer_core.nn.flows import AffineCoupling, ConditionalGaussianFlow, RealNVP, coupling_masks
from imer_core.registry import default_options

SMALL = {"latent_dim": 8, "encoder_hidden": 16, "encoder_heads": 2, "flow_layers": 4, "flow_hidden": 16,
         "refiner_hidden": 16, "supcon_dim": 8, "fusion_heads": 2, "head_hidden": 16}
NAMES = ("text", "audio", "vision")



def make(task: str = "regression", **options) -> CMARR:
    torch.manual_seed(0)
    labels = ("neu", "hap", "sad", "ang") if task == CLASSIFICATION else ("sentiment",)
    config = ModelConfig("cmarr", small_specs(), task=task, labels=labels, method_options={**SMALL, **options})
    return create_model(config)


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Coupling nets are zero-initialised (identity); give them random weights for the checks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.4)


# ----------------------------------------------------------------------- flows
def test_coupling_masks_alternate() -> None:
    masks = coupling_masks(6, 4)
    assert masks[0].tolist() == [1, 0, 1, 0, 1, 0] and masks[1].tolist() == [0, 1, 0, 1, 0, 1]
    assert masks[2].tolist() == [1, 1, 1, 0, 0, 0] and masks[3].tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError):
        coupling_masks(1, 2)


@pytest.mark.parametrize("cond_dim", [0, 3])
def test_flows_invertible_with_exact_logdet(cond_dim: int) -> None:
    dim = 6
    torch.manual_seed(1)
    cond = torch.randn(5, cond_dim, dtype=torch.float64) if cond_dim else None
    layers = [AffineCoupling(dim, coupling_masks(dim, 1)[0], 8, cond_dim), RealNVP(dim, 5, 8, cond_dim)]
    for flow in layers:
        flow.double()
        randomize(flow)
        x = torch.randn(5, dim, dtype=torch.float64)
        z, logdet = flow(x, cond)
        back, inv_logdet = flow.inverse(z, cond)
        assert (back - x).abs().max() < 1e-4 and not torch.allclose(z, x)
        torch.testing.assert_close(inv_logdet, -logdet)
        for i in range(x.shape[0]):
            c = None if cond is None else cond[i:i + 1]
            def one(v, c=c, flow=flow):
                return flow(v.unsqueeze(0), c)[0].squeeze(0)
            jac = torch.autograd.functional.jacobian(one, x[i])
            torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jac)[1], atol=1e-8, rtol=1e-8)


def test_conditional_gaussian_flow_log_prob_and_generate() -> None:
    torch.manual_seed(2)
    flow = ConditionalGaussianFlow(6, 4, layers=4, hidden=8).double()
    randomize(flow, 3)
    mu, sigma = torch.randn(3, 6, dtype=torch.float64), torch.rand(3, 6, dtype=torch.float64) + 0.5
    ctx = torch.randn(3, 4, dtype=torch.float64)
    x = flow.generate(mu, sigma, ctx)
    z, logdet = flow.flow(x, ctx)
    torch.testing.assert_close(z, mu)                                       # generate = f^-1(μ_c)
    base = torch.distributions.Normal(mu, sigma).log_prob(z).sum(-1)
    torch.testing.assert_close(flow.log_prob(x, mu, sigma, ctx), base + logdet)
    # Density of x integrates the Jacobian: compare with an autograd log|det| for one row.
    jac = torch.autograd.functional.jacobian(lambda v: flow.flow(v.unsqueeze(0), ctx[:1])[0].squeeze(0), x[0])
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jac)[1])
    noise = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(flow.flow(flow.generate(mu, sigma, ctx, noise), ctx)[0], mu + sigma * noise)


# ------------------------------------------------------------ W2 and contrastive
def test_w2_closed_form_matches_quantile_integral_1d() -> None:
    u = (np.arange(200_000) + 0.5) / 200_000                                  # midpoint rule on (0, 1)
    for m1, s1, m2, s2 in [(0.0, 1.0, 1.5, 0.5), (-2.0, 0.3, 0.7, 2.0), (1.0, 1.0, 1.0, 1.0)]:
        numeric = np.mean((norm.ppf(u, m1, s1) - norm.ppf(u, m2, s2)) ** 2)
        closed = gaussian_w2_squared(*(torch.tensor([v], dtype=torch.float64) for v in (m1, s1, m2, s2)))
        assert abs(float(closed) - numeric) < 2e-3 * max(1.0, numeric)


def test_w2_closed_form_matches_sorted_samples_several_dims() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, -0.5, 2.0])
    s1, s2 = np.array([1.0, 0.5, 2.0]), np.array([0.2, 1.5, 1.0])
    n = 400_000
    # Independent dims: the optimal coupling of product measures is the product of 1-D monotone couplings.
    a = np.sort(mu1 + s1 * rng.standard_normal((n, 3)), axis=0)
    b = np.sort(mu2 + s2 * rng.standard_normal((n, 3)), axis=0)
    numeric = float(np.mean(np.sum((a - b) ** 2, axis=1)))
    closed = float(gaussian_w2_squared(*(torch.tensor(v) for v in (mu1, s1, mu2, s2))))
    assert abs(closed - numeric) < 0.02 * closed
    # Pairwise matrix agrees with the element-wise form.
    ma, sa, mb, sb = torch.randn(4, 5), torch.rand(4, 5), torch.randn(3, 5), torch.rand(3, 5)
    pair = pairwise_w2_squared(ma, sa, mb, sb)
    for i in range(4):
        for j in range(3):
            torch.testing.assert_close(pair[i, j], gaussian_w2_squared(ma[i], sa[i], mb[j], sb[j]))


def test_wasserstein_info_nce_by_hand_and_alignment_lowers_it() -> None:
    torch.manual_seed(0)
    ma, sa, mb, sb = torch.randn(4, 3), torch.rand(4, 3) + 0.1, torch.randn(4, 3), torch.rand(4, 3) + 0.1
    tau = 0.5
    total = 0.0
    for i in range(4):
        row = [-gaussian_w2_squared(ma[i], sa[i], mb[j], sb[j]) / 3 / tau for j in range(4)]
        col = [-gaussian_w2_squared(ma[j], sa[j], mb[i], sb[i]) / 3 / tau for j in range(4)]
        total += -(row[i] - torch.logsumexp(torch.stack(row), 0)) - (col[i] - torch.logsumexp(torch.stack(col), 0))
    torch.testing.assert_close(wasserstein_info_nce(ma, sa, mb, sb, tau), total / 8)
    aligned = wasserstein_info_nce(ma, sa, ma + 0.01, sa, tau)
    assert aligned < wasserstein_info_nce(ma, sa, mb, sb, tau)


def test_supcon_matches_loop_and_prefers_clusters() -> None:
    z = torch.tensor([[1.0, 0.2], [0.9, -0.1], [-0.3, 1.0], [0.1, -1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    tau = 0.5
    zn = z / z.norm(dim=1, keepdim=True)
    losses = []
    for i in range(4):                                            # Khosla et al. 2020, eq. 2, by hand
        denom = sum(math.exp(float(zn[i] @ zn[a]) / tau) for a in range(4) if a != i)
        pos = [p for p in range(4) if p != i and labels[p] == labels[i]]
        losses.append(-sum(float(zn[i] @ zn[p]) / tau - math.log(denom) for p in pos) / len(pos))
    assert abs(float(supervised_contrastive_loss(z, labels, tau)) - sum(losses) / 4) < 1e-5
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g)
    y = torch.arange(3).repeat_interleave(6)
    clustered = centres[y] + 0.05 * torch.randn(18, 8, generator=g)
    shuffled = clustered[torch.randperm(18, generator=g)]
    assert supervised_contrastive_loss(clustered, y, 0.1) < supervised_contrastive_loss(shuffled, y, 0.1)
    assert float(supervised_contrastive_loss(z, torch.arange(4))) == 0.0      # no positives at all


def test_product_of_experts_and_kl() -> None:
    mu = torch.tensor([[[1.0], [3.0]], [[1.0], [3.0]], [[1.0], [3.0]]])
    sigma = torch.tensor([[[1.0], [2.0]]] * 3)
    m, s = product_of_experts(mu, sigma, torch.tensor([[True, True], [False, True], [False, False]]))
    torch.testing.assert_close(s[0], torch.tensor([(1 / (1 + 0.25)) ** 0.5]))
    torch.testing.assert_close(m[0], torch.tensor([(1 + 3 * 0.25) / 1.25]))
    torch.testing.assert_close((m[1], s[1]), (torch.tensor([3.0]), torch.tensor([2.0])))
    torch.testing.assert_close((m[2], s[2]), (torch.tensor([0.0]), torch.tensor([1.0])))   # empty → N(0, I)
    p = torch.distributions.Normal(torch.tensor([0.5, -1.0]), torch.tensor([0.7, 1.3]))
    expected = torch.distributions.kl_divergence(p, torch.distributions.Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(kl_standard_normal(p.loc, p.scale), expected)


# ----------------------------------------------------------------------- model
def test_registry_and_options() -> None:
    assert "cmarr" in available_methods()
    assert default_options("cmarr")["sampler"] == "mean"
    with pytest.raises(ValueError, match="unknown CMARROptions"):
        make(not_an_option=1)
    with pytest.raises(ValueError):
        CMARROptions(sampler="ddim")


def test_recover_shapes_every_pattern_and_mixed_masks() -> None:
    net = make().eval()
    feats = small_features(4)
    proj = net.project(feats)
    assert {k: tuple(v.shape) for k, v in proj.items()} == {n: (4, 8, 1) for n in NAMES}
    for available in AVAILABLE_SUBSETS:
        out = net.recover(feats, mask_from_available(available, 4))
        assert {k: tuple(v.shape) for k, v in out.items()} == {n: (4, 8, 1) for n in NAMES}
        for modality in available:
            torch.testing.assert_close(out[modality.value], proj[modality.value])
        assert net.predict(feats, mask_from_available(available, 4)).shape == (4, 1)
    mixed = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1]], dtype=torch.bool)
    pred = net.predict(feats, mixed)
    torch.testing.assert_close(pred[2], net.predict(feats, full_mask(4))[2])
    for i in range(4):                                               # rows are recovered independently
        torch.testing.assert_close(pred[i], net.predict({k: v[i:i + 1] for k, v in feats.items()}, mixed[i:i + 1])[0])
    seeded = SamplingOptions(sampler="sample", seed=3)
    sampled = net.predict(feats, mixed, seeded)
    torch.testing.assert_close(sampled, net.predict(feats, mixed, seeded))
    assert not torch.allclose(sampled[[0, 1, 3]], pred[[0, 1, 3]])
    torch.testing.assert_close(sampled[2], pred[2])
    with pytest.raises(ValueError):
        net.predict(feats, mixed, SamplingOptions(sampler="heun"))
    with pytest.raises(ValueError):
        net.predict(feats, torch.zeros(4, 3, dtype=torch.bool))


def test_missing_modality_cannot_affect_prediction() -> None:
    net = make().eval()
    feats = small_features(3)
    for available in (["text"], ["audio", "vision"], ["text", "vision"], ["vision"]):
        mask = mask_from_available(available, 3)
        changed = {k: (v if k in available else torch.randn_like(v) * 10) for k, v in feats.items()}
        for sampling in (None, SamplingOptions(sampler="sample", seed=0)):
            torch.testing.assert_close(net.predict(feats, mask, sampling), net.predict(changed, mask, sampling))


@pytest.mark.parametrize("task", ["regression", CLASSIFICATION])
def test_training_losses_both_stages(task: str) -> None:
    net = make(task).train()
    feats = small_features(6, seed=1)
    if task == "regression":
        labels = torch.tensor([-1.2, 0.0, 2.0, 0.4, -0.3, 1.1])
    else:
        labels = torch.tensor([0, 1, 2, 3, 0, 1])
    net.prepare_stage(PRETRAIN)
    out = net.training_losses(feats, labels, mask_from_available(["text"], 6))   # pretrain ignores the mask
    assert set(out.parts) == {"task", "supcon", "alignment", "prior", "flow_nll", "reconstruction", "total"}
    assert all(torch.isfinite(v) for v in out.parts.values())
    assert out.prediction.shape == (6, net.config.output_dim)
    out.total.backward()
    assert net.encoders["audio"].conv.weight.grad is not None
    assert net.flows["vision"].flow.couplings[0].net[-1].weight.grad is not None

    net.prepare_stage(RECOVERY)
    net.zero_grad(set_to_none=True)
    assert not net.encoders.training and net.training
    mask = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [1, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=torch.bool)
    out = net.training_losses(feats, labels, mask)
    assert set(out.parts) == {"task", "supcon", "flow_nll", "reconstruction", "total"}
    assert all(torch.isfinite(v) for v in out.parts.values())
    o = net.options
    expected = (out.parts["task"] + o.supcon_weight * out.parts["supcon"] + o.flow_nll_weight * out.parts["flow_nll"]
                + o.reconstruction_weight * out.parts["reconstruction"])
    torch.testing.assert_close(out.total, expected)
    out.total.backward()
    assert all(p.grad is None and not p.requires_grad for p in net.encoders.parameters())
    for name in NAMES:
        assert net.flows[name].flow.couplings[-1].net[-1].weight.grad is not None
    assert net.fusion.head[0].weight.grad is not None and net.supcon_head[0].weight.grad is not None
    full = net.training_losses(feats, labels, full_mask(6))
    assert set(full.parts) == {"task", "supcon", "total"}


def test_regression_supcon_labels_binned_by_sign() -> None:
    net = make(regression_neutral_band=0.5)
    bins = net._contrastive_labels(torch.tensor([-2.0, -0.5, 0.0, 0.3, 0.6, 3.0]))
    assert bins.tolist() == [0, 1, 1, 1, 2, 2]


def test_recovery_training_reduces_reconstruction_error() -> None:
    net = make(dropout=0.0).train()
    net.prepare_stage(RECOVERY)
    feats, labels = small_features(16, seed=2), torch.randn(16)
    mask = mask_from_available(["text", "audio"], 16)
    opt = net.configure_optimizers(3e-3)
    first = net.training_losses(feats, labels, mask).parts["reconstruction"].item()
    for _ in range(40):
        out = net.train_step(feats, labels, mask, opt)
    assert out.parts["reconstruction"].item() < 0.5 * first
    net.eval()
    rec, truth = net.recover(feats, mask)["vision"], net.project(feats)["vision"]
    assert float(((rec - truth) ** 2).mean()) < first


def test_checkpoint_round_trip(tmp_path) -> None:
    net = make(CLASSIFICATION).eval()
    feats, mask = small_features(3), mask_from_available(["audio"], 3)
    path = save_checkpoint(net, tmp_path / "cmarr.pt", {"note": "test"})
    loaded = load_checkpoint(path, expected_method="cmarr")
    assert isinstance(loaded, CMARR) and loaded.options == net.options
    torch.testing.assert_close(loaded.predict(feats, mask), net.predict(feats, mask))
    sampling = SamplingOptions(sampler="sample", seed=1)
    torch.testing.assert_close(loaded.predict(feats, mask, sampling), net.predict(feats, mask, sampling))


def test_parameter_counts_on_mosi_dims() -> None:
    torch.manual_seed(0)
    net = create_model(ModelConfig("cmarr", FeatureSpecs.from_dims((768, 5, 20), 50)))
    count = net.parameter_count
    assert {m: count(net.encoders[m]) for m in NAMES} == {"text": 444_288, "audio": 151_296, "vision": 157_056}
    assert all(count(net.flows[m]) == 348_672 for m in NAMES)
    assert count(net.refiners) == 50_112 and count(net.supcon_head) == 8_320 and count(net.fusion) == 75_713
    assert net.parameter_count() == 1_932_801


def test_flow_ablation_recovers_the_product_of_experts_mean_and_trains() -> None:
    """``flow_layers = 0`` (the ablation of the flow): a missing modality is the PoE mean of the available ones."""
    net = make(flow_layers=0).eval()
    assert not list(net.flows.parameters())
    feats, mask = small_features(4), mask_from_available(["text", "audio"], 4)
    with torch.no_grad():
        recovered = net.recover(feats, mask)
        mu, sigma = net._encode(feats)
        expected, _ = product_of_experts(mu, sigma, mask)
    torch.testing.assert_close(recovered["vision"].squeeze(-1), expected)
    net.train()
    for stage in (PRETRAIN, RECOVERY):
        net.prepare_stage(stage)
        out = net.training_losses(feats, torch.randn(4), mask)
        assert bool(torch.isfinite(out.total)) and out.total.requires_grad
    with pytest.raises(ValueError, match="flow_layers >= 0"):
        make(flow_layers=-1)
