"""CameraSource with injected fake captures: flow, failure, reopen with back-off, frozen frames."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from clip_fixtures import StatusLog, wait_until

from imer_core.live.sources.camera import CameraSource, list_cameras


class FakeCapture:
    """cv2.VideoCapture-like fake; ``frames`` good reads, then ``after`` ("fail", "hang", "freeze")."""

    def __init__(self, opened: bool = True, frames: int | None = None, after: str = "fail",
                 period: float = 0.01, noise: bool = True) -> None:
        self.opened, self.frames, self.after, self.period, self.noise = opened, frames, after, period, noise
        self.reads = 0
        self.released = False
        self.props: dict[int, float] = {}
        self.rng = np.random.default_rng(0)
        self.failed_at: float | None = None

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened and not self.released

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self):
        time.sleep(self.period)
        self.reads += 1
        if self.frames is not None and self.reads > self.frames:
            if self.failed_at is None:
                self.failed_at = time.monotonic()
            if self.after == "fail":
                return False, None
            if self.after == "hang":
                time.sleep(1.0)
                return False, None
            return True, np.full((48, 64, 3), 77, np.uint8)  # "freeze": the same frame forever
        image = np.zeros((48, 64, 3), np.uint8)
        x = (self.reads * 3) % 56
        image[10:20, x:x + 8] = 255  # a moving square
        if self.noise:
            image += self.rng.integers(0, 3, image.shape, dtype=np.uint8)
        return True, image

    def release(self) -> None:
        self.released = True


class Factory:
    """Hands out the prepared captures in order (the last one repeatedly) and logs call times."""

    def __init__(self, *captures: FakeCapture) -> None:
        self.captures = list(captures)
        self.calls: list[float] = []
        self.made: list[FakeCapture] = []
        self.args: list[tuple] = []

    def __call__(self, index, api_preference):
        self.calls.append(time.monotonic())
        self.args.append((index, api_preference))
        template = self.captures[min(len(self.made), len(self.captures) - 1)]
        capture = FakeCapture(template.opened, template.frames, template.after, template.period, template.noise)
        self.made.append(capture)
        return capture


def make(sources, factory, **kwargs) -> CameraSource:
    kwargs.setdefault("reopen_backoff", (0.05, 0.4))
    source = CameraSource(index=0, width=64, height=48, fps=100, capture_factory=factory, **kwargs)
    sources.append(source)
    return source


def test_frames_flow_and_stop_releases(sources):
    factory = Factory(FakeCapture())
    cam = make(sources, factory)
    cam.start()
    assert wait_until(lambda: cam.status.ok, 3.0) is not None, cam.status
    assert factory.args[0] == (0, None)
    assert factory.made[0].props == {3: 64.0, 4: 48.0, 5: 100.0}
    seen, lateness = [], []
    seq = 0
    t_end = time.monotonic() + 3.0
    while len(seen) < 5 and time.monotonic() < t_end:
        frame, seq = cam.frames.wait_newer(seq, 0.5)
        if frame is not None:
            lateness.append(time.monotonic() - frame.t_capture)
            seen.append(frame)
    assert len(seen) == 5
    assert all(b.index > a.index for a, b in zip(seen, seen[1:]))
    assert all(b.t_capture >= a.t_capture for a, b in zip(seen, seen[1:]))
    assert seen[-1].image.shape == (48, 64, 3) and seen[-1].image.dtype == np.uint8
    assert seen[-1].media_time is None
    assert all(0 <= late < 0.5 for late in lateness), lateness  # t_capture is on the monotonic clock
    cam.stop()
    assert not cam.running
    assert factory.made[0].released
    assert cam.status.reason == "stopped" and not cam.status.ok
    cam.stop()  # idempotent


def test_read_failure_reopens_with_backoff(sources):
    factory = Factory(FakeCapture(frames=10, after="fail"), FakeCapture())
    cam = make(sources, factory)
    log = StatusLog(cam)
    cam.start()
    assert wait_until(lambda: cam.status.ok, 3.0) is not None
    assert wait_until(lambda: factory.made[0].failed_at is not None, 3.0) is not None
    failed_at = factory.made[0].failed_at
    failed = log.wait_for(lambda s: not s.ok and s.reason != "starting", 3.0)
    assert failed is not None, log.snapshot()
    assert failed[0] - failed_at < 0.5  # by the source's clock (the status lasts only until the reopen)
    assert failed[1].reason.startswith("camera 0 stopped delivering frames")
    assert wait_until(lambda: factory.made[0].released, 3.0) is not None
    assert wait_until(lambda: cam.status.ok, 3.0) is not None, cam.status
    assert len(factory.made) == 2
    assert factory.calls[1] - failed_at >= 0.04  # waited for the back-off before reopening
    _, seq = cam.frames.wait_newer(cam.frames.sequence, 3.0)
    assert seq > 0


def test_open_failure_backs_off_exponentially_then_recovers(sources):
    closed = FakeCapture(opened=False)
    factory = Factory(*[closed] * 6, FakeCapture())
    cam = make(sources, factory, reopen_backoff=(0.03, 0.3))
    log = StatusLog(cam)
    cam.start()
    assert log.wait_for(lambda s: s.reason == "camera 0 could not be opened", 3.0) is not None, log.snapshot()
    assert wait_until(lambda: cam.status.ok, 5.0) is not None, cam.status
    # back-off 0.03, 0.06, 0.12, 0.24, then capped at 0.3 (uncapped: 0.48, 0.96); lower bounds are
    # exact, upper bounds leave room for a late thread and still tell the cap from doubling
    gaps = np.diff(factory.calls[:7])
    assert 0.025 <= gaps[0] < 0.2  # starts at the minimum, not at the maximum
    assert gaps[1] >= 0.055 and gaps[2] >= 0.115 and gaps[3] >= 0.235  # doubles
    assert gaps[4] >= 0.295 and gaps[5] >= 0.295
    assert gaps[5] < 0.6  # capped at the maximum
    assert all(c.released for c in factory.made[:6])


def test_factory_exception_is_a_status_not_a_crash(sources):
    def broken(index, api):
        raise RuntimeError("driver exploded")

    cam = make(sources, broken)
    cam.start()
    assert wait_until(lambda: "driver exploded" in cam.status.reason, 3.0) is not None
    assert cam.running and not cam.status.ok


def test_frozen_frames_fail_then_reopen(sources):
    factory = Factory(FakeCapture(frames=5, after="freeze"), FakeCapture())
    cam = make(sources, factory, frozen_after_s=0.3)
    log = StatusLog(cam)
    cam.start()
    assert wait_until(lambda: cam.status.ok, 3.0) is not None
    assert wait_until(lambda: factory.made[0].failed_at is not None, 3.0) is not None
    frozen = log.wait_for(lambda s: "frozen" in s.reason, 3.0)
    assert frozen is not None, log.snapshot()
    assert not frozen[1].ok
    assert 0.25 <= frozen[0] - factory.made[0].failed_at < 0.8  # by the source's clock
    assert wait_until(lambda: cam.status.ok and len(factory.made) == 2, 3.0) is not None


def test_static_but_noisy_scene_is_not_frozen(sources):
    class StillScene(FakeCapture):
        def read(self):
            time.sleep(self.period)
            base = np.full((48, 64, 3), 120, np.int16)
            return True, np.clip(base + self.rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)

    cam = make(sources, lambda i, a: StillScene(), frozen_after_s=0.2)
    log = StatusLog(cam)
    cam.start()
    assert wait_until(lambda: cam.status.ok, 3.0) is not None
    reads = cam.frames.sequence
    time.sleep(0.5)
    assert cam.frames.sequence > reads  # frames kept coming ...
    assert cam.status.ok, cam.status  # ... and were never taken for frozen
    assert [s.reason for _, s in log.snapshot() if not s.ok] == ["starting"], log.snapshot()


def test_hung_read_is_reported_as_stalled(sources):
    factory = Factory(FakeCapture(frames=5, after="hang"), FakeCapture())  # the read hangs for 1 s
    cam = make(sources, factory, stall_after_s=0.25)
    log = StatusLog(cam)
    cam.start()
    assert wait_until(lambda: cam.status.ok, 3.0) is not None
    assert wait_until(lambda: factory.made[0].failed_at is not None, 3.0) is not None
    assert wait_until(lambda: not cam.status.ok, 3.0) is not None
    seen_at = time.monotonic()
    status, recorded = cam.status, log.snapshot()
    # the status property reports the stall itself (computed on read, not recorded by the log):
    # not before stall_after_s without frames, and while the read still hangs (the thread has
    # not reported a failure yet); the upper bound leaves ~0.5 s for a late polling thread
    assert seen_at - cam.frames.latest().t_capture >= 0.25
    assert seen_at - factory.made[0].failed_at < 0.75
    assert [s.reason for _, s in recorded if not s.ok] == ["starting"], recorded
    assert not status.ok and "stopped delivering frames" in status.reason


def test_stop_while_reconnecting_is_prompt(sources):
    cam = make(sources, lambda i, a: FakeCapture(opened=False), reopen_backoff=(120.0, 120.0))
    cam.start()
    assert wait_until(lambda: "could not be opened" in cam.status.reason, 30.0) is not None
    t0 = time.monotonic()
    cam.stop()
    assert time.monotonic() - t0 < 60.0  # not the 120 s back-off (a bound no loaded machine reaches)
    assert not cam.running
    assert not any(t.name == "camera-0" and t.is_alive() for t in threading.enumerate())


def test_invalid_arguments():
    with pytest.raises(ValueError):
        CameraSource(width=0)
    with pytest.raises(ValueError):
        CameraSource(reopen_backoff=(2.0, 1.0))


def test_list_cameras_is_fast_without_devices():
    t0 = time.monotonic()
    cameras = list_cameras(max_index=4)
    assert time.monotonic() - t0 < 60.0  # no probe waits for a device (a hang, not a speed, check)
    assert all(c.index < 4 and c.width > 0 for c in cameras)
