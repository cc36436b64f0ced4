"""The live pipeline's lifecycle: built complete by its constructor, opened and started only by start()."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from live_fakes import FakeAudio, FakeVideo, fake_rig

from imer_core.live.parts import SourceSpec, open_sources
from imer_core.live.pipeline import LivePipeline, PipelineConfig
from imer_core.live.sources.base import SourceOpenError
from imer_core.modalities import Modality

QUICK = dict(use_shipped=False, file_model_wait_s=0, hop_s=0.1)


def imer_threads(before: set[threading.Thread]) -> list[str]:
    return sorted(t.name for t in set(threading.enumerate()) - before if t.is_alive())


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_the_constructor_builds_every_part_and_opens_nothing():
    before = set(threading.enumerate())
    rig = fake_rig()
    pipeline = LivePipeline(PipelineConfig(**QUICK), rig.parts())
    assert pipeline.video is rig.video and pipeline.audio is rig.audio
    assert pipeline.face_worker.frames is rig.video.frames and pipeline.voice_worker.ring is rig.audio.ring
    assert pipeline.speech_worker.ring is rig.audio.ring and pipeline.speech_worker.window is pipeline.transcript
    assert rig.video.starts == rig.audio.starts == 0 and imer_threads(before) == []
    view = pipeline.snapshot()
    assert not view.started and not view.playing and pipeline.statuses() == {}
    assert pipeline.transcripts() == [] and pipeline.latest_face() is None and pipeline.stats()["face_fps"] == 0.0
    pipeline.stop()  # before the start, and twice: nothing to stop, nothing raised
    pipeline.stop(quick=True)
    assert rig.video.starts == 0 and imer_threads(before) == []


def test_switches_set_before_the_start_are_applied_by_it_and_a_stopped_pipeline_starts_again():
    before = set(threading.enumerate())
    rig = fake_rig()
    pipeline = LivePipeline(PipelineConfig(**QUICK), rig.parts())
    pipeline.set_enabled("vision", False)  # before the start: only the switch changes
    assert rig.video.starts == 0 and not pipeline.face_worker.running
    pipeline.start()
    try:
        pipeline.start()  # a second start changes nothing
        assert rig.video.starts == 0 and not pipeline.face_worker.running  # vision stays off
        assert rig.audio.starts == 1 and pipeline.voice_worker.running and pipeline.snapshot().started
        assert wait_for(lambda: pipeline.statuses()[Modality.AUDIO].state.value == "observed")
        assert pipeline.statuses()[Modality.VISION].state.value == "disabled"
    finally:
        pipeline.stop()
    assert not rig.audio.running and not pipeline.snapshot().started
    pipeline.set_enabled("vision", True)  # after the stop: nothing restarts
    assert rig.video.starts == 0 and not pipeline.face_worker.running
    pipeline.start()  # the same parts run again
    try:
        assert rig.video.starts == 1 and rig.audio.starts == 2 and pipeline.face_worker.running
        assert wait_for(lambda: pipeline.latest_frame() is not None)
    finally:
        pipeline.stop()
        pipeline.stop()
    assert not rig.video.running and not rig.audio.running
    assert [n for n in imer_threads(before) if n.startswith(("imer-", "fake-"))] == []


@pytest.mark.parametrize("content", [b"this is not a video", None])
def test_a_media_file_that_cannot_be_read_fails_in_the_constructor(tmp_path, content):
    pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    parts = replace(fake_rig().parts(), sources=open_sources)  # the real media source
    before = set(threading.enumerate())
    with pytest.raises(SourceOpenError, match="clip.mp4") as failure:
        LivePipeline(PipelineConfig(sources=SourceSpec(str(path)), **QUICK), parts)
    assert "\n" not in str(failure.value) and imer_threads(before) == []


def test_a_media_file_is_probed_by_the_constructor_and_plays_only_after_the_start():
    pytest.importorskip("av")
    from imer_core.assets import demo_clip_path

    parts = replace(fake_rig().parts(), sources=open_sources)
    pipeline = LivePipeline(PipelineConfig(sources=SourceSpec(str(demo_clip_path())), **QUICK), parts)
    try:
        view = pipeline.snapshot()
        assert view.file_duration_s and view.file_duration_s > 1 and not view.playing and not pipeline.ended
        assert pipeline.latest_frame() is None
        pipeline.start()
        assert wait_for(lambda: pipeline.latest_frame() is not None) and pipeline.snapshot().playing
    finally:
        pipeline.stop()
    assert not pipeline.snapshot().playing


def test_replacing_the_sources_before_the_start_opens_them_only_at_the_start():
    rig = fake_rig()
    other = (FakeVideo(), FakeAudio())
    parts = replace(rig.parts(), sources=lambda spec: other if spec.camera == 1 else (rig.video, rig.audio))
    pipeline = LivePipeline(PipelineConfig(**QUICK), parts)
    assert pipeline.replace_sources(SourceSpec(camera=1)) == ""
    assert pipeline.video is other[0] and pipeline.face_worker.frames is other[0].frames
    assert pipeline.voice_worker.ring is other[1].ring and pipeline.config.sources.camera == 1
    assert other[0].starts == 0 and rig.video.starts == 0
    pipeline.start()
    try:
        assert other[0].starts == 1 and other[1].starts == 1 and rig.video.starts == 0
    finally:
        pipeline.stop()


def test_a_source_that_cannot_be_built_leaves_the_running_one_untouched(tmp_path):
    pytest.importorskip("av")
    rig = fake_rig()
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    parts = replace(rig.parts(), sources=lambda spec: open_sources(spec) if spec.is_file else (rig.video, rig.audio))
    pipeline = LivePipeline(PipelineConfig(**QUICK), parts)
    pipeline.start()
    try:
        assert wait_for(lambda: rig.video.status.ok)
        problem = pipeline.replace_sources(SourceSpec(str(bad)), timeout_s=1.0)
        assert problem.startswith("could not switch to file notes.mp4 (MediaOpenError: cannot read notes.mp4")
        assert problem.endswith("kept camera 0 + default microphone")
        assert pipeline.video is rig.video and rig.video.running and rig.video.starts == 1  # never stopped
        assert pipeline.config.sources == SourceSpec() and pipeline.face_worker.frames is rig.video.frames
    finally:
        pipeline.stop()


def test_imer_run_says_in_one_line_that_a_file_became_unreadable_before_the_build(tmp_path, capsys, monkeypatch):
    pytest.importorskip("av")
    from app.cli import main
    from imer_core.live.sources.kinds import SourceKind

    bad = tmp_path / "clip.mp4"
    bad.write_text("not a video")
    monkeypatch.setattr(SourceKind, "check", lambda self, source: "")  # as if it changed after the check
    assert main(["run", "--source", str(bad), "--quiet",
                 "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("imer: cannot read clip.mp4 as an audio/video file")
    assert not (tmp_path / "s").exists()


def test_building_a_pipeline_on_the_real_camera_and_microphone_opens_neither(monkeypatch):
    from imer_core.live.sources import camera, microphone

    opened: list[str] = []

    def no_device(what: str):
        def refuse(*args, **kwargs):
            opened.append(what)
            raise AssertionError(f"the {what} was opened by the constructor")
        return refuse

    monkeypatch.setattr(camera, "_opencv_capture", no_device("camera"))
    monkeypatch.setattr(microphone, "_import_sounddevice", no_device("microphone"))
    before = set(threading.enumerate())
    pipeline = LivePipeline(PipelineConfig(**QUICK), replace(fake_rig().parts(), sources=open_sources))
    assert isinstance(pipeline.video, camera.CameraSource) and isinstance(pipeline.audio, microphone.MicrophoneSource)
    assert pipeline.snapshot().config.sources.describe() == "camera 0 + default microphone"
    pipeline.stop()
    assert opened == [] and imer_threads(before) == []


def test_the_modality_switches_are_read_only_outside_set_enabled():
    """The window reads ``pipeline.enabled``; writing into it would bypass the capture switches."""
    rig = fake_rig()
    pipeline = LivePipeline(PipelineConfig(**QUICK, disabled=frozenset({Modality.TEXT})), rig.parts())
    with pytest.raises(TypeError):
        pipeline.enabled[Modality.VISION] = False  # type: ignore[index]
    pipeline.set_enabled("vision", False)
    assert dict(pipeline.enabled) == {Modality.TEXT: False, Modality.AUDIO: True, Modality.VISION: False}
    assert pipeline.snapshot().enabled == pipeline.enabled
