"""Speed of the voice features: one 2-second window, median of repeated runs, with the load average.

Moved out of the tests (a wall-clock assertion fails on a loaded machine).  The live
pipeline extracts one window per hop, so this must stay well under the hop (0.5 s);
the target on an idle core is under 50 ms.

    python benchmarks/bench_voice_features.py --repeats 21
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR = 16000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the audio window")
    args = parser.parse_args(argv)
    from imer_core.features.voice import VoiceFeatureExtractor

    extractor = VoiceFeatureExtractor()
    audio = (0.1 * np.random.default_rng(3).standard_normal(int(args.seconds * SR))).astype(np.float32)
    extractor.extract(audio)  # warm-up
    load_before = os.getloadavg()[0]
    timings = []
    for _ in range(args.repeats):
        begin = time.perf_counter()
        extractor.extract(audio)
        timings.append(time.perf_counter() - begin)
    load_after = os.getloadavg()[0]
    ms = 1000 * np.asarray(timings)
    print(f"voice features, {args.seconds:g} s window: median {np.median(ms):.1f} ms, min {ms.min():.1f} ms, "
          f"max {ms.max():.1f} ms over {args.repeats} runs (1-min load average {load_before:.2f} -> {load_after:.2f}, "
          f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
