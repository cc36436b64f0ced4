"""Live models: distilled IMDer against its Heun teacher, RoHyDR with fewer DDIM steps, CM-ARR.

    python benchmarks/bench_live_fast_recovery.py --cache runs/live_cache \\
        [--imder assets/models/live_imder.pt --rohydr ... --cmarr ...] [--windows 60]

One process, one torch thread, CPU:

* **quality**: macro-F1 / accuracy on the live test tuples (class-matched pseudo-pairs
  of FER2013, RAVDESS + EmoDB and MELD, see ``docs/live_model.md``) under the seven
  availability conditions, for every variant below, sampling seed 0, each model with
  its own stored feature normalisation;
* **latency**: what the live engine times as ``recovery`` (``model.recover`` under
  ``torch.inference_mode``, batch 1, no seed, as the engine calls it) and
  ``prediction`` (fusion + head on the recovered inputs), on real test windows
  with one modality available (``l``, ``a``, ``v``), the variants taking turns
  window by window; p50 / p95 per variant and the load average around each
  condition.

Variants: IMDer with the teacher sampler (Heun, the checkpoint's training steps) and
with its distilled generator (eager and traced), RoHyDR with DDIM at its default
steps and at 2 and 1 step(s) (the speed a distilled 1-step RoHyDR generator could
reach at most), and CM-ARR.  Writes ``runs/bench/live_fast_recovery.json`` and a
section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_imder import replace_section  # noqa: E402

from imer_core.checkpoint import load_checkpoint  # noqa: E402
from imer_core.methods.base import SamplingOptions  # noqa: E402
from imer_core.modalities import MODALITIES  # noqa: E402
from training.live.dataset import build_live_data  # noqa: E402
from training.live.evaluate import CONDITIONS, condition_mask, data_options_of, evaluate_conditions  # noqa: E402
from training.runs import machine_info  # noqa: E402

HEADING = "## Live models: distilled IMDer, RoHyDR DDIM steps, CM-ARR"
ONE_AVAILABLE = ("l", "a", "v")


@dataclass(frozen=True)
class Variant:
    """One model run with one sampling setting."""

    label: str
    method: str
    sampling: SamplingOptions


def variants(imder: Any, rohydr: Any) -> list[Variant]:
    """The compared settings (see module docstring)."""
    out = []
    if imder is not None:
        opts = imder.options
        out.append(Variant(f"IMDer {opts.train_sampler} {opts.train_sampler_steps} (teacher)", "imder",
                           SamplingOptions(sampler=opts.train_sampler, steps=opts.train_sampler_steps)))
        if opts.distill_steps:
            for backend in ("eager", "traced"):
                out.append(Variant(f"IMDer distilled {opts.distill_steps} ({backend})", "imder",
                                   SamplingOptions(sampler="distilled", steps=opts.distill_steps, backend=backend)))
    if rohydr is not None:
        default = int(rohydr.options.sampler_steps)
        for steps in sorted({default, 2, 1}, reverse=True):
            out.append(Variant(f"RoHyDR DDIM {steps}", "rohydr", SamplingOptions(sampler="ddim", steps=steps)))
    out.append(Variant("CM-ARR", "cmarr", SamplingOptions()))
    return out


def seeded(sampling: SamplingOptions) -> SamplingOptions:
    return SamplingOptions(sampling.sampler, sampling.steps, 0, sampling.backend)


def quality(models: dict[str, Any], runs: list[Variant], cache: str) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per variant and condition on the test tuples (each model with its stored normalisation)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for variant in runs:
        if variant.sampling.backend == "traced":
            continue                                            # same outputs as eager (tested), not re-scored
        model = models[variant.method]
        data = build_live_data(cache, model.data_options, model.checkpoint_metadata["feature_normalization"])
        sampling = seeded(variant.sampling)
        started = time.perf_counter()
        out[variant.label] = evaluate_conditions(lambda f, m, model=model, s=sampling: model.predict(f, m, s),
                                                 data.datasets["test"], progress=False, desc=variant.label)
        print(f"{variant.label}: {time.perf_counter() - started:.1f} s, macro-F1 "
              + " ".join(f"{c} {out[variant.label][c]['macro_f1'] * 100:.1f}" for c in CONDITIONS), flush=True)
    return out


@torch.inference_mode()
def latency(models: dict[str, Any], runs: list[Variant], cache: str, windows: int,
            warmup: int = 3) -> dict[str, Any]:
    """Recovery / prediction milliseconds per variant and one-available condition, variants interleaved."""
    any_model = next(iter(models.values()))
    test = build_live_data(cache, any_model.data_options,
                           any_model.checkpoint_metadata["feature_normalization"]).datasets["test"]
    index = np.linspace(0, len(test) - 1, windows).astype(int)
    out: dict[str, Any] = {"conditions": {}}
    for condition in ONE_AVAILABLE:
        times = {v.label: {"recovery": [], "prediction": []} for v in runs}
        load_before = os.getloadavg()[0]
        for n, i in enumerate(index):
            item = test[int(i)]
            features = {m.value: item[m.value].unsqueeze(0) for m in MODALITIES}
            mask = condition_mask(condition, 1)
            for variant in runs:
                model = models[variant.method]
                for _ in range(warmup if n == 0 else 0):
                    model.predict_from_recovered(model.recover(features, mask, variant.sampling))
                start = time.perf_counter()
                recovered = model.recover(features, mask, variant.sampling)
                mid = time.perf_counter()
                model.predict_from_recovered(recovered)
                end = time.perf_counter()
                times[variant.label]["recovery"].append(1e3 * (mid - start))
                times[variant.label]["prediction"].append(1e3 * (end - mid))
        out["conditions"][condition] = {"load": [load_before, os.getloadavg()[0]], "ms": times}
        summary = {k: f"{np.percentile(v['recovery'], 95):.1f}" for k, v in times.items()}
        print(f"latency {condition}: p95 recovery {summary} load {load_before:.1f}/{os.getloadavg()[0]:.1f}",
              flush=True)
    return out


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.1f}"


def section(runs: list[Variant], scores: dict, lat: dict, args: argparse.Namespace, info: dict) -> str:
    lines = [f"{HEADING} (CPU, {time.strftime('%Y-%m-%d')})", "",
             f"Machine: {info['processor']}, {os.cpu_count()} cores (shared with other jobs: see the load columns), "
             f"torch {info['torch']}, 1 thread. `python benchmarks/bench_live_fast_recovery.py --cache CACHE "
             f"--windows {args.windows}`; checkpoints {', '.join(Path(p).name for p in args.paths)}. Test "
             "tuples are class-matched pseudo-pairs of FER2013, RAVDESS + EmoDB and MELD "
             f"({args.cache_note}); not a paper reproduction.", "",
             "### Recovery latency with one modality available (batch 1, real test windows, variants interleaved)",
             "",
             "`recovery` is what the live engine times as its recovery stage (`model.recover`: projections, "
             "generation of the missing modalities, refiners); `prediction` is fusion + head on the recovered "
             "inputs. Milliseconds, p50 / p95 over the windows.", "",
             "| variant | " + " | ".join(f"{c}: recovery p50 / p95 | {c}: prediction p50" for c in ONE_AVAILABLE)
             + " |", "|---" * (1 + 2 * len(ONE_AVAILABLE)) + "|"]
    for v in runs:
        cells = [v.label]
        for c in ONE_AVAILABLE:
            ms = lat["conditions"][c]["ms"][v.label]
            cells += [f"{_pct(ms['recovery'], 50)} / {_pct(ms['recovery'], 95)}", _pct(ms["prediction"], 50)]
        lines.append("| " + " | ".join(cells) + " |")
    loads = ", ".join(f"{c} {lat['conditions'][c]['load'][0]:.1f}–{lat['conditions'][c]['load'][1]:.1f}"
                      for c in ONE_AVAILABLE)
    lines += ["", f"Load average (1 min) at the start and end of each condition: {loads}.", "",
              "### Macro-F1 on the test tuples (%, sampling seed 0)", "",
              "| variant | " + " | ".join(CONDITIONS) + " | mean |", "|---" * (len(CONDITIONS) + 2) + "|"]
    for label, rows in scores.items():
        values = [rows[c]["macro_f1"] * 100 for c in CONDITIONS]
        lines.append(f"| {label} | " + " | ".join(f"{x:.1f}" for x in values) + f" | {np.mean(values):.1f} |")
    lines += ["", "### Accuracy on the test tuples (%)", "",
              "| variant | " + " | ".join(CONDITIONS) + " | mean |", "|---" * (len(CONDITIONS) + 2) + "|"]
    for label, rows in scores.items():
        values = [rows[c]["accuracy"] * 100 for c in CONDITIONS]
        lines.append(f"| {label} | " + " | ".join(f"{x:.1f}" for x in values) + f" | {np.mean(values):.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, help="feature cache of imer-train extract-live")
    parser.add_argument("--cache-note", default="the full caches of imer-train extract-live",
                        help="how the cache was made (printed in the doc)")
    parser.add_argument("--imder", default=str(ROOT / "assets" / "models" / "live_imder.pt"))
    parser.add_argument("--rohydr", default=str(ROOT / "assets" / "models" / "live_rohydr.pt"))
    parser.add_argument("--cmarr", default=str(ROOT / "assets" / "models" / "live_cmarr.pt"))
    parser.add_argument("--windows", type=int, default=60, help="test windows per condition for the latency")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--json", default=str(ROOT / "runs" / "bench" / "live_fast_recovery.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.paths = [args.imder, args.rohydr, args.cmarr]
    models = {}
    for method, path in zip(("imder", "rohydr", "cmarr"), args.paths):
        model = load_checkpoint(path, map_location="cpu", expected_method=method).eval()
        model.data_options = data_options_of([Path(path)])
        models[method] = model
    runs = variants(models["imder"], models["rohydr"])
    info = machine_info()
    lat = latency(models, runs, args.cache, args.windows)
    scores = {} if args.skip_quality else quality(models, runs, args.cache)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"latency": lat, "quality": scores, "machine": info}, indent=1))
    text = section(runs, scores, lat, args, info)
    print(text)
    out = Path(args.out)
    out.write_text(replace_section(out.read_text() if out.is_file() else "# Benchmarks\n", HEADING, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
