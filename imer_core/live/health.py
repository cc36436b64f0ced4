"""Modality health: observed, loading, disabled by the user, or failing with a reason.

The health monitor is a pure function of what the sources and workers report
(:class:`ModalitySignals`), evaluated by the pipeline's supervisor every
100 ms, so a state changes within a few hundred milliseconds of its cause.
It is kept free of threads so it can be tested with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..modalities import MODALITIES, Modality


class ModalityState(str, Enum):
    """What the engine may do with a modality."""

    OBSERVED = "observed"
    #: Not there yet, and not a fault: its model is loading, a held media file
    #: has not started, or the source has just been opened.
    LOADING = "loading"
    DISABLED = "disabled"
    FAILING = "failing"


@dataclass(frozen=True)
class ModalityStatus:
    """State of one modality, with the reason when it is not observed."""

    modality: Modality
    state: ModalityState
    reason: str = ""
    since: float = 0.0

    @property
    def available(self) -> bool:
        """Whether the modality's observed features go into the model."""
        return self.state is ModalityState.OBSERVED

    def to_dict(self) -> dict[str, str]:
        """``{"state": ..., "reason": ...}`` as written to session files."""
        return {"state": self.state.value, "reason": self.reason}


@dataclass(frozen=True)
class HealthConfig:
    """Time limits (seconds) after which a modality counts as failing.

    Attributes:
        stale_after_s: no new frames / audio samples for this long.
        first_data_within_s: a source that was just (re-)enabled is *loading*
            (waiting for its first frames or samples) for this long, then failing.
        no_face_after_s: frames arrive but no face was found for this long.
        audio_silence_after_s: no voice for this long fails the audio
            modality; ``None`` (the default) means silence is fine for voice
            features (they describe the silence).
        text_silence_after_s: no transcribed speech for this long fails the
            text modality (silence is a failure for text by default).
        asr_timeout_s: a transcription running longer than this counts as hung.
    """

    stale_after_s: float = 0.5
    first_data_within_s: float = 5.0
    no_face_after_s: float = 1.0
    audio_silence_after_s: float | None = None
    text_silence_after_s: float = 15.0
    asr_timeout_s: float = 10.0


@dataclass(frozen=True)
class ModalitySignals:
    """What a modality's capture and worker report at one instant.

    Attributes:
        enabled: the user's switch.
        source_ok / source_reason: the capture stream's own view.
        last_data: monotonic time of the newest frame or audio sample.
        worker_error: an error of the feature worker or its model ("" if none).
        last_signal: time of the newest face seen / voice heard / text
            transcribed (``None`` if never).
        started: when the modality was (re-)enabled.
        busy_since: start of a still-running ASR call (text only).
        loading: the worker is still loading its model.
        loading_what: what is loading, for the reason ("the face model").
        held: the source is held until the models have loaded (a media file).
        degraded: why the worker deliberately does less than usual (e.g. speech
            recognition skipping older speech to keep up); the modality stays
            observed with this as its reason, and a failure reason mentions it.
    """

    enabled: bool = True
    source_ok: bool = True
    source_reason: str = ""
    last_data: float | None = None
    worker_error: str = ""
    last_signal: float | None = None
    started: float = 0.0
    busy_since: float | None = None
    loading: bool = False
    loading_what: str = "the models"
    held: bool = False
    degraded: str = ""


@dataclass
class HealthMonitor:
    """Turns :class:`ModalitySignals` into :class:`ModalityStatus` (keeps ``since``)."""

    config: HealthConfig = field(default_factory=HealthConfig)
    _current: dict[Modality, ModalityStatus] = field(default_factory=dict)

    def evaluate(self, now: float, signals: dict[Modality, ModalitySignals]) -> dict[Modality, ModalityStatus]:
        """New statuses of every modality at time ``now``."""
        out: dict[Modality, ModalityStatus] = {}
        for modality in MODALITIES:
            state, reason = self._judge(modality, now, signals.get(modality, ModalitySignals(enabled=False)))
            previous = self._current.get(modality)
            since = previous.since if previous and (previous.state, previous.reason) == (state, reason) else now
            if previous and previous.state == state and state in (ModalityState.FAILING, ModalityState.OBSERVED) \
                    and _same_cause(previous.reason, reason):
                since = previous.since
            out[modality] = ModalityStatus(modality, state, reason, since)
        self._current = out
        return dict(out)

    def _judge(self, modality: Modality, now: float, s: ModalitySignals) -> tuple[ModalityState, str]:
        if not s.enabled:
            return ModalityState.DISABLED, "switched off"
        if s.held:
            held = "the file starts playing once the models have loaded"
            return ModalityState.LOADING, f"loading {s.loading_what}; {held}" if s.loading else held
        if not s.source_ok:
            return ModalityState.FAILING, s.source_reason or "capture failed"
        if s.worker_error:
            return ModalityState.FAILING, s.worker_error
        if s.loading:
            return ModalityState.LOADING, f"loading {s.loading_what}"
        cfg = self.config
        if s.last_data is None:
            if now - s.started <= cfg.first_data_within_s:
                return ModalityState.LOADING, f"waiting for the first {_data_name(modality)}"
            return ModalityState.FAILING, f"no {_data_name(modality)} since the start ({now - s.started:.0f} s)"
        if now - s.last_data > cfg.stale_after_s:
            return ModalityState.FAILING, f"no new {_data_name(modality)} for {now - s.last_data:.1f} s"
        if modality is Modality.TEXT:
            return self._judge_text(now, s)
        limit = cfg.no_face_after_s if modality is Modality.VISION else cfg.audio_silence_after_s
        if limit is not None and _silent_for(now, s) > limit:
            what = "no face detected" if modality is Modality.VISION else "no voice"
            return ModalityState.FAILING, f"{what} for {_silent_for(now, s):.1f} s"
        if modality is Modality.VISION and s.last_signal is None:
            return ModalityState.FAILING, "looking for a face"
        return ModalityState.OBSERVED, ""

    def _judge_text(self, now: float, s: ModalitySignals) -> tuple[ModalityState, str]:
        cfg = self.config
        if s.busy_since is not None and now - s.busy_since > cfg.asr_timeout_s:
            return ModalityState.FAILING, f"speech recognition timed out ({now - s.busy_since:.0f} s)"
        if s.last_signal is None or now - s.last_signal > cfg.text_silence_after_s:
            reason = f"no speech transcribed in the last {cfg.text_silence_after_s:.0f} s"
            return ModalityState.FAILING, f"{reason}; {s.degraded}" if s.degraded else reason
        return ModalityState.OBSERVED, s.degraded


def _silent_for(now: float, s: ModalitySignals) -> float:
    reference = s.last_signal if s.last_signal is not None else s.started
    return now - reference


def _same_cause(a: str, b: str) -> bool:
    """Reasons that differ only in their running numbers describe the same failure."""
    return a.split(" for ")[0].split(" (")[0] == b.split(" for ")[0].split(" (")[0]


def _data_name(modality: Modality) -> str:
    return {Modality.VISION: "frames", Modality.AUDIO: "audio", Modality.TEXT: "audio"}[modality]
