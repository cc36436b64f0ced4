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
from collections.abc import Callable, Sequence

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from ..signals import note_early_signals
from . import settings as keys
from .qt_binding import binding_problem
from .source_controls import demo_clip_path
from .theme import apply_theme

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
        from imer_core.live.sources.camera import list_cameras as list_system_cameras

        list_cameras = list_system_cameras
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


def launch(args: argparse.Namespace, end_process: bool = True) -> int:
    """Open the window; returns the exit code once it is closed.

    Closing hides the window at once and stops every thread within
    :data:`~app.gui.window.CLOSE_BUDGET_S`; with ``end_process`` the process
    then ends without waiting for native libraries' threads (a model load or
    a speech recognition call cannot be interrupted) -- files and settings
    are closed before that, and the OS releases camera and microphone.
    """
    interrupted = note_early_signals()  # Ctrl-C while the models load must not be lost
    from app.headless import pipeline_config  # the same configuration as `imer run`

    from .window import MainWindow

    existing = QApplication.instance()
    if existing is not None and not isinstance(existing, QApplication):
        raise RuntimeError("a Qt application without widgets is already running in this process")
    app = existing or QApplication(sys.argv[:1])
    app.setOrganizationName(keys.ORGANIZATION)
    app.setApplicationName(keys.APPLICATION)
    app.setApplicationDisplayName("IMER")
    settings = keys.app_settings()
    apply_theme(app, keys.read(settings, keys.THEME, "system", str))
    config, notes, errors = _startup_config(args, settings, pipeline_config)
    window = MainWindow(config, settings=settings, notes=notes)
    window.startup_errors.extend(errors)
    previous_hook = _route_exceptions(window)
    _close_on_sigint(window)
    if interrupted.is_set():  # Ctrl-C / SIGTERM while the window was being built
        window.close()
        window.shutdown()
    else:
        window.show()
        window.start()
    binding = binding_problem()
    if binding:  # a binding installed outside the project's bound: say why the window will not last
        print(binding, file=sys.stderr)
        window.notifier.error(binding, dialog=True)
    code = 1
    try:
        # Ctrl-C before the event loop started closed the window already: an event loop
        # with no window would never end.
        code = app.exec() if not window.closed else 130
    finally:
        stopped = window.shutdown()
        sys.excepthook = previous_hook
        if end_process:
            _end_process(code, stopped)
    return code


def _startup_config(args: argparse.Namespace, settings: QSettings, pipeline_config: Callable):
    """The pipeline config to start with, status-bar notes and errors to show in the window.

    A ``--source`` file that does not exist is reported in the window (a
    user who started the app from a launcher sees no terminal), and the
    window starts on the camera or the demo clip instead.
    """
    merged, notes = startup_args(args, settings)
    try:
        return pipeline_config(merged), notes, []
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        problem = str(exc).removeprefix("imer: ")
        merged, notes = startup_args(argparse.Namespace(**{**vars(merged), "source": None, "loop": False}),
                                     settings)
        config = pipeline_config(merged)
        instead = config.sources.describe()
        return config, notes, [(f"Could not open the source: {problem}. Started on {instead} instead; "
                                "Source ▸ Open media file... plays another file.", str(exc))]


def _end_process(code: int, stopped: bool) -> None:
    """End the process now (files are closed); native threads still running would delay exit by seconds."""
    if not stopped:
        log.warning("some threads were still running at exit; the process ends anyway")
    from app.signals import exit_process

    exit_process(code)


def _route_exceptions(window) -> Callable:
    """Unexpected exceptions in Qt callbacks go to the status bar instead of ending the app."""
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        log.error("unexpected error", exc_info=(kind, value, traceback))
        window.notifier.error(f"unexpected error: {kind.__name__}: {value}")

    sys.excepthook = hook
    return previous


def _close_on_sigint(window) -> None:
    """Ctrl-C or SIGTERM closes the window cleanly (a timer lets Python see the signal); a second one ends at once."""
    if sys.platform == "win32":
        return

    def close(signum: int, _frame: object) -> None:
        if window.closed:  # a second Ctrl-C while closing: do not wait any longer
            _end_process(128 + signum, False)
        window.close()
        window.shutdown()  # also when the window was never shown (close() then sends no event)
        QApplication.quit()

    signal.signal(signal.SIGINT, close)
    signal.signal(signal.SIGTERM, close)
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)
