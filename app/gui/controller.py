"""Pipeline commands off the GUI thread.

Starting the pipeline, switching sources (which waits for the new device and
rolls back on failure), switching modalities (which stops or starts capture)
and loading checkpoints may take seconds.  :class:`TaskRunner` runs such
calls in order in one daemon thread and hands each result back to the GUI
thread; :class:`PipelineController` owns the pipeline and runs every command
that touches it there, so the window never blocks on it.

When the pipeline could not start (e.g. on a media file that cannot be
read: the window then holds a pipeline built on the camera and microphone
that it never starts), a source switch starts a new pipeline on the chosen
sources instead.
Closing drops the queued commands, and a command still running then (a slow
model reload) opens no device.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from imer_core.cli_errors import is_user_error
from imer_core.live.parts import SourceSpec
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
        self._closed = False
        self._busy = False
        self._finished.connect(self._deliver)
        self._thread = threading.Thread(target=self._serve, name=f"imer-gui-{name}", daemon=True)
        self._thread.start()

    def submit(self, task: Callable[[], Any], on_done: Done | None = None) -> None:
        """Queue ``task``; ``on_done`` receives its result (ignored after :meth:`shutdown`)."""
        if self._closed or not self._thread.is_alive():
            log.warning("task runner stopped; task dropped")
            return
        self._queue.put((task, on_done))

    def shutdown(self, timeout: float = 15.0) -> None:
        """Drop the queued tasks, let the running one finish and stop the thread (waits up to ``timeout`` s)."""
        self._closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout)

    @property
    def busy(self) -> bool:
        """A task is still running (e.g. after :meth:`shutdown` gave up waiting for it)."""
        return self._busy and self._thread.is_alive()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            task, on_done = item
            self._busy = True
            try:
                result, error = task(), ""
            except Exception as exc:  # reported to the caller, never raised in this thread
                if is_user_error(exc):  # e.g. a checkpoint that does not fit: the caller says it in words
                    log.warning("background task: %s", exc)
                else:
                    log.exception("background task failed")
                result, error = None, str(exc) or type(exc).__name__
            finally:
                self._busy = False
            self._finished.emit(on_done, result, error)

    def _deliver(self, on_done: Done | None, result: Any, error: str) -> None:
        if on_done is not None and not self._closed:
            on_done(result, error)


class Closed(RuntimeError):
    """The controller was shut down while a command ran; its result is discarded."""


class PipelineController(QObject):
    """Owns the live pipeline; every call that may block runs in its command thread.

    ``pipeline`` is replaced (and ``running`` changes) only in the command
    thread, so every queued command sees the pipeline the commands before
    it left.

    Signals:
        replaced(object): a new, running pipeline took over (after :meth:`rebuild`
            or :meth:`switch_sources` on a pipeline that was not running).
    """

    replaced = Signal(object)

    def __init__(self, pipeline: LivePipeline, factory: PipelineFactory, parent: QObject | None = None,
                 failed_sources: SourceSpec | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.factory = factory
        #: The sources asked for last when they could not be opened (``None`` once a pipeline runs on
        #: the sources asked for): ``pipeline`` then stands in for them and is not started.
        self.failed_sources = failed_sources
        self.runner = TaskRunner("commands", self)
        self.closed = False
        #: The current pipeline started (False before :meth:`start`, after a failed start, and after closing).
        self.running = False
        self._lock = threading.Lock()  # orders taking a pipeline over against shutdown()

    @property
    def sources(self) -> SourceSpec:
        """The sources asked for: the pipeline's, or those that could not be opened (:attr:`failed_sources`)."""
        return self.failed_sources or self.pipeline.config.sources

    def submit(self, command: Callable[[LivePipeline], Any], on_done: Done | None = None) -> None:
        """Run ``command(pipeline)`` on the pipeline current when it runs."""
        if not self.closed:
            self.runner.submit(lambda: command(self.pipeline), on_done)

    def start(self, on_done: Done | None = None) -> None:
        """Start the pipeline in the background; ``on_done`` gets the error ("" once it runs).

        A failed start (e.g. a media file that cannot be read) releases what
        it opened; :meth:`switch_sources` or :meth:`rebuild` can then start
        a pipeline on other sources or models.
        """
        if not self.closed:
            self.runner.submit(self._start, on_done)

    def _start(self) -> None:
        pipeline = self.pipeline
        try:
            with self._lock:
                if self.closed:
                    raise Closed("closed before the pipeline started")
                pipeline.start()  # returns at once
                self.running = True
        except Exception:
            pipeline.stop()  # release whatever the failed start opened (idempotent)
            raise

    def switch_sources(self, spec: SourceSpec, timeout_s: float, on_done: Done | None = None) -> None:
        """Switch to the sources ``spec`` in the background.

        On a running pipeline this is :meth:`LivePipeline.replace_sources`
        (rolled back when the new sources deliver nothing); a pipeline that is
        not running (its start failed) is replaced by a new one started on
        ``spec`` (:attr:`replaced` is emitted).  ``on_done`` gets
        ``(problem, started)``: ``problem`` is "" on success, else the reason,
        and ``started`` says that a pipeline was started rather than switched.
        """
        if not self.closed:
            self.runner.submit(lambda: self._switch_sources(spec, timeout_s), on_done)

    def _switch_sources(self, spec: SourceSpec, timeout_s: float) -> tuple[str, bool]:
        if self.running:
            return self.pipeline.replace_sources(spec, timeout_s), False
        old = self.pipeline
        view = old.snapshot()
        config = replace(view.config, sources=spec, disabled=_disabled(old), method=view.method,
                         sampler_steps=view.sampler_steps)
        old.stop()  # idempotent: releases whatever a failed start left open
        try:
            self._take_over(config, preload=False)
        except Closed:
            raise
        except Exception as exc:
            self.failed_sources = spec
            return f"could not start on {spec.describe()}: {exc}; nothing is running", True
        return "", True

    def rebuild(self, config: PipelineConfig, on_done: Done | None = None) -> None:
        """Replace the pipeline by one built from ``config`` (its sources and switches are kept).

        Every checkpoint is loaded before the switch; on any failure the old
        pipeline is restarted (if it was running) and ``on_done`` gets the error.
        """
        if not self.closed:
            self.runner.submit(lambda: self._rebuild(config), on_done)

    def _rebuild(self, config: PipelineConfig) -> LivePipeline:
        old, was_running = self.pipeline, self.running
        config = replace(config, sources=self.sources, disabled=_disabled(old))
        old.stop()
        self.running = False
        try:
            return self._take_over(config, preload=True)
        except Exception:
            with self._lock:
                if was_running and not self.closed:
                    old.start()
                    self.running = True
            raise

    def _take_over(self, config: PipelineConfig, preload: bool) -> LivePipeline:
        """Build and start a pipeline from ``config`` and make it current (raises if it fails or on closing)."""
        new = None
        try:
            new = build_pipeline(self.factory, config)
            if preload:
                _preload(new, config)
            with self._lock:
                if self.closed:  # the window closed while the models loaded: open no device
                    raise Closed("closed while the pipeline was being built")
                new.start()  # returns at once
                self.pipeline, self.running, self.failed_sources = new, True, None
        except Exception:
            if new is not None:
                new.stop()
            raise
        self.replaced.emit(new)
        return new

    def shutdown(self, timeout: float = 15.0) -> bool:
        """Drop queued commands, then stop every pipeline thread and release the devices, within ``timeout`` s.

        The running command and the pipeline's stop share the budget; the
        stop runs in a daemon thread, so a model load or a speech recognition
        call that cannot be interrupted never holds the caller longer.  A
        command still running after that finds the controller closed and
        starts nothing.  Returns whether everything stopped in time.
        """
        if self.closed:
            return True
        deadline = time.monotonic() + timeout
        with self._lock:
            self.closed = True
        self.runner.shutdown(max(0.05, (deadline - time.monotonic()) / 2))
        with self._lock:
            pipeline, self.running = self.pipeline, False
        stopper = threading.Thread(target=pipeline.stop, name="imer-gui-stop", daemon=True)
        stopper.start()
        stopper.join(max(0.05, deadline - time.monotonic()))
        if stopper.is_alive():
            log.warning("the pipeline did not stop within %.1f s; its threads are daemons and end with the app",
                        timeout)
        return not stopper.is_alive() and not self.runner.busy


