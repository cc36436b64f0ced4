"""benchmarks/bench_gpu_recovery.py, the one-shot script for a lent GPU, runs here on the CPU (issue 16)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_gpu_recovery import PATTERNS, time_settings  # noqa: E402


def test_every_pattern_and_backend_is_timed_with_the_cuda_graph_backend_falling_back_on_cpu(small_imder):
    settings = (("heun", 2, "eager"), ("heun", 2, "cuda-graph"))
    rows = time_settings(small_imder, torch.device("cpu"), rounds=2, settings=settings)
    assert [(r["pattern"], r["backend"]) for r in rows] == [(p, b) for p in PATTERNS for _, _, b in settings]
    assert all(r["p95_ms"] >= r["median_ms"] > 0 for r in rows)
    assert all(r["times_faster_than_em100_eager"] > 0 for r in rows)
