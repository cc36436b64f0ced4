"""Thread-safe hand-over points between capture threads and feature workers.

Capture code only ever writes into these objects (a newest-frame slot for
video, a ring buffer for audio), so a slow consumer can never block a camera
or a sound-card callback: the slot keeps only the newest frame, the ring
buffer overwrites its oldest samples.  All times are ``time.monotonic()``
seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One captured video frame.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR image (OpenCV order).
        t_capture: monotonic time at which the frame was captured (or, for a
            media file, at which it was due at real-time pace).
        index: running frame number of the source (starts at 0).
        media_time: position in the media file in seconds (``None`` for a camera).
    """

    image: np.ndarray
    t_capture: float
    index: int
    media_time: float | None = None


@dataclass(frozen=True)
class SourceStatus:
    """Health of one capture stream as the stream itself sees it.

    Attributes:
        ok: the stream delivers data.
        reason: human-readable cause when not ``ok`` (or a note when ``ok``).
        ended: a media file reached its end (and does not loop).
        absent: the source has no such stream at all (a file without audio).
    """

    ok: bool
    reason: str = ""
    ended: bool = False
    absent: bool = False


STARTING = SourceStatus(False, "starting")
STOPPED = SourceStatus(False, "stopped")


class FrameSlot:
    """Holds the newest :class:`VideoFrame`; older frames are dropped (backpressure)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: VideoFrame | None = None
        self._seq = 0
        self._taken_seq = 0
        self.dropped = 0

    def put(self, frame: VideoFrame) -> None:
        """Replace the held frame by ``frame`` and wake waiting consumers."""
        with self._cond:
            if self._frame is not None and self._taken_seq != self._seq:
                self.dropped += 1
            self._frame = frame
            self._seq += 1
            self._cond.notify_all()

    @property
    def sequence(self) -> int:
        """Number of frames put so far."""
        return self._seq

    def latest(self) -> VideoFrame | None:
        """The newest frame without waiting (``None`` before the first frame)."""
        with self._cond:
            return self._frame

    def wait_newer(self, after_seq: int, timeout: float) -> tuple[VideoFrame | None, int]:
        """Wait up to ``timeout`` s for a frame newer than ``after_seq``.

        Returns ``(frame, seq)``; ``frame`` is ``None`` on time-out (``seq`` is
        then ``after_seq``).  A frame forgotten by :meth:`clear` is not returned.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after_seq and self._frame is not None, timeout):
                return None, after_seq
            self._taken_seq = self._seq
            return self._frame, self._seq

    def clear(self) -> None:
        """Forget the held frame (used when a modality is disabled)."""
        with self._cond:
            self._frame = None
            self._taken_seq = self._seq  # a cleared frame does not count as dropped


@dataclass
class _RingState:
    data: np.ndarray
    written: int = 0
    last_write: float | None = None


