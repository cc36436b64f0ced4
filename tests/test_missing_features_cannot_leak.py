"""Features of a missing modality never reach a prediction, even NaN or infinite ones (issue: bad input)."""

from __future__ import annotations

import pytest
import torch
from conftest import small_features, small_specs

from imer_core.config import CLASSIFICATION, ModelConfig
from imer_core.methods.base import SamplingOptions
from imer_core.nn.expert_fusion import ExpertFusionHead
from imer_core.nn.layers import zero_missing
from imer_core.registry import create_model

SMALL = {
    "cmarr": {"latent_dim": 8, "encoder_hidden": 16, "flow_layers": 1, "flow_hidden": 16, "refiner_hidden": 16},
    "imder": {"score_channels": (32, 32), "score_embed_dim": 16, "refiner_blocks": 1, "sampler": "heun",
              "sampler_steps": 2, "fusion": {"num_heads": 4, "nlevels": 1, "mem_layers": 1}},
    "rohydr": {"dit_depth": 1, "dit_hidden": 16, "sampler_steps": 2, "fusion": {"d_model": 8, "num_heads": 2,
                                                                                 "nlevels": 1}},
}
MASK = torch.tensor([[True, False, True], [False, True, True], [True, True, False]])


def _poisoned(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``features`` with NaN and infinities in every missing entry of :data:`MASK`."""
    out = {}
    for i, (name, x) in enumerate(features.items()):
        bad = torch.full_like(x, float("nan"))
        bad[..., ::2] = float("inf")
        out[name] = torch.where(MASK[:, i].view(-1, 1, 1), x, bad)
    return out


def test_zero_missing_zeroes_non_finite_rows_and_keeps_the_others():
    x = torch.tensor([[1.0, -2.0], [float("nan"), float("-inf")]])
    out = zero_missing(x, torch.tensor([True, False]))
    assert torch.equal(out, torch.tensor([[1.0, -2.0], [0.0, 0.0]]))


@pytest.mark.parametrize("method", sorted(SMALL))
@pytest.mark.parametrize("expert_fusion", [False, True])
def test_non_finite_features_of_a_missing_modality_give_the_prediction_of_zeros(method, expert_fusion):
    torch.manual_seed(0)
    config = ModelConfig(method, small_specs(), CLASSIFICATION, ("a", "b", "c"), method_options=SMALL[method],
                         expert_fusion={"hidden": 8, "speaker_experts": ["audio"]} if expert_fusion else None)
    model = create_model(config).eval()
    clean = small_features(batch=3)
    zeros = {n: torch.where(MASK[:, i].view(-1, 1, 1), x, 0.0) for i, (n, x) in enumerate(clean.items())}
    sampling = SamplingOptions(seed=0)
    poisoned = model.predict(_poisoned(clean), MASK, sampling)
    assert torch.isfinite(poisoned).all()
    assert torch.allclose(poisoned, model.predict(zeros, MASK, sampling), atol=1e-6)


def test_the_expert_head_ignores_a_missing_speaker_feature():
    torch.manual_seed(0)
    head = ExpertFusionHead({"text": 3, "audio": 3, "vision": 3}, 4, speaker_experts=("audio",)).eval()
    features = {m: torch.randn(2, 5, 3) for m in ("text", "audio", "vision")}
    no_audio = torch.tensor([[True, False, True]] * 2)
    with torch.no_grad():
        expected = head.product_of_experts(features, no_audio)
        poisoned = {**features, "audio": torch.full((2, 5, 3), float("nan")),
                    "audio@speaker": torch.full((2, 5, 3), float("inf"))}
        assert torch.allclose(head.product_of_experts(poisoned, no_audio), expected, atol=1e-6)
