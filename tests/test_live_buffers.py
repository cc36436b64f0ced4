"""FrameSlot (newest frame only) and AudioRingBuffer (absolute sample indices)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from imer_core.live.buffers import AudioRingBuffer, FrameSlot, VideoFrame


def frame(i: int, t: float = 0.0) -> VideoFrame:
    return VideoFrame(np.full((2, 2, 3), i, np.uint8), t, i)


def test_frame_slot_keeps_only_the_newest_and_counts_drops():
    slot = FrameSlot()
    assert slot.latest() is None and slot.sequence == 0
    for i in range(3):
        slot.put(frame(i))
    assert slot.sequence == 3 and slot.latest().index == 2
    assert slot.dropped == 2  # frames 0 and 1 were never taken
    got, seq = slot.wait_newer(0, 0.1)
    assert got.index == 2 and seq == 3
    slot.put(frame(3))  # frame 2 was taken: not a drop
    assert slot.dropped == 2
    got, seq = slot.wait_newer(seq, 0.1)
    assert got.index == 3 and seq == 4


def test_frame_slot_wait_times_out_and_wakes_on_put():
    slot = FrameSlot()
    t0 = time.monotonic()
    assert slot.wait_newer(0, 0.1) == (None, 0)
    assert time.monotonic() - t0 >= 0.09  # waited for its time-out
    timer = threading.Timer(0.05, slot.put, args=(frame(7),))
    timer.start()
    t0 = time.monotonic()
    got, seq = slot.wait_newer(0, 120.0)
    assert got.index == 7 and seq == 1 and time.monotonic() - t0 < 60.0  # woken by the put, not timed out
    timer.join()


def test_frame_slot_clear_forgets_the_frame():
    slot = FrameSlot()
    slot.put(frame(0))
    slot.clear()
    assert slot.latest() is None
    assert slot.wait_newer(0, 0.05) == (None, 0)  # a cleared frame is not handed out
    slot.put(frame(1))
    assert slot.dropped == 0
    assert slot.wait_newer(0, 0.05)[0].index == 1


def test_ring_buffer_wraparound_and_absolute_indices():
    ring = AudioRingBuffer(sample_rate=10, capacity_s=1.0)  # 10 samples
    assert ring.capacity == 10 and ring.total_written == 0 and ring.last_write_time is None
    data = np.arange(25, dtype=np.float32)
    for lo in range(0, 25, 7):  # chunks of 7 wrap around the 10-sample buffer
        ring.write(data[lo:lo + 7], t_end=100.0 + (min(lo + 7, 25) - 1) / 10)
    assert ring.total_written == 25
    np.testing.assert_array_equal(ring.read(15, 25), data[15:25])
    # 12..14 were overwritten (zeros), nothing exists past 25 (cut off)
    np.testing.assert_array_equal(ring.read(12, 30), np.concatenate([np.zeros(3), data[15:25]]))
    np.testing.assert_array_equal(ring.read(20, 23), data[20:23])
    assert ring.read(30, 40).size == 0
    np.testing.assert_array_equal(ring.read(-2, 2), np.zeros(4))  # overwritten long ago / before start
    last, start = ring.read_last(0.4)
    assert start == 21
    np.testing.assert_array_equal(last, data[21:25])


def test_ring_buffer_time_of_maps_indices_to_monotonic_time():
    ring = AudioRingBuffer(sample_rate=16000, capacity_s=1.0)
    with pytest.raises(RuntimeError):
        ring.time_of(0)
    ring.write(np.zeros(1600), t_end=50.0)
    assert ring.last_write_time == 50.0
    assert ring.time_of(1599) == pytest.approx(50.0)
    assert ring.time_of(0) == pytest.approx(50.0 - 1599 / 16000)
    ring.write(np.zeros(320), t_end=50.02)
    assert ring.time_of(1919) == pytest.approx(50.02)
    assert ring.time_of(1599) == pytest.approx(50.0)
    before = time.monotonic()
    ring.write(np.zeros(10))  # t_end defaults to now
    assert before <= ring.last_write_time <= time.monotonic()


def test_ring_buffer_mixes_channels_and_counts_oversized_writes():
    ring = AudioRingBuffer(sample_rate=10, capacity_s=1.0)
    stereo = np.stack([np.ones(4), np.zeros(4)], axis=1)
    ring.write(stereo)
    np.testing.assert_array_equal(ring.read(0, 4), np.full(4, 0.5, np.float32))
    ring.write(np.zeros(0))  # empty writes change nothing
    assert ring.total_written == 4
    big = np.arange(25, dtype=np.float32)
    ring.write(big, t_end=9.0)
    assert ring.total_written == 29  # every sample counts, even those that did not fit
    np.testing.assert_array_equal(ring.read(19, 29), big[15:])
    assert ring.time_of(28) == 9.0
    ring.clear()
    assert ring.total_written == 0 and ring.last_write_time is None
    with pytest.raises(ValueError):
        AudioRingBuffer(sample_rate=0)


def test_ring_buffer_concurrent_writer_and_reader():
    ring = AudioRingBuffer(sample_rate=1000, capacity_s=0.5)
    n_chunks, chunk = 200, 20

    t0 = time.monotonic()

    def writer():
        # the chunks' own clock, as a capture callback passes it: a writer thread that the scheduler
        # holds back for over GAP_TOLERANCE_S must not read as a gap in the audio (it did with "now"
        # as the time of each chunk: the ring then inserted silence and the counter jumped, CI 2026-12-07)
        for i in range(n_chunks):
            ring.write(np.arange(i * chunk, (i + 1) * chunk, dtype=np.float32), t_end=t0 + (i + 1) * chunk / 1000)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        samples, start = ring.read_last(0.1)
        if len(samples):  # whatever is returned is a contiguous run of the counter
            np.testing.assert_array_equal(samples, np.arange(start, start + len(samples), dtype=np.float32))
    thread.join()
    assert ring.total_written == n_chunks * chunk


def test_importing_the_sources_package_loads_no_capture_library():
    import subprocess
    import sys

    code = ("import sys, imer_core.live.sources; "
            "print(sorted(m for m in ('cv2', 'av', 'sounddevice', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
