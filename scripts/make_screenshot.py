#!/usr/bin/env python3
"""Regenerate the screenshots in ``docs/``: the running desktop app on the demo clip.

Runs the real window (real pipeline: PyAV decoding, MediaPipe face mesh,
voice features, Whisper speech recognition, the shipped models in
``assets/models`` or ``--checkpoint`` files) on ``assets/demo/demo_clip.mp4``
at 1280x720 and grabs the screen in three states:

* ``screenshot_loading.png`` -- right after the start, while the models load;
* ``screenshot.png`` -- steady state: ``--seconds`` after the first prediction;
* ``screenshot_vision_off.png`` -- vision switched off, recovered by the
  method, with the no-recovery comparison beside it.

Without a display it re-runs itself under ``xvfb-run`` (apt-get install
xvfb).  Settings go to a temporary folder, so the user's saved layout and
devices play no part.

    python scripts/make_screenshot.py                          # -> docs/screenshot*.png
    python scripts/make_screenshot.py --seconds 25 --out-dir /tmp/shots
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

SIZE = (1280, 720)
#: Longest wait for the models to load and the first prediction (seconds).
FIRST_PREDICTION_TIMEOUT_S = 180.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", default=str(REPO / "docs"), help="folder for the PNG files")
    parser.add_argument("--seconds", type=float, default=22.0,
                        help="how long the app runs after its first prediction before the steady-state grab "
                             "(longer: more timeline and transcript)")
    parser.add_argument("--vision-off-seconds", type=float, default=12.0,
                        help="how long vision is off before that grab")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                        help="live checkpoint (repeat); default: the shipped assets/models")
    parser.add_argument("--method", default=None, help="recovery method to show")
    parser.add_argument("--source", default=str(REPO / "assets" / "demo" / "demo_clip.mp4"),
                        help="media file to play")
    return parser.parse_args(argv)


def rerun_under_xvfb() -> int:
    """Run this script again inside a virtual X server."""
    if shutil.which("xvfb-run") is None:
        print("no DISPLAY and no xvfb-run: install xvfb or run on a desktop", file=sys.stderr)
        return 2
    screen = f"-screen 0 {SIZE[0] + 160}x{SIZE[1] + 160}x24"
    command = ["xvfb-run", "-a", "-s", screen, sys.executable, *sys.argv]
    return subprocess.call(command, env={**os.environ, "IMER_SCREENSHOT_XVFB": "1"})


def wait(app, seconds: float, done=lambda: False) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not done():
        app.processEvents()
        time.sleep(0.02)


def grab(window, out: Path) -> None:
    """The window's pixels as the X server shows them (the widget's own rendering as a fallback)."""
    screen = window.screen()
    frame = window.frameGeometry()
    pixmap = screen.grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
    if pixmap.isNull() or pixmap.toImage().allGray():
        pixmap = window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(out), "PNG"):
        raise SystemExit(f"could not write {out}")


def run(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.gui.window import MainWindow
    from imer_core.live.parts import SourceSpec
    from imer_core.live.pipeline import PipelineConfig

    app = QApplication.instance() or QApplication([sys.argv[0]])
    config = PipelineConfig(sources=SourceSpec(args.source, loop=True), checkpoints=tuple(args.checkpoint),
                            method=args.method)
    out = Path(args.out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "imer.ini"), QSettings.Format.IniFormat)
        window = MainWindow(config, settings=settings, list_devices=False)
        window.resize(*SIZE)
        window.move(0, 0)
        window.show()
        window.start()
        try:
            loading = lambda: any(v.state == "loading" for v in window.modalities.views.values())  # noqa: E731
            wait(app, 30.0, loading)
            wait(app, 1.0)
            if loading():
                grab(window, out / "screenshot_loading.png")
                print(f"wrote {out / 'screenshot_loading.png'}")
            else:
                print("the models loaded before the loading state could be grabbed", file=sys.stderr)
            wait(app, FIRST_PREDICTION_TIMEOUT_S, lambda: window.emotions.predictions_shown > 0)
            if window.emotions.predictions_shown == 0:
                print(f"no prediction within {FIRST_PREDICTION_TIMEOUT_S:.0f} s: nothing to show", file=sys.stderr)
                return 1
            wait(app, args.seconds)
            grab(window, out / "screenshot.png")
            print(f"wrote {out / 'screenshot.png'}")
            window.modalities.switches["vision"].click()
            wait(app, args.vision_off_seconds)
            latest = window.pipeline.latest_result
            if latest is None or "vision" not in latest.recovered or latest.comparison is None:
                print("vision was not recovered with a comparison: not grabbing", file=sys.stderr)
                return 1
            grab(window, out / "screenshot_vision_off.png")
            print(f"wrote {out / 'screenshot_vision_off.png'}")
        finally:
            window.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("IMER_SCREENSHOT_XVFB"):
        return rerun_under_xvfb()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
