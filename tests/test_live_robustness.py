"""Robustness of the live parts: abandoned threads, audio gaps, the last words of a file, bad options."""

import threading
import time

import numpy as np
import pytest
import torch
from live_fakes import LIVE_VISION_DIM, FakeASR, FakeEmbedder, FakeFaceExtractor

from app.cli import build_parser, main
from imer_core.features.text import TEXT_DIM, TranscriptWindow
from imer_core.live.buffers import AudioRingBuffer, FrameSlot, VideoFrame
from imer_core.live.engine import EngineInputs, InferenceEngine
from imer_core.live.models import ModelBank
from imer_core.live.speech_worker import SpeechConfig, SpeechWorker
from imer_core.live.threads import RestartableThread
from imer_core.live.tracks import FeatureTrack
from imer_core.live.workers import FaceWorker
from imer_core.modalities import MODALITIES


class Blocking(RestartableThread):
    """A run that ignores its stop flag until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.woken: list[bool] = []

    def start(self) -> None:
        self._launch(self._body, "test-blocking")

    def _body(self) -> None:
        self.release.wait(5)
        self.woken.append(self._stop.is_set())


def test_an_abandoned_run_is_not_woken_by_the_next_start():
    thread = Blocking()
    thread.start()
    assert thread.running
    assert not thread._join(0.05)  # stuck: abandoned
    assert not thread.running
    thread.start()  # a new run starts at once
    assert thread.running
    thread.release.set()
    time.sleep(0.2)
    assert sorted(thread.woken) == [False, True]  # the old run saw its own (set) flag, the new one a clear flag
    assert thread._join(1.0)


def test_a_face_worker_restarted_during_a_slow_load_keeps_one_extractor_per_run():
    loading = threading.Event()
    built: list[FakeFaceExtractor] = []

    class Closing(FakeFaceExtractor):
        closed = False

        def close(self) -> None:
            self.closed = True

    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            loading.wait(5)  # the first run's load hangs until released
        built.append(Closing())
        return built[-1]

    slot, track = FrameSlot(), FeatureTrack(LIVE_VISION_DIM)
    worker = FaceWorker(slot, track, factory)
    worker.start()
    worker.stop(timeout=0.05)  # abandoned while loading
    worker.start()
    deadline = time.monotonic() + 3
    while not built and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(built) == 1 and not worker.loading
    loading.set()  # the abandoned run finishes its load, then ends and closes its own extractor
    deadline = time.monotonic() + 3
    while not (len(built) == 2 and built[1].closed) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert built[1].closed and not built[0].closed and not worker.loading and worker.running
    slot.put(VideoFrame(np.zeros((8, 8, 3), np.uint8), time.monotonic(), 0))
    deadline = time.monotonic() + 3
    while len(track) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(track) == 1  # the current run still analyses frames
    worker.stop()


def test_a_gap_in_the_audio_keeps_older_samples_at_their_times():
    ring = AudioRingBuffer(16000, capacity_s=5.0)
    ring.write(np.full(1600, 0.5), t_end=10.0)  # 9.9..10.0 s
    ring.write(np.full(1600, 0.25), t_end=12.1)  # after a 2 s gap (a microphone restart)
    assert ring.time_of(1599) == pytest.approx(10.0, abs=1e-3)
    audio, start = ring.read_between(9.95, 12.05)
    assert start == pytest.approx(9.95, abs=1e-3)
    assert len(audio) == pytest.approx(2.1 * 16000, abs=2)
    assert np.all(audio[:700] == 0.5) and np.all(audio[1000:30000] == 0.0) and np.all(audio[-700:] == 0.25)
    ring.write(np.full(160, 0.1), t_end=12.11 + 0.1)  # jitter below the tolerance: no silence inserted
    assert ring.total_written == 1600 + 32000 + 1600 + 160
    with pytest.raises(RuntimeError):
        AudioRingBuffer().read_between(0.0, 1.0)


class RecordingASR(FakeASR):
    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[float, float]] = []

    def transcribe(self, audio, *, start_time=0.0):
        self.spans.append((start_time, start_time + len(audio) / 16000))
        return super().transcribe(audio, start_time=start_time)


def speech_worker(asr: FakeASR, max_utterance_s: float = 5.0):
    ring = AudioRingBuffer(16000, 30.0)
    speech, text = FeatureTrack(1), FeatureTrack(TEXT_DIM)
    worker = SpeechWorker(ring, speech, text, lambda: asr, FakeEmbedder, TranscriptWindow(),
                          SpeechConfig(max_utterance_s=max_utterance_s))
    return worker, ring, speech, text


def voiced(ring: AudioRingBuffer, speech: FeatureTrack, t0: float, seconds: float) -> None:
    ring.write(0.1 * np.ones(int(seconds * 16000)), t_end=t0 + seconds)
    times = t0 + 0.1 * np.arange(1, int(seconds * 10) + 1)
    speech.extend(times, np.ones((len(times), 1)))


def test_the_utterance_in_progress_is_transcribed_when_the_file_ends():
    asr = RecordingASR()
    worker, ring, speech, text = speech_worker(asr)
    worker.start()
    try:
        voiced(ring, speech, time.monotonic() - 2.0, 2.0)  # speech up to the very end: no closing pause
        time.sleep(0.4)
        assert asr.calls == 0  # still waiting for the pause that ends the utterance
        assert worker.request_finish().wait(5)
        assert asr.calls == 1 and worker.event_count == 1 and len(text) == 1
    finally:
        worker.stop()
    assert worker.request_finish().is_set()  # not running: nothing to wait for


def test_a_long_utterance_is_cut_into_parts_that_do_not_overlap():
    asr = RecordingASR()
    worker, ring, speech, _ = speech_worker(asr, max_utterance_s=1.0)
    worker.start()
    try:
        voiced(ring, speech, time.monotonic() - 3.5, 3.5)
        assert worker.request_finish().wait(5)
    finally:
        worker.stop()
    assert len(asr.spans) >= 3
    for (_, end), (start, _) in zip(asr.spans, asr.spans[1:]):
        assert start == pytest.approx(end, abs=1e-3)  # each part starts where the previous ended


def test_options_before_run_are_kept():
    args = build_parser().parse_args(["--source", "clip.mp4", "--loop", "-v", "run", "--duration", "3"])
    assert (args.source, args.loop, args.verbose, args.duration) == ("clip.mp4", True, True, 3.0)
    args = build_parser().parse_args(["run"])
    assert (args.source, args.loop, args.verbose, args.out) == (None, False, False, "sessions")


def test_imer_run_refuses_a_checkpoint_of_another_label_space_before_starting(live_checkpoints, tmp_path, capsys):
    payload = torch.load(live_checkpoints["cmarr"], weights_only=True)
    payload["config"]["labels"] = ["negative", "neutral", "positive", "a", "b", "c", "d"]
    other = tmp_path / "other_labels.pt"
    torch.save(payload, other)
    assert main(["run", "--source", "webcam", "--checkpoint", str(other), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "live label space" in err
    assert not (tmp_path / "s").exists()  # refused before any session folder or device


def test_engine_options_are_checked_and_a_failing_listener_does_not_stop_it(capsys):
    inputs = EngineInputs({m: FeatureTrack(4) for m in MODALITIES}, dict, dict)
    with pytest.raises(ValueError, match="positive"):
        InferenceEngine(ModelBank({}), inputs, hop_s=0.0)
    with pytest.raises(ValueError, match="at least 1"):
        InferenceEngine(ModelBank({}), inputs, sampler_steps=0)
    calls = []

    def listener(result) -> None:
        calls.append(result)
        raise RuntimeError("listener bug")

    engine = InferenceEngine(ModelBank({}), inputs, hop_s=0.05, on_result=listener)
    engine.start()
    time.sleep(0.4)
    assert engine.running and len(calls) >= 3
    engine.stop()


def test_imer_run_refuses_a_zero_hop(tmp_path, capsys):
    assert main(["run", "--source", "webcam", "--hop", "0", "--out", str(tmp_path)]) == 2
    assert "positive" in capsys.readouterr().err
