"""The expert-fusion head on a recovery method: product of experts, a correction kept only when it helps."""

from __future__ import annotations

import torch
from live_fakes import train_small_checkpoint

from imer_core.checkpoint import load_checkpoint, save_checkpoint
from imer_core.modalities import MODALITIES
from imer_core.nn.expert_fusion import ExpertFusionHead, fit_correction, random_masks
from imer_core.registry import create_model

C = 4
DIMS = {"text": 3, "audio": 3, "vision": 3}


def _data(n: int, seed: int, sign: float):
    """Experts' product carries nothing; the method's logits point at the label (sign 1) or away from it (-1)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (n,), generator=g)
    product = torch.log_softmax(torch.zeros(n, C), dim=-1)
    method = sign * 4.0 * torch.nn.functional.one_hot(labels, C).float() + 0.5 * torch.randn(n, C, generator=g)
    mask = random_masks(n, 3, g).float()
    return product, method, mask, labels


def test_correction_is_kept_only_when_it_lowers_the_validation_loss():
    head = ExpertFusionHead(DIMS, C)
    # learnt on training data where the method helps, but on validation data it misleads: dropped
    harmful = fit_correction(head, _data(512, 0, 1.0), _data(256, 1, -1.0), epochs=5)
    assert harmful["correction_kept"] is False and not head.correction_active
    product, method, mask, _ = _data(64, 2, 1.0)
    assert torch.equal(head.fuse(product, method, mask), product)  # exactly the experts' product
    useful = fit_correction(head, _data(512, 0, 1.0), _data(256, 1, 1.0), epochs=5)
    assert useful["correction_kept"] is True and head.correction_active
    assert useful["val_loss_fused"] < useful["val_loss_product"]


def test_product_uses_only_available_experts_and_the_speaker_expert_when_given():
    torch.manual_seed(0)
    head = ExpertFusionHead(DIMS, C, speaker_experts=("audio",)).eval()
    features = {m: torch.randn(2, 5, d) for m, d in DIMS.items()}
    only_audio = torch.tensor([[False, True, False]] * 2)
    with torch.no_grad():
        audio = torch.log_softmax(head.experts["audio"](features["audio"]), dim=-1)
        assert torch.allclose(head.product_of_experts(features, only_audio), audio, atol=1e-6)
        speaker = torch.randn(2, 5, 3)
        swapped = head.product_of_experts({**features, "audio@speaker": speaker}, only_audio)
        assert torch.allclose(swapped, torch.log_softmax(head.speaker_experts["audio"](speaker), dim=-1), atol=1e-6)


def test_a_checkpoint_with_the_head_round_trips_and_predicts_with_it(tmp_path):
    path = train_small_checkpoint(tmp_path / "plain.pt", "cmarr", steps=1)
    plain = load_checkpoint(path)
    settings = {"hidden": 16, "depth": 2, "dropout": 0.2, "correction_hidden": 8, "speaker_experts": ["audio"]}
    fused = create_model(plain.config.__class__(**{**plain.config.__dict__, "expert_fusion": settings}))
    missing = fused.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("expert_fusion.") for k in missing)
    saved = save_checkpoint(fused.eval(), tmp_path / "fused.pt", {"trained": True})
    loaded = load_checkpoint(saved)
    assert loaded.config.expert_fusion == settings
    features = {s.modality.value: torch.randn(3, s.seq_len, s.dim) for s in loaded.config.specs}
    mask = torch.tensor([[True, False, True], [False, True, False], [True, True, True]])
    method = loaded.predict_from_recovered(loaded.recover(features, mask))
    expected = loaded.expert_fusion.product_of_experts(features, mask)  # correction starts at zero
    assert torch.allclose(loaded.predict(features, mask), expected, atol=1e-5)
    assert not torch.allclose(method.log_softmax(-1), expected, atol=1e-3)
    assert [m.value for m in MODALITIES] == list(loaded.expert_fusion.names)
