"""Webcam capture through OpenCV.

:class:`CameraSource` reads frames in its own daemon thread and puts them into
its :class:`~imer_core.live.buffers.FrameSlot`.  It watches itself: a device
that cannot be opened, stops delivering frames, or delivers the same frame
over and over (a frozen driver) is reported through ``status`` and released;
the thread then reopens it with exponential back-off and reports ``ok``
again once frames flow.  A ``read()`` that hangs inside the driver cannot be
interrupted, so ``status`` also turns failing when no frame arrived for
``stall_after_s`` seconds.

OpenCV is imported lazily (when the first device is opened).
"""

from __future__ import annotations

import glob
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..buffers import STARTING, STOPPED, SourceStatus, VideoFrame
from .base import VideoSource

#: mean absolute grey-level difference (on a downsampled frame) below which
#: two frames count as identical; real sensors have noise well above this.
FROZEN_DIFF = 0.1
_THUMB_STEP = 8
# OpenCV property ids (stable constants; spelled out so fakes need no cv2 import).
CAP_PROP_FRAME_WIDTH, CAP_PROP_FRAME_HEIGHT, CAP_PROP_FPS = 3, 4, 5

CaptureFactory = Callable[[int, "int | None"], Any]


@dataclass(frozen=True)
class CameraInfo:
    """A camera found by :func:`list_cameras`."""

    index: int
    name: str
    width: int
    height: int


def _opencv_capture(index: int, api_preference: int | None) -> Any:
    import cv2

    return cv2.VideoCapture(index, cv2.CAP_ANY if api_preference is None else api_preference)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey version of ``image`` for the frozen-frame check."""
    return image[::_THUMB_STEP, ::_THUMB_STEP].mean(axis=2, dtype=np.float32)


def _as_bgr(image: Any) -> np.ndarray | None:
    """``image`` as a ``(H, W, 3)`` uint8 array, or ``None`` when it is not an image."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        return None
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        return None
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image[:, :, :3]


