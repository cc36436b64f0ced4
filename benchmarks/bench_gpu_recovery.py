"""IMDer recovery latency on a GPU (issue 16's GPU targets), as one short run for a lent device.

    python benchmarks/bench_gpu_recovery.py [--device cuda] [--rounds 20] [--json out.json]

IMDer with MOSI dims (text 768, audio 5, vision 20; length 50) and a one-step distilled
generator, **untrained** weights: latency does not depend on the weights, and no data or
training is needed on the device.  At batch 1, with one modality missing (l,a → v) and two
missing (l → a,v), ``model.recover`` is timed for

* the faithful Euler–Maruyama sampler, 100 steps, eager and ``cuda-graph`` backends;
* Heun, 5 steps, eager and ``cuda-graph``;
* the distilled generator, 1 step, eager and ``cuda-graph``,

the settings taking turns round by round, each call between ``torch.cuda.synchronize()``
calls; the median and p95 in ms are printed with the device name and the load average.
The issue's targets: the 100-step faithful sampler ≥ 20× faster than the 2.0 s per sample
measured on an H100 before this work, the distilled generator ≤ 5 ms.

On a machine without CUDA it runs on the CPU (the ``cuda-graph`` backend falls back to
eager there), which is how it is tested; figures from a CPU run do not answer the GPU
targets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imer_core.config import ModelConfig  # noqa: E402
from imer_core.methods.base import SamplingOptions  # noqa: E402
from imer_core.modalities import FeatureSpec, FeatureSpecs, Modality, mask_from_available  # noqa: E402
from imer_core.registry import create_model  # noqa: E402

PATTERNS = {"one missing (l,a → v)": ("text", "audio"), "two missing (l → a,v)": ("text",)}
SETTINGS = (("euler-maruyama", 100, "eager"), ("euler-maruyama", 100, "cuda-graph"), ("heun", 5, "eager"),
            ("heun", 5, "cuda-graph"), ("distilled", 1, "eager"), ("distilled", 1, "cuda-graph"))
REFERENCE_H100_S = 2.0   # the reference sampler per sample on a lent H100 before issue 16 (launch-bound)


def mosi_imder(device: torch.device) -> torch.nn.Module:
    """An untrained IMDer at MOSI dims with a one-step distilled generator, in eval mode on ``device``."""
    specs = FeatureSpecs(FeatureSpec(Modality.TEXT, 768, 50), FeatureSpec(Modality.AUDIO, 5, 50),
                         FeatureSpec(Modality.VISION, 20, 50))
    config = ModelConfig(method="imder", specs=specs, method_options={"distill_steps": 1})
    torch.manual_seed(0)
    return create_model(config).to(device).eval()


def time_settings(model: torch.nn.Module, device: torch.device, rounds: int,
                  settings: tuple[tuple[str, int, str], ...] = SETTINGS) -> list[dict]:
    """Median and p95 ms of ``model.recover`` per pattern and setting (batch 1, interleaved rounds)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    specs = model.config.specs
    features = {s.modality.value: torch.randn(1, s.seq_len, s.dim, device=device) for s in specs}
    rows = []
    for pattern, available in PATTERNS.items():
        mask = mask_from_available(available, 1).to(device)
        options = {s: SamplingOptions(sampler=s[0], steps=s[1], backend=s[2]) for s in settings}
        for setting in settings:                      # warm-up: traces, graph capture, caches
            model.recover(features, mask, options[setting])
        sync()
        times: dict[tuple, list[float]] = {s: [] for s in settings}
        for _ in range(rounds):
            for setting in settings:
                sync()
                start = time.perf_counter()
                model.recover(features, mask, options[setting])
                sync()
                times[setting].append(1000 * (time.perf_counter() - start))
        base = statistics.median(times[settings[0]])
        for setting in settings:
            ms = sorted(times[setting])
            median, p95 = statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
            rows.append({"pattern": pattern, "sampler": setting[0], "steps": setting[1], "backend": setting[2],
                         "median_ms": median, "p95_ms": p95, "times_faster_than_em100_eager": base / median,
                         "load_1min": os.getloadavg()[0]})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", default="", help="also write the rows and the machine to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (no GPU: not a GPU measurement)"
    print(f"device: {name}; torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = time_settings(mosi_imder(device), device, args.rounds)
    print("| pattern | sampler | steps | backend | median ms | p95 ms | × faster than EM-100 eager | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pattern']} | {r['sampler']} | {r['steps']} | {r['backend']} | {r['median_ms']:.2f} | "
              f"{r['p95_ms']:.2f} | {r['times_faster_than_em100_eager']:.1f} | {r['load_1min']:.1f} |")
    em100 = min(r["median_ms"] for r in rows if r["sampler"] == "euler-maruyama" and r["pattern"].startswith("one"))
    distilled = min(r["median_ms"] for r in rows if r["sampler"] == "distilled" and r["pattern"].startswith("one"))
    print(f"EM-100 best backend, one missing: {em100:.1f} ms = {1000 * REFERENCE_H100_S / em100:.1f}x faster than "
          f"the {REFERENCE_H100_S:.1f} s reference (target >= 20x); distilled: {distilled:.2f} ms (target <= 5 ms)")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
