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

from abc import ABC, abstractmethod
from collections.abc import Callable

from ..buffers import STOPPED, AudioRingBuffer, FrameSlot, SourceStatus
from ..threads import RestartableThread

LIVE_SAMPLE_RATE = 16000


class SourceOpenError(ValueError):
    """A source cannot be built from what the user gave (e.g. a file that is not a media file).

    Raised when a source is *constructed* (a kind's ``open``), never from its
    threads; the message is one line a user can act on.
    """


class CaptureSource(RestartableThread, ABC):
    """Common part of video and audio sources."""

    #: short human-readable description ("camera 0 (640x480 @ 30 fps)", "demo.mp4").
    description: str = ""

    def __init__(self) -> None:
        super().__init__()
        self._status: SourceStatus = STOPPED

    @property
    def status(self) -> SourceStatus:
        """Current state of the stream (thread-safe: an immutable value)."""
        return self._status

    def _set_status(self, status: SourceStatus) -> None:
        self._status = status

    def _fail(self, reason: str) -> None:
        """Report a failure of the running stream (ignored once it is being stopped)."""
        if not self._stop.is_set():
            self._set_status(SourceStatus(False, reason))

    @abstractmethod
    def start(self) -> None:
        """Open the device/file and start the capture thread; returns at once."""

    @abstractmethod
    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and release the device; idempotent."""

    def _keep_open(self, session: Callable[[], bool], backoff: tuple[float, float]) -> None:
        """Run ``session`` again and again until stopped (in the capture thread).

        ``session`` opens the device, delivers until a failure and closes it;
        it returns whether data flowed.  Between sessions the thread waits
        ``backoff[0]`` s, doubling after every session without data up to
        ``backoff[1]``.
        """
        delay = backoff[0]
        while not self._stop.is_set():
            delivered = session()
            if self._stop.is_set():
                break
            if delivered:
                delay = backoff[0]
            self._stop.wait(delay)
            delay = min(delay * 2.0, backoff[1])


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
