"""The live engine's extractors applied to whole files (faces, voice, speech → text).

* still images: :class:`~imer_core.features.face.FaceFeatureExtractor` in
  still-image mode; an image smaller than
  :data:`~imer_core.features.face.STILL_FACE_SIZE` is framed first with
  :func:`~imer_core.features.face.prepare_still_face` (how the training faces
  were prepared), a larger one is tried as it is and then framed when no face
  is found; the face vector is repeated over the window (as in training);
* short audio clips: :func:`~imer_core.features.voice.loudest_window` of the
  window length (as in training) and the transcript of the whole clip;
* video and long audio: feature tracks over the whole file — faces in VIDEO
  mode (tracking) at up to ``video_fps`` frames per second, voice features at
  10 Hz, and the text track of the live speech worker (utterances cut by
  voice activity with the same rules, each transcribed, and at its end the
  embedding of the last
  :attr:`SpeechConfig.context_s <imer_core.live.speech_worker.SpeechConfig>`
  seconds of transcript) — from which the engine's own
  :meth:`FeatureTrack.window <imer_core.live.tracks.FeatureTrack.window>`
  cuts each window with the engine's hold times.

Models load on first use; a model that cannot load is reported once and its
modality stays unobserved (recovered) for every input that needed it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..features.base import ExtractorFactory
from ..features.face import STILL_FACE_SIZE, prepare_still_face
from ..features.text import TranscriptWindow
from ..features.voice import (
    audio_extractor_or_voice_activity,
    context_samples,
    extract_from,
    loudest_window,
    window_features,
)
from ..live.speech_worker import SpeechConfig, UtteranceCutter
from ..live.tracks import FeatureTrack
from ..modalities import Modality

log = logging.getLogger(__name__)
#: Audio is extracted in chunks of this many seconds (bounded memory on long files).
VOICE_CHUNK_S = 30.0
#: Seconds of audio before each chunk given to the extractor (its analysis frames reach back).
VOICE_CONTEXT_S = 0.5


class ModelUnavailable(RuntimeError):
    """A feature model (face landmarker, speech recogniser, sentence embedder) cannot be loaded."""


class Lazy:
    """A model built on first use; a failure is kept and raised again as :class:`ModelUnavailable`."""

    def __init__(self, what: str, build: Callable[[], Any]) -> None:
        self.what, self._build = what, build
        self._value: Any = None
        self.error = ""

    def get(self) -> Any:
        if self._value is None and not self.error:
            try:
                self._value = self._build()
            except Exception as exc:  # noqa: BLE001 - missing package / weights: the modality is recovered
                self.error = f"{self.what} unavailable: {exc}"
                log.warning("%s", self.error)
        if self._value is None:
            raise ModelUnavailable(self.error)
        return self._value

    def close(self) -> None:
        value, self._value = self._value, None
        if value is not None and hasattr(value, "close"):
            value.close()


def _quiet(build: Callable[[], Any]) -> Callable[[], Any]:
    """``build`` without transformers' "Loading weights" progress bar between the rows."""
    def quiet_build() -> Any:
        try:
            from transformers.utils import logging as transformers_logging
            transformers_logging.disable_progress_bar()
        except ImportError:
            pass
        return build()
    return quiet_build


