"""Pipeline commands off the GUI thread.

Starting the pipeline, switching sources (which waits for the new device and
rolls back on failure), switching modalities (which stops or starts capture)
and loading checkpoints may take seconds.  :class:`TaskRunner` runs such
calls in order in one daemon thread and hands each result back to the GUI
thread; :class:`PipelineController` owns the pipeline and runs every command
that touches it there, so the window never blocks on it.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import replace
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from imer_core.live.pipeline import LivePipeline, PipelineConfig

log = logging.getLogger(__name__)

Done = Callable[[Any, str], None]
PipelineFactory = Callable[[PipelineConfig], LivePipeline]


class TaskRunner(QObject):
    """Runs callables one after another in a daemon thread named ``imer-gui-<name>``.

    ``on_done(result, error)`` is called in the GUI thread; ``error`` is ""
    on success, else the exception's message.
    """

    _finished = Signal(object, object, str)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0
        self._finished.connect(self._deliver)
        self._thread = threading.Thread(target=self._serve, name=f"imer-gui-{name}", daemon=True)
        self._thread.start()

    def submit(self, task: Callable[[], Any], on_done: Done | None = None) -> None:
        """Queue ``task``; ``on_done`` receives its result (ignored after :meth:`shutdown`)."""
        if not self._thread.is_alive():
            log.warning("task runner stopped; task dropped")
            return
        self._pending += 1
        self._queue.put((task, on_done))

    @property
    def busy(self) -> bool:
        """Tasks are queued or running."""
        return self._pending > 0

    def shutdown(self, timeout: float = 15.0) -> None:
        """Finish the queued tasks and stop the thread (waits up to ``timeout`` s)."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            task, on_done = item
            try:
                result, error = task(), ""
            except Exception as exc:  # reported to the caller, never raised in this thread
                log.exception("background task failed")
                result, error = None, str(exc) or type(exc).__name__
            self._finished.emit(on_done, result, error)

    def _deliver(self, on_done: Done | None, result: Any, error: str) -> None:
        self._pending -= 1
        if on_done is not None:
            on_done(result, error)


class PipelineController(QObject):
    """Owns the live pipeline; every call that may block runs in its command thread.

    Signals:
        replaced(object): a new pipeline took over (after :meth:`rebuild`).
    """

    replaced = Signal(object)

    def __init__(self, pipeline: LivePipeline, factory: PipelineFactory, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.factory = factory
        self.runner = TaskRunner("commands", self)
        self.closed = False

    def submit(self, command: Callable[[LivePipeline], Any], on_done: Done | None = None) -> None:
        """Run ``command(pipeline)`` on the pipeline current when it runs."""
        if not self.closed:
            self.runner.submit(lambda: command(self.pipeline), on_done)

    def start(self, on_done: Done | None = None) -> None:
        self.submit(lambda p: p.start(), on_done)

    def rebuild(self, config: PipelineConfig, on_done: Done | None = None) -> None:
        """Replace the pipeline by one built from ``config`` (its sources and switches are kept).

        Every checkpoint is loaded before the switch; on any failure the old
        pipeline is restarted and ``on_done`` gets the error.
        """
        if not self.closed:
            self.runner.submit(lambda: self._rebuild(config), on_done)

    def _rebuild(self, config: PipelineConfig) -> LivePipeline:
        old = self.pipeline
        disabled = frozenset(m for m, on in old.enabled.items() if not on)
        config = replace(config, sources=old.config.sources, disabled=disabled)
        old.stop()
        new = None
        try:
            new = self.factory(config)
            if config.method and config.method not in new.bank.methods:  # keep the method only if it is there
                new = self.factory(replace(config, method=None))
            for method in new.bank.methods:
                new.bank.get(method)  # load now: a bad checkpoint fails here, not later
            new.start()
        except Exception:
            if new is not None:
                new.stop()
            old.start()
            raise
        self.pipeline = new
        self.replaced.emit(new)
        return new

    def shutdown(self, timeout: float = 15.0) -> None:
        """Finish pending commands, then stop every pipeline thread and release the devices."""
        if self.closed:
            return
        self.closed = True
        self.runner.shutdown(timeout)
        self.pipeline.stop()
