"""Tests of the IMDer recovery model (parameter counts, shapes, masking, losses, stages)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from imer_core import ModelConfig, available_methods, create_model
from imer_core.config import CLASSIFICATION, LIVE_EMOTIONS
from imer_core.methods.base import PRETRAIN, RECOVERY, SamplingOptions
from imer_core.methods.imder import IMDer, IMDerOptions
from imer_core.modalities import AVAILABLE_SUBSETS, FeatureSpecs, full_mask, mask_from_available
from imer_core.registry import default_options
from imer_core.text_encoder import BertTextEncoder, TextEncoderUnavailable

MOSI_DIMS = (768, 5, 20)
FAST = {"sampler_steps": 2, "train_sampler_steps": 2}
SEEDED = SamplingOptions(seed=0)



def make(task: str = "regression", **options) -> IMDer:
    torch.manual_seed(0)
    labels = LIVE_EMOTIONS if task == CLASSIFICATION else ("sentiment",)
    config = ModelConfig("imder", FeatureSpecs.from_dims(MOSI_DIMS, 50), task=task, labels=labels,
                         method_options={**FAST, **options})
    return create_model(config)


def features(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, 50, dim, generator=g) for name, dim in zip(("text", "audio", "vision"), MOSI_DIMS)}


@pytest.fixture(scope="module")
def model() -> IMDer:
    return make().eval()


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registry_and_options() -> None:
    assert "imder" in available_methods()
    assert default_options("imder")["sampler"] == "euler-maruyama"
    assert default_options("imder")["train_sampler_steps"] == 100
    with pytest.raises(ValueError, match="unknown IMDerOptions"):
        make(not_an_option=1)
    with pytest.raises(ValueError):
        IMDerOptions(text_encoder="glove")
    with pytest.raises(ValueError):
        IMDerOptions(sampler="ddim")
    assert IMDerOptions(score_channels=[32, 64, 128, 256]).score_channels == (32, 64, 128, 256)


def test_parameter_counts_match_reference(model: IMDer) -> None:
    fusion = count(model.fusion)
    assert fusion == 1_055_905 and round(fusion / 1e6, 2) == 1.06
    for name in ("text", "audio", "vision"):
        score, refiner = count(model.score_nets[name]), count(model.refiners[name])
        assert score == 3_457_664 and round(score / 1e6, 2) == 3.46
        assert refiner == 522_224 and round(refiner / 1e6, 2) == 0.52
    assert count(model.cat_la) == count(model.cat_lv) == count(model.cat_av) == 2_080
    total = model.parameter_count()
    assert total == 13_001_809 and round(total / 1e6, 1) == 13.0


def test_score_attention_depth_is_an_option_with_the_reference_default(model: IMDer) -> None:
    assert IMDerOptions().score_attn_layers == 2 and len(model.score_nets["text"].enc_attns[0].layers) == 2
    shallow = make(score_channels=[32, 64], score_embed_dim=32, score_attn_layers=1)
    attentions = [a for net in shallow.score_nets.values() for group in (net.enc_attns, net.dec_attns)
                  for a in group] + [net.out_attn for net in shallow.score_nets.values()]
    assert attentions and all(len(a.layers) == 1 for a in attentions)
    with pytest.raises(ValueError, match="score_attn_layers must be >= 1"):
        IMDerOptions(score_attn_layers=0)


def test_recover_fills_every_modality(model: IMDer) -> None:
    feats = features(3)
    proj = model.fusion.project(feats)
    for available in AVAILABLE_SUBSETS:
        mask = mask_from_available(available, 3)
        out = model.recover(feats, mask, SEEDED)
        assert {k: tuple(v.shape) for k, v in out.items()} == {m: (3, 32, 48) for m in ("text", "audio", "vision")}
        for modality in available:                              # available rows keep their projection
            torch.testing.assert_close(out[modality.value], proj[modality.value])


def test_predict_every_pattern_and_mixed_masks(model: IMDer) -> None:
    feats = features(4)
    for available in AVAILABLE_SUBSETS:
        pred = model.predict(feats, mask_from_available(available, 4), SEEDED)
        assert pred.shape == (4, 1) and torch.isfinite(pred).all()
    mixed = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    pred = model.predict(feats, mixed, SEEDED)
    assert pred.shape == (4, 1)
    # Rows with the complete pattern do not depend on the other rows' recovery.
    full = model.predict(feats, full_mask(4))
    torch.testing.assert_close(pred[2], full[2])
    heun = model.predict(feats, mixed, SamplingOptions(sampler="heun", steps=2, seed=1))
    torch.testing.assert_close(heun, model.predict(feats, mixed, SamplingOptions(sampler="heun", steps=2, seed=1)))
    with pytest.raises(ValueError):
        model.predict(feats, torch.zeros(4, 3, dtype=torch.bool))


def test_classification_outputs() -> None:
    clf = make(CLASSIFICATION).eval()
    feats = features(2)
    pred = clf.predict(feats, mask_from_available(["text"], 2), SEEDED)
    assert pred.shape == (2, 7)
    labels = torch.tensor([0, 3])
    clf.train()
    out = clf.training_losses(feats, labels, mask_from_available(["audio", "vision"], 2))
    assert out.prediction.shape == (2, 7) and torch.isfinite(out.total)


def test_missing_modality_cannot_affect_prediction(model: IMDer) -> None:
    feats = features(3)
    for available in (["text"], ["audio", "vision"], ["text", "vision"]):
        mask = mask_from_available(available, 3)
        changed = dict(feats)
        for name in ("text", "audio", "vision"):
            if name not in {m if isinstance(m, str) else m.value for m in available}:
                changed[name] = torch.randn_like(feats[name]) * 10
        torch.testing.assert_close(model.predict(feats, mask, SEEDED), model.predict(changed, mask, SEEDED))


def test_training_losses_masked_batch_and_recovery_stage_freezing() -> None:
    net = make().train()
    net.prepare_stage(RECOVERY)
    feats, labels = features(3), torch.randn(3)
    mask = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    out = net.training_losses(feats, labels, mask)
    assert set(out.parts) == {"task", "score_text", "score_audio", "score_vision", "reconstruction", "total"}
    assert all(torch.isfinite(v) for v in out.parts.values())
    recovery = sum(out.parts[k] for k in ("score_text", "score_audio", "score_vision", "reconstruction"))
    torch.testing.assert_close(out.total, out.parts["task"] + 0.1 * recovery)
    out.total.backward()
    for proj in net.fusion.projections().values():
        assert all(not p.requires_grad and p.grad is None for p in proj.parameters())
    for name in ("text", "audio", "vision"):
        assert net.score_nets[name].enc_convs[0].weight.grad is not None
        assert net.refiners[name].body[0].weight.grad is not None
    # Rows (t, a, v): [1, 0, 0] text only; [0, 1, 1] text missing → cat_av; [1, 1, 0] vision missing → cat_la.
    assert net.cat_av.weight.grad is not None and net.cat_la.weight.grad is not None
    assert net.cat_lv.weight.grad is None                      # audio is never the only missing modality


def test_full_mask_and_pretrain_stage_give_task_loss_only() -> None:
    net = make().train()
    feats, labels = features(2), torch.randn(2)
    out = net.training_losses(feats, labels, full_mask(2))
    assert set(out.parts) == {"task", "total"}
    torch.testing.assert_close(out.total, out.parts["task"])
    net.prepare_stage(PRETRAIN)
    out = net.training_losses(feats, labels, mask_from_available(["text"], 2))   # pretrain ignores the mask
    assert set(out.parts) == {"task", "total"}
    out.total.backward()
    assert net.fusion.proj_l.weight.grad is not None
    assert net.score_nets["text"].enc_convs[0].weight.grad is None
    net.prepare_stage(RECOVERY)
    assert not net.fusion.proj_l.weight.requires_grad


def test_uniform_pattern_weighting_matches_single_group() -> None:
    net = make().train()
    feats, labels = features(2), torch.randn(2)
    mask = mask_from_available(["text"], 2)
    torch.manual_seed(5)
    a = net.training_losses(feats, labels, mask)
    assert a.parts["score_text"].item() == 0.0                 # text is never missing here
    # One group holding the whole batch has weight 1: the score loss equals the plain DSM loss.
    from imer_core.diffusion.sde import denoising_score_matching_loss
    net.eval()
    proj = net.fusion.project(feats)
    torch.manual_seed(7)
    b = net.training_losses(feats, labels, mask)
    torch.manual_seed(7)
    direct = denoising_score_matching_loss(net.score_nets["audio"], proj["audio"], net.sde,
                                           condition=proj["text"], eps=net.options.loss_eps)
    torch.testing.assert_close(b.parts["score_audio"], direct)


def test_text_encoder_unavailable(tmp_path) -> None:
    missing = tmp_path / "no-bert-here"
    with pytest.raises(TextEncoderUnavailable, match="BERT-base weights not found at") as info:
        BertTextEncoder(missing)
    assert "pre-extracted 768-d `text`" in str(info.value)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(TextEncoderUnavailable, match="BERT-base weights not found"):
        make(text_encoder="bert", bert_path=str(missing))
    if importlib.util.find_spec("transformers") is None:
        with pytest.raises(TextEncoderUnavailable, match="transformers"):
            BertTextEncoder(tmp_path)
