"""Per-face cost of the face network path: aligned crop + network, batch 1, one torch thread.

    python benchmarks/bench_face_net.py [--net assets/models/face_net.pt] [--runs 300]

Prints the median and 95th percentile of the crop (from a 640x480 frame with
landmarks of a face) and of the network forward, beside ``os.getloadavg()``:
the machine is shared, so the figures move with the load.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default=None, help="face-network file (default assets/models/face_net.pt)")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from imer_core.features.face_crop import aligned_face_crop
    from imer_core.live.face_net import FaceNetRunner

    runner = FaceNetRunner(args.net)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    landmarks = np.c_[rng.uniform(0.35, 0.65, (478, 2)), np.zeros(478)]
    landmarks[[33, 133]] = [0.43, 0.42, 0], [0.47, 0.42, 0]
    landmarks[[362, 263]] = [0.53, 0.42, 0], [0.57, 0.42, 0]
    crop_ms, net_ms = [], []
    for i in range(args.runs + 20):
        t0 = time.perf_counter()
        crop = aligned_face_crop(frame, landmarks)
        t1 = time.perf_counter()
        runner(crop)
        t2 = time.perf_counter()
        if i >= 20:
            crop_ms.append(1e3 * (t1 - t0))
            net_ms.append(1e3 * (t2 - t1))
    size = os.path.getsize(runner.path)
    params = sum(p.numel() for p in runner.model.parameters())
    for name, values in (("crop (640x480 frame)", crop_ms), ("face network", net_ms),
                         ("crop + network", [a + b for a, b in zip(crop_ms, net_ms)])):
        print(f"{name}: median {np.median(values):.2f} ms, p95 {np.percentile(values, 95):.2f} ms "
              f"(batch 1, 1 thread, {args.runs} runs; load average {os.getloadavg()})")
    print(f"file {runner.path}: {size} bytes, {params} parameters")


if __name__ == "__main__":
    main()
