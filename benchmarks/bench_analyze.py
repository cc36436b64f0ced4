#!/usr/bin/env python3
"""Throughput of ``imer analyze`` per input kind on this machine (CPU), written to docs/benchmarks.md.

Inputs are generated: copies of matplotlib's grace_hopper.jpg (a face,
512x600), an espeak-ng sentence (~2.5 s WAV), lines of text, and the shipped
20 s demo clip (640x480 @ 30 fps).  Each kind is analysed in its own
:class:`imer_core.analysis.runner.Analyzer` after a warm-up run on one input that
loads the models; the figures are the wall-clock time of the full run, with the
1-minute load average before and after (other processes share the CPU).

    python benchmarks/bench_analyze.py [--images 40] [--clips 10] [--texts 500] [--videos 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_imder import replace_section  # noqa: E402

from imer_core.analysis import AnalysisOptions, collect_inputs  # noqa: E402
from imer_core.analysis.runner import Analyzer  # noqa: E402
from imer_core.assets import demo_clip_path  # noqa: E402
from training.demo_clip import speak  # noqa: E402

HEADING = "## imer analyze throughput"


def _timed(analyzer: Analyzer, paths: list[Path], texts: list[str]) -> tuple[float, int, int, float, float]:
    """(seconds, rows, rows with a prediction, load before, load after) of one run."""
    inputs = collect_inputs(paths, texts).inputs
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    rows = list(analyzer.run(inputs))
    seconds = time.perf_counter() - start
    return seconds, len(rows), sum(r.probabilities is not None for r in rows), load_before, os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    from matplotlib import cbook

    work = Path(tempfile.mkdtemp(prefix="imer-bench-analyze-"))
    kinds: dict[str, tuple[list[Path], list[str], float]] = {}
    face = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    images = [shutil.copy(face, work / f"face{i}.jpg") for i in range(args.images)]
    kinds["images (512x600 JPEG, face)"] = ([Path(p) for p in images], [], 0.0)
    speak("I am so happy to see you today.", work / "speech0.wav")
    clips = [work / "speech0.wav"] + [Path(shutil.copy(work / "speech0.wav", work / f"speech{i}.wav"))
                                      for i in range(1, args.clips)]
    kinds["audio clips (~2.5 s espeak-ng WAV, voice + speech recognition)"] = (clips, [], 0.0)
    kinds["texts (one sentence each)"] = ([], [f"sentence {i}: what a lovely day it is" for i in range(args.texts)],
                                          0.0)
    videos = [Path(shutil.copy(demo_clip_path(), work / f"clip{i}.mp4")) for i in range(args.videos)]
    kinds["videos (20 s, 640x480 @ 30 fps, 1 s hop, every modality)"] = (videos, [], 20.0 * args.videos)
    kinds["videos, --modalities audio,vision (no speech recognition)"] = (videos, [], 20.0 * args.videos)
    lines = [f"{HEADING} ({date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores)", "",
             "`python benchmarks/bench_analyze.py`: wall-clock time of the analysis loop on generated inputs after a "
             "warm-up run (models loaded), CM-ARR, CPU with `OMP_NUM_THREADS=1`, default options "
             "(batch 32, video at 10 frames/s; 40 copies of one image, 10 of one clip). "
             "Other processes shared the CPU: the 1-minute load average is given before/after each run.", "",
             "| inputs | rows (predicted) | seconds | per second | real-time factor | load before/after |",
             "|---|---|---|---|---|---|"]
    for name, (paths, texts, media_s) in kinds.items():
        modalities = ("audio", "vision") if "no speech" in name else ("text", "audio", "vision")
        analyzer = Analyzer(AnalysisOptions(modalities=modalities, device="cpu"))
        _timed(analyzer, paths[:1], texts[:1])  # warm-up: loads the models of this kind
        seconds, rows, predicted, before, after = _timed(analyzer, paths, texts)
        analyzer.close()
        count = len(paths) + len(texts)
        rtf = f"{seconds / media_s:.2f}" if media_s else "-"
        lines.append(f"| {count} {name} | {rows} ({predicted}) | {seconds:.1f} | {count / seconds:.2f} | {rtf} | "
                     f"{before:.1f} / {after:.1f} |")
        print(lines[-1], flush=True)
    lines += ["", "Real-time factor: analysis seconds per second of media (below 1: faster than playing it)."]
    shutil.rmtree(work)
    if not args.no_write:
        out = Path(args.out)
        out.write_text(replace_section(out.read_text(encoding="utf-8"), HEADING, "\n".join(lines)), encoding="utf-8")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
