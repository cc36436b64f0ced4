"""Interfaces of capture sources.

A source runs its own thread(s) once started and writes into a hand-over
object from :mod:`imer_core.live.buffers`: video sources into a
:class:`~imer_core.live.buffers.FrameSlot` (``.frames``), audio sources into an
:class:`~imer_core.live.buffers.AudioRingBuffer` (``.ring``, 16 kHz mono).
They never raise out of their threads: failures are reported through
``status`` (a :class:`~imer_core.live.buffers.SourceStatus`), which the
health monitor polls, and a failing source keeps trying to recover on its own
(a camera is reopened with back-off).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Callable

from ..buffers import STOPPED, AudioRingBuffer, FrameSlot, SourceStatus

LIVE_SAMPLE_RATE = 16000


class CaptureSource(ABC):
    """Common part of video and audio sources."""

    #: short human-readable description ("camera 0 (640x480 @ 30 fps)", "demo.mp4").
    description: str = ""

    def __init__(self) -> None:
        self._status: SourceStatus = STOPPED
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> SourceStatus:
        """Current state of the stream (thread-safe: an immutable value)."""
        return self._status

    def _set_status(self, status: SourceStatus) -> None:
        self._status = status

    @abstractmethod
    def start(self) -> None:
        """Open the device/file and start the capture thread; returns at once."""

    @abstractmethod
    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and release the device; idempotent."""

    @property
    def running(self) -> bool:
        """Whether the capture thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _launch(self, target: Callable[..., Any], name: str, *args: Any) -> None:
        """Clear the stop flag and run ``target(*args)`` in a new daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._thread.start()

    def _join(self, timeout: float) -> bool:
        """Set the stop flag and wait for the thread; ``True`` when it is gone (and forgotten)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._thread = None
            return True
        return False


class VideoSource(CaptureSource):
    """A source of BGR frames written to :attr:`frames`."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = FrameSlot()


class AudioSource(CaptureSource):
    """A source of 16 kHz mono float32 audio written to :attr:`ring`."""

    def __init__(self, capacity_s: float = 30.0) -> None:
        super().__init__()
        self.ring = AudioRingBuffer(LIVE_SAMPLE_RATE, capacity_s)
