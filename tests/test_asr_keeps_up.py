"""Speech recognition that cannot keep up skips to the newest speech, decodes greedily, and says so.

The recogniser here is a fake whose every call "takes" a multiple of its audio's
duration: instead of sleeping, it appends that much new speech to the stream
(time passes in the data, not on the clock), so nothing depends on machine speed.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from live_fakes import FakeEmbedder

from imer_core.asr.types import Segment, Transcript
from imer_core.features.text import TEXT_DIM, TranscriptWindow
from imer_core.live.buffers import AudioRingBuffer
from imer_core.live.health import HealthMonitor, ModalitySignals, ModalityState
from imer_core.live.speech_worker import SpeechConfig, SpeechWorker
from imer_core.live.tracks import FeatureTrack
from imer_core.modalities import Modality

STEP = 0.1
T0 = 1000.0
SPEECH_S, PAUSE_S = 2.0, 1.0   # the talker's rhythm: 2 s sentences, 1 s pauses


class Talker:
    """Writes speech (voiced steps + audio) into the worker's inputs, up to ``limit_s`` of stream time."""

    def __init__(self, ring: AudioRingBuffer, speech: FeatureTrack, limit_s: float) -> None:
        self.ring, self.speech, self.limit_s = ring, speech, limit_s
        self.now = T0

    def advance(self, seconds: float) -> None:
        steps = int(round(min(seconds, T0 + self.limit_s - self.now) / STEP))
        for _ in range(steps):
            self.now += STEP
            voiced = (self.now - T0) % (SPEECH_S + PAUSE_S) < SPEECH_S
            self.ring.write(np.full(int(16000 * STEP), 0.1 if voiced else 0.0, np.float32), t_end=self.now)
            self.speech.append(self.now, np.array([1.0 if voiced else 0.0]))


class SlowASR:
    """Each call lets ``factor`` × its audio's duration of further speech happen (a loaded CPU)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.talker: Talker | None = None
        self.greedy = False
        self.calls: list[dict] = []

    def transcribe(self, audio: np.ndarray, *, start_time: float = 0.0) -> Transcript:
        duration = len(audio) / 16000
        assert self.talker is not None
        self.calls.append({"start": start_time, "end": start_time + duration, "newest": self.talker.now,
                           "greedy": self.greedy})
        self.talker.advance(self.factor * duration)
        return Transcript((Segment("words", start_time, start_time + duration),), start_time, duration, "slow",
                          processing_s=self.factor * duration)


def run(factor: float, limit_s: float = 90.0) -> tuple[SpeechWorker, SlowASR, Talker]:
    ring = AudioRingBuffer(16000, capacity_s=limit_s + 10)
    speech, text = FeatureTrack(1, capacity_s=limit_s + 10), FeatureTrack(TEXT_DIM, capacity_s=limit_s + 10)
    asr = SlowASR(factor)
    worker = SpeechWorker(ring, speech, text, lambda: asr, FakeEmbedder, TranscriptWindow(),
                          SpeechConfig(max_lag_s=3.0))
    talker = Talker(ring, speech, limit_s)
    asr.talker = talker
    talker.advance(SPEECH_S + PAUSE_S)

    def loop() -> None:  # the worker's loop, without its 0.1 s waits: between polls 0.1 s of speech passes
        while talker.now < T0 + limit_s - STEP / 2:
            worker.poll()
            talker.advance(STEP)

    worker._launch(loop, "test-speech")  # a run of the worker's own thread (its stop flag is clear there)
    assert worker._thread is not None
    worker._thread.join(60)
    assert not worker._thread.is_alive()
    return worker, asr, talker


def test_a_recogniser_slower_than_speech_stays_current_by_skipping_older_speech():
    worker, asr, _ = run(factor=2.5)
    assert len(asr.calls) >= 5
    # Every utterance handed to the recogniser ends within max_lag_s + one utterance of the newest speech:
    # without skipping, the lag grows with every call (2.5 s of new speech per second transcribed).
    lags = [call["newest"] - call["end"] for call in asr.calls]
    assert max(lags) <= 3.0 + SPEECH_S + 1.0, lags
    assert worker.skipped_s > 10.0
    assert any(call["greedy"] for call in asr.calls)  # decoding switched to greedy once behind
    assert not asr.calls[0]["greedy"]
    note = worker.degraded
    assert "speech recognition is behind" in note and "2.5× real time" in note and "skipped" in note


def test_a_recogniser_that_keeps_up_transcribes_every_sentence_with_its_beam():
    worker, asr, talker = run(factor=0.3, limit_s=30.0)
    sentences = int((talker.now - T0) // (SPEECH_S + PAUSE_S))
    assert len(asr.calls) >= sentences - 1
    assert worker.skipped_s == 0.0 and worker.degraded == ""
    assert not any(call["greedy"] for call in asr.calls)


def test_the_text_health_reason_says_recognition_is_degraded():
    monitor = HealthMonitor()
    note = "speech recognition is behind (2.5× real time, 5 s late): transcribing only the newest speech"
    signals = {Modality.TEXT: ModalitySignals(last_data=100.0, last_signal=99.0, degraded=note)}
    status = monitor.evaluate(100.0, signals)[Modality.TEXT]
    assert status.state is ModalityState.OBSERVED and status.reason == note
    signals = {Modality.TEXT: ModalitySignals(last_data=130.0, last_signal=99.0, degraded=note)}
    status = monitor.evaluate(130.0, signals)[Modality.TEXT]
    assert status.state is ModalityState.FAILING
    assert status.reason.startswith("no speech transcribed") and note in status.reason


@pytest.mark.parametrize("backend", ["faster", "openai"])
def test_backends_decode_greedily_when_asked(backend):
    """The speech worker's switch reaches the decoder: beam 1 / no beam and no temperature fallback."""
    from imer_core.asr.faster import FasterWhisperBackend
    from imer_core.asr.openai_whisper import OpenAIWhisperBackend

    seen: list[dict] = []

    class Model:
        is_multilingual = False

        def transcribe(self, *args, **kwargs):
            seen.append(kwargs)
            return ([], None) if backend == "faster" else {"segments": []}

    cls = FasterWhisperBackend if backend == "faster" else OpenAIWhisperBackend
    asr = cls.__new__(cls)
    asr.language, asr.word_timestamps, asr.beam_size, asr.device = "en", False, 5, "cpu"
    asr.vad_filter, asr._model = False, Model()
    if backend == "openai":
        asr._whisper = Model()
        asr._whisper.transcribe = lambda model, audio, **kwargs: Model.transcribe(model, **kwargs)
    audio = np.zeros(1600, np.float32)
    asr._decode(audio)
    asr.greedy = True
    asr._decode(audio)
    normal, greedy = seen
    assert normal["beam_size"] == 5 and "temperature" not in normal
    assert greedy["beam_size"] in (1, None) and greedy["temperature"] == 0.0