class CameraSource(VideoSource):
    """A webcam read by OpenCV in a daemon thread.

    Args:
        index: OpenCV device index.
        width, height, fps: requested capture format (the device may pick another).
        api_preference: OpenCV back-end (``cv2.CAP_V4L2``, ...); ``None`` = any.
        reopen_backoff: ``(min, max)`` seconds between reopen attempts; the
            delay doubles after every failure and resets once frames flow.
        frozen_after_s: identical frames for this long count as a failure.
        capture_factory: ``factory(index, api_preference)`` returning a
            ``cv2.VideoCapture``-like object (tests inject fakes).
        stall_after_s: ``status`` reports a failure when no frame arrived for
            this long although the device is open (a hung driver).
    """

    def __init__(self, index: int = 0, width: int = 640, height: int = 480, fps: float = 30.0,
                 api_preference: int | None = None,
                 reopen_backoff: tuple[float, float] = (0.5, 8.0),
                 frozen_after_s: float = 2.0,
                 capture_factory: CaptureFactory | None = None,
                 stall_after_s: float = 1.0) -> None:
        super().__init__()
        if width <= 0 or height <= 0 or fps <= 0:
            raise ValueError("width, height and fps must be positive")
        if not 0 < reopen_backoff[0] <= reopen_backoff[1]:
            raise ValueError(f"reopen_backoff must be (min, max) with 0 < min <= max, got {reopen_backoff}")
        self.index = int(index)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.api_preference = api_preference
        self.reopen_backoff = (float(reopen_backoff[0]), float(reopen_backoff[1]))
        self.frozen_after_s = float(frozen_after_s)
        self.stall_after_s = float(stall_after_s)
        self.description = f"camera {self.index} ({self.width}x{self.height} @ {self.fps:g} fps)"
        self._factory = capture_factory or _opencv_capture
        self._last_frame_time: float | None = None
        self._index_counter = 0

    # -- public API ------------------------------------------------------
    @property
    def status(self) -> SourceStatus:
        """Current state; a healthy-looking stream whose frames stopped is reported failing."""
        status = self._status
        last = self._last_frame_time
        if status.ok and last is not None and time.monotonic() - last > self.stall_after_s:
            return SourceStatus(False, f"camera {self.index} stopped delivering frames")
        return status

    def start(self) -> None:
        """Start the capture thread (returns at once; opening happens in the thread)."""
        if self.running:
            return
        self._last_frame_time = None
        self._index_counter = 0
        self._set_status(STARTING)
        self._launch(self._keep_open, f"camera-{self.index}", self._session, self.reopen_backoff)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and clear the frame slot (idempotent).

        The thread releases the device; a read hung in the driver is
        abandoned and releases it when it returns.
        """
        self._join(timeout)
        self._last_frame_time = None
        self.frames.clear()
        self._set_status(STOPPED)

    # -- capture thread ----------------------------------------------------
    def _session(self) -> bool:
        """Open the device, read until a failure or stop, release it; returns whether frames came."""
        capture = self._open()
        if capture is None:
            return False
        try:
            return self._read_loop(capture)
        finally:
            _release(capture)

    def _fail(self, reason: str) -> None:
        if not self._stop.is_set():
            self._last_frame_time = None
        super()._fail(reason)

    def _open(self) -> Any:
        """The opened device; on failure a failing status and ``None``."""
        try:
            capture = self._factory(self.index, self.api_preference)
        except ImportError as exc:
            self._fail(f"camera unavailable: OpenCV is not installed ({exc})")
            return None
        except Exception as exc:  # a driver error must not kill the thread
            self._fail(f"camera {self.index} could not be opened: {exc}")
            return None
        try:
            if capture.isOpened():
                self._configure(capture)
                return capture
            self._fail(f"camera {self.index} could not be opened")
        except Exception as exc:
            self._fail(f"camera {self.index} could not be opened: {exc}")
        _release(capture)
        return None

    def _configure(self, capture: Any) -> None:
        capture.set(CAP_PROP_FRAME_WIDTH, float(self.width))
        capture.set(CAP_PROP_FRAME_HEIGHT, float(self.height))
        capture.set(CAP_PROP_FPS, float(self.fps))

    def _read_loop(self, capture: Any) -> bool:
        """Read until a failure or stop; returns whether good frames were delivered."""
        delivered = False
        last_thumb: np.ndarray | None = None
        same_since: float | None = None
        while not self._stop.is_set():
            try:
                ok, raw = capture.read()
            except Exception as exc:
                self._fail(f"camera {self.index} stopped delivering frames: {exc}")
                return delivered
            t_capture = time.monotonic()
            image = _as_bgr(raw) if ok else None
            if image is None:
                self._fail(f"camera {self.index} stopped delivering frames")
                return delivered
            thumb = _thumbnail(image)
            if last_thumb is not None and thumb.shape == last_thumb.shape \
                    and float(np.abs(thumb - last_thumb).mean()) < FROZEN_DIFF:
                same_since = t_capture if same_since is None else same_since
                if t_capture - same_since > self.frozen_after_s:
                    self._fail(f"camera {self.index} frames frozen for more than {self.frozen_after_s:g} s")
                    return delivered
            else:
                same_since = None
            last_thumb = thumb
            self._deliver(image, t_capture, frozen=same_since is not None)
            delivered = delivered or same_since is None
        return delivered

    def _deliver(self, image: np.ndarray, t_capture: float, frozen: bool) -> None:
        self.frames.put(VideoFrame(image, t_capture, self._index_counter))
        self._index_counter += 1
        self._last_frame_time = t_capture
        if not frozen and not self._status.ok and not self._stop.is_set():
            h, w = image.shape[:2]
            self._set_status(SourceStatus(True, f"camera {self.index}: {w}x{h}"))



def _release(capture: Any) -> None:
    try:
        capture.release()
    except Exception:  # releasing a vanished device may fail; nothing to do
        pass


def _linux_video_indices() -> list[tuple[int, str]] | None:
    """``(index, name)`` of ``/dev/video*`` nodes, or ``None`` when not on Linux."""
    if not sys.platform.startswith("linux"):
        return None
    found = []
    for node in glob.glob("/dev/video*"):
        match = re.fullmatch(r"/dev/video(\d+)", node)
        if match:
            index = int(match.group(1))
            name_file = Path(f"/sys/class/video4linux/video{index}/name")
            try:
                name = name_file.read_text().strip()
            except OSError:  # no sysfs entry (or it vanished with the device)
                name = f"camera {index}"
            found.append((index, name))
    return sorted(found)


def list_cameras(max_index: int = 8) -> list[CameraInfo]:
    """Cameras that open and deliver a frame, probing indices ``0 .. max_index - 1``.

    On Linux only existing ``/dev/video*`` nodes are probed (so this returns
    ``[]`` at once on a machine without cameras).  Returns ``[]`` when OpenCV
    is not installed.
    """
    candidates = _linux_video_indices()
    if candidates is None:
        candidates = [(i, f"camera {i}") for i in range(max_index)]
    candidates = [(i, name) for i, name in candidates if i < max_index]
    if not candidates:
        return []
    try:
        import cv2
    except ImportError:
        return []
    cameras = []
    for index, name in candidates:
        capture = cv2.VideoCapture(index)
        try:
            if capture.isOpened() and capture.read()[0]:
                cameras.append(CameraInfo(index, name, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                          int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))))
        finally:
            capture.release()
    return cameras
