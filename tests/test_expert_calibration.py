"""Experts carried over and calibrated: the text network's head as a linear expert, temperature scaling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imer_core.features.text import TEXT_DIM, TEXT_EXTRACTOR
from imer_core.live.text_net import file_sha256, text_net_feature_id
from imer_core.nn.expert_fusion import ExpertFusionHead, ModalityExpert, fit_temperature
from training.live.expert_calibration import (
    TEXT_EXPERTS,
    fit_expert_temperatures,
    head_as_linear_expert,
    resolve_text_expert,
)

C = 5


def test_the_carried_over_head_reproduces_the_text_network_on_the_normalised_cached_embedding():
    """Cached feature: the unit-norm pooled vector u, normalised (u - mu) / sd and repeated over the window.
    The linear expert must give scale * W u + b - log prior, i.e. the network's own head on the pooled vector
    of norm ``scale``, scored under a uniform prior."""
    rng = np.random.default_rng(0)
    d = 12
    weight, bias = rng.normal(size=(C, d)), rng.normal(size=C)
    mean, std = rng.normal(size=d) * 0.1, rng.uniform(0.02, 0.2, size=d)
    prior = rng.dirichlet(np.ones(C))
    u = rng.normal(size=(4, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    scale = 8.5
    expert = ModalityExpert(d, C, depth=0)
    assert [type(m).__name__ for m in expert.net] == ["Linear"]  # depth 0: one linear layer on [mean, std]
    expert.load_state_dict(head_as_linear_expert(weight, bias, scale, np.log(prior), mean, std))
    window = torch.tensor((u - mean) / std, dtype=torch.float32)[:, None, :].repeat(1, 20, 1)
    with torch.no_grad():
        got = expert(window).numpy()
    expected = scale * u @ weight.T + bias - np.log(prior)
    assert np.allclose(got, expected, atol=1e-3)
    # the network's own decision on the un-normalised pooled vector, once the MELD prior is put back
    assert (np.argmax(got + np.log(prior), 1) == np.argmax((scale * u) @ weight.T + bias, 1)).all()


def _calibrated(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits): a perfectly calibrated classifier (T = 1)."""
    g = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(n, C, generator=g)
    labels = torch.multinomial(torch.softmax(logits, -1), 1, generator=g).squeeze(1)
    return logits, labels


def test_fit_temperature_recovers_a_known_overconfidence_and_rejects_bad_input():
    logits, labels = _calibrated(6000, 0)
    assert fit_temperature(3.0 * logits, labels) == pytest.approx(3.0, rel=0.08)
    assert fit_temperature(0.5 * logits, labels) == pytest.approx(0.5, rel=0.08)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.08)
    with pytest.raises(ValueError):
        fit_temperature(torch.full((3, C), math.nan), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        fit_temperature(torch.zeros(0, C), torch.zeros(0, dtype=torch.long))


def test_temperatures_scale_each_expert_round_trip_through_settings_and_are_validated():
    torch.manual_seed(0)
    dims = {"text": 3, "audio": 3, "vision": 3}
    settings = {"hidden": 8, "depth": 1, "speaker_experts": ["audio"], "linear_experts": ["text"],
                "temperatures": {"audio": 2.0, "audio@speaker": 4.0}}
    head = ExpertFusionHead.from_settings(dims, C, settings).eval()
    assert head.expert_keys == ("text", "audio", "vision", "audio@speaker")
    assert isinstance(head.experts["text"].net[0], torch.nn.Linear) and len(head.experts["text"].net) == 1
    x = {m: torch.randn(2, 4, 3) for m in dims}
    only_audio = torch.tensor([[False, True, False]] * 2)
    with torch.no_grad():
        raw = head.experts["audio"](x["audio"])
        assert torch.allclose(head.product_of_experts(x, only_audio), torch.log_softmax(raw / 2.0, -1), atol=1e-6)
        speaker = torch.randn(2, 4, 3)
        raw_speaker = head.speaker_experts["audio"](speaker)
        assert torch.allclose(head.product_of_experts({**x, "audio@speaker": speaker}, only_audio),
                              torch.log_softmax(raw_speaker / 4.0, -1), atol=1e-6)
    for bad in ({"face": 1.0}, {"audio": 0.0}, {"audio": -1.0}, {"audio": math.inf}):
        with pytest.raises(ValueError):
            head.set_temperatures(bad)
    with pytest.raises(ValueError, match="unknown"):
        ExpertFusionHead.from_settings(dims, C, {"linear_experts": ["face"]})


class _Tuples(torch.utils.data.Dataset):
    def __init__(self, features: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**{k: v[i] for k, v in self.features.items()}, "label": self.labels[i]}


def test_fit_expert_temperatures_softens_an_overconfident_expert_and_lowers_its_validation_loss():
    """A linear vision expert whose logits are 4x a calibrated classifier's gets T ~ 4; the NLL falls."""
    dims = {"text": 2, "audio": 2, "vision": C}
    head = ExpertFusionHead(dims, C, hidden=8, depth=1, linear_experts=("vision",))
    logits, labels = _calibrated(3000, 1)
    with torch.no_grad():  # input [mean, std] over time; a constant window has std 0: output 4 * mean
        head.experts["vision"].net[0].weight.copy_(torch.cat([4.0 * torch.eye(C), torch.zeros(C, C)], dim=1))
        head.experts["vision"].net[0].bias.zero_()
    features = {m: torch.randn(len(labels), 3, d) for m, d in dims.items()}
    features["vision"] = logits[:, None, :].repeat(1, 3, 1)
    report = fit_expert_temperatures(head, _Tuples(features, labels))
    assert set(report) == {"text", "audio", "vision"}  # no speaker experts, no speaker tuples
    vision = report["vision"]
    assert vision["temperature"] == pytest.approx(4.0, rel=0.1)
    assert vision["valid_nll_after"] < vision["valid_nll_before"] - 0.1
    for key, row in report.items():
        assert row["valid_nll_after"] <= row["valid_nll_before"] and head.temperatures[key] == row["temperature"]
    with torch.no_grad():  # the head now scores with the fitted temperature
        product = head.eval().product_of_experts(features, torch.tensor([[False, False, True]] * len(labels)))
    assert torch.allclose(product, torch.log_softmax(4.0 * logits / vision["temperature"], -1), atol=1e-5)


def test_text_expert_choice_follows_the_cache_text_feature(tmp_path):
    net = tmp_path / "text_net.pt"
    net.write_bytes(b"not a real network, only hashed")
    matching = text_net_feature_id(file_sha256(net), TEXT_DIM, TEXT_EXTRACTOR)
    assert resolve_text_expert("auto", matching, net) == "text-net-head"
    assert resolve_text_expert("text-net-head", matching, net) == "text-net-head"
    assert resolve_text_expert("auto", "minilm-frozen", net) == "mlp"  # another text feature: an MLP is trained
    assert resolve_text_expert("mlp", matching, net) == "mlp"
    with pytest.raises(ValueError, match="--text-expert mlp"):
        resolve_text_expert("text-net-head", "minilm-frozen", net)
    with pytest.raises(ValueError, match="unknown text expert"):
        resolve_text_expert("svm", matching, net)
    assert resolve_text_expert("auto", matching, tmp_path / "absent.pt") == "mlp"


def test_the_cli_offers_exactly_the_text_experts():
    from training.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._subparsers._group_actions[0].choices["live-experts"]._actions  # type: ignore
                  if a.dest == "text_expert")
    assert tuple(action.choices) == TEXT_EXPERTS and action.default == "auto"
