"""The conditional-regression baseline: IMDer's backbone and refiner, the missing projection regressed."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import small_features, small_specs

from imer_core.checkpoint import load_checkpoint, save_checkpoint
from imer_core.config import ModelConfig
from imer_core.methods.base import PRETRAIN, RECOVERY, SamplingOptions
from imer_core.modalities import mask_from_available
from imer_core.registry import available_methods, create_model
from training.cli import main as cli_main

OPTIONS = {"refiner_blocks": 2, "score_channels": [32, 32, 32, 32], "score_embed_dim": 16}


def _model(method: str, **options):
    torch.manual_seed(0)
    return create_model(ModelConfig(method=method, specs=small_specs(), method_options={**OPTIONS, **options}))


def test_same_backbone_as_imder_without_score_networks() -> None:
    assert "regression" in available_methods()
    imder, baseline = _model("imder"), _model("regression")
    assert len(baseline.score_nets) == 0
    assert baseline.parameter_count() == imder.parameter_count() - imder.parameter_count(imder.score_nets)
    with pytest.raises(ValueError, match="no sampler but 'mean'"):
        _model("regression", sampler="heun")


def test_recovery_is_deterministic_and_regression_training_lowers_its_error(tmp_path) -> None:
    model = _model("regression")
    feats = small_features(16, seed=3)
    gen = torch.Generator().manual_seed(4)                 # vision and audio are linear in text: recoverable
    feats["vision"] = feats["text"] @ torch.randn(16, 20, generator=gen)
    feats["audio"] = feats["text"] @ torch.randn(16, 5, generator=gen)
    labels = torch.randn(16)
    mask = mask_from_available(["text", "audio"], 16)
    model.prepare_stage(RECOVERY)
    model.eval()
    first = model.recover(feats, mask)["vision"]
    torch.testing.assert_close(model.recover(feats, mask, SamplingOptions(seed=5))["vision"], first)
    truth = model.project(feats)["vision"]
    before = float(((first - truth) ** 2).mean())
    optimizers = model.configure_optimizers(1e-2)
    model.train()
    for _ in range(40):
        out = model.train_step(feats, labels, mask, optimizers)
    assert set(out.parts) >= {"task", "reconstruction", "total"}
    assert float(out.parts["score_vision"]) == 0.0                     # no score networks to train
    model.eval()
    after = float(((model.recover(feats, mask)["vision"] - truth) ** 2).mean())
    assert after < 0.5 * before
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "reg.pt"))
    torch.testing.assert_close(loaded.recover(feats, mask)["vision"], model.recover(feats, mask)["vision"])
    with pytest.raises(ValueError, match="no sampler 'heun'"):
        model.recover(feats, mask, SamplingOptions(sampler="heun"))
    with pytest.raises(ValueError, match="nothing to distil|no diffusion sampler"):
        model.enable_distillation(1)
    model.prepare_stage(PRETRAIN)
    assert all(p.requires_grad for p in model.fusion.proj_a.parameters())


def test_compare_includes_the_regression_baseline(tmp_path) -> None:
    sets = ["data.synthetic_sizes=[48, 16, 16]", "data.synthetic_dims=[16, 5, 20]", "data.synthetic_seq_len=18",
            "train.max_epochs=1", "train.pretrain_max_epochs=1", 'train.device="cpu"', "train.batch_size=16",
            "model.nlevels=1", "model.options.refiner_blocks=1", "model.options.score_channels=[32, 32, 32, 32]",
            "model.options.score_embed_dim=16"]
    out = tmp_path / "cmp"
    args = ["compare", "--configs", "quick_compare_regression", "--synthetic", "--missing-rates", "0.5",
            "--seeds", "2", "--out", str(out), "--no-progress", "--device", "cpu", "--latency-runs", "1"]
    for item in sets:
        args += ["--set", item]
    assert cli_main(args) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [(r["method"], r["condition"], r["sampler_fast"]) for r in rows] == [("regression", "0.50", "mean")]
    assert float(rows[0]["recovery_ratio_mean"]) > 0
