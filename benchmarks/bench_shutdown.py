"""Shutdown and signal figures of ``imer run`` on the demo clip (docs/robustness.md).

For each case an ``imer run --source assets/demo/demo_clip.mp4 --loop
--record-video`` process gets a signal at a chosen moment; printed: the time
from the signal to the process's exit, the exit code, the rows written, how
long before the signal the last row was written (what a kill loses), how much
of the raw video survives, and session.json's ``clean_shutdown`` -- with the
load average beside each line.  Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/bench_shutdown.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "assets" / "demo" / "demo_clip.mp4"


def _last_row_wall(folder: Path) -> float | None:
    path = folder / "predictions.jsonl"
    if not path.exists():
        return None
    last = None
    for line in path.read_text().splitlines():
        try:
            last = json.loads(line)["t_wall"]
        except (ValueError, KeyError):
            pass
    return last


def _video_seconds(path: Path) -> float | None:
    try:
        import av
        with av.open(str(path)) as container:
            return max((f.time for f in container.decode(video=0)), default=None)
    except Exception:  # noqa: BLE001 - an unreadable file is a result here
        return None


def case(name: str, signum: int, when: str, delay_s: float = 3.0, second: bool = False) -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-shutdown-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "run", "--source",
                                str(CLIP), "--loop", "--record-video", "--quiet", "--out", str(out)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    if when == "starting":
        time.sleep(delay_s)
    else:  # "loading": the file waits for the models; "running": rows are being written
        while time.monotonic() - started < 300:
            folders = list(out.glob("session-*"))
            if when == "running" and folders and (folders[0] / "video.mkv").exists():
                time.sleep(delay_s)
                break
            if when == "loading" and time.monotonic() - started > delay_s:
                break
            time.sleep(0.05)
    t_signal, wall_signal = time.monotonic(), time.time()
    process.send_signal(signum)
    if second:  # after the first has been handled (two signals in a row can arrive as one)
        time.sleep(0.3)
        process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    exit_s = time.monotonic() - t_signal
    folders = sorted(out.glob("session-*"))
    rows, lost_s, clean, video = 0, None, None, None
    if folders:
        folder = folders[0]
        rows = len((folder / "predictions.jsonl").read_text().splitlines())
        last = _last_row_wall(folder)
        lost_s = None if last is None else wall_signal - last
        clean = json.loads((folder / "session.json").read_text()).get("clean_shutdown")
        if (folder / "video.mkv").exists():
            video = _video_seconds(folder / "video.mkv")
    load = os.getloadavg()
    print(f"{name:<34} exit {exit_s:5.2f} s  code {process.returncode:>4}  rows {rows:>4}  "
          f"last row {'-' if lost_s is None else f'{lost_s:.2f} s'} before the signal  "
          f"video {'-' if video is None else f'{video:.2f} s'}  folder {'yes' if folders else 'no'}  "
          f"clean_shutdown {clean}  | load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if process.returncode not in (0, 130, 143, -9):
        print(err[-2000:])


def main() -> None:
    print(f"imer run --source {CLIP.name} --loop --record-video; cpu count {os.cpu_count()}")
    if "--second-only" in sys.argv:
        case("SIGINT twice while running", signal.SIGINT, "running", 6.0, second=True)
        return
    case("SIGINT while importing (1.5 s)", signal.SIGINT, "starting", 1.5)
    case("SIGINT while the models load", signal.SIGINT, "loading", 8.0)
    case("SIGINT while running (6 s in)", signal.SIGINT, "running", 6.0)
    case("SIGTERM while running (6 s in)", signal.SIGTERM, "running", 6.0)
    case("SIGINT twice while running", signal.SIGINT, "running", 6.0, second=True)
    case("SIGKILL while running (6 s in)", signal.SIGKILL, "running", 6.0)


if __name__ == "__main__":
    main()