def _preload(pipeline: LivePipeline, config: PipelineConfig) -> None:
    """Load every checkpoint of ``pipeline`` now, so that a bad one fails here, not later.

    A checkpoint the user chose (``config.checkpoints``) must load.  Of the shipped ones,
    those that cannot run here (e.g. made for another vision feature) are left out (the
    menu marks them, :attr:`PipelineView.refused`) as long as one of them loads.
    """
    from imer_core.live.models import LiveModelError

    problems: list[LiveModelError] = []
    methods = pipeline.snapshot().methods
    for method in methods:
        try:
            pipeline.load_model(method)
        except LiveModelError as exc:
            if config.checkpoints:
                raise
            problems.append(exc)
    if problems and len(problems) == len(methods):
        raise problems[0]


def build_pipeline(factory: PipelineFactory, config: PipelineConfig) -> LivePipeline:
    """``factory(config)``, without ``config.method`` when no loaded checkpoint holds it.

    The engine then starts with its preferred method instead of predicting nothing.
    """
    pipeline = factory(config)
    if config.method and config.method not in pipeline.snapshot().methods:
        pipeline = factory(replace(config, method=None))
    return pipeline


def _disabled(pipeline: LivePipeline) -> frozenset:
    """The modalities switched off in ``pipeline``."""
    return frozenset(m for m, on in pipeline.enabled.items() if not on)
