"""Ctrl-C and SIGTERM that arrive before a command has installed its own handler.

Importing torch, MediaPipe and Qt and loading the models takes seconds; a
KeyboardInterrupt raised by Python's default handler in that time can be
swallowed by a library's import, and the app would then start as if nothing
had been pressed.  :func:`note_early_signals` (called first thing by the
``imer`` command) handles both signals until the command replaces the
handlers: nothing has been opened or written yet, so the process ends at
once (exit code 128 + the signal) and :data:`EARLY_STOP` is set for callers
that handle it themselves (``exit_now=False``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: this module is imported before anything else, keep it light
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import Any, TextIO, TypeAlias

    #: What :func:`signal.signal` accepts and returns.
    SignalHandler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

#: Set by Ctrl-C or SIGTERM received before the command's own handler.
EARLY_STOP = threading.Event()


def note_early_signals(exit_now: bool = True) -> threading.Event:
    """Handle SIGINT and SIGTERM until the command installs its own handlers (main thread only).

    With ``exit_now`` the process ends at once with one line on stderr;
    otherwise only :data:`EARLY_STOP` is set.
    """
    def handle(signum: int, _frame: object) -> None:
        EARLY_STOP.set()
        if exit_now:
            try:
                sys.stderr.write("imer: interrupted while starting\n")
                sys.stderr.flush()
            finally:
                os._exit(128 + signum)

    if threading.current_thread() is threading.main_thread() and sys.platform != "win32":
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, handle)
    return EARLY_STOP


def exit_process(code: int) -> None:
    """End the process now, after flushing logs and the standard streams.

    Used once a command has closed its files: the interpreter's own exit would
    wait for native threads (a model load, a speech recognition) and run
    native destructors -- MediaPipe's would send a usage report over the
    network (see :mod:`imer_core.features.face`).
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class StopRequests:
    """Ctrl-C and SIGTERM for a running command: the first asks to stop, a second ends the process.

    While :attr:`starting` is true (nothing written yet) the first signal
    already ends the process.  Install with :meth:`install` from the main
    thread; :meth:`restore` puts the previous handlers back.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.event = threading.Event()
        self.signal_name = ""
        self.starting = True
        self.forced = False
        self._out = out
        self._previous: dict[int, SignalHandler] = {}

    def install(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread() and sys.platform != "win32":
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        if EARLY_STOP.is_set():
            self._handle(signal.SIGINT, None)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _say(self, text: str) -> None:
        out = self._out or sys.stderr
        try:
            out.write(text + "\n")
            out.flush()
        except (OSError, ValueError):
            pass

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.starting:
            self._say(f"\nimer: {name} while starting: nothing was recorded")
            exit_process(128 + signum)
        if self.event.is_set():
            self.forced = True
            self._say(f"\nimer: second {name}: ending now (files written so far are kept)")
            exit_process(128 + signum)
        self.signal_name = name
        self.event.set()
        self._say(f"\nimer: {name}: stopping (press Ctrl-C again to end at once)")

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)

    def set(self) -> None:
        self.event.set()
