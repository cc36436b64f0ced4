"""Recovery latency per sample (batch 1) of every registered method, default and fastest settings.

Builds each method with its MOSI reference configuration (``<method>_mosi``
experiment, MOSI dims 768/5/20, length 50) — latency does not depend on the
weights, so no training is needed — and times ``model.recover`` on one sample
for each of the six missing patterns.  Writes a section of ``docs/benchmarks.md``.

    python benchmarks/bench_methods.py [--device cpu] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_imder import replace_section  # noqa: E402

from imer_core.methods.base import SamplingOptions  # noqa: E402
from imer_core.modalities import AVAILABLE_SUBSETS, MODALITIES, FeatureSpecs, mask_from_available  # noqa: E402
from training.distributed import torch_device  # noqa: E402
from training.experiment import load_experiment  # noqa: E402
from training.runner import build_model  # noqa: E402
from training.runs import machine_info  # noqa: E402

# (method, sampler, steps, label); steps None = the method's default
SETTINGS = (
    ("imder", "euler-maruyama", 100, "default (reference)"),
    ("imder", "heun", 10, "fast"),
    ("imder", "heun", 5, "fastest tested"),
    ("rohydr", "ddim", 50, "default"),
    ("rohydr", "ddim", 10, "fast"),
    ("rohydr", "ddim", 5, "fastest tested"),
    ("cmarr", "mean", None, "default = fastest (one flow pass)"),
)


def median_latency_ms(model, specs: FeatureSpecs, device: torch.device, sampling: SamplingOptions,
                      repeats: int) -> float:
    """Median ms of ``recover`` on one sample over the six missing patterns × ``repeats``."""
    features = {s.modality.value: torch.randn(1, s.seq_len, s.dim, device=device) for s in specs}
    times = []
    for subset in AVAILABLE_SUBSETS:
        if len(subset) == len(MODALITIES):
            continue
        mask = mask_from_available(subset, 1, device=device)
        model.recover(features, mask, sampling)  # warm-up
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model.recover(features, mask, sampling)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    device = torch_device(args.device)
    torch.manual_seed(0)
    specs = FeatureSpecs.from_dims((768, 5, 20), 50)
    lines = [f"## Recovery latency of all methods on {device.type.upper()} ({time.strftime('%Y-%m-%d')})", "",
             "Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()), "",
             "`model.recover` on one sample (batch 1), MOSI dims, reference configurations "
             "(`<method>_mosi` experiments), median over the six missing patterns × "
             f"{args.repeats} runs after a warm-up.", "",
             "| method | parameters (M) | sampler | steps | setting | ms per sample |", "|---|---|---|---|---|---|"]
    models = {}
    for method, sampler, steps, label in SETTINGS:
        if method not in models:
            models[method] = build_model(load_experiment(f"{method}_mosi"), specs).to(device).eval()
        model = models[method]
        ms = median_latency_ms(model, specs, device, SamplingOptions(sampler=sampler, steps=steps, seed=0),
                               args.repeats)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        lines.append(f"| {method} | {params:.2f} | {sampler} | {steps if steps else '–'} | {label} | {ms:.1f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "# Benchmarks\n\nWritten by the scripts in `benchmarks/`; each section names its machine.\n"
    prefix = f"## Recovery latency of all methods on {device.type.upper()}"
    out.write_text(replace_section(out.read_text() if out.exists() else header, prefix, text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
