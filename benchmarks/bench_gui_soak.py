"""GUI soak: the real desktop window on the demo clip (looping) for an hour, measured every minute.

Runs :class:`app.gui.window.MainWindow` with the real pipeline (PyAV, MediaPipe,
voice features, Whisper, the shipped models) under Xvfb (re-runs itself under
``xvfb-run`` when there is no display) and records, once a minute: resident
memory, ``sys.getrefcount(None)`` (the PySide6 6.12.0 bug lowered it with
every paint until Python aborted after ~10 minutes), predictions in that
minute, face fps and the load average.  Writes a CSV and a section of
``docs/benchmarks.md``.

    python benchmarks/bench_gui_soak.py --minutes 60 --csv runs/gui_soak.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (1600, 1000)
FIELDS = ("minute", "rss_mb", "none_refcount", "predictions", "predictions_per_s", "face_fps", "load_1min",
          "window_visible")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--csv", default=str(ROOT / "runs" / "gui_soak.csv"))
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="markdown file whose 'GUI soak' section is replaced ('' to skip)")
    parser.add_argument("--source", default=str(ROOT / "assets" / "demo" / "demo_clip.mp4"))
    parser.add_argument("--screenshot", default="", help="PNG of the window at the end of the run ('' to skip)")
    return parser.parse_args(argv)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(args: argparse.Namespace) -> int:
    import PySide6
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.gui.window import MainWindow
    from imer_core.live.parts import SourceSpec
    from imer_core.live.pipeline import PipelineConfig

    app = QApplication.instance() or QApplication([sys.argv[0]])
    config = PipelineConfig(sources=SourceSpec(args.source, loop=True))
    rows: list[dict] = []
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    counted = {"n": 0}
    with tempfile.TemporaryDirectory() as tmp, out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        settings = QSettings(str(Path(tmp) / "imer.ini"), QSettings.Format.IniFormat)
        window = MainWindow(config, settings=settings, list_devices=False)
        window.resize(*SIZE)
        window.show()
        window.start()
        window.pipeline.add_listener(lambda r: counted.__setitem__("n", counted["n"] + (r.probabilities is not None)))
        started = time.monotonic()
        next_sample, minute, last_count = started + 60.0, 0, 0
        try:
            while time.monotonic() - started < 60.0 * args.minutes:
                app.processEvents()
                time.sleep(0.01)
                if time.monotonic() < next_sample:
                    continue
                minute += 1
                next_sample += 60.0
                stats = window.pipeline.stats()
                n = counted["n"]
                row = {"minute": minute, "rss_mb": round(rss_mb(), 1), "none_refcount": sys.getrefcount(None),
                       "predictions": n - last_count, "predictions_per_s": round((n - last_count) / 60.0, 2),
                       "face_fps": round(float(stats["face_fps"] or 0.0), 1),
                       "load_1min": round(os.getloadavg()[0], 2), "window_visible": window.isVisible()}
                last_count = n
                rows.append(row)
                writer.writerow(row)
                handle.flush()
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            if args.screenshot:  # the window as the user sees it after the whole run
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                saved = window.grab().save(args.screenshot)
                print(f"screenshot {'saved to' if saved else 'NOT saved:'} {args.screenshot}", flush=True)
        finally:
            window.close()
    if args.doc and rows:
        from bench_imder import replace_section

        from training.runs import machine_info

        doc = Path(args.doc)
        section = soak_section(rows, args.minutes, PySide6.__version__, machine_info())
        doc.write_text(replace_section(doc.read_text() if doc.is_file() else "", "## GUI soak", section))
    return 0


def soak_section(rows: list[dict], minutes: float, binding: str, machine: dict) -> str:
    first, last = rows[0], rows[-1]
    lines = [
        f"## GUI soak ({minutes:.0f} minutes)",
        "",
        f"The desktop window on the demo clip (looping) under Xvfb at {SIZE[0]}x{SIZE[1]} for {minutes:.0f} "
        f"minutes, shipped default model, PySide6 {binding}, Python {sys.version.split()[0]}; "
        f"`benchmarks/bench_gui_soak.py`. Machine: {machine.get('processor', '?')}, {os.cpu_count()} cores "
        "(shared with other jobs during the run: see the load average column).",
        "",
        f"RSS {first['rss_mb']:.0f} → {last['rss_mb']:.0f} MB; None refcount {first['none_refcount']} → "
        f"{last['none_refcount']}; window visible at the end: {last['window_visible']}.",
        "",
        "| minute | RSS MB | None refcount | predictions | predictions/s | face fps | load avg (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['minute']} | {r['rss_mb']:.0f} | {r['none_refcount']} | {r['predictions']} | "
              f"{r['predictions_per_s']:.2f} | {r['face_fps']:.1f} | {r['load_1min']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def rerun_under_xvfb() -> int:
    if shutil.which("xvfb-run") is None:
        print("no DISPLAY and no xvfb-run: install xvfb or run on a desktop", file=sys.stderr)
        return 2
    screen = f"-screen 0 {SIZE[0] + 160}x{SIZE[1] + 160}x24"
    return subprocess.call(["xvfb-run", "-a", "-s", screen, sys.executable, *sys.argv],
                           env={**os.environ, "IMER_SOAK_XVFB": "1"})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("IMER_SOAK_XVFB"):
        return rerun_under_xvfb()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    return run(args)


if __name__ == "__main__":
    exit_code = main()
    # End like the app does (app/gui/main.py): the CSV and the doc are written and closed; native
    # threads of MediaPipe/PyAV still running would otherwise abort the interpreter's teardown
    # ("terminate called without an active exception", seen at the end of soak run 2).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
