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
