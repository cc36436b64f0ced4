"""Feature workers: one thread per extractor, between capture and the engine.

* :class:`FaceWorker` takes the newest frame of a video source, runs the
  face extractor and appends the face vector to the vision track.
* :class:`VoiceWorker` extracts voice features and voice activity from the
  newest audio every step and appends them to the audio and speech tracks.
* the speech worker (speech recognition and sentence embeddings → the text
  track) is :class:`~imer_core.live.speech_worker.SpeechWorker`, in its own module.

Workers never let an exception escape their thread: the message becomes
``error``, which the health monitor shows as the modality's failure reason.
The extractors are built inside the worker thread (and lazily), so a missing
model shows up as a failing modality rather than a crash.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..features.base import AudioExtractor, FrameExtractor
from ..features.voice import context_samples, extract_from
from .buffers import AudioRingBuffer, FrameSlot, VideoFrame
from .threads import RestartableThread
from .tracks import FeatureTrack

log = logging.getLogger(__name__)


_BLAS_LOCK = threading.Lock()
_BLAS: list[Any] = []  # the threadpoolctl controller, made on first use (None without threadpoolctl)


def one_blas_thread() -> Any:
    """A context in which numpy's BLAS (OpenBLAS) runs on one thread (a no-op without threadpoolctl).

    The voice worker extracts 10 times a second; with 2 s of audio per call (a speech
    encoder's context) the voice features and the log-mel are large enough for OpenBLAS to
    use every core, and its idle threads then spin between the calls: measured in isolation
    without ``OMP_NUM_THREADS``, 1.17 cores of CPU for 0.17 core of work (0.17 with the limit;
    ``docs/benchmarks.md``).  The BLAS libraries loaded when it is first used are limited.
    """
    with _BLAS_LOCK:
        if not _BLAS:
            try:
                from threadpoolctl import ThreadpoolController
                _BLAS.append(ThreadpoolController())
            except ImportError:
                _BLAS.append(None)
    controller = _BLAS[0]
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


class Worker(RestartableThread):
    """A restartable daemon thread running :meth:`_loop` until stopped."""

    name = "worker"
    loads_models = False  # whether the thread builds models before its first output

    def __init__(self) -> None:
        super().__init__()
        self.error = ""
        self.last_output: float | None = None
        self.last_signal: float | None = None
        self.started_at = 0.0
        self.loading = False

    def start(self) -> None:
        """Start the thread (no-op when running)."""
        if self.running:
            return
        self.error = ""
        self.last_output = self.last_signal = None
        self.started_at = time.monotonic()
        self.loading = self.loads_models  # set before the thread runs: "not loaded yet" is never missed
        self._launch(self._run, f"imer-{self.name}")

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait up to ``timeout`` s for it (a thread still busy is abandoned)."""
        self._join(timeout)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # reported through the health monitor, never raised
            log.exception("%s worker failed", self.name)
            if self._is_current_run():  # an abandoned run does not speak for the new one
                self.error = f"{self.name} failed: {type(exc).__name__}: {exc}"
        finally:
            if self._is_current_run():
                self.loading = False

    def _loop(self) -> None:
        raise NotImplementedError

    def _loaded(self) -> None:
        """Mark the models as loaded (called by :meth:`_loop` of the current run).

        The health timers ("no face detected for ...") count from here: the
        load time is not time without a face.
        """
        if self._is_current_run():
            self.started_at = time.monotonic()
            self.loading = False


@dataclass(frozen=True, eq=False)
class FaceSnapshot:
    """The newest analysed frame, for drawing (image + its face features)."""

    frame: VideoFrame
    face: Any  # imer_core.features.face.FaceFrameFeatures
    t_features: float


class FaceWorker(Worker):
    """Face features of the newest frame of ``frames`` → ``track``.

    Args:
        frames: the video source's newest-frame slot.
        track: vision feature track (vectors of detected faces only).
        extractor_factory: builds the face extractor (in the worker thread).
    """

    name = "face"
    loads_models = True

    def __init__(self, frames: FrameSlot, track: FeatureTrack,
                 extractor_factory: Callable[[], FrameExtractor]) -> None:
        super().__init__()
        self.frames, self.track = frames, track
        self._factory = extractor_factory
        self.latest: FaceSnapshot | None = None
        self.feature_latency_s: deque[float] = deque(maxlen=300)
        self.processed_times: deque[float] = deque(maxlen=300)
        self.frames_processed = 0

    def _loop(self) -> None:
        extractor = self._factory()  # one per run: a run abandoned while loading keeps its own
        self._loaded()
        try:
            self._analyse_frames(extractor)
        finally:
            extractor.close()

    def _analyse_frames(self, extractor: FrameExtractor) -> None:
        seq, last_ms = self.frames.sequence, -1.0
        while not self._stop.is_set():
            frame, seq = self.frames.wait_newer(seq, timeout=0.1)
            if frame is None:
                continue
            ts_ms = max(frame.t_capture * 1000.0, last_ms + 1.0)  # VIDEO mode: strictly increasing
            last_ms = ts_ms
            face = extractor.process(frame.image, ts_ms)
            done = time.monotonic()
            self.latest = FaceSnapshot(frame, face, done)
            self.last_output = frame.t_capture
            self.feature_latency_s.append(done - frame.t_capture)
            self.processed_times.append(done)
            self.frames_processed += 1
            if face.detected:
                self.last_signal = frame.t_capture
                self.track.append(frame.t_capture, face.vector)

    def fps(self, now: float | None = None, span_s: float = 2.0) -> float:
        """Frames analysed per second over the last ``span_s`` seconds."""
        now = time.monotonic() if now is None else now
        recent = [t for t in list(self.processed_times) if t >= now - span_s]
        return len(recent) / span_s if recent else 0.0


class VoiceWorker(Worker):
    """Voice features and voice activity of ``ring``, step by step.

    Every ``1/rate`` s the newest completed steps are extracted with
    ``context_s`` of audio before them (or the extractor's own ``context_s`` when it
    declares a longer one, e.g. a speech encoder's; such an extractor is also told,
    ``keep_from``, which steps are kept), their vectors appended to
    ``audio_track`` (when ``features_enabled``) and their speech fraction to
    ``speech_track`` (used by the speech worker and for "no voice" health).
    """

    name = "voice"

    def __init__(self, ring: AudioRingBuffer, audio_track: FeatureTrack, speech_track: FeatureTrack,
                 extractor: AudioExtractor, context_s: float = 0.5) -> None:
        super().__init__()
        self.ring, self.audio_track, self.speech_track = ring, audio_track, speech_track
        self.extractor = extractor
        self.context_s = context_s
        self.features_enabled = True
        #: Why this worker makes no audio features although it runs (its voice activity still feeds
        #: speech recognition), e.g. the configured extractor could not be built; empty when it makes them.
        self.feature_error = ""
        self.feature_latency_s: deque[float] = deque(maxlen=300)
        self.processed_samples = 0  # absolute ring index up to which features were extracted

    @property
    def caught_up(self) -> bool:
        """Every complete step written to the ring so far has been extracted."""
        written = self.ring.total_written
        return written - written % self.extractor.step_samples <= self.processed_samples

    def _loop(self) -> None:
        step = self.extractor.step_samples
        next_step = None
        while not self._stop.wait(step / self.ring.sample_rate / 2):
            written = self.ring.total_written
            if written == 0:
                continue
            if next_step is None or next_step > written or written - next_step > self.ring.capacity:
                next_step = max(written - written % step - step, 0)  # (re)synchronise
            end = written - written % step
            if end <= next_step:
                continue
            self._extract(next_step, end)
            next_step = self.processed_samples = end

    def _extract(self, first: int, end: int) -> None:
        context = context_samples(self.extractor, self.context_s, self.ring.sample_rate)
        step = self.extractor.step_samples
        start = max(first - context - (context % step), 0)
        start -= start % step
        audio = self.ring.read(start, end)
        t0 = self.ring.time_of(start)
        with one_blas_thread():
            features = extract_from(self.extractor, audio, t0, self.ring.time_of(first))
        keep = features.times >= self.ring.time_of(first) - 1e-6
        done = time.monotonic()
        if self.features_enabled and not self.feature_error:
            self.audio_track.extend(features.times[keep], features.vector[keep])
        self.speech_track.extend(features.times[keep], features.speech_fraction[keep, None])
        if np.any(features.speech_fraction[keep] > 0.5):
            self.last_signal = float(features.times[keep][features.speech_fraction[keep] > 0.5][-1])
        self.last_output = self.ring.last_write_time
        self.feature_latency_s.append(done - self.ring.time_of(end - 1))
