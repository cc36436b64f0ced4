"""``imer`` without a subcommand: the desktop window.

Opens the window on the default camera and microphone; on a machine without
a camera it plays the demo clip shipped in ``assets/demo`` (looping) and
says so (``--source webcam`` insists on the camera).  ``imer --source FILE`` opens a file.  Saved settings (camera,
microphone, method, sampler steps, device) apply where the command line
leaves the default.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Callable, Sequence

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from . import settings as keys
from .qt_binding import binding_problem
from .source_controls import demo_clip_path

log = logging.getLogger(__name__)


def apply_saved(args: argparse.Namespace, settings: QSettings) -> argparse.Namespace:
    """``args`` with the saved devices, method, steps and device where the command line left defaults."""
    merged = argparse.Namespace(**vars(args))
    if merged.camera == 0:
        merged.camera = keys.read(settings, keys.CAMERA, 0, int)
    if merged.mic is None:
        merged.mic = keys.read(settings, keys.MICROPHONE, None, str)
    if merged.method is None:  # the window drops a method that no loaded checkpoint holds
        merged.method = keys.read(settings, keys.METHOD, None, str)
    if merged.sampler_steps is None:
        merged.sampler_steps = keys.read(settings, keys.SAMPLER_STEPS, 0, int) or None
    if merged.device == "auto":
        merged.device = keys.read(settings, keys.DEVICE, "auto", str)
    return merged


def startup_args(args: argparse.Namespace, settings: QSettings,
                 list_cameras: Callable[[], Sequence] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """The arguments to start with and notes for the status bar (the demo-clip fallback)."""
    merged = apply_saved(args, settings)
    if merged.source is not None:  # a file, or the webcam asked for explicitly: no fallback
        return merged, []
    if list_cameras is None:
        from imer_core.live.sources.camera import list_cameras
    cameras = list(list_cameras())
    if not cameras:
        demo = demo_clip_path()
        if not demo.is_file():
            return merged, [f"No camera found, and the demo clip {demo} is missing"]
        merged.source, merged.loop = str(demo), True
        return merged, [f"No camera found: playing the demo clip {demo.name} (looping). "
                        "Source ▸ Open media file... plays another file."]
    if all(c.index != merged.camera for c in cameras):
        merged.camera = cameras[0].index
    return merged, []


def launch(args: argparse.Namespace) -> int:
    """Open the window; returns the exit code once it is closed."""
    from app.headless import pipeline_config  # the same configuration as `imer run`

    from .window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(keys.ORGANIZATION)
    app.setApplicationName(keys.APPLICATION)
    app.setApplicationDisplayName("IMER")
    settings = keys.app_settings()
    merged, notes = startup_args(args, settings)
    try:
        config = pipeline_config(merged)
    except SystemExit as exc:  # a missing --source file
        print(exc, file=sys.stderr)
        return 2
    window = MainWindow(config, settings=settings, notes=notes)
    previous_hook = _route_exceptions(window)
    _close_on_sigint(window)
    window.show()
    window.start()
    binding = binding_problem()
    if binding:  # a binding installed outside the project's bound: say why the window will not last
        print(binding, file=sys.stderr)
        window.notifier.error(binding, dialog=True)
    try:
        return app.exec()
    finally:
        window.shutdown()
        sys.excepthook = previous_hook


def _route_exceptions(window) -> Callable:
    """Unexpected exceptions in Qt callbacks go to the status bar instead of ending the app."""
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        log.error("unexpected error", exc_info=(kind, value, traceback))
        window.notifier.error(f"unexpected error: {kind.__name__}: {value}")

    sys.excepthook = hook
    return previous


def _close_on_sigint(window) -> None:
    """Ctrl-C in the terminal closes the window cleanly (a timer lets Python see the signal)."""
    if sys.platform == "win32":
        return
    signal.signal(signal.SIGINT, lambda *_: window.close())
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)
