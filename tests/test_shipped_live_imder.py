"""The shipped live IMDer runs its distilled one-evaluation generator by default (issue 16)."""

from __future__ import annotations

import pytest
import torch

from imer_core.diffusion.samplers import DistilledSampler
from imer_core.live.models import load_live_model, shipped_checkpoints
from imer_core.methods.base import SamplingOptions
from imer_core.modalities import mask_from_available


def test_the_shipped_live_imder_samples_with_its_distilled_generator_by_default():
    path = shipped_checkpoints().get("imder")
    if path is None:
        pytest.skip("no shipped live IMDer checkpoint (assets/models/live_imder.pt)")
    live = load_live_model(path)  # the running extractors: the face-network feature
    model, meta = live.model, live.metadata
    opts = model.options
    assert opts.sampler == "distilled" and opts.distill_steps == 1 and model.student_nets is not None, (
        "the shipped live IMDer must be distilled: run `python scripts/train_live_models.py --from distill` "
        "(docs/live_model.md, Reproduce)")
    assert opts.score_backend == "traced"
    assert isinstance(model._inference_sampler(SamplingOptions()), DistilledSampler)
    distillation = meta["distillation"]
    assert distillation["teacher"] == f"heun, {opts.train_sampler_steps} steps" and distillation["steps"] == 1
    assert distillation["valid_mse"] < distillation["valid_mse_before"]
    torch.manual_seed(0)
    features = {s.modality.value: torch.randn(1, s.seq_len, s.dim) for s in model.config.specs}
    mask = mask_from_available(("vision",), 1)
    default = model.recover(features, mask, SamplingOptions(seed=0))
    eager = model.recover(features, mask, SamplingOptions(sampler="distilled", steps=1, seed=0, backend="eager"))
    teacher = model.recover(features, mask, SamplingOptions(sampler="heun", steps=opts.train_sampler_steps, seed=0))
    for name in ("text", "audio"):
        assert torch.isfinite(default[name]).all()
        torch.testing.assert_close(default[name], eager[name], atol=1e-4, rtol=1e-4)   # traced == eager
        assert not torch.allclose(default[name], teacher[name])                       # the student, not Heun


def test_loading_the_shipped_live_imder_traces_its_networks_before_the_first_window():
    from imer_core.live.models import ModelBank

    path = shipped_checkpoints().get("imder")
    if path is None:
        pytest.skip("no shipped live IMDer checkpoint (assets/models/live_imder.pt)")
    model = ModelBank({"imder": path}).get("imder").model
    assert len(model._traced) == 6   # 3 students and 3 refiners, traced for batch-1 windows at load time
