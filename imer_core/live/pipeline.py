"""The live pipeline: sources → feature workers → health → inference engine.

One object the headless command and the desktop app both drive::

    pipeline = LivePipeline(PipelineConfig(sources=SourceSpec("clip.mp4")))
    pipeline.start()
    ...  # pipeline.latest_result, pipeline.poll_results(), pipeline.set_enabled("vision", False)
    pipeline.stop()

The constructor builds everything (model bank, sources, workers, engine) and
checks what it can — a media file that cannot be read raises
:class:`~imer_core.live.sources.base.SourceOpenError` there — but opens no
camera or microphone and starts no thread: :meth:`LivePipeline.start` does
that, :meth:`LivePipeline.stop` undoes it (both idempotent; a stopped
pipeline can be started again).

A supervisor thread evaluates modality health every ``tick_s`` (100 ms).
Disabling a modality stops its capture and extraction (a privacy switch):
vision stops the camera and the face worker; text stops speech recognition;
the microphone stops when both audio and text are off (speech recognition
needs it, so with text on and audio off only the voice features stop).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from ..features.base import ExtractorSpec
from ..features.voice import audio_extractor_or_voice_activity
from ..modalities import MODALITIES, Modality, as_modality
from .buffers import AudioRingBuffer, FrameSlot, VideoFrame
from .engine import EngineInputs, InferenceEngine, LiveResult, resolve_device
from .health import HealthMonitor, ModalitySignals, ModalityState, ModalityStatus
from .models import ModelBank, shipped_checkpoints
from .parts import PipelineParts, SourceSpec
from .pipeline_config import PipelineConfig, disabled_from_text
from .pipeline_view import PipelineView
from .sources.base import AudioSource, CaptureSource, VideoSource
from .speech_worker import SpeechWorker, TranscriptEvent
from .tracks import FeatureTrack
from .workers import FaceSnapshot, FaceWorker, VoiceWorker, Worker

if TYPE_CHECKING:
    from .neutral_baseline import NeutralBaseline

log = logging.getLogger(__name__)

#: What each worker loads, as the *loading* reason says it.
LOADING_WHAT = {Modality.VISION: "the face model (MediaPipe)",
                Modality.TEXT: "speech recognition (Whisper) and the sentence encoder"}


class LivePipeline:
    """Owns the sources, workers, health monitor and engine of one live session.

    Built complete: every part exists from the constructor on (the window and
    the recorder read :meth:`snapshot` and the other read-only views, never a
    part that may be missing).  Construction opens no device and starts no
    thread; :meth:`start` does.

    Raises:
        LiveModelError: a checkpoint of ``config`` cannot be used, or its device is unavailable.
        SourceOpenError: ``config.sources`` cannot be used (e.g. a file that is not a
            media file: :class:`~imer_core.live.sources.media.MediaOpenError`).
    """

    def __init__(self, config: PipelineConfig = PipelineConfig(), parts: PipelineParts | None = None) -> None:
        from ..features.text import TranscriptWindow

        self.config = config
        self.device = resolve_device(config.device)
        self.parts = parts if parts is not None else PipelineParts.for_device(self.device, config.extractors)
        extractors = self.parts.extractor_specs
        self.bank = self._bank(config, self.device, extractors)
        self._enabled = {m: m not in config.disabled for m in MODALITIES}
        self.tracks = {m: FeatureTrack(extractors[m].dim) for m in MODALITIES}
        self.speech_track = FeatureTrack(1)
        self.health = HealthMonitor(config.health)
        self._statuses: dict[Modality, ModalityStatus] = {}
        self._results: deque[LiveResult] = deque(maxlen=512)
        self._result_times: deque[float] = deque(maxlen=256)
        self._listeners: list[Callable[[LiveResult], None]] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._running = False  # between start() and stop()
        self._hold_sources_until: float | None = None  # media file held while models load
        # Built, not opened: start() opens the devices and starts the threads.
        self.video, self.audio = self._build_sources(config.sources)
        self.face_worker = FaceWorker(self.video.frames, self.tracks[Modality.VISION], self.parts.face_extractor)
        voice_extractor, voice_problem = audio_extractor_or_voice_activity(self.parts.voice_extractor)
        self.voice_worker = VoiceWorker(self.audio.ring, self.tracks[Modality.AUDIO], self.speech_track,
                                        voice_extractor)
        self.voice_worker.feature_error = voice_problem
        self.transcript = TranscriptWindow()
        self.speech_worker = SpeechWorker(self.audio.ring, self.speech_track, self.tracks[Modality.TEXT],
                                          self.parts.asr, self.parts.embedder, self.transcript, config.speech)
        self.engine = InferenceEngine(self.bank, EngineInputs(self.tracks, self.statuses, self._feature_latency_ms,
                                                                speech_track=self.speech_track),
                                      config.method, config.hop_s, config.sampler_steps, self._on_result)
        self.engine.set_smoothing(config.smoothing_s)

    @staticmethod
    def _bank(config: PipelineConfig, device: str, extractors: Mapping[Modality, ExtractorSpec]) -> ModelBank:
        if config.checkpoints:
            return ModelBank.from_paths(list(config.checkpoints), device, extractors)
        return ModelBank(shipped_checkpoints() if config.use_shipped else {}, device, extractors)

    def _build_sources(self, spec: SourceSpec) -> tuple[VideoSource, AudioSource]:
        """The video and audio source of ``spec``, built by the parts (``SourceOpenError`` if unusable)."""
        return self.parts.sources(spec)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the sources (those switched on) and start every thread; returns at once (no-op when running).

        A media file is held (opened once the face and speech models have loaded, at most
        ``config.file_model_wait_s``).
        """
        with self._lock:
            if self._running:
                return
            if self.config.sources.is_file and self.config.file_model_wait_s > 0:
                self._hold_sources_until = time.monotonic() + self.config.file_model_wait_s
            self._running = True
            self._apply_switches()
        self.engine.start()
        self._stop.clear()
        self._supervisor = threading.Thread(target=self._supervise, name="imer-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self, quick: bool = False) -> None:
        """Stop every thread and release camera and microphone (idempotent).

        ``quick`` (Ctrl-C, SIGTERM): give each thread a fraction of a second and
        abandon one still busy (a model load or a recognition cannot be
        interrupted; the caller ends the process without waiting for them).
        Otherwise a loading model gets up to 20 s and a recognition its grace time.
        """
        self._running = False  # a switch from now on changes the switch only (no lock: Ctrl-C must not wait)
        self._hold_sources_until = None
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(0.5 if quick else 2.0)
            self._supervisor = None
        self.engine.stop(1.0 if quick else 5.0)
        workers: tuple[Worker, ...] = (self.face_worker, self.voice_worker, self.speech_worker)
        for worker in workers:
            if quick:
                Worker.stop(worker, timeout=0.3)  # no recognition grace: the process ends next
            else:
                worker.stop(timeout=20.0 if worker.loading else 3.0)  # a model load cannot be interrupted
        for source in (self.video, self.audio):
            source.stop(0.5) if quick else source.stop()

    def finish_file(self, timeout_s: float = 20.0, cancel: threading.Event | None = None) -> None:
        """After a media file ended: transcribe its last words and wait for the prediction with them.

        Lets the voice features catch up with the end of the audio, has the
        speech worker transcribe an utterance still in progress (or finish the
        one it is transcribing) and waits for one more result; gives up after
        ``timeout_s`` or when ``cancel`` is set.
        """
        deadline = time.monotonic() + timeout_s
        cancel = cancel or threading.Event()

        def waiting(condition: Callable[[], bool], until: float = deadline) -> bool:
            while condition() and time.monotonic() < until and not cancel.wait(0.02):
                pass
            return not condition()

        voice, speech = self.voice_worker, self.speech_worker
        if voice.running:
            waiting(lambda: not voice.caught_up)
        if not speech.running:
            return
        before, latest = speech.event_count, self.latest_result
        done = speech.request_finish()
        if waiting(lambda: not done.is_set()) and speech.event_count > before:
            waiting(lambda: self.latest_result is latest, min(deadline, time.monotonic() + 3 * self.config.hop_s + 0.5))

    def __enter__(self) -> "LivePipeline":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ended(self) -> bool:
        """A media file source reached its end on every stream it has."""
        streams = [s for s in (self.video, self.audio) if not s.status.absent]
        return bool(streams) and all(s.status.ended for s in streams)

    # -- switches ----------------------------------------------------------------------------
    @property
    def enabled(self) -> Mapping[Modality, bool]:
        """The modality switches, read-only (change them with :meth:`set_enabled`)."""
        return MappingProxyType(self._enabled)

    def set_enabled(self, modality: "Modality | str", enabled: bool) -> None:
        """Switch a modality on or off (off stops its capture and extraction).

        Before :meth:`start` (or after :meth:`stop`) only the switch changes; the start follows it.
        """
        with self._lock:
            self._enabled[as_modality(modality)] = bool(enabled)
            if self._running:
                self._apply_switches()

    def _apply_switches(self) -> None:
        """Start or stop each source and worker as the switches say (only while running)."""
        video, audio = self.video, self.audio
        face, voice, speech = self.face_worker, self.voice_worker, self.speech_worker
        on, held = self._enabled, self._hold_sources_until is not None
        _run_if(on[Modality.VISION], None if held else video, face, on_stop=self._forget_vision)
        voice.features_enabled = on[Modality.AUDIO]
        if not on[Modality.AUDIO]:
            self.tracks[Modality.AUDIO].clear()
        need_audio = on[Modality.AUDIO] or on[Modality.TEXT]
        _run_if(need_audio, None if held else audio, voice, on_stop=audio.ring.clear)
        _run_if(on[Modality.TEXT], None, speech, on_stop=self._forget_text)

    def _forget_vision(self) -> None:
        self.tracks[Modality.VISION].clear()
        self.video.frames.clear()
        self.face_worker.latest = None

    def _forget_text(self) -> None:
        self.tracks[Modality.TEXT].clear()
        self.transcript.clear()

    def set_method(self, method: str) -> None:
        """Switch the recovery method (takes effect at the next prediction).

        The checkpoint is loaded (and checked) here, in the caller's thread, not in the engine's.

        Raises:
            LiveModelError: no checkpoint for ``method``, or it cannot run on this pipeline's
                features; the current method keeps predicting.
        """
        self.bank.get(method)
        self.engine.set_method(method)

    def set_sampler_steps(self, steps: int | None) -> None:
        self.engine.set_sampler_steps(steps)

    def set_smoothing(self, time_constant_s: float) -> None:
        """Time constant (s) of the displayed probabilities; 0 shows the raw ones."""
        self.engine.set_smoothing(time_constant_s)
        self.config = replace(self.config, smoothing_s=float(time_constant_s))

    def set_neutral_baseline(self, baseline: NeutralBaseline | None) -> None:
        """Shift this person's features by their neutral baseline (see the engine's method of that name)."""
        self.engine.set_neutral_baseline(baseline)

    def neutral_baseline_modalities(self) -> tuple[str, ...]:
        """Modalities the neutral baseline shifts with the current checkpoint."""
        return self.engine.neutral_baseline_modalities()

    def set_compare_hidden(self, modalities: "Iterable[Modality | str]") -> None:
        """Compare mode: also predict with these (observed) modalities hidden and recovered."""
        self.engine.set_compare_hidden(modalities)

    def replace_sources(self, spec: SourceSpec, timeout_s: float = 3.0) -> str:
        """Switch to other sources; roll back to the previous ones if the new ones deliver nothing.

        While running, the new sources must deliver within ``timeout_s``; before
        :meth:`start` (or after :meth:`stop`) they only have to be buildable, and
        the start opens them.  Returns an empty string on success, else the reason
        the switch was rolled back.
        """
        with self._lock:
            old_spec, old = self.config.sources, (self.video, self.audio)
            try:
                new = self._build_sources(spec)  # opens nothing: the old sources keep running meanwhile
            except Exception as exc:  # a source that cannot even be built
                problem = f"{type(exc).__name__}: {exc}"
            else:
                self._hold_sources_until = None  # a switch asked for while running plays at once
                for source in old:
                    source.stop()
                self.config = replace(self.config, sources=spec)
                self._use_sources(*new)
                problem = self._wait_for_data(timeout_s) if self._running else ""
                if not problem:
                    return ""
                for new_source in new:
                    if new_source not in old:
                        new_source.stop()
                self.config = replace(self.config, sources=old_spec)
                self._use_sources(*old)
            log.warning("switching to %s failed (%s); back to %s", spec.describe(), problem, old_spec.describe())
            return f"could not switch to {spec.describe()} ({problem}); kept {old_spec.describe()}"

    def _use_sources(self, video: VideoSource, audio: AudioSource) -> None:
        """Hand the workers the buffers of ``video`` and ``audio`` and apply the switches to them."""
        face, voice, speech = self.face_worker, self.voice_worker, self.speech_worker
        for worker in (face, voice, speech):
            worker.stop()
        self.video, self.audio = video, audio
        face.frames = video.frames
        voice.ring = speech.ring = audio.ring
        self.engine.reset_speaker_statistics()  # another source: maybe another speaker
        if self._running:
            self._apply_switches()

    def _wait_for_data(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        video, audio = self.video, self.audio
        wanted = [s for s, m in ((video, Modality.VISION), (audio, Modality.AUDIO))
                  if self._enabled[m] or (m is Modality.AUDIO and self._enabled[Modality.TEXT])]
        while time.monotonic() < deadline:
            if all(s.status.ok for s in wanted):
                return ""
            time.sleep(0.05)
        return "; ".join(s.status.reason or "no data" for s in wanted if not s.status.ok)

    # -- health ------------------------------------------------------------------------------
    @property
    def waiting_for_models(self) -> bool:
        """A media file source is held until the face / speech models have loaded."""
        return self._hold_sources_until is not None

    @property
    def warming_up(self) -> bool:
        """Models are still loading, a held file has not started, or a source has sent nothing yet."""
        if self.waiting_for_models:
            return True
        return any(s.state is ModalityState.LOADING for s in self.statuses().values())

    def _release_held_sources(self) -> None:
        """Start a held media file once the enabled workers' models are loaded (or the wait is over)."""
        until = self._hold_sources_until
        loaders: tuple[Worker, ...] = (self.face_worker, self.speech_worker)
        workers = [w for w in loaders if w.running]
        if until is None or (any(w.loading for w in workers) and time.monotonic() < until):
            return
        with self._lock:
            self._hold_sources_until = None
            now = time.monotonic()
            every: tuple[Worker, ...] = (self.face_worker, self.voice_worker, self.speech_worker)
            for worker in every:  # health timers count from when the file plays, not the load
                worker.started_at = max(worker.started_at, now)
            if self._running:
                self._apply_switches()

    def _supervise(self) -> None:
        while not self._stop.wait(self.config.tick_s):
            try:
                if self._hold_sources_until is not None:
                    self._release_held_sources()
                self._evaluate()
            except Exception:  # keep supervising whatever a part reports
                log.exception("health evaluation failed")

    def _evaluate(self) -> None:
        now = time.monotonic()
        statuses = self.health.evaluate(now, self.signals())
        self._statuses = statuses

    def signals(self) -> dict[Modality, ModalitySignals]:
        """What sources and workers report right now (input of the health monitor)."""
        video, audio = self.video, self.audio
        face, voice, speech = self.face_worker, self.voice_worker, self.speech_worker
        frame = video.frames.latest()
        vs, aus, held = video.status, audio.status, self.waiting_for_models
        # Text counts as heard when a transcript arrives, even if recognition lags behind the speech.
        heard = [t for t in (speech.last_signal, speech.last_output) if t is not None]
        return {
            Modality.VISION: ModalitySignals(self._enabled[Modality.VISION], vs.ok, vs.reason,
                                             frame.t_capture if frame else None, face.error, face.last_signal,
                                             face.started_at, loading=face.loading,
                                             loading_what=LOADING_WHAT[Modality.VISION], held=held),
            Modality.AUDIO: ModalitySignals(self._enabled[Modality.AUDIO], aus.ok, aus.reason,
                                            audio.ring.last_write_time, voice.feature_error or voice.error,
                                            voice.last_signal,
                                            voice.started_at, held=held),
            Modality.TEXT: ModalitySignals(self._enabled[Modality.TEXT], aus.ok, aus.reason,
                                           audio.ring.last_write_time, speech.error or voice.error,
                                           max(heard) if heard else None, speech.started_at, speech.busy_since,
                                           loading=speech.loading, loading_what=LOADING_WHAT[Modality.TEXT],
                                           held=held, degraded=speech.degraded),
        }

    def statuses(self) -> dict[Modality, ModalityStatus]:
        """The newest modality statuses (evaluated now if the supervisor has not run yet; none before the start)."""
        if not self._statuses and self._running:
            self._evaluate()
        return dict(self._statuses)

    # -- read-only views (the window and the recorder read these, not the parts) -------------
    def snapshot(self) -> PipelineView:
        """What the pipeline runs right now, as an immutable value."""
        streams = [("camera", self.video), ("microphone", self.audio)]
        owner = getattr(self.video, "_owner", None)  # a media file's two streams share their file
        duration = getattr(getattr(owner, "info", None), "duration_s", None)
        return PipelineView(
            device=self.device, methods=tuple(self.bank.methods), checkpoints=dict(self.bank.checkpoints),
            refused=self.bank.refused,
            method=self.engine.method, sampler_steps=self.engine.sampler_steps, model_error=self.engine.model_error,
            config=self.config, enabled=dict(self._enabled), started=self._running,
            stream_statuses=tuple((name, s.status) for name, s in streams),
            playing=any(s.running for _, s in streams), ended=self.ended,
            file_duration_s=float(duration) if duration else None)

    def load_model(self, method: str | None = None) -> None:
        """Load the checkpoint of ``method`` (default: the current one) now; raises
        :class:`~imer_core.live.models.LiveModelError` when it does not fit (e.g. before starting)."""
        wanted = method or self.engine.method
        if wanted is not None:
            self.bank.get(wanted)

    def latest_frame(self) -> VideoFrame | None:
        """The newest captured frame (``None`` before the first frame)."""
        return self.video.frames.latest()

    def capture_buffers(self) -> tuple[FrameSlot, AudioRingBuffer]:
        """The current sources' frame slot and audio ring (they change when the sources are switched)."""
        return self.video.frames, self.audio.ring

    # -- results -----------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[LiveResult], None]) -> None:
        """Call ``listener(result)`` in the engine thread for every result (keep it quick)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[LiveResult], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _on_result(self, result: LiveResult) -> None:
        self._results.append(result)
        if result.probabilities is not None:
            self._result_times.append(result.t_monotonic)
        for listener in list(self._listeners):
            try:
                listener(result)
            except Exception:
                log.exception("result listener failed")

    @property
    def latest_result(self) -> LiveResult | None:
        return self.engine.latest

    def poll_results(self) -> list[LiveResult]:
        """Results since the last call (oldest first; at most the last 512)."""
        out: list[LiveResult] = []
        while self._results:
            out.append(self._results.popleft())
        return out

    def transcripts(self) -> list[TranscriptEvent]:
        """Every utterance transcribed so far (most recent 200)."""
        return list(self.speech_worker.events)

    def transcripts_since(self, count: int) -> tuple[list[TranscriptEvent], int]:
        """Utterances numbered ``count`` and later (of the most recent 200), and the total so far."""
        worker = self.speech_worker
        events, total = list(worker.events), worker.event_count
        new = max(0, min(total - count, len(events)))
        return (events[len(events) - new:] if new else []), total

    def latest_face(self) -> FaceSnapshot | None:
        """The newest analysed frame with its face features (for drawing)."""
        return self.face_worker.latest

    def _feature_latency_ms(self) -> dict[Modality, float]:
        out: dict[Modality, float] = {}
        workers: tuple[tuple[Modality, FaceWorker | VoiceWorker], ...] = (
            (Modality.VISION, self.face_worker), (Modality.AUDIO, self.voice_worker))
        for m, worker in workers:
            if worker.feature_latency_s:
                out[m] = 1e3 * worker.feature_latency_s[-1]
        return out

    def stats(self) -> dict[str, float | str | None]:
        """Rates and latencies for a performance panel."""
        now = time.monotonic()
        recent = [t for t in list(self._result_times) if t >= now - 5.0]
        rtf: list[float] = list(self.speech_worker.real_time_factors)
        latest = self.latest_result
        return {
            "device": self.device,
            "face_fps": self.face_worker.fps(now),
            "predictions_per_s": len(recent) / 5.0,
            "asr_rtf": float(np.median(rtf)) if rtf else None,
            "skipped_ticks": float(self.engine.skipped),
            **({f"{k}_ms": v for k, v in latest.latency_ms} if latest else {}),
        }


def _run_if(wanted: bool, source: CaptureSource | None, worker: Worker, on_stop: Callable[[], None]) -> None:
    """Start or stop a source/worker pair."""
    if wanted:
        if source is not None and not source.running:
            source.start()
        if not worker.running:
            worker.start()
    else:
        if worker.running:
            worker.stop()
        if source is not None and source.running:
            source.stop()
        on_stop()


__all__ = ["LivePipeline", "PipelineConfig", "PipelineView", "disabled_from_text"]