class HangingASR:
    """Blocks in ``transcribe`` until ``release`` is set (a recogniser stuck or very slow)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.greedy = False

    def transcribe(self, audio: np.ndarray, *, start_time: float = 0.0) -> Transcript:
        self.calls += 1
        self.release.wait(60)
        duration = len(audio) / 16000
        return Transcript((Segment("late words", start_time, start_time + duration),), start_time, duration,
                          "hanging", processing_s=30.0)


def hanging_worker(config: SpeechConfig) -> tuple[SpeechWorker, list[HangingASR], Talker]:
    ring = AudioRingBuffer(16000, capacity_s=60)
    speech, text = FeatureTrack(1, capacity_s=60), FeatureTrack(TEXT_DIM, capacity_s=60)
    built: list[HangingASR] = []

    def factory() -> HangingASR:
        built.append(HangingASR())
        return built[-1]

    worker = SpeechWorker(ring, speech, text, factory, FakeEmbedder, TranscriptWindow(), config)
    return worker, built, Talker(ring, speech, limit_s=50.0)


def speak_and_poll(worker: SpeechWorker, talker: Talker, seconds: float) -> None:
    def loop() -> None:
        end = talker.now + seconds
        while talker.now < end - STEP / 2:
            talker.advance(STEP)
            worker.poll()

    worker._launch(loop, "test-speech")
    assert worker._thread is not None
    worker._thread.join(60)


def test_a_timed_out_recognition_is_waited_for_not_duplicated_and_its_text_kept():
    """Under load a call that times out is usually slow, not hung: loading a second model beside it
    (the old behaviour) doubled memory and CPU with every time-out (1.2 -> 1.7 GB in the soak)."""
    worker, built, talker = hanging_worker(SpeechConfig(timeout_s=0.05, abandon_after_s=3600.0))
    speak_and_poll(worker, talker, 12.0)  # four sentences; the first call never answers in this time
    assert len(built) == 1 and built[0].calls == 1  # no second backend, no second call while it runs
    assert "timed out" in worker.error and worker.skipped_s > 3.0
    built[0].release.set()
    worker._late.join(10)
    speak_and_poll(worker, talker, 0.2)
    assert worker.error == "" and worker.event_count == 1  # the late text is used ...
    assert worker.events[0].text == "late words"
    speak_and_poll(worker, talker, 6.0)
    assert len(built) == 1 and built[0].calls >= 2  # ... and the same backend transcribes again


def test_a_hung_recogniser_is_replaced_a_bounded_number_of_times():
    worker, built, talker = hanging_worker(SpeechConfig(timeout_s=0.05, abandon_after_s=0.0, max_abandoned=2))
    speak_and_poll(worker, talker, 30.0)
    try:
        assert len(built) == 3 and worker.abandoned == 2  # the first one and two replacements, no more
        assert "speech recognition hangs" in worker.error
    finally:
        for asr in built:
            asr.release.set()