class Extractors:
    """The feature models of one analysis run (built lazily, reused for every file).

    Args:
        device: where the sentence embedder and the speech recogniser run.
        asr: speech recognition backend (:func:`imer_core.asr.load_asr`).
        factories: ``{modality: extractor factory}``; default: the ones the live
            pipeline runs (:func:`imer_core.features.registry.extractor_factories`).
    """

    def __init__(self, device: str = "cpu", asr: str = "auto",
                 factories: Mapping[Modality, ExtractorFactory[Any]] | None = None) -> None:
        from ..features.registry import extractor_factories
        from ..live.parts import default_asr

        factories = dict(factories) if factories is not None else extractor_factories(device)
        face, text = factories[Modality.VISION], factories[Modality.TEXT]
        self.specs = {m: f.spec for m, f in factories.items()}
        self.still_faces = Lazy("face model", lambda: face(color="rgb", still_images=True))
        self.video_faces = Lazy("face model", lambda: face(color="rgb"))
        self.asr = Lazy("speech recognition", default_asr(asr, device=device))
        self.embedder = Lazy("sentence embedder", _quiet(text))
        #: The audio extractor; when it cannot be built, the plain voice features for voice activity
        #: only, and ``voice_error`` says why the audio modality is unavailable.
        self.voice, self.voice_error = audio_extractor_or_voice_activity(factories[Modality.AUDIO])

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        self.still_faces.close()
        self.video_faces.close()

    # -- vision ---------------------------------------------------------------------
    def still_face(self, image: np.ndarray) -> np.ndarray | None:
        """Face vector of a still RGB image, or ``None`` when no face is found."""
        extractor = self.still_faces.get()
        small = max(image.shape[:2]) < STILL_FACE_SIZE
        attempts = [prepare_still_face(image)] if small else [image, prepare_still_face(image)]
        for attempt in attempts:
            features = extractor.process(attempt)
            if features.detected:
                return features.vector
        return None

    def face_track(self, frames: Any) -> tuple[FeatureTrack, int, int]:
        """Vision track of ``(time, RGB frame)`` pairs (VIDEO mode); returns ``(track, frames, with a face)``."""
        extractor = self.video_faces.get()
        extractor.reset()
        track = FeatureTrack(self.specs[Modality.VISION].dim, capacity_s=float("inf"))
        seen = found = 0
        for t, frame in frames:
            features = extractor.process(frame, t * 1000.0)
            seen += 1
            if features.detected:
                found += 1
                track.append(t, features.vector)
        return track, seen, found

    # -- audio ----------------------------------------------------------------------
    def loudest_voice_window(self, audio: np.ndarray, seconds: float) -> tuple[np.ndarray, float]:
        """Voice features of the loudest ``seconds`` of a clip and the window's start (s)."""
        rate = self.voice.sample_rate
        length, hop = int(round(seconds * rate)), self.voice.step_samples
        _, offset = loudest_window(audio, length, hop)
        return window_features(self.voice, audio, offset, length)[0], offset / rate

    def voice_track(self, audio: np.ndarray) -> tuple[FeatureTrack, np.ndarray, np.ndarray]:
        """Voice features of a whole recording at 10 Hz, extracted chunk by chunk (times in s from its start).

        Returns the track and, per step, its time and the share of voice-activity speech frames.
        """
        step, rate = self.voice.step_samples, self.voice.sample_rate
        chunk = int(VOICE_CHUNK_S * rate) // step * step
        context = context_samples(self.voice, VOICE_CONTEXT_S, rate) // step * step
        track = FeatureTrack(self.specs[Modality.AUDIO].dim, capacity_s=float("inf"))
        times, speech = [], []
        end_total = len(audio) - len(audio) % step
        for first in range(0, end_total, chunk):
            end = min(first + chunk, end_total)
            start = max(first - context, 0)
            features = extract_from(self.voice, audio[start:end], start / rate, first / rate)
            keep = features.times >= first / rate
            track.extend(features.times[keep], features.vector[keep])
            times.append(features.times[keep])
            speech.append(features.speech_fraction[keep])
        if not times:
            return track, np.zeros(0), np.zeros(0)
        return track, np.concatenate(times), np.concatenate(speech)

    # -- speech -> text -------------------------------------------------------------------
    def transcribe(self, audio: np.ndarray, start_time: float = 0.0) -> Any:
        """The speech recogniser's transcript of a recording (raises :class:`ModelUnavailable`)."""
        return self.asr.get().transcribe(audio, start_time=start_time)

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(N, dim)`` sentence embeddings (raises :class:`ModelUnavailable`)."""
        dim = self.specs[Modality.TEXT].dim
        return np.asarray(self.embedder.get().embed(texts), np.float32).reshape(len(texts), dim)

    def text_track(self, audio: np.ndarray, step_times: np.ndarray, speech_fraction: np.ndarray,
                   config: SpeechConfig = SpeechConfig()) -> tuple[FeatureTrack, list[tuple[float, str]]]:
        """Text track of a recording, as the live speech worker builds it.

        The voice activity of each step is cut into utterances
        (:class:`~imer_core.live.speech_worker.UtteranceCutter`), each utterance
        is transcribed, and at its end the track gets the embedding of the last
        ``config.context_s`` seconds of transcript.  Returns the track and its
        ``(time, transcript context)`` pairs.
        """
        rate = self.voice.sample_rate
        cutter = UtteranceCutter(config)
        spans = [span for t, f in zip(step_times, speech_fraction)
                 if (span := cutter.step(float(t), bool(f > 0.5))) is not None]
        last = cutter.finish()
        spans += [last] if last is not None else []
        window = TranscriptWindow(horizon_s=max(60.0, 2 * config.context_s))
        track = FeatureTrack(self.specs[Modality.TEXT].dim, capacity_s=float("inf"))
        times, contexts = [], []
        for t0, t1 in spans:
            first, end = max(0, int(t0 * rate)), min(len(audio), int(t1 * rate))
            if end - first < 0.2 * rate:
                continue
            transcript = self.transcribe(audio[first:end], start_time=first / rate)
            text = transcript.text.strip()
            if not text:
                continue
            window.add_transcript(transcript)
            times.append(end / rate)
            contexts.append(window.text(last_s=config.context_s, now=end / rate))
        if contexts:
            track.extend(np.asarray(times), self.embed(contexts))
        return track, list(zip(times, contexts))
