"""The trainer runs under torchrun with DistributedDataParallel (2 CPU processes, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "training.cli", "train", "--config", "quick_synthetic", "--protocol", "batch:0.3",
           "--out", str(out), "--no-progress", "--device", "cpu",
           "--set", "data.synthetic_sizes=[16, 8, 8]", "--set", "train.max_epochs=1",
           "--set", "train.pretrain_max_epochs=1", "--set", "model.options.sampler_steps=1",
           "--set", "model.options.train_sampler_steps=1", "--set", "train.batch_size=8",
           # a small network and 16 training rows (one step a stage per process): the test is about the two
           # processes, not the model (3 processes; 29.6 -> 17.3 CPU-s with the metrics free of sklearn)
           "--set", "model.nlevels=1", "--set", "model.num_heads=2",
           "--set", "model.options.score_channels=[32, 32]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["MAE"] > 0
    # the trainer checks after every stage that both replicas hold identical weights
    assert "diverged" not in proc.stderr
    assert (out / "model.pt").is_file()
