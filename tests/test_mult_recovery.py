"""The base shared by the MulT-projection methods (IMDer, RoHyDR) and MulT's output head."""

from __future__ import annotations

import torch
from conftest import small_features, small_specs

from imer_core.config import FusionConfig, ModelConfig
from imer_core.methods.imder import IMDer
from imer_core.methods.mult_recovery import PAIR_CONDITIONS, MulTRecoveryModel
from imer_core.methods.rohydr import RoHyDR
from imer_core.modalities import Modality
from imer_core.nn.mult import MulTFusion
from imer_core.registry import create_model

TINY_FUSION = FusionConfig(d_model=32, num_heads=4, nlevels=1, mem_layers=1)


def _rohydr() -> RoHyDR:
    torch.manual_seed(0)
    options = {"dit_hidden": 16, "dit_depth": 1, "dit_heads": 2, "refiner_blocks": 1, "sampler_steps": 2,
               "train_sampler_steps": 2}
    return create_model(ModelConfig(method="rohydr", specs=small_specs(),
                                    method_options={**options, "fusion": TINY_FUSION})).eval()


def test_mult_head_is_the_forward_passes_output_layer():
    torch.manual_seed(0)
    fusion = MulTFusion(small_specs(), TINY_FUSION, output_dim=3).eval()
    out = fusion(fusion.project(small_features(2)))
    torch.testing.assert_close(fusion.head(out.fused), out.prediction, rtol=0, atol=0)


def test_imder_and_rohydr_share_the_pair_conditions_and_frozen_projections(small_imder):
    rohydr = _rohydr()
    for model in (small_imder, rohydr):
        assert isinstance(model, MulTRecoveryModel)
        proj = model.project(small_features(2))
        for missing, (conv, order) in PAIR_CONDITIONS.items():
            available = tuple(m for m in (Modality.TEXT, Modality.AUDIO, Modality.VISION) if m is not missing)
            expected = getattr(model, conv)(torch.cat([proj[m.value] for m in order], dim=1))
            torch.testing.assert_close(model._condition(available, proj), expected)
        model.prepare_stage("recovery")
        assert not any(p.requires_grad for p in model.fusion.proj_a.parameters())
        model.prepare_stage("pretrain")
        assert all(p.requires_grad for p in model.fusion.proj_a.parameters())
    assert IMDer._condition is RoHyDR._condition is MulTRecoveryModel._condition


def test_rohydr_predicts_with_mults_head_and_seeds_its_sampler():
    model = _rohydr()
    feats, mask = small_features(3), torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.bool)
    from imer_core.methods.base import SamplingOptions

    first = model.recover(feats, mask, SamplingOptions(seed=4))
    again = model.recover(feats, mask, SamplingOptions(seed=4))
    other = model.recover(feats, mask, SamplingOptions(seed=5))
    torch.testing.assert_close(first["audio"], again["audio"], rtol=0, atol=0)
    assert not torch.equal(first["audio"][0], other["audio"][0])
    full = {k: v for k, v in first.items() if k != "available"}   # rows without a missing modality skip R
    fused = model.fusion(full).fused
    torch.testing.assert_close(model.predict_from_recovered(full), model.fusion.head(fused))
