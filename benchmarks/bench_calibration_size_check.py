"""Peak RSS of ``load_calibration`` on a 1 MB ``calibration.npz`` whose text array holds 1 GiB of zeros.

The loader reads the declared array sizes from the ``.npy`` headers and refuses the file
before reading any array (limit ``MAX_CALIBRATION_BYTES``).  The second run raises the
limit, to show what reading the file would cost.  Each run is a fresh interpreter; the
load average is printed beside each figure.

    python benchmarks/bench_calibration_size_check.py
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N, STEPS, DIM = 6, 20, 2_236_963  # 6 * 20 * DIM * 4 bytes: just over 1 GiB of float32

CHILD = """
import resource, sys, time
from imer_core.live import calibration
if sys.argv[1] == "limit raised":
    calibration.MAX_CALIBRATION_BYTES = 1 << 40
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
try:
    calibration.load_calibration([sys.argv[2]])
    outcome = "loaded"
except calibration.CalibrationFileError as exc:
    outcome = "refused: " + str(exc).split(": ", 1)[1]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{sys.argv[1]}: peak RSS +{after - before:.0f} MiB ({before:.0f} -> {after:.0f}), "
      f"{time.perf_counter() - t0:.2f} s, {outcome}")
"""


def write_bomb(path: Path) -> None:
    """A valid calibration file whose text member deflates 1 GiB of zeros into about 1 MB."""
    rng = np.random.default_rng(0)
    small = {"audio": rng.normal(size=(N, STEPS, 4)).astype(np.float32),
             "vision": rng.normal(size=(N, STEPS, 5)).astype(np.float32),
             "label": np.arange(N, dtype=np.int64) % 7, "step": np.arange(N, dtype=np.int64),
             "available": np.ones((N, 3), bool), "labels": np.asarray(list("abcdefg"))}
    np.savez_compressed(path, **small)  # type: ignore[arg-type, unused-ignore]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (N, STEPS, DIM)})
    left = N * STEPS * DIM * 4
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("text.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            while left > 0:
                member.write(zeros[:min(left, len(zeros))])
                left -= len(zeros)


def main() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "calibration.npz"
        write_bomb(path)
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB on disk, text array {N * STEPS * DIM * 4 / 2**30:.2f} "
              "GiB declared and stored")
        for mode in ("as shipped", "limit raised"):
            done = subprocess.run([sys.executable, "-c", CHILD, mode, folder], capture_output=True, text=True,
                                  env=env, check=False)
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"{(done.stdout or done.stderr[-400:]).strip()}  | load average {load}", flush=True)


if __name__ == "__main__":
    main()
