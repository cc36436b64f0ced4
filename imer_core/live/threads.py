"""A restartable daemon thread whose every run has a stop flag of its own.

Capture sources, feature workers and the inference engine each run one
thread that can be stopped and started again (a modality switched off and
on).  A run that does not end within the stop time-out (a camera read hung
in its driver, a model still loading) must neither be woken up again by the
next start nor hold the next run back, so every run gets its own
:class:`threading.Event`:

* inside a run's thread, ``self._stop`` is that run's flag;
* anywhere else it is the flag of the newest run.

An abandoned run keeps its (set) flag and ends on its own; a new run can
start at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class RestartableThread:
    """Base of the objects that own one restartable daemon thread."""

    def __init__(self) -> None:
        self._run_stop = threading.Event()
        self._run_stop.set()  # no run yet
        self._run_flags: dict[int, threading.Event] = {}
        self._thread: threading.Thread | None = None

    @property
    def _stop(self) -> threading.Event:
        """The stop flag of the calling thread's run (of the newest run elsewhere)."""
        return self._run_flags.get(threading.get_ident(), self._run_stop)

    @property
    def running(self) -> bool:
        """A run was started, has not been asked to stop, and its thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._run_stop.is_set()

    def _is_current_run(self) -> bool:
        """Whether the calling thread is the newest run (not an abandoned one)."""
        return self._run_flags.get(threading.get_ident()) is self._run_stop

    def _launch(self, target: Callable[..., Any], name: str, *args: Any) -> None:
        """Run ``target(*args)`` in a new daemon thread with a fresh stop flag."""
        flag = threading.Event()

        def run() -> None:
            ident = threading.get_ident()
            self._run_flags[ident] = flag
            try:
                target(*args)
            finally:
                self._run_flags.pop(ident, None)

        self._run_stop = flag
        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def _join(self, timeout: float) -> bool:
        """Stop the newest run and wait up to ``timeout`` s; ``True`` when its thread has ended.

        A thread that is still alive afterwards is abandoned: it ends on its
        own when whatever blocks it returns.
        """
        self._run_stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        gone = thread is None or not thread.is_alive()
        self._thread = None if gone else thread
        return gone


__all__ = ("RestartableThread",)
