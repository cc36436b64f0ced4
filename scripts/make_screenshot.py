#!/usr/bin/env python3
"""Regenerate ``docs/screenshot.png``: the running desktop app on the demo clip.

Runs the real window (real pipeline: PyAV decoding, MediaPipe face mesh,
voice features, Whisper speech recognition, the shipped models in
``assets/models`` or ``--checkpoint`` files) on ``assets/demo/demo_clip.mp4``
for ``--seconds`` and grabs the screen.  Without a display it re-runs itself
under ``xvfb-run`` (apt-get install xvfb).  Settings go to a temporary
folder, so the user's saved layout and devices play no part.

    python scripts/make_screenshot.py                 # -> docs/screenshot.png
    python scripts/make_screenshot.py --seconds 25 --out /tmp/shot.png
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

SIZE = (1280, 860)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"), help="PNG to write")
    parser.add_argument("--seconds", type=float, default=22.0,
                        help="how long the app runs before the grab (longer: more timeline and transcript)")
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
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "imer.ini"), QSettings.Format.IniFormat)
        window = MainWindow(config, settings=settings, list_devices=False)
        window.resize(*SIZE)
        window.move(0, 0)
        window.show()
        window.start()
        try:
            wait(app, args.seconds)
            grab(window, Path(args.out))
        finally:
            window.close()
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("IMER_SCREENSHOT_XVFB"):
        return rerun_under_xvfb()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