class AudioRingBuffer:
    """Mono float32 ring buffer with an absolute sample counter.

    Args:
        sample_rate: samples per second of everything written.
        capacity_s: seconds of audio kept.

    The writer passes the monotonic time of the last sample it writes, so a
    reader can map any absolute sample index to a monotonic time.  A write
    that starts more than ``GAP_TOLERANCE_S`` after the previous one ended (a
    microphone restarted after an error, a paused file) is preceded by
    silence for the gap, so the times of older samples stay right.
    """

    GAP_TOLERANCE_S = 0.25

    def __init__(self, sample_rate: int = 16000, capacity_s: float = 30.0) -> None:
        if sample_rate <= 0 or capacity_s <= 0:
            raise ValueError("sample_rate and capacity_s must be positive")
        self.sample_rate = int(sample_rate)
        self.capacity = int(round(capacity_s * sample_rate))
        self._lock = threading.Lock()
        self._state = _RingState(np.zeros(self.capacity, np.float32))

    @property
    def total_written(self) -> int:
        """Absolute number of samples written since creation (or :meth:`clear`)."""
        return self._state.written

    @property
    def last_write_time(self) -> float | None:
        """Monotonic time of the newest written sample (``None`` if nothing yet)."""
        return self._state.last_write

    def write(self, samples: np.ndarray, t_end: float | None = None) -> None:
        """Append ``samples`` (1-D, or ``(n, channels)`` averaged to mono).

        ``t_end`` is the monotonic time of the last sample (now by default).
        Never blocks for longer than a memory copy.
        """
        x = np.asarray(samples)
        if x.ndim == 2:
            x = x.mean(axis=1)
        x = x.astype(np.float32, copy=False).reshape(-1)
        n_total = len(x)
        if n_total == 0:
            return
        x = x[-self.capacity:]  # a write longer than the buffer keeps its newest samples
        t_end = time.monotonic() if t_end is None else float(t_end)
        with self._lock:
            st = self._state
            if st.last_write is not None:
                self._fill_gap_locked(t_end - n_total / self.sample_rate - st.last_write)
            start = (st.written + n_total - len(x)) % self.capacity
            first = min(len(x), self.capacity - start)
            st.data[start:start + first] = x[:first]
            st.data[:len(x) - first] = x[first:]
            st.written += n_total
            st.last_write = t_end

    def _fill_gap_locked(self, gap_s: float) -> None:
        """Advance the counter over a gap in the audio, with zeros where the buffer holds it."""
        if gap_s <= self.GAP_TOLERANCE_S:
            return
        st = self._state
        missing = int(round(gap_s * self.sample_rate))
        zeroed = min(missing, self.capacity)
        idx = np.arange(st.written + missing - zeroed, st.written + missing) % self.capacity
        st.data[idx] = 0.0
        st.written += missing

    def time_of(self, sample_index: int) -> float:
        """Monotonic time of an absolute sample index (extrapolated from the last write)."""
        with self._lock:
            last_write, written = self._state.last_write, self._state.written
        if last_write is None:
            raise RuntimeError("nothing written yet")
        return last_write - (written - 1 - sample_index) / self.sample_rate

    def read_between(self, t0: float, t1: float) -> tuple[np.ndarray, float]:
        """Samples whose monotonic times lie in ``[t0, t1]`` still held, and the time of the first.

        Raises:
            RuntimeError: nothing was written yet (or since :meth:`clear`).
        """
        with self._lock:
            st = self._state
            if st.last_write is None:
                raise RuntimeError("nothing written yet")
            newest = st.written - 1
            first = max(newest - int(np.floor((st.last_write - t0) * self.sample_rate)),
                        st.written - self.capacity, 0)
            stop = min(newest - int(np.ceil((st.last_write - t1) * self.sample_rate)) + 1, st.written)
            audio = self._read_locked(first, stop)
            return audio, st.last_write - (newest - first) / self.sample_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` by absolute index; indices no longer held are zero."""
        with self._lock:
            return self._read_locked(start, stop)

    def _read_locked(self, start: int, stop: int) -> np.ndarray:
        st = self._state
        stop = min(stop, st.written)
        out = np.zeros(max(stop - start, 0), np.float32)
        lo = max(start, st.written - self.capacity, 0)
        if stop > lo:
            idx = np.arange(lo, stop) % self.capacity
            out[lo - start:] = st.data[idx]
        return out

    def read_last(self, duration_s: float) -> tuple[np.ndarray, int]:
        """The newest ``duration_s`` seconds and the absolute index of their first sample.

        Fewer samples are returned while the buffer holds less than that.
        """
        n = int(round(duration_s * self.sample_rate))
        with self._lock:  # one lock: a concurrent write cannot overwrite what is being read
            written = self._state.written
            start = max(written - n, 0)
            return self._read_locked(start, written), start

    def clear(self) -> None:
        """Drop everything (the sample counter restarts at 0)."""
        with self._lock:
            self._state = _RingState(np.zeros(self.capacity, np.float32))
