"""Tests of the MulT-style Transformer encoder, the RCAN refiner and the MulT fusion backbone."""

from __future__ import annotations

import math

import pytest
import torch

from imer_core.config import FusionConfig
from imer_core.modalities import FeatureSpecs
from imer_core.nn.mult import MulTFusion
from imer_core.nn.rcan import Refiner
from imer_core.nn.transformer import MultiheadAttention, TransformerEncoder, causal_mask, sinusoidal_positions

MOSI_DIMS = (768, 5, 20)



def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def mosi_features(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, 50, dim, generator=g) for name, dim in zip(("text", "audio", "vision"), MOSI_DIMS)}


@pytest.mark.parametrize("lq, lk", [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_causal_mask_matches_reference_triu(lq: int, lk: int) -> None:
    mask = causal_mask(lq, lk)
    assert mask.shape == (lq, lk)
    offset = 1 + abs(lk - lq)
    for i in range(lq):
        for j in range(lk):
            expected = float("-inf") if j - i >= offset else 0.0
            assert mask[i, j].item() == expected
    assert torch.equal(mask, torch.triu(torch.full((lq, lk), float("-inf")), offset))
    assert torch.isfinite(mask[:, 0]).all()                     # no empty softmax row


def test_positions_start_at_one_and_padding_quirk() -> None:
    d = 8
    x = torch.randn(2, 4, d)
    x[0, 2, 0] = 0.0                                              # first feature exactly 0 → padding
    emb = sinusoidal_positions(x, d)
    assert emb.shape == (2, 4, d)
    assert torch.equal(emb[0, 2], torch.zeros(d))
    half = d // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    for pos in (1, 2, 3, 4):
        expected = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)])
        torch.testing.assert_close(emb[1, pos - 1], expected)
    torch.testing.assert_close(emb[0, 3], torch.cat([torch.sin(4 * freq), torch.cos(4 * freq)]))


def test_encoder_shapes_and_causality() -> None:
    torch.manual_seed(0)
    enc = TransformerEncoder(32, 8, 2, attn_mask=True).eval()
    x, ctx = torch.randn(2, 6, 32), torch.randn(2, 9, 32)
    assert enc(x).shape == (2, 6, 32)
    assert enc(x, ctx).shape == (2, 6, 32)
    # Self-attention with the causal mask: step 0 cannot see later steps.
    x2 = x.clone()
    x2[:, 3:] += torch.randn(2, 3, 32)
    torch.testing.assert_close(enc(x)[:, 0], enc(x2)[:, 0])
    assert not torch.allclose(enc(x)[:, 4], enc(x2)[:, 4])
    # Without the mask every step sees the future.
    free = TransformerEncoder(32, 8, 2, attn_mask=False).eval()
    free.load_state_dict(enc.state_dict())
    assert not torch.allclose(free(x)[:, 0], free(x2)[:, 0])


def test_attention_fused_projection_and_counts() -> None:
    attn = MultiheadAttention(32, 8)
    assert attn.in_proj_weight.shape == (96, 32) and attn.in_proj_bias.shape == (96,)
    assert count(TransformerEncoder(32, 8, 4)) == 50_880
    assert count(TransformerEncoder(64, 8, 4)) == 200_064
    with pytest.raises(ValueError):
        MultiheadAttention(30, 8)


def test_refiner_parameter_count_and_shape() -> None:
    refiner = Refiner(32)
    n = count(refiner)
    assert n == 522_224 and round(n / 1e6, 2) == 0.52
    assert refiner(torch.randn(2, 32, 48)).shape == (2, 32, 48)


def test_mult_fusion_counts_and_shapes() -> None:
    specs = FeatureSpecs.from_dims(MOSI_DIMS, 50)
    reg = MulTFusion(specs, FusionConfig(), 1).eval()
    n = count(reg)
    assert n == 1_055_905 and round(n / 1e6, 2) == 1.06
    assert count(MulTFusion(specs, FusionConfig(), 7)) == 1_057_063
    feats = mosi_features(3)
    proj = reg.project(feats)
    assert {k: tuple(v.shape) for k, v in proj.items()} == {m: (3, 32, 48) for m in ("text", "audio", "vision")}
    out = reg(proj)
    assert out.prediction.shape == (3, 1) and out.fused.shape == (3, 192)
    assert {k: tuple(v.shape) for k, v in out.hidden.items()} == {m: (3, 64) for m in ("text", "audio", "vision")}
    cls = MulTFusion(specs, FusionConfig(), 7).eval()
    assert cls(cls.project(feats)).prediction.shape == (3, 7)


def test_mult_identity_projection_when_dim_equals_d_model() -> None:
    specs = FeatureSpecs.from_dims((32, 5, 20), 16)
    fusion = MulTFusion(specs, FusionConfig(), 1).eval()
    assert isinstance(fusion.proj_l, torch.nn.Identity)
    assert fusion.projected_length("text") == 16 and fusion.projected_length("a") == 14
    proj = fusion.project({"text": torch.randn(2, 16, 32), "audio": torch.randn(2, 16, 5),
                           "vision": torch.randn(2, 16, 20)})
    assert proj["text"].shape == (2, 32, 16) and proj["audio"].shape == (2, 32, 14)
    assert fusion(proj).prediction.shape == (2, 1)
