"""MediaFileSource and MediaWriter on small generated clips (moving square + sine tone)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

from clip_fixtures import peak_frequency, tone, wait_until  # noqa: E402

from imer_core.live.buffers import VideoFrame  # noqa: E402
from imer_core.live.sources import media_writer  # noqa: E402
from imer_core.live.sources.media import MediaFileSource, MediaOpenError, probe_media  # noqa: E402
from imer_core.live.sources.media_writer import MediaWriter, write_media  # noqa: E402

FPS = 20
W, H = 64, 48
SR = 16000
EPS = 1e-6  # float rounding of times computed on the source's clock


def square_frames(n: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        image = np.full((H, W, 3), 40, np.uint8)
        x = 4 + 2 * (i % FPS)  # the square restarts every second (stays inside the image)
        image[16:32, x:x + 12] = (0, 200, 255)
        frames.append(image)
    return frames


def square_x(image: np.ndarray) -> int:
    """Left edge of the bright square."""
    return int(np.argmax(image[24, :, 2] > 128))


def sine(seconds: float, freq: float = 440.0) -> np.ndarray:
    return tone(SR, int(seconds * SR), freq=freq)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "av": write_media(root / "av.mp4", square_frames(FPS), FPS, sine(1.0)),
        "short": write_media(root / "short.mp4", square_frames(FPS // 2), FPS, sine(0.5, 660.0)),
        "long": write_media(root / "long.mp4", square_frames(3 * FPS), FPS, sine(3.0)),
        "sparse": write_media(root / "sparse.mp4", square_frames(20), 5, sine(4.0)),  # 4 s at 5 fps
        "video": write_media(root / "video.mp4", square_frames(FPS // 2), FPS, None),
        "wav": write_media(root / "tone.wav", [], FPS, sine(0.6, 440.0)),
    }


def collect(source, timeout: float, until=lambda: False) -> list[tuple[VideoFrame, float]]:
    """Frames the test thread sees within ``timeout`` s (or until ``until()``), with their arrival times.

    The slot keeps only the newest frame, so a test thread that falls behind
    sees a subset: count frames with ``frames.sequence`` instead.
    """
    got, seq = [], source.frames.sequence
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and not until():
        frame, seq = source.frames.wait_newer(seq, 0.02)
        if frame is not None:
            got.append((frame, time.monotonic()))
    return got


def audio_clock_t0(media: MediaFileSource) -> float:
    """The shared clock's start as the audio stream placed it (audio written at its due times).

    Read after the audio stream ended or stopped (two reads of a running ring could disagree).
    """
    ring = media.audio.ring
    return ring.last_write_time - ring.total_written / SR


def test_probe_media(clips):
    info = probe_media(clips["av"])
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.fps, info.sample_rate) == (W, H, 20.0, SR)
    assert info.duration_s == pytest.approx(1.0, abs=0.06)
    wav = probe_media(clips["wav"])
    assert wav.has_audio and not wav.has_video and wav.fps is None and wav.width is None
    assert wav.duration_s == pytest.approx(0.6, abs=0.01)


def test_realtime_playback_paces_video_and_audio_in_sync(clips, sources):
    media = MediaFileSource(clips["av"])
    sources.append(media)
    t_before = time.monotonic()
    media.start()
    t_started = time.monotonic()
    ended = lambda: media.video.status.ended and media.audio.status.ended  # noqa: E731
    seen = collect(media.video, 10.0, until=ended)
    assert ended(), (media.video.status, media.audio.status)
    t_ended = time.monotonic()
    video = media.video
    emitted, late = video.frames.sequence, video.late_dropped
    # every frame of the file is shown at most once; frames are skipped only as late (counted), or
    # at the start when the video joined the clock over half a frame after the audio (not counted)
    assert 12 <= emitted <= emitted + late <= 20
    last = video.frames.latest()  # the slot keeps the last frame until stop()
    assert last.index == emitted - 1
    if not seen or last.index > seen[-1][0].index:
        seen.append((last, t_ended))
    # the last frame is the file's last one, unless frames at the very end were skipped as late
    assert 0.95 - late / FPS - EPS <= last.media_time <= 0.95 + EPS
    frames = [f for f, _ in seen]
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    # t_capture = the time the frame was due on the shared clock, which started inside start()
    t0 = last.t_capture - last.media_time
    assert t_before - EPS <= t0 <= t_started + EPS
    for frame in frames:
        assert frame.t_capture - t0 == pytest.approx(frame.media_time, abs=EPS)
        assert frame.image.shape == (H, W, 3)
        assert abs(square_x(frame.image) - (4 + 2 * round(frame.media_time * FPS))) <= 1
    # paced: no frame is handed over before it is due, and most arrive on time
    lateness = [t_seen - f.t_capture for f, t_seen in seen]
    assert min(lateness) >= -2e-3, lateness
    assert statistics.median(lateness) < 0.2, lateness
    assert t_ended >= t0 + 1.0 - 1e-3  # the audio too: 1 s of audio is not over before 1 s has passed
    ring = media.audio.ring
    assert ring.total_written == SR  # exactly the file's duration (AAC end padding trimmed)
    assert audio_clock_t0(media) == pytest.approx(t0, abs=1e-3)  # one clock for audio and video
    audio = ring.read(0, ring.total_written)
    assert abs(peak_frequency(audio) - 440.0) < 2.0
    assert np.sqrt(np.mean(audio[2000:14000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    for frame in frames:  # audio/video in sync
        assert ring.time_of(round(frame.media_time * SR)) == pytest.approx(frame.t_capture, abs=0.01)
    media.stop()
    assert media.video.status.reason == "stopped"


def test_end_of_file_sets_ended_status(clips, sources):
    media = MediaFileSource(clips["short"])
    sources.append(media)
    media.start()
    assert wait_until(lambda: media.video.status.ended and media.audio.status.ended, 10.0) is not None
    for status in (media.video.status, media.audio.status):
        assert status.reason == "end of file" and not status.ok and not status.absent
    assert wait_until(lambda: not media.running, 3.0) is not None
    assert media.audio.ring.total_written == SR // 2
    video = media.video
    assert 1 <= video.frames.sequence <= video.frames.sequence + video.late_dropped <= FPS // 2
    media.stop()


def test_looping_keeps_time_running(clips, sources):
    media = MediaFileSource(clips["short"], loop=True)
    sources.append(media)
    period = media.info.duration_s
    assert period == pytest.approx(0.5, abs=0.03)
    t_before = time.monotonic()
    media.start()
    t_started = time.monotonic()
    frames = [f for f, _ in collect(media.video, 2.3)]  # ~4.6 passes
    assert media.video.status.ok and media.audio.status.ok  # looping never ends
    media.stop()
    t0 = audio_clock_t0(media)  # audio padded to the period: its sample count follows the clock
    assert t_before - 1e-3 <= t0 <= t_started + 1e-3
    assert media.audio.ring.total_written >= 3 * period * SR  # kept running over several passes
    times = [f.t_capture for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert all(0.0 <= f.media_time < period for f in frames)
    passes = []
    for f in frames:  # pass k of the file starts at t0 + k * period on the shared clock
        k = (f.t_capture - t0 - f.media_time) / period
        assert k == pytest.approx(round(k), abs=1e-4) and round(k) >= 0, (f, t0)
        passes.append(round(k))
    assert passes == sorted(passes)
    restarts = sum(b.media_time < a.media_time for a, b in zip(frames, frames[1:]))
    assert restarts >= 2 and len(set(passes)) >= 3, passes


def test_video_only_and_audio_only_files(clips, sources):
    video_only = MediaFileSource(clips["video"])
    sources.append(video_only)
    assert video_only.audio.status.absent and video_only.audio.status.reason == "file has no audio track"
    video_only.start()
    assert not video_only.audio.running and video_only.audio.status.absent
    assert wait_until(lambda: video_only.video.status.ended, 10.0) is not None
    video = video_only.video
    assert 3 <= video.frames.sequence <= video.frames.sequence + video.late_dropped <= FPS // 2
    video_only.stop()
    assert video_only.audio.status.absent  # stays absent after stop

    audio_only = MediaFileSource(clips["wav"])
    sources.append(audio_only)
    assert audio_only.video.status == audio_only.video.status.__class__(
        False, "file has no video track", absent=True)
    audio_only.start()
    assert wait_until(lambda: audio_only.audio.status.ended, 10.0) is not None
    audio_only.stop()
    ring = audio_only.audio.ring
    assert ring.total_written == int(0.6 * SR)
    assert abs(peak_frequency(ring.read(0, ring.total_written)) - 440.0) < 2.0


def test_streams_stop_and_restart_individually_on_the_shared_clock(clips, sources):
    media = MediaFileSource(clips["long"])  # 3 s: still playing whenever the video restarts
    sources.append(media)
    t_before = time.monotonic()
    media.start()
    t_started = time.monotonic()
    assert wait_until(lambda: media.video.frames.sequence >= 3, 5.0) is not None
    media.video.stop()  # the privacy switch: vision off, audio goes on
    assert media.video.frames.latest() is None and not media.video.running
    written = media.audio.ring.total_written
    time.sleep(0.25)
    assert media.audio.status.ok and media.audio.ring.total_written > written
    t_restart, seq = time.monotonic(), media.video.frames.sequence
    media.video.start()
    frames = [f for f, _ in collect(media.video, 5.0, until=lambda: media.video.frames.sequence >= seq + 3)]
    media.stop()
    assert frames, "no frames after restarting the video stream"
    t0 = audio_clock_t0(media)
    assert t_before - 1e-3 <= t0 <= t_started + 1e-3
    for frame in frames:  # the restarted video is due on the audio's clock
        assert frame.t_capture - t0 == pytest.approx(frame.media_time, abs=1e-3)
    # resumed where the shared clock is (not at 0): at most half a frame before the restart
    assert frames[0].media_time >= t_restart - t0 - 0.5 / FPS - 1e-3
    assert frames[0].media_time > 0.3


def test_non_realtime_decodes_fast(clips, sources):
    # 4 s of media but only 20 frames: little decoding work, so even a starved machine is done
    # long before real-time pacing could be
    media = MediaFileSource(clips["sparse"], realtime=False)
    sources.append(media)
    t_before = time.monotonic()
    media.start()
    assert wait_until(lambda: media.audio.status.ended and media.video.status.ended, 10.0) is not None
    last = media.video.frames.latest()
    ring = media.audio.ring
    assert ring.total_written == 4 * SR
    assert last.media_time == pytest.approx(3.8) and media.video.frames.sequence == 20
    # without pacing t_capture and the ring's write times are when the data was emitted;
    # paced, media time p is never out before t_before + p (3.8 s for the last frame, 4 s of audio)
    assert ring.last_write_time - t_before < 2.0
    assert last.t_capture - t_before < 2.0
    media.stop()


def test_bad_files_raise_media_open_error(tmp_path, clips):
    with pytest.raises(MediaOpenError, match="not found"):
        MediaFileSource(tmp_path / "missing.mp4")
    with pytest.raises(MediaOpenError, match="not a file"):
        probe_media(tmp_path)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaOpenError, match="cannot read notes.mp4"):
        MediaFileSource(text)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(Path(clips["av"]).read_bytes()[:3000])
    with pytest.raises(MediaOpenError):
        probe_media(truncated)


def test_media_writer_round_trip(tmp_path):
    import av

    path = tmp_path / "round.mp4"
    frames = square_frames(12)
    with MediaWriter(path, W, H, 24.0) as writer:
        for frame in frames:
            writer.add_frame(frame)
            writer.add_audio(sine(1 / 24))
    writer.close()  # idempotent
    assert writer.closed and writer.frames_written == 12
    with pytest.raises(RuntimeError, match="closed"):
        writer.add_frame(frames[0])
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(decoded) == 12 and decoded[0].shape == (H, W, 3)
    assert [square_x(f) for f in decoded] == [4 + 2 * i for i in range(12)]
    assert np.abs(decoded[5].astype(int) - frames[5]).mean() < 4


def test_media_writer_mpeg4_fallback_and_validation(tmp_path, monkeypatch):
    import av

    monkeypatch.setattr(media_writer, "_video_codec_name", lambda: "mpeg4")
    path = write_media(tmp_path / "fallback.mp4", square_frames(5), 10, None)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
        assert sum(1 for _ in container.decode(video=0)) == 5
    with pytest.raises(ValueError, match="even"):
        MediaWriter(tmp_path / "odd.mp4", 63, 48, 10)
    with pytest.raises(ValueError, match="video or an audio"):
        MediaWriter(tmp_path / "none.mp4", 64, 48, 10, video=False, audio=False)
    with MediaWriter(tmp_path / "shape.mp4", 64, 48, 10, audio=False) as writer:
        with pytest.raises(ValueError, match="shape"):
            writer.add_frame(np.zeros((48, 32, 3), np.uint8))
        with pytest.raises(RuntimeError, match="no audio"):
            writer.add_audio(np.zeros(10, np.float32))


def test_looping_silence_padding_does_not_depend_on_the_declared_duration():
    """A header declaring 10 hours used to make the loop padding allocate them at once (2.3 GB)."""
    import tracemalloc
    from types import SimpleNamespace

    from imer_core.live.sources.media import _ChunkWriter

    writes = []

    class Ring:
        def write(self, chunk, t):
            writes.append(len(chunk))

    source = SimpleNamespace(ring=Ring(), _owner=SimpleNamespace(realtime=False), description="x",
                             _status=SimpleNamespace(ok=True),
                             _wait_until=lambda due: len(writes) < 2000)  # "stopped" after 2000 chunks
    ten_hours = 10 * 3600 * 16000
    writer = _ChunkWriter(source, 0.0, 0, ten_hours)
    tracemalloc.start()
    try:
        assert writer.align(5 * 3600.0) is False  # first packet stamped 5 h in: silence, chunk by chunk
        writes.clear()
        assert writer.pad_to(ten_hours) is False
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(writes) == 2000 and peak < 5 << 20


def test_video_decoding_behind_real_time_still_delivers_some_frames(clips, sources, monkeypatch):
    """On a loaded CPU every frame is late: before, every one was dropped and vision stayed 'starting'
    for the whole run (seen at load 20); now one late frame every 0.5 s is still emitted."""
    import itertools
    import threading

    from imer_core.live.sources import media as media_module

    real, calls = time.monotonic, itertools.count()
    # the source's clock runs 0.05 s per reading (several per frame of 0.05 s): decoding falls ever
    # further behind (no real waiting)
    monkeypatch.setattr(media_module.time, "monotonic", lambda: real() + 0.05 * next(calls))
    media = MediaFileSource(clips["long"])
    sources.append(media)
    media.start()
    threading.Event().wait(3.0)  # threading's own clock is not the patched one
    video = media.video
    assert video.late_dropped > 0 and video.frames.sequence >= 5
    assert video.frames.sequence < video.late_dropped  # still mostly dropped: it does not fall further behind
    assert video.status.ok or video.status.ended, video.status
