"""Fusion on top of the product of per-modality experts: exact on a synthetic task where the experts are exact."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from imer_core.nn.expert_fusion import ExpertProductFusion, ModalityExpert, fit_residual, random_masks

NAMES, DIM, STEPS, CLASSES = ("text", "audio", "vision"), 3, 5, 4


class ExactGaussianExpert(nn.Module):
    """The exact posterior of one modality: steps i.i.d. N(mu_y, I), class prior ``prior``."""

    def __init__(self, means: torch.Tensor, prior: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("means", means)
        self.register_buffer("log_prior", prior.log())
        self.unused = nn.Linear(1, CLASSES)  # tells the fusion the number of classes; never used

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * STEPS * torch.cdist(x.mean(dim=1), self.means).square()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_likelihood(x) + self.log_prior


def _task(prior: torch.Tensor, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    means = {n: 0.8 * torch.randn(CLASSES, DIM, generator=gen) for n in NAMES}
    experts = {n: ExactGaussianExpert(means[n], prior) for n in NAMES}

    def sample(count: int):
        labels = torch.multinomial(prior, count, replacement=True, generator=gen)
        feats = {n: means[n][labels][:, None, :] + torch.randn(count, STEPS, DIM, generator=gen) for n in NAMES}
        return feats, labels

    return experts, sample


def _bayes_posterior(experts, features, mask, prior):
    """Closed form: prior × product of the available modalities' likelihoods."""
    joint = prior.log().expand(len(mask), -1).clone()
    for i, n in enumerate(NAMES):
        joint = joint + experts[n].log_likelihood(features[n]) * mask[:, i, None]
    return torch.log_softmax(joint, dim=-1)


def test_product_of_exact_experts_is_the_bayes_posterior_for_every_subset():
    prior = torch.tensor([0.5, 0.2, 0.2, 0.1])
    experts, sample = _task(prior)
    fusion = ExpertProductFusion(experts, {n: DIM for n in NAMES}, log_prior=prior.log())
    features, _ = sample(200)
    for subset in itertools.product([False, True], repeat=3):
        if not any(subset):
            continue
        mask = torch.tensor([subset] * 200)
        expected = _bayes_posterior(experts, features, mask, prior)
        torch.testing.assert_close(fusion.product_of_experts(features, mask), expected, atol=1e-4, rtol=1e-4)
        # untrained, the fusion *is* the product: its residual starts at exactly zero
        torch.testing.assert_close(torch.log_softmax(fusion(features, mask), -1), expected, atol=1e-4, rtol=1e-4)


def test_trained_fusion_matches_exact_experts_and_never_loses_to_them():
    prior = torch.full((CLASSES,), 1.0 / CLASSES)
    experts, sample = _task(prior, seed=1)
    fusion = ExpertProductFusion(experts, {n: DIM for n in NAMES}, hidden=32)
    report = fit_residual(fusion, sample(2000), sample(1000), epochs=5, seed=0)
    assert report["val_loss_fused"] <= report["val_loss_product"]
    features, labels = sample(3000)
    for subset in itertools.product([False, True], repeat=3):
        if not any(subset):
            continue
        mask = torch.tensor([subset] * len(labels))
        with torch.no_grad():
            fused = torch.log_softmax(fusion(features, mask), -1)
        exact = _bayes_posterior(experts, features, mask, prior)
        agree = (fused.argmax(-1) == exact.argmax(-1)).float().mean()
        assert agree >= 0.98, (subset, float(agree))
        acc_fused = (fused.argmax(-1) == labels).float().mean()
        acc_exact = (exact.argmax(-1) == labels).float().mean()
        assert acc_fused >= acc_exact - 0.01, (subset, float(acc_fused), float(acc_exact))
        kl = (exact.exp() * (exact - fused)).sum(-1).mean()
        assert kl < 0.02, (subset, float(kl))


def test_learned_experts_and_masks():
    gen = torch.Generator().manual_seed(0)
    masks = random_masks(700, 3, gen)
    assert masks.any(dim=1).all()
    assert len({tuple(m.tolist()) for m in masks}) == 7
    expert = ModalityExpert(DIM, CLASSES)
    assert expert(torch.randn(2, STEPS, DIM)).shape == (2, CLASSES)
    with pytest.raises(ValueError):
        ExpertProductFusion({"a": nn.Identity()}, {"a": DIM})


def test_an_expert_ensemble_averages_its_members_probabilities():
    """ExpertEnsemble's output is the log of its members' mean probability; one member is that member."""
    from imer_core.nn.expert_fusion import ExpertEnsemble, ExpertFusionHead

    torch.manual_seed(0)
    members = [ModalityExpert(DIM, CLASSES) for _ in range(3)]
    ensemble = ExpertEnsemble(members).eval()
    x = torch.randn(6, STEPS, DIM)
    probs = torch.stack([torch.softmax(m.eval()(x), dim=-1) for m in members]).mean(dim=0)
    assert torch.allclose(ensemble(x).exp(), probs, atol=1e-6)
    assert torch.allclose(ExpertEnsemble(members[:1]).eval()(x), torch.log_softmax(members[0](x), dim=-1), atol=1e-6)
    with pytest.raises(ValueError, match="at least one member"):
        ExpertEnsemble([])
    dims = {n: DIM for n in NAMES}
    head = ExpertFusionHead.from_settings(dims, CLASSES, {"hidden": 8, "members": 2, "speaker_experts": ["audio"]})
    assert all(len(head.experts[n].members) == 2 for n in NAMES) and len(head.speaker_experts["audio"].members) == 2
    single = ExpertFusionHead.from_settings(dims, CLASSES, {"hidden": 8})
    assert isinstance(single.experts["text"], ModalityExpert)  # checkpoints without "members" load as before
    with pytest.raises(ValueError, match="at least 1"):
        ExpertFusionHead(dims, CLASSES, members=0)
