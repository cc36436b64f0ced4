"""The analysis loop: inputs → windows (:mod:`.features`) → batched predictions (:mod:`imer_core.live.inference`)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..features.base import ExtractorSpec
from ..live.engine import DEFAULT_HOLD_S, resolve_device
from ..live.inference import predict_normalised_windows, repeat_vector
from ..live.models import LiveModel, LiveModelError, ModelBank, shipped_checkpoints
from ..live.speaker_norm import RunningSpeakerStats, route_voice_window, speaker_normalization_settings
from ..methods.base import SamplingOptions
from ..modalities import MODALITIES, Modality
from ..registry import preferred_methods
from .core import AnalysisOptions, AnalysisRow
from .features import Extractors, ModelUnavailable
from .inputs import AUDIO, IMAGE, INVALID, TEXT, VIDEO, AnalysisInput
from .media import UnreadableInput, media_streams, read_audio, read_image, video_frames

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    """A row waiting for its batch: its fields and the window to predict (``None``: no prediction)."""

    fields: dict[str, Any]
    window: dict[Modality, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)
    speaker: RunningSpeakerStats | None = None  # per-speaker voice statistics of the recording, if the model uses them
    speaker_window: dict[Modality, np.ndarray] = field(default_factory=dict)  # for a speaker expert ("<m>@speaker")


def load_model(options: AnalysisOptions, extractors: Mapping[Modality, ExtractorSpec] | None = None) -> LiveModel:
    """The checkpoint of ``options.method`` (default: the preferred one available), checked against
    ``extractors`` (default: the registered default extractors, which the live pipeline runs too).

    Raises:
        LiveModelError: no checkpoint, or one that does not fit the extractors.
    """
    device = resolve_device(options.device)
    bank = (ModelBank.from_paths(list(options.checkpoints), device, extractors) if options.checkpoints
            else ModelBank(shipped_checkpoints(), device, extractors))
    if not bank.methods:
        raise LiveModelError("no trained model: pass --checkpoint, or restore assets/models/live_*.pt "
                             "(or point $IMER_ASSETS at a folder holding models/live_<method>.pt)")
    return bank.get(options.method or preferred_methods(bank.methods)[0])


class Analyzer:
    """One analysis run: the model, the extractors and the batch of pending rows."""

    def __init__(self, options: AnalysisOptions) -> None:
        self.options = options
        self.device = resolve_device(options.device)
        self.extractors = Extractors(device=self.device, asr=options.asr)
        self.model = load_model(options, self.extractors.specs)
        self.used = options.used
        specs = self.model.config.specs
        self.seq_len = {m: specs[m].seq_len for m in MODALITIES}
        self.rate = {m: float(specs[m].rate_hz or 10.0) for m in MODALITIES}
        self.window_s = self.seq_len[Modality.AUDIO] / self.rate[Modality.AUDIO]
        self.sampling = SamplingOptions(steps=options.sampler_steps, seed=options.seed)
        self.speaker_settings = speaker_normalization_settings(self.model.metadata).get(Modality.AUDIO.value)

    def close(self) -> None:
        self.extractors.close()

    # -- the loop -------------------------------------------------------------------
    def run(self, inputs: Sequence[AnalysisInput], progress: bool = False) -> Iterator[AnalysisRow]:
        from tqdm.auto import tqdm

        batch: list[_Pending] = []
        bar = tqdm(total=len(inputs), unit="input", desc="analyze", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True)
        try:
            index = 0
            while index < len(inputs):
                if inputs[index].kind == TEXT:  # consecutive texts are embedded together
                    end = index
                    while end < len(inputs) and inputs[end].kind == TEXT and end - index < self.options.batch_size:
                        end += 1
                    batch.extend(self._normalised(p) for p in self._texts(inputs[index:end]))
                    bar.update(end - index)
                    index = end
                else:
                    batch.extend(self._normalised(p) for p in self._safely(inputs[index]))
                    bar.update(1)
                    index += 1
                while sum(p.window is not None for p in batch) >= self.options.batch_size:
                    cut = _cut(batch, self.options.batch_size)
                    yield from self._predict(batch[:cut])
                    batch = batch[cut:]
            yield from self._predict(batch)
        finally:
            bar.close()

    def _safely(self, item: AnalysisInput) -> list[_Pending]:
        base = {"path": item.path, "kind": item.kind}
        try:
            if item.kind == INVALID:
                return [_Pending({**base, "error": item.problem})]
            if item.kind == IMAGE:
                return [self._image(item, base)]
            if item.kind == AUDIO:
                return self._recording(item, base, has_video=False)
            if item.kind == VIDEO:
                has_video, has_audio = media_streams(_file_of(item))
                if not has_video:
                    return self._recording(item, {**base, "kind": AUDIO}, has_video=False)
                return self._recording(item, base, has_video=True, has_audio=has_audio)
            raise ValueError(f"unknown input kind {item.kind!r}")
        except (UnreadableInput, ModelUnavailable) as exc:
            return [_Pending({**base, "error": str(exc)})]
        except MemoryError:
            return [_Pending({**base, "error": "out of memory while reading the file"})]
        except Exception as exc:  # noqa: BLE001 - one bad file never ends the run
            log.debug("analysis of %s failed", item.path, exc_info=True)
            return [_Pending({**base, "error": f"{type(exc).__name__}: {exc}"})]

    # -- inputs ---------------------------------------------------------------------
    def _texts(self, items: Sequence[AnalysisInput]) -> list[_Pending]:
        rows = [_Pending({"path": i.path, "kind": TEXT, "transcript": i.text}) for i in items]
        if Modality.TEXT not in self.used:
            for row in rows:
                row.fields["error"] = "nothing to analyse: text is not among --modalities"
            return rows
        try:
            vectors = self.extractors.embed([i.text or "" for i in items])
        except ModelUnavailable as exc:
            for row in rows:
                row.fields["error"] = str(exc)
            return rows
        for row, vector in zip(rows, vectors):
            row.window = {Modality.TEXT: repeat_vector(vector, self.seq_len[Modality.TEXT])}
        return rows

    def _image(self, item: AnalysisInput, base: dict[str, Any]) -> _Pending:
        if Modality.VISION not in self.used:
            return _Pending({**base, "error": "nothing to analyse: vision is not among --modalities"})
        vector = self.extractors.still_face(read_image(_file_of(item)))
        if vector is None:
            return _Pending({**base, "face_found": False, "error": "no face found in the image"})
        return _Pending({**base, "face_found": True},
                        {Modality.VISION: repeat_vector(vector, self.seq_len[Modality.VISION])})

    def _recording(self, item: AnalysisInput, base: dict[str, Any], has_video: bool,
                   has_audio: bool = True) -> list[_Pending]:
        wants_audio = has_audio and bool({Modality.AUDIO, Modality.TEXT} & self.used)
        if not has_video and not wants_audio:
            return [_Pending({**base, "error": "nothing to analyse: audio and text are not among --modalities"})]
        if has_video and Modality.VISION not in self.used and not wants_audio:
            return [_Pending({**base, "error": "nothing to analyse: the modalities of this file are not among "
                                               "--modalities"})]
        notes: list[str] = []
        audio = None
        if wants_audio:
            try:
                audio = read_audio(_file_of(item))
            except UnreadableInput as exc:
                if not has_video:
                    raise
                notes.append(f"audio: {exc}")
        duration = len(audio) / self.extractors.voice.sample_rate if audio is not None else 0.0
        speaker = self._speaker_stats(audio) if Modality.AUDIO in self.used else None
        if not has_video and audio is not None and duration <= self.options.windows_above_s:
            rows = [self._clip(base, audio, notes)]
        else:
            rows = self._windows(item, base, audio, duration, has_video, notes)
        for row in rows:
            row.speaker = speaker
        return rows

    def _transcript_text(self, audio: np.ndarray, notes: list[str]) -> str | None:
        try:
            transcript = self.extractors.transcribe(audio)
        except ModelUnavailable as exc:
            notes.append(f"text: {exc}")
            return None
        return " ".join(s.text for s in transcript.segments).strip()

    def _clip(self, base: dict[str, Any], audio: np.ndarray, notes: list[str]) -> _Pending:
        """A short recording: its loudest window and the transcript of the whole clip (as in training)."""
        window: dict[Modality, np.ndarray] = {}
        fields = dict(base)
        if Modality.AUDIO in self.used and self._voice_features_usable(notes):
            window[Modality.AUDIO], start = self.extractors.loudest_voice_window(audio, self.window_s)
            fields.update(start_s=start, end_s=start + self.window_s)
        if Modality.TEXT in self.used:
            text = self._transcript_text(audio, notes)
            fields["transcript"] = text
            if text:
                try:
                    vector = self.extractors.embed([text])[0]
                    window[Modality.TEXT] = repeat_vector(vector, self.seq_len[Modality.TEXT])
                except ModelUnavailable as exc:
                    notes.append(f"text: {exc}")
            elif text is not None:
                notes.append("text: no speech recognised")
        if not window:
            fields["error"] = "; ".join(notes) or "nothing to analyse"
            return _Pending(fields)
        return _Pending(fields, window, notes)

    def _windows(self, item: AnalysisInput, base: dict[str, Any], audio: np.ndarray | None, duration: float,
                 has_video: bool, notes: list[str]) -> list[_Pending]:
        """Video or a long recording: one row per window, cut from whole-file feature tracks."""
        tracks = {}
        if has_video and Modality.VISION in self.used:
            tracks[Modality.VISION], frames, _ = self.extractors.face_track(
                video_frames(_file_of(item), self.options.video_fps))
            if frames == 0:
                raise UnreadableInput("the video stream holds no decodable frames")
            duration = max(duration, tracks[Modality.VISION].newest_time or 0.0, frames / self.options.video_fps)
        contexts: list[tuple[float, str]] = []
        if audio is not None:
            voice, step_times, speech = self.extractors.voice_track(audio)
            if Modality.AUDIO in self.used and self._voice_features_usable(notes):
                tracks[Modality.AUDIO] = voice
            if Modality.TEXT in self.used:
                try:
                    tracks[Modality.TEXT], contexts = self.extractors.text_track(audio, step_times, speech)
                except ModelUnavailable as exc:
                    notes.append(f"text: {exc}")
        rows = []
        for end in window_ends(duration, self.window_s, self.options.hop_s):
            window = {}
            for m, track in tracks.items():
                cut = track.window(end, self.seq_len[m], self.rate[m], DEFAULT_HOLD_S[m])
                if cut is not None:
                    window[m] = cut.values
            fields = {**base, "start_s": max(0.0, end - self.window_s), "end_s": end}
            if has_video and Modality.VISION in self.used:
                fields["face_found"] = Modality.VISION in window
            if Modality.TEXT in window:  # the transcript context the window's text features hold
                fields["transcript"] = next(text for t, text in reversed(contexts) if t <= end + 1e-6)
            if window:
                rows.append(_Pending(fields, window, list(notes)))
            else:
                rows.append(_Pending({**fields, "error": "; ".join(notes + ["no face, voice or text in the window"])}))
        return rows

    def _voice_features_usable(self, notes: list[str]) -> bool:
        """Whether the audio extractor was built; if not, its reason goes to ``notes`` (audio is recovered)."""
        if self.extractors.voice_error:
            notes.append(f"audio: {self.extractors.voice_error}")
            return False
        return True

    def _speaker_stats(self, audio: np.ndarray | None) -> RunningSpeakerStats | None:
        """The recording's voice statistics shrunk towards the corpus ones, when the checkpoint asks for them.

        The live engine folds the speech heard so far into running statistics;
        offline the whole recording's speech is known, the limit those tend to.
        """
        if (audio is None or self.speaker_settings is None or Modality.AUDIO not in self.model.mean
                or self.extractors.voice_error):
            return None
        stats = RunningSpeakerStats(self.model.mean[Modality.AUDIO], self.model.std[Modality.AUDIO],
                                    self.speaker_settings["prior_steps"], self.speaker_settings["min_speech_fraction"])
        track, _, speech = self.extractors.voice_track(audio)
        stats.update(track.between(-np.inf, np.inf)[1], speech)
        return stats

    def _normalised(self, pending: _Pending) -> _Pending:
        """The window normalised as the engine does; a modality with NaN/inf features is left out (recovered)."""
        if pending.window is None:
            return pending
        window = {}
        for m, values in pending.window.items():
            stats = pending.speaker if m is Modality.AUDIO else None
            normalised, by_speaker = route_voice_window(values, stats, self.speaker_settings or {},
                                                        partial(self._globally_normalised, m))
            if by_speaker is not None:
                pending.speaker_window[m] = by_speaker
            if np.isfinite(normalised).all():
                window[m] = normalised
            else:
                pending.notes.append(f"{m.value}: non-finite features left out")
        if not window:
            pending.fields["error"] = "; ".join(pending.notes)
            return _Pending(pending.fields)
        pending.window = window
        return pending

    def _globally_normalised(self, modality: Modality, values: np.ndarray) -> np.ndarray:
        return self.model.normalise(modality, values).astype(np.float32)

    # -- predictions ------------------------------------------------------------------
    def _probabilities(self, batch: list[_Pending]) -> dict[int, np.ndarray]:
        """Probabilities of the rows with a window, by index in ``batch`` (speaker-expert windows included)."""
        ready = [i for i, pending in enumerate(batch) if pending.window is not None]
        if not ready:
            return {}
        probs = predict_normalised_windows(self.model, [batch[i].window or {} for i in ready],
                                           [batch[i].speaker_window for i in ready], self.sampling, self.device)
        return dict(zip(ready, probs))

    def _predict(self, batch: list[_Pending]) -> Iterator[AnalysisRow]:
        probabilities = self._probabilities(batch)
        labels = self.model.labels
        for i, pending in enumerate(batch):
            fields = dict(pending.fields)
            window = pending.window
            probs = probabilities.get(i)
            if probs is not None and not np.isfinite(probs).all():
                fields["error"] = f"the {self.model.method} model produced NaN or infinite probabilities"
            elif window is not None and probs is not None:
                observed = tuple(m.value for m in MODALITIES if m in window)
                fields.update(observed=observed, recovered=tuple(m.value for m in MODALITIES if m not in window),
                              method=self.model.method, labels=labels,
                              probabilities=tuple(float(p) for p in probs))
                if pending.notes:
                    fields["note"] = "; ".join(pending.notes)
            yield AnalysisRow(**fields)


def _cut(batch: list[_Pending], size: int) -> int:
    """Length of the batch prefix holding ``size`` windows to predict."""
    count = 0
    for i, pending in enumerate(batch):
        count += pending.window is not None
        if count == size:
            return i + 1
    return len(batch)


def window_ends(duration: float, window_s: float, hop_s: float) -> list[float]:
    """End times of the windows of a recording: every ``hop_s`` from one full window on, plus the end."""
    if duration <= window_s:
        return [round(max(duration, 1e-3), 6)]
    ends = list(np.arange(window_s, duration + 1e-6, hop_s))
    if duration - ends[-1] > 1e-3:
        ends.append(duration)
    return [round(float(e), 6) for e in ends]


def _file_of(item: AnalysisInput) -> Path:
    """The file of a file input (only text inputs have none)."""
    if item.file is None:
        raise UnreadableInput(f"a {item.kind} input without a file")
    return item.file
