"""Live pipeline benchmark: a 60 s 640x480 30 fps clip with speech, real extractors, real time.

Generates the clip (animated public-domain portrait + espeak-ng sentences, see
``training.demo_clip``), plays it through :class:`LivePipeline` at real
time with every modality on, and reports per-stage latency p50/p95, sustained
face-feature fps, prediction rate, ASR real-time factor, end-to-end latency
(frame capture → result) and peak memory.  Writes a section of
``docs/benchmarks.md``.

    python benchmarks/bench_live.py --checkpoint assets/models/live_cmarr.pt [--method cmarr]

``--disable audio,text --threads 1 --methods cmarr,imder,cmarr,imder`` measures the
recovery with one modality available (here vision), the methods taking turns in one
process; such a run writes its own section ("## Live pipeline, ... only").
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_imder import replace_section  # noqa: E402

from imer_core.live.engine import LATENCY_STAGES  # noqa: E402
from imer_core.live.parts import SourceSpec  # noqa: E402
from imer_core.live.pipeline import LivePipeline, PipelineConfig, disabled_from_text  # noqa: E402
from imer_core.modalities import MODALITIES, Modality  # noqa: E402
from training.demo_clip import DEMO_SENTENCES, make_clip  # noqa: E402
from training.runs import machine_info  # noqa: E402

STAGES = LATENCY_STAGES


def make_benchmark_clip(path: Path, duration_s: float) -> Path:
    if not path.is_file():
        sentences = list(DEMO_SENTENCES) * (3 if duration_s >= 60 else 1)
        make_clip(path, sentences, duration_s=duration_s, lead_in_s=1.0, gap_s=1.6)
    return path


def _enabled_streams_ended(pipeline: LivePipeline) -> bool:
    """Every stream of the file that is still switched on has ended (a switched-off stream never ends)."""
    streams = [s for s in (pipeline.video, pipeline.audio) if not s.status.absent]
    running = [s for s in streams if s.status.reason != "stopped"]
    return bool(running) and all(s.status.ended for s in running)


def run_once(clip: Path, checkpoints: list[str], method: str | None, steps: int | None, device: str,
             disabled: frozenset[Modality] = frozenset()) -> dict:
    config = PipelineConfig(sources=SourceSpec(str(clip)), checkpoints=tuple(checkpoints), method=method,
                            sampler_steps=steps, device=device, disabled=disabled)
    pipeline = LivePipeline(config)
    results = []
    pipeline.add_listener(results.append)
    if pipeline.engine.method is not None:  # load (and warm up) the recovery model before the clip plays
        pipeline.engine.bank.get(pipeline.engine.method)
    load_before = os.getloadavg()[0]
    pipeline.start()
    while pipeline.waiting_for_models:  # the file plays once the models have loaded: time from there
        time.sleep(0.05)
    started = time.monotonic()
    while not pipeline.ended and not _enabled_streams_ended(pipeline) and time.monotonic() - started < 600:
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    frames = pipeline.face_worker.frames_processed
    rtf = list(pipeline.speech_worker.real_time_factors)
    transcripts = pipeline.transcripts()
    live_model = getattr(pipeline.engine, "_model", None)           # the model the engine ran
    sampler_name = getattr(getattr(getattr(live_model, "model", None), "options", None), "sampler", None)
    pipeline.stop()
    predicted = [r for r in results if r.probabilities is not None]
    lat = {k: np.array([r.latency[k] for r in predicted if k in r.latency]) for k in STAGES}
    return {"sampler": sampler_name, "elapsed": elapsed, "frames": frames, "predictions": len(predicted),
            "results": len(results),
            "latency": lat, "rtf": rtf, "transcripts": len(transcripts), "method": pipeline.engine.method,
            "load": (load_before, os.getloadavg()[0]),
            "complete": sum(1 for r in predicted if not r.recovered),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def heading(disabled: frozenset[Modality]) -> str:
    """Section heading of a run: the full pipeline, or the one with ``disabled`` modalities switched off."""
    if not disabled:
        return "## Live pipeline on a 60 s clip"
    return "## Live pipeline, " + "+".join(m.value for m in MODALITIES if m not in disabled) + " only"


def section(runs: list[dict], clip: Path, disabled: frozenset[Modality] = frozenset(),
            threads: int | None = None) -> str:
    info = machine_info()
    switched = (f"{', '.join(m.value for m in MODALITIES if m in disabled)} switched off (so "
                f"{', '.join(m.value for m in MODALITIES if m not in disabled)} is the only modality available and "
                "the others are recovered)" if disabled else "every modality on")
    lines = [f"{heading(disabled)} ({info['processor']}, {os.cpu_count()} cores)", "",
             f"`python benchmarks/bench_live.py` — clip `{clip.name}`: 640x480 at 30 fps with espeak-ng speech, "
             "played at real time through `LivePipeline` (MediaPipe face features, voice features, faster-whisper "
             f"tiny.en, MiniLM, the live checkpoint), {switched}; torch threads: "
             f"{threads if threads else 'default'}. Latencies in ms (p50 / p95). "
             "End to end = capture time of the newest frame (or audio) in the window → result. Targets: face ≥ 15 "
             "fps, predictions ≥ 5/s, end-to-end p95 ≤ 150 ms (ASR excluded), ASR RTF ≤ 0.3.", "",
             "| method | sampler | face fps | predictions/s | " + " | ".join(STAGES) + " | ASR RTF (median / max) | "
             "utterances | peak RSS MB | load avg (start/end) |",
             "|---" * (len(STAGES) + 8) + "|"]
    for r in runs:
        cells = [r["method"], str(r.get("sampler") or "—"), f"{r['frames'] / r['elapsed']:.1f}",
                 f"{r['predictions'] / r['elapsed']:.2f}"]
        for k in STAGES:
            v = r["latency"][k]
            cells.append(f"{np.percentile(v, 50):.1f} / {np.percentile(v, 95):.1f}" if len(v) else "—")
        rtf = r["rtf"]
        cells.append(f"{np.median(rtf):.3f} / {np.max(rtf):.3f}" if rtf else "—")
        cells += [str(r["transcripts"]), f"{r['peak_rss_mb']:.0f}", f"{r['load'][0]:.1f} / {r['load'][1]:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"torch {info['torch']}, Python {info['python']}, CUDA: {info['cuda']}. Each run is a separate "
              "pipeline in one process (peak RSS is the process maximum so far)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", default=[], help="live checkpoint(s); default: shipped")
    parser.add_argument("--methods", default="", help="comma-separated methods to run (default: the default one)")
    parser.add_argument("--sampler-steps", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--clip", default=str(ROOT / "runs" / "bench" / "live_60s.mp4"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--disable", default="", help="modalities to switch off, e.g. audio,text")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    disabled = disabled_from_text(args.disable)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    clip = Path(args.clip)
    clip.parent.mkdir(parents=True, exist_ok=True)
    make_benchmark_clip(clip, args.duration)
    runs = []
    for method in [m for m in args.methods.split(",") if m] or [None]:
        run = run_once(clip, args.checkpoint, method, args.sampler_steps, args.device, disabled)
        print(run["method"], {k: v for k, v in run.items() if k not in ("latency", "rtf")}, flush=True)
        runs.append(run)
    text = section(runs, clip, disabled, args.threads)
    print(text)
    out = Path(args.out)
    document = out.read_text() if out.is_file() else "# Benchmarks\n"
    out.write_text(replace_section(document, heading(disabled), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
