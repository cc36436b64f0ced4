"""Speech → text → sentence embedding, in its own thread (see :mod:`.workers`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .buffers import AudioRingBuffer
from .tracks import FeatureTrack
from .workers import Worker


@dataclass(frozen=True)
class TranscriptEvent:
    """One transcribed utterance (monotonic times of its audio)."""

    text: str
    start: float
    end: float
    asr_seconds: float


@dataclass(frozen=True)
class SpeechConfig:
    """Segmentation of the audio into utterances for ASR.

    Attributes:
        end_silence_s: silence that ends an utterance.
        max_utterance_s: long speech is transcribed at least this often.
        pad_s: audio kept before and after the voiced part.
        context_s: seconds of transcript embedded as the text features.
        timeout_s: an ASR call taking longer makes text fail ("timed out"); no new
            call starts while it runs (its utterances are skipped), and when it
            does answer, the same backend is used again and its text is kept.
        abandon_after_s: a call still running after this long is taken as hung: it
            is abandoned and a fresh backend loaded, at most ``max_abandoned`` times
            per run (each abandoned call may hold a model in memory).
        max_abandoned: hung backends abandoned per run before text stays failing.
        retry_load_s: wait before retrying a backend that failed to load.
        stop_grace_s: on stop, how long a recognition in progress may still run (a
            transcription thread left running when Python exits aborts the process).
        max_lag_s: when recognition cannot keep up (a loaded CPU) and the speech
            still to be transcribed starts more than this many seconds before the
            newest audio, the older speech is skipped (only the newest ``max_lag_s``
            are kept) and decoding switches to greedy; the text modality's health
            reason says so.  Without this the recogniser falls ever further behind.
        recover_after_s: back to the configured decoding after this long without
            having to skip.
    """

    end_silence_s: float = 0.6
    max_utterance_s: float = 5.0
    pad_s: float = 0.25
    context_s: float = 12.0
    timeout_s: float = 10.0
    abandon_after_s: float = 60.0
    max_abandoned: int = 2
    retry_load_s: float = 10.0
    stop_grace_s: float = 3.0
    max_lag_s: float = 3.0
    recover_after_s: float = 30.0


class UtteranceCutter:
    """Cuts a stream of per-step voice activity into utterances to transcribe (:class:`SpeechConfig` rules).

    :meth:`step` takes the steps in time order and returns the span ``(t0, t1)``
    of audio to transcribe when an utterance ends (``end_silence_s`` of
    silence) or has grown to ``max_utterance_s`` (the rest continues without
    overlap); :meth:`finish` returns the utterance in progress (the audio ended).
    Used by :class:`SpeechWorker` and by offline analysis.
    """

    def __init__(self, config: SpeechConfig = SpeechConfig()) -> None:
        self.config = config
        self.start: float | None = None  # first and last voiced time of the current utterance
        self.last_speech: float | None = None
        self.lead_pad = config.pad_s  # 0 for the continuation of a long utterance (no overlap)

    def reset(self) -> None:
        """Forget the utterance in progress."""
        self.start = self.last_speech = None

    def step(self, t: float, voiced: bool) -> tuple[float, float] | None:
        """Add the step at time ``t``; the span to transcribe now, if any."""
        cfg = self.config
        if voiced:
            if self.start is None:
                self.start, self.lead_pad = t - 0.05, cfg.pad_s
            self.last_speech = t + 0.05
        if self.start is None or self.last_speech is None:
            return None
        if t - self.last_speech >= cfg.end_silence_s:
            return self.finish()
        if self.last_speech - self.start >= cfg.max_utterance_s:
            span = (self.start - self.lead_pad, self.last_speech)
            self.start, self.lead_pad = self.last_speech, 0.0  # the next part starts where this ends
            return span
        return None

    def finish(self) -> tuple[float, float] | None:
        """The utterance in progress as a span to transcribe (``None`` if there is none); then reset."""
        span = None
        if self.start is not None and self.last_speech is not None:
            span = (self.start - self.lead_pad, self.last_speech + self.config.pad_s)
        self.reset()
        return span


class _Call:
    """Runs ``fn`` in a daemon thread; :meth:`wait` gives up after a time-out."""

    def __init__(self, fn: Callable[[], Any], started: float = 0.0, start: float = 0.0,
                 duration: float = 0.0) -> None:
        self.started, self.start, self.duration = started, start, duration  # call time; the audio's span
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name="imer-asr-call", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._result = fn()
        except Exception as exc:  # handed to the waiting worker
            self._error = exc
        finally:
            self._done.set()

    def wait(self, timeout: float, stop: threading.Event) -> Any:
        """The result; raises ``TimeoutError`` after ``timeout`` s, ``InterruptedError`` once ``stop`` is set."""
        deadline = time.monotonic() + timeout
        while not self._done.wait(0.05):
            if stop.is_set():
                raise InterruptedError
            if time.monotonic() > deadline:
                raise TimeoutError
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise RuntimeError("speech recognition ended without a result")
        return self._result

    @property
    def done(self) -> bool:
        """Whether ``fn`` has returned (or raised)."""
        return self._done.is_set()

    def result(self) -> Any:
        """The finished call's result; raises its error (only once :attr:`done`)."""
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise RuntimeError("speech recognition ended without a result")
        return self._result

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the call to return."""
        self._thread.join(timeout)


class SpeechWorker(Worker):
    """Transcribes voiced segments of ``ring`` and embeds the recent transcript.

    Args:
        ring: 16 kHz audio of the microphone or file.
        speech_track: per-step speech fraction written by the voice worker.
        text_track: receives ``(end time of the speech, embedding)``.
        asr_factory: builds the ASR backend (``transcribe(audio, start_time=)``).
        embedder_factory: builds the sentence embedder (``embed(text) -> (1, D)``).
        transcript_window: a :class:`~imer_core.features.text.TranscriptWindow`.
    """

    name = "speech"
    loads_models = True

    def __init__(self, ring: AudioRingBuffer, speech_track: FeatureTrack, text_track: FeatureTrack,
                 asr_factory: Callable[[], Any], embedder_factory: Callable[[], Any], transcript_window: Any,
                 config: SpeechConfig = SpeechConfig()) -> None:
        super().__init__()
        self.ring, self.speech_track, self.text_track = ring, speech_track, text_track
        self._asr_factory, self._embedder_factory = asr_factory, embedder_factory
        self.window = transcript_window
        self.config = config
        self.busy_since: float | None = None
        self.events: deque[TranscriptEvent] = deque(maxlen=200)
        self.event_count = 0
        self.real_time_factors: deque[float] = deque(maxlen=100)
        self._asr: Any = None
        self._embedder: Any = None
        self._load_failed_at: float | None = None
        self._cutter = UtteranceCutter(config)
        self._finish_request: threading.Event | None = None
        #: seconds of speech skipped because recognition could not keep up (this run)
        self.skipped_s = 0.0
        self._behind_since: float | None = None  # monotonic time of the last skip
        self._behind_lag_s = 0.0
        self._seen = -np.inf  # time of the newest speech step handled
        self._late: _Call | None = None  # a call that timed out and is still running
        self.abandoned = 0  # hung backends abandoned in this run

    @property
    def degraded(self) -> str:
        """Why transcription is deliberately reduced right now ("" when it is not)."""
        if self._behind_since is None:
            return ""
        recent = list(self.real_time_factors)[-10:]
        rtf = f"{np.median(recent):.1f}× real time, " if recent else ""
        return (f"speech recognition is behind ({rtf}{self._behind_lag_s:.0f} s late): transcribing only "
                f"the newest speech with greedy decoding; {self.skipped_s:.0f} s of speech skipped so far")

    def stop(self, timeout: float = 2.0) -> None:
        """Stop; an in-flight recognition gets up to ``config.stop_grace_s`` to finish first."""
        super().stop(max(timeout, self.config.stop_grace_s + 0.5))

    def request_finish(self) -> threading.Event:
        """Ask for the utterance in progress to be transcribed now (its audio has ended).

        Used when a media file ends, so its last sentence is not lost.
        Returns an event set once that is done (at once when not running).
        """
        done = threading.Event()
        if self.running:
            self._finish_request = done
        else:
            done.set()
        return done

    def _loop(self) -> None:
        self._backends_ready()  # load now, while the first words are being spoken
        self._loaded()
        self._seen = -np.inf
        self._cutter.reset()
        self.skipped_s, self._behind_since, self.abandoned = 0.0, None, 0
        while not self._stop.wait(0.1):
            self.poll()
        if self._late is not None:  # a recognition still running at exit aborts the process
            self._late.join(self.config.stop_grace_s)

    def poll(self) -> None:
        """Transcribe what has been spoken since the last call (one pass of the worker's loop)."""
        request = self._finish_request
        self._late_call_pending()  # a late answer is used as soon as it comes
        times, fractions = self._speech_since(self._seen)
        times, fractions = self._keep_up(times, fractions)
        for t, frac in zip(times, fractions):  # step by step: a backlog still splits at pauses
            if self._stop.is_set():
                break
            self._seen = float(t)
            self._advance(self._seen, frac > 0.5)
        if request is not None:
            self._finish_utterance()
            self._finish_request = None
            request.set()

    def _keep_up(self, times: np.ndarray, fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Skip the speech older than ``max_lag_s`` when recognition has fallen behind; greedy until it recovers."""
        cfg = self.config
        now = time.monotonic()
        if len(times) and times[-1] - times[0] > cfg.max_lag_s:
            keep = times > times[-1] - cfg.max_lag_s
            dropped = times[~keep]
            step = float(np.median(np.diff(times)))
            self.skipped_s += step * float(np.count_nonzero(fractions[~keep] > 0.5))
            self._behind_lag_s = float(times[-1] - times[0])
            self._behind_since = now
            self._cutter.reset()  # the utterance in progress started in the skipped part
            self._seen = float(dropped[-1])
            times, fractions = times[keep], fractions[keep]
        elif self._behind_since is not None and now - self._behind_since > cfg.recover_after_s:
            self._behind_since = None
        return times, fractions

    def _set_greedy(self, greedy: bool) -> None:
        """Greedy decoding while behind, on backends that offer it (``greedy`` attribute)."""
        if hasattr(self._asr, "greedy"):
            self._asr.greedy = greedy

    def _finish_utterance(self) -> None:
        span = self._cutter.finish()
        if span is not None:
            self._transcribe(*span)

    def _advance(self, t: float, voiced: bool) -> None:
        """Update the utterance with one step; transcribe it when it ends or grows too long."""
        span = self._cutter.step(t, voiced)
        if span is not None:
            self._transcribe(*span)

    def _speech_since(self, seen: float) -> tuple[np.ndarray, np.ndarray]:
        newest = self.speech_track.newest_time
        if newest is None or newest <= seen:
            return np.zeros(0), np.zeros(0)
        times, values = self.speech_track.between(seen + 1e-6, newest)
        return times, values[:, 0]

    def _backends_ready(self) -> bool:
        if self._asr is not None and self._embedder is not None:
            return True
        now = time.monotonic()
        if self._load_failed_at is not None and now - self._load_failed_at < self.config.retry_load_s:
            return False
        try:
            self._asr = self._asr if self._asr is not None else self._asr_factory()
            self._embedder = self._embedder if self._embedder is not None else self._embedder_factory()
        except Exception as exc:  # missing model / package: text fails with the reason
            self._load_failed_at = now
            self.error = f"speech recognition unavailable: {exc}"
            return False
        return True

    def _late_call_pending(self) -> bool:
        """Whether a timed-out call still runs; a finished one's text is kept and its backend reused."""
        late, cfg = self._late, self.config
        if late is None:
            return False
        if late.done:
            self._late = None
            try:
                self._accept(late.result(), late.start, late.duration)
            except Exception as exc:
                self.error = f"speech recognition error: {type(exc).__name__}: {exc}"
            return False
        if time.monotonic() - late.started <= cfg.abandon_after_s:
            return True
        if self.abandoned >= cfg.max_abandoned:  # every fresh backend hung too: stop loading more
            self.error = (f"speech recognition hangs (no answer after {cfg.abandon_after_s:.0f} s, "
                          f"{self.abandoned} backends abandoned)")
            return True
        self._late, self._asr = None, None  # hung: abandoned (its thread ends on its own); a fresh one loads
        self.abandoned += 1
        return False

    def _transcribe(self, t0: float, t1: float) -> None:
        if self._late_call_pending():  # one recognition at a time: this utterance is skipped
            self.skipped_s += max(0.0, t1 - t0)
            self._behind_since = time.monotonic()
            return
        if not self._backends_ready():
            return
        try:
            audio, start = self.ring.read_between(t0, t1)
        except RuntimeError:  # the audio was cleared (microphone switched off)
            return
        if len(audio) < self.ring.sample_rate * 0.2:
            return
        self.busy_since = time.monotonic()
        self._set_greedy(self._behind_since is not None)
        asr = self._asr
        call = _Call(lambda: asr.transcribe(audio, start_time=start), self.busy_since, start,
                     len(audio) / self.ring.sample_rate)
        try:
            transcript = call.wait(self.config.timeout_s, self._stop)
        except InterruptedError:
            call.join(self.config.stop_grace_s)  # a recognition still running at exit aborts the process
            return
        except TimeoutError:
            self.error = (f"speech recognition timed out (no answer after {self.config.timeout_s:.0f} s; "
                          "newer speech is skipped until it answers)")
            self._late = call  # slow, maybe hung: no second recognition (and model) while it runs
            return
        except Exception as exc:
            self.error = f"speech recognition error: {type(exc).__name__}: {exc}"
            return
        finally:
            self.busy_since = None
        self._accept(transcript, start, call.duration)

    def _accept(self, transcript: Any, start: float, duration: float) -> None:
        self.error = ""
        self.real_time_factors.append(float(transcript.real_time_factor))
        text = transcript.text.strip()
        if not text:
            return
        self.window.add_transcript(transcript)
        end = start + duration
        self.events.append(TranscriptEvent(text, start, end, float(transcript.processing_s)))
        self.event_count += 1
        context = self.window.text(last_s=self.config.context_s, now=end)
        vector = np.asarray(self._embedder.embed(context), np.float32).reshape(-1)
        self.text_track.append(end, vector)
        self.last_signal = end
        self.last_output = time.monotonic()
