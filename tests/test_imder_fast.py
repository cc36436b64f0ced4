"""IMDer with the issue-16 inference paths: traced score networks, the distilled generator, the distill stage."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SMALL_DIMS, SMALL_LEN, small_features, small_specs

from imer_core.checkpoint import load_checkpoint, save_checkpoint
from imer_core.config import ModelConfig
from imer_core.diffusion.samplers import DistilledSampler
from imer_core.methods.base import SamplingOptions
from imer_core.methods.imder import IMDer, IMDerOptions
from imer_core.modalities import AVAILABLE_SUBSETS, mask_from_available
from imer_core.registry import create_model
from training.cli import main as cli_main
from training.data import write_synthetic_mmsa

SMALL = {"score_channels": [32, 32], "score_embed_dim": 32, "refiner_blocks": 1, "refiner_reduction": 8,
         "sampler": "heun", "sampler_steps": 2, "train_sampler": "heun", "train_sampler_steps": 2}


def small_model(**options) -> IMDer:
    torch.manual_seed(0)
    config = ModelConfig("imder", small_specs(), method_options={**SMALL, **options})
    return create_model(config).eval()


def test_options_validate_backend_and_distilled_sampler() -> None:
    with pytest.raises(ValueError, match="inference backend"):
        IMDerOptions(score_backend="compiled")
    with pytest.raises(ValueError, match="distill"):
        IMDerOptions(sampler="distilled")
    with pytest.raises(ValueError, match="train_sampler"):
        IMDerOptions(train_sampler="distilled", distill_steps=1)
    assert IMDerOptions(sampler="distilled", distill_steps=2).distill_steps == 2


def test_traced_recovery_matches_eager_for_every_pattern() -> None:
    model = small_model()
    feats = small_features(3)
    for available in AVAILABLE_SUBSETS:
        mask = mask_from_available(available, 3)
        eager = model.recover(feats, mask, SamplingOptions(seed=0, backend="eager"))
        traced = model.recover(feats, mask, SamplingOptions(seed=0, backend="traced"))
        for name in eager:
            torch.testing.assert_close(traced[name], eager[name], atol=1e-5, rtol=1e-5)
    assert len(model._traced) > 0
    model.train()                                                   # weights may change: traces are dropped
    assert len(model._traced) == 0
    model.eval()
    # the cuda-graph backend falls back to eager on a CPU
    mask = mask_from_available(("text",), 3)
    graph = model.recover(feats, mask, SamplingOptions(seed=0, backend="cuda-graph"))
    torch.testing.assert_close(graph["audio"], model.recover(feats, mask, SamplingOptions(seed=0))["audio"])


def test_distilled_sampler_is_selected_by_name_and_survives_a_checkpoint(tmp_path) -> None:
    model = small_model()
    feats, mask = small_features(2), mask_from_available(("text",), 2)
    with pytest.raises(ValueError, match="imer-train distill"):
        model.recover(feats, mask, SamplingOptions(sampler="distilled", seed=0))
    students = model.enable_distillation(1)
    assert model.options.sampler == "distilled" and model.config.method_options["distill_steps"] == 1
    # Before training, the student is the teacher: the 1-step generator is the teacher's Tweedie step.
    by_default = model.recover(feats, mask, SamplingOptions(seed=0))
    named = model.recover(feats, mask, SamplingOptions(sampler="distilled", steps=1, seed=0))
    torch.testing.assert_close(by_default["audio"], named["audio"])
    with torch.no_grad():
        for p in students["audio"].parameters():
            p.add_(0.01)
    changed = model.recover(feats, mask, SamplingOptions(seed=0))
    assert not torch.allclose(changed["audio"], by_default["audio"])     # the student, not the teacher, is used
    teacher = model.recover(feats, mask, SamplingOptions(sampler="heun", steps=2, seed=0))
    assert torch.isfinite(teacher["audio"]).all()
    path = save_checkpoint(model, tmp_path / "m.pt")
    loaded = load_checkpoint(path)
    assert loaded.options.sampler == "distilled" and loaded.student_nets is not None
    torch.testing.assert_close(loaded.recover(feats, mask, SamplingOptions(seed=0))["audio"], changed["audio"])
    assert isinstance(loaded._inference_sampler(SamplingOptions()), DistilledSampler)
    assert isinstance(loaded._inference_sampler(SamplingOptions(steps=1)), DistilledSampler)
    # another step count (the app's "sampler steps") runs the teacher, not an untrained student schedule
    teacher3 = loaded._inference_sampler(SamplingOptions(steps=3))
    assert teacher3.name == "heun" and teacher3.num_steps == 3
    torch.testing.assert_close(loaded.recover(feats, mask, SamplingOptions(steps=2, seed=0))["audio"],
                               loaded.recover(feats, mask, SamplingOptions(sampler="heun", steps=2, seed=0))["audio"])
    assert loaded._inference_sampler(SamplingOptions(sampler="distilled", steps=2)).num_steps == 2   # explicit


def test_distill_command_writes_a_checkpoint_that_evaluate_uses(tmp_path, capsys) -> None:
    data = write_synthetic_mmsa(tmp_path / "synthetic.pkl", seed=1, sizes=(24, 12, 12), seq_len=SMALL_LEN,
                                dims=SMALL_DIMS, feature_scale=6.0)
    ckpt = save_checkpoint(small_model(), tmp_path / "model.pt")
    base = ["--data", str(data), "--device", "cpu"]
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), *base, "--sampler", "distilled"]) == 2
    assert "imer-train distill" in capsys.readouterr().err
    out = tmp_path / "distilled.pt"
    assert cli_main(["distill", "--checkpoint", str(ckpt), *base, "--out", str(out), "--epochs", "2",
                     "--batch-size", "32", "--learning-rate", "1e-3", "--score-backend", "traced"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index('{\n  "checkpoint"'):])["checkpoint"] == str(out)
    model = load_checkpoint(out)
    meta = model.checkpoint_metadata["distillation"]
    assert model.options.sampler == "distilled" and meta["steps"] == 1 and meta["teacher"] == "heun, 2 steps"
    assert model.options.score_backend == "traced" == meta["score_backend"]
    assert meta["valid_mse"] <= meta["valid_mse_before"]
    trained = dict(model.student_nets.named_parameters())
    assert any(not torch.equal(p, dict(model.score_nets.named_parameters())[n]) for n, p in trained.items())
    assert cli_main(["evaluate", "--checkpoint", str(out), *base, "--protocol", "sample:0.5"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert 0 <= results["recovery_mse"] < float("inf") and results["realised_missing_rate"] > 0


def test_evaluation_samples_in_large_batches_and_halves_on_out_of_memory(tmp_path, monkeypatch) -> None:
    from training.data import MMSADataset, load_mmsa
    from training.distributed import DistContext
    from training.experiment import TrainConfig
    from training.protocol_spec import make_protocol
    from training.runs import RunFolder
    from training.trainer import Trainer

    path = write_synthetic_mmsa(tmp_path / "s.pkl", seed=2, sizes=(8, 8, 20), seq_len=SMALL_LEN, dims=SMALL_DIMS)
    datasets = {name: MMSADataset(split) for name, split in load_mmsa(path).items()}
    model = small_model()
    trainer = Trainer(model, datasets, TrainConfig(batch_size=4, eval_batch_size=16), make_protocol("sample:0.5"),
                      DistContext(), RunFolder(tmp_path, enabled=False), progress=False)
    seen, original = [], model.recover

    def recover(features, mask, sampling=None):
        seen.append(mask.shape[0])
        if mask.shape[0] > 5:
            raise torch.cuda.OutOfMemoryError("simulated")
        return original(features, mask, sampling)

    monkeypatch.setattr(model, "recover", recover)
    halved = trainer.evaluate("test")
    assert seen[0] == 16 and seen[1] == 8 and set(seen[2:]) == {4}          # 16 → 8 → 4, then all batches of 4
    seen.clear()
    monkeypatch.setattr(model, "recover", original)
    small = Trainer(model, datasets, TrainConfig(batch_size=4, eval_batch_size=4), make_protocol("sample:0.5"),
                    DistContext(), RunFolder(tmp_path, enabled=False), progress=False).evaluate("test")
    assert halved == small                                                  # same masks, same batches → same metrics
