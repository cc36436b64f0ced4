"""MediaFileSource and MediaWriter on small generated clips (moving square + sine tone)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

from imer_core.live.sources import media_writer  # noqa: E402
from imer_core.live.sources.media import MediaFileSource, MediaOpenError, probe_media  # noqa: E402
from imer_core.live.sources.media_writer import MediaWriter, write_media  # noqa: E402

FPS = 20
W, H = 64, 48
SR = 16000


def square_frames(n: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        image = np.full((H, W, 3), 40, np.uint8)
        x = 4 + 2 * i
        image[16:32, x:x + 12] = (0, 200, 255)
        frames.append(image)
    return frames


def square_x(image: np.ndarray) -> int:
    """Left edge of the bright square."""
    return int(np.argmax(image[24, :, 2] > 128))


def sine(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * SR / len(x))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "av": write_media(root / "av.mp4", square_frames(FPS), FPS, sine(1.0)),
        "short": write_media(root / "short.mp4", square_frames(FPS // 2), FPS, sine(0.5, 660.0)),
        "video": write_media(root / "video.mp4", square_frames(FPS // 2), FPS, None),
        "wav": write_media(root / "tone.wav", [], FPS, sine(0.6, 440.0)),
    }


def collect(source, seconds: float) -> list:
    frames, seq = [], 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        frame, seq = source.frames.wait_newer(seq, 0.05)
        if frame is not None:
            frames.append(frame)
    return frames


def wait_until(predicate, timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_probe_media(clips):
    info = probe_media(clips["av"])
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.fps, info.sample_rate) == (W, H, 20.0, SR)
    assert info.duration_s == pytest.approx(1.0, abs=0.06)
    wav = probe_media(clips["wav"])
    assert wav.has_audio and not wav.has_video and wav.fps is None and wav.width is None
    assert wav.duration_s == pytest.approx(0.6, abs=0.01)


def test_realtime_playback_paces_video_and_audio_in_sync(clips):
    media = MediaFileSource(clips["av"])
    t0 = time.monotonic()
    media.start()
    frames = collect(media.video, 1.35)
    media.stop()
    assert media.video.status.reason == "stopped"
    assert 16 <= len(frames) <= 20
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    last = frames[-1]
    assert last.media_time == pytest.approx(0.95, abs=1e-6)
    assert 0.8 < last.t_capture - t0 < 1.1  # paced: 20 frames at 20 fps take ~1 s
    for frame in frames:  # t_capture = the time the frame was due on the shared clock
        assert frame.t_capture - frames[0].t_capture == pytest.approx(frame.media_time - frames[0].media_time,
                                                                      abs=1e-6)
        assert frame.image.shape == (H, W, 3)
        assert abs(square_x(frame.image) - (4 + 2 * round(frame.media_time * FPS))) <= 1
    ring = media.audio.ring
    assert ring.total_written == SR  # exactly the file's duration (AAC end padding trimmed)
    audio = ring.read(0, ring.total_written)
    assert abs(peak_frequency(audio) - 440.0) < 2.0
    assert np.sqrt(np.mean(audio[2000:14000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    frame10 = next(f for f in frames if abs(f.media_time - 0.5) < 1e-6)
    assert ring.time_of(SR // 2) == pytest.approx(frame10.t_capture, abs=0.01)  # audio/video in sync


def test_end_of_file_sets_ended_status(clips):
    media = MediaFileSource(clips["short"])
    media.start()
    assert wait_until(lambda: media.video.status.ok and media.audio.status.ok, 1.0)
    assert wait_until(lambda: media.video.status.ended and media.audio.status.ended, 2.0)
    for status in (media.video.status, media.audio.status):
        assert status.reason == "end of file" and not status.ok and not status.absent
    assert wait_until(lambda: not media.running, 1.0)
    assert media.audio.ring.total_written == SR // 2
    media.stop()


def test_looping_keeps_time_running(clips):
    media = MediaFileSource(clips["short"], loop=True)
    t0 = time.monotonic()
    media.start()
    frames = collect(media.video, 1.3)
    elapsed = time.monotonic() - t0
    total = media.audio.ring.total_written
    assert media.video.status.ok and media.audio.status.ok
    media.stop()
    times = [f.t_capture for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    restarts = sum(b.media_time < a.media_time for a, b in zip(frames, frames[1:]))
    assert restarts == 2  # 0.5 s clip over 1.3 s: passes start at 0.0, 0.5 and 1.0 s
    assert all(0.0 <= f.media_time < 0.5 for f in frames)
    assert abs(total / SR - elapsed) < 0.1
    second_pass = [f for f in frames if 0.5 <= f.t_capture - frames[0].t_capture < 1.0]
    assert second_pass and second_pass[0].media_time == pytest.approx(0.0)


def test_video_only_and_audio_only_files(clips):
    video_only = MediaFileSource(clips["video"])
    assert video_only.audio.status.absent and video_only.audio.status.reason == "file has no audio track"
    video_only.start()
    assert not video_only.audio.running and video_only.audio.status.absent
    assert len(collect(video_only.video, 0.3)) >= 3
    video_only.stop()
    assert video_only.audio.status.absent  # stays absent after stop

    audio_only = MediaFileSource(clips["wav"])
    assert audio_only.video.status == audio_only.video.status.__class__(
        False, "file has no video track", absent=True)
    audio_only.start()
    assert wait_until(lambda: audio_only.audio.status.ended, 2.0)
    audio_only.stop()
    ring = audio_only.audio.ring
    assert ring.total_written == int(0.6 * SR)
    assert abs(peak_frequency(ring.read(0, ring.total_written)) - 440.0) < 2.0


def test_streams_stop_and_restart_individually_on_the_shared_clock(clips):
    media = MediaFileSource(clips["av"])
    t0 = time.monotonic()
    media.start()
    collect(media.video, 0.3)
    media.video.stop()  # the privacy switch: vision off, audio goes on
    assert media.video.frames.latest() is None and not media.video.running
    time.sleep(0.25)
    assert media.audio.status.ok
    media.video.start()
    frames = collect(media.video, 0.2)
    media.stop()
    assert frames, "no frames after restarting the video stream"
    first = frames[0]
    assert first.media_time == pytest.approx(first.t_capture - t0, abs=0.08)
    assert first.media_time > 0.45  # resumed where the shared clock is, not at 0


def test_non_realtime_decodes_fast(clips):
    media = MediaFileSource(clips["av"], realtime=False)
    t0 = time.monotonic()
    media.start()
    assert wait_until(lambda: media.audio.status.ended and media.video.status.ended, 5.0)
    assert time.monotonic() - t0 < 0.9
    assert media.audio.ring.total_written == SR
    assert media.video.frames.latest().media_time == pytest.approx(0.95)
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
