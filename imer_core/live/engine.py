"""The inference engine: its own thread, newest window in, immutable result out.

Every ``hop_s`` the engine builds the window each modality's spec asks for
(``seq_len`` steps at ``rate_hz`` ending now) from the feature tracks, builds
the availability mask from the modality states, lets the selected recovery
method generate every unavailable modality, and emits a :class:`LiveResult`.
It always works on the newest data: if a prediction takes longer than a hop,
the missed ticks are skipped (counted in ``skipped``), and capture is never
waited on.  Without a trained checkpoint it emits results without
probabilities that say why — an untrained network's output is never shown.

Beside the method's prediction a result carries a *comparison* on the same
window: while a modality is missing, the same network without recovery (the
missing input left at its training mean); in compare mode (every modality
observed, one hidden on purpose) the prediction with the hidden modality
recovered.  Both are smoothed for display (:mod:`.smoothing`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from .. import devices
from ..methods.base import SamplingOptions
from ..modalities import MODALITIES, FeatureSpec, Modality
from ..registry import preferred_methods
from .health import ModalityState, ModalityStatus
from .inference import availability_mask, classify, recover, window_features
from .models import LiveModel, LiveModelError, ModelBank
from .neutral_baseline import NeutralBaseline
from .results import HIDDEN_RECOVERED, WITHOUT_RECOVERY, Comparison, LiveResult
from .smoothing import DEFAULT_SMOOTHING_S, AgreementWindow, ProbabilitySmoother
from .speaker_norm import (
    RunningSpeakerStats,
    route_voice_window,
    speaker_normalization_settings,
    use_speaker_features,
)
from .threads import RestartableThread
from .tracks import FeatureTrack

log = logging.getLogger(__name__)

#: Latency stages of a result, in pipeline order (milliseconds in :attr:`LiveResult.latency`).
LATENCY_STAGES = ("capture_to_features", "window", "recovery", "prediction", "end_to_end")
#: How long a modality's last sample may be held to fill a window (text: the last sentence).
DEFAULT_HOLD_S = {Modality.VISION: 0.5, Modality.AUDIO: 0.5, Modality.TEXT: 15.0}
class NonFiniteOutputError(ArithmeticError):
    """The network's output held NaN or infinity (never shown or written as a prediction)."""


def resolve_device(device: str = "auto") -> str:
    """:func:`imer_core.devices.resolve_device` for the live pipeline: an unusable request is a
    :class:`LiveModelError` (which the app reports as such)."""
    try:
        return devices.resolve_device(device)
    except devices.DeviceUnavailable as exc:
        raise LiveModelError(str(exc)) from exc


@dataclass
class EngineInputs:
    """What the engine reads from the pipeline (providers are called in the engine thread)."""

    tracks: Mapping[Modality, FeatureTrack]
    statuses: Callable[[], Mapping[Modality, ModalityStatus]]
    feature_latency_ms: Callable[[], Mapping[Modality, float]] = lambda: {}
    hold_s: Mapping[Modality, float] = field(default_factory=lambda: dict(DEFAULT_HOLD_S))
    #: VAD speech fraction per voice step (times as the audio track's); needed by speaker normalisation.
    speech_track: FeatureTrack | None = None


class InferenceEngine(RestartableThread):
    """Runs the selected method on the newest windows in a thread of its own.

    Args:
        bank: checkpoints per method (may be empty: results then say that no
            trained model is loaded).
        inputs: tracks and status providers of the pipeline.
        method: method to start with (default: the bank's most preferred method,
            :func:`imer_core.registry.preferred_methods`).
        hop_s: time between predictions.
        sampler_steps: sampling steps of diffusion methods (``None``: the
            checkpoint's default).
        on_result: called in the engine thread with every result (keep it quick).

    Raises:
        ValueError: ``hop_s`` is not positive or ``sampler_steps`` is below 1.
    """

    def __init__(self, bank: ModelBank, inputs: EngineInputs, method: str | None = None, hop_s: float = 0.2,
                 sampler_steps: int | None = None, on_result: Callable[[LiveResult], None] | None = None) -> None:
        super().__init__()
        if not hop_s > 0:
            raise ValueError(f"the hop between predictions must be positive, got {hop_s}")
        if sampler_steps is not None and int(sampler_steps) < 1:
            raise ValueError("sampler steps must be at least 1")
        self.bank, self.inputs, self.hop_s = bank, inputs, float(hop_s)
        self.device = bank.device
        self.on_result = on_result
        preferred = preferred_methods(bank.methods)
        self._requested_method = method or (preferred[0] if preferred else None)
        self._requested_steps = sampler_steps
        self._model: LiveModel | None = None
        self.model_error = "" if bank.methods else "no trained model loaded: pass a checkpoint"
        self.sequence = 0
        self.skipped = 0
        self.latest: LiveResult | None = None
        self.smoother = ProbabilitySmoother(DEFAULT_SMOOTHING_S)
        self._comparison_smoother = ProbabilitySmoother(DEFAULT_SMOOTHING_S)
        self._comparison_key: object = None
        self._agreement = AgreementWindow(60.0)
        self._compare_hidden: frozenset[Modality] = frozenset()
        self._speaker_stats: dict[Modality, RunningSpeakerStats] = {}
        self._speaker_settings: dict[Modality, dict] = {}
        self._neutral_baseline: NeutralBaseline | None = None
        self._counted_until: dict[Modality, float] = {}

    # -- control (any thread) ------------------------------------------------------------
    @property
    def method(self) -> str | None:
        return self._model.method if self._model is not None else self._requested_method

    @property
    def sampler_steps(self) -> int | None:
        return self._requested_steps

    def set_method(self, method: str) -> None:
        """Switch method; takes effect at the next tick (an error keeps the previous one)."""
        self._requested_method = method

    def set_sampler_steps(self, steps: int | None) -> None:
        """Sampling steps of diffusion methods (``None``: the checkpoint's default)."""
        if steps is not None and int(steps) < 1:
            raise ValueError("sampler steps must be at least 1")
        self._requested_steps = None if steps is None else int(steps)

    @property
    def smoothing_s(self) -> float:
        """Time constant of the displayed probabilities (0: raw)."""
        return self.smoother.time_constant_s

    def set_smoothing(self, time_constant_s: float) -> None:
        """Set the display smoothing's time constant in seconds (0 shows the raw probabilities)."""
        self.smoother.time_constant_s = time_constant_s
        self._comparison_smoother.time_constant_s = time_constant_s

    @property
    def compare_hidden(self) -> frozenset[Modality]:
        """Modalities hidden on purpose for the comparison (empty: compare mode off)."""
        return self._compare_hidden

    def set_compare_hidden(self, modalities: "Iterable[Modality | str]") -> None:
        """Compare mode: while these modalities are observed, also predict with them hidden and recovered."""
        from ..modalities import as_modality

        self._compare_hidden = frozenset(as_modality(m) for m in modalities)

    @property
    def speaker_normalised(self) -> tuple[str, ...]:
        """Modalities the current checkpoint normalises with running per-speaker statistics."""
        return tuple(m.value for m in self._speaker_stats)

    def speaker_speech_seconds(self, modality: Modality = Modality.AUDIO) -> float:
        """Seconds of speech in the running statistics of ``modality`` (0 when it is not speaker-normalised)."""
        stats = self._speaker_stats.get(modality)
        if stats is None or self._model is None:
            return 0.0
        return stats.speech_steps / _step_rate(self._model.config.specs[modality])

    @property
    def neutral_baseline(self) -> NeutralBaseline | None:
        """The person's neutral baseline in use (``None``: none taken)."""
        return self._neutral_baseline

    def set_neutral_baseline(self, baseline: NeutralBaseline | None) -> None:
        """Shift this person's face / voice features so their resting mean meets the training neutral mean.

        Applies to checkpoints with ``metadata["neutral_reference"]`` (see
        :mod:`.neutral_baseline`); ``None`` removes it.  Takes effect at the next window.
        """
        self._neutral_baseline = baseline

    def neutral_baseline_modalities(self) -> tuple[str, ...]:
        """Modalities the baseline shifts with the current checkpoint (empty without a baseline or reference)."""
        model, baseline = self._model, self._neutral_baseline
        if model is None or baseline is None:
            return ()
        reference = model.metadata.get("neutral_reference")
        return tuple(m.value for m in MODALITIES if baseline.offset(m, reference) is not None)

    def reset_speaker_statistics(self) -> None:
        """Forget the running per-speaker statistics (the source changed: maybe another speaker)."""
        for stats in list(self._speaker_stats.values()):
            stats.reset()
        self._counted_until = {}

    def start(self) -> None:
        """Start the engine thread (no-op when running)."""
        if not self.running:
            self._launch(self._run, "imer-engine")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the engine thread, waiting up to ``timeout`` s."""
        self._join(timeout)

    # -- engine thread ---------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_tick:
                self._stop.wait(next_tick - now)
                continue
            missed = int((now - next_tick) // self.hop_s)
            self.skipped += missed
            next_tick += (missed + 1) * self.hop_s
            try:
                result = self.step(now)
            except NonFiniteOutputError as exc:  # said in the result; no traceback for a known state
                result = self._result(now, self._statuses(), None, (), (), str(exc))
            except Exception as exc:  # a bad window must not kill the engine
                log.exception("inference failed")
                result = self._result(now, self._statuses(), None, (), (), f"inference failed: {exc}")
            self.latest = result
            if self.on_result is not None:
                try:
                    self.on_result(result)
                except Exception:  # a listener's bug must not stop the predictions
                    log.exception("result listener failed")

    def _sync_model(self) -> None:
        wanted = self._requested_method
        if wanted is None or (self._model is not None and self._model.method == wanted):
            return
        try:
            self._use(self.bank.get(wanted))
        except LiveModelError as exc:
            self.model_error = str(exc)
            if self._requested_method == wanted:  # not if another method was asked for meanwhile
                self._requested_method = self._model.method if self._model is not None else None
            log.warning("%s", exc)
            if self._model is None and self._requested_method is None:
                self._fall_back(wanted)

    def _use(self, model: LiveModel) -> None:
        self._speaker_stats = _speaker_stats_of(model)
        self._speaker_settings = {Modality(k): v for k, v in speaker_normalization_settings(model.metadata).items()}
        self._model, self.model_error, self._counted_until = model, "", {}

    def _fall_back(self, refused: str) -> None:
        """No model runs and ``refused`` cannot: run the bank's most preferred method that loads.

        :attr:`model_error` keeps saying why ``refused`` cannot run, and which method runs instead.
        """
        why = self.model_error
        for method in preferred_methods(self.bank.methods):
            if method == refused:
                continue
            try:
                self._use(self.bank.get(method))
            except LiveModelError as exc:
                log.warning("%s", exc)
                continue
            self._requested_method = method
            self.model_error = f"{refused!r} cannot run here, using {method!r} instead: {why}"
            return
        self.model_error = why

    def _statuses(self) -> tuple[ModalityStatus, ...]:
        statuses = self.inputs.statuses()
        return tuple(statuses.get(m, ModalityStatus(m, ModalityState.FAILING, "no status")) for m in MODALITIES)

    def step(self, now: float | None = None) -> LiveResult:
        """Build the newest windows and predict once (the thread calls this every hop)."""
        now = time.monotonic() if now is None else now
        self._sync_model()
        statuses = self._statuses()
        if self._model is None:
            return self._result(now, statuses, None, (), (), self.model_error or "no trained model loaded")
        t0 = time.perf_counter()
        features, available, newest = self._windows(self._model, now, statuses)
        statuses = tuple(_without_features(s) if s.available and not available[s.modality] else s
                         for s in statuses)
        t_window = time.perf_counter()
        if not any(available.values()):
            return self._result(now, statuses, None, (), (("window", 1e3 * (t_window - t0)),),
                                _nothing_available(statuses))
        probabilities, t_rec, t_pred = self._predict(self._model, features, available)
        recovered = tuple(m.value for m in MODALITIES if not available[m])
        latency = self._latencies(statuses, newest, t0, t_window, t_rec, t_pred)
        note = self.model_error  # e.g. a failed switch: say so but keep predicting
        comparison = self._compare(self._model, now, features, available, probabilities)
        return self._result(now, statuses, probabilities, recovered, latency, note, comparison)

    def _compare(self, model: LiveModel, now: float, features, available: Mapping[Modality, bool],
                 probabilities: tuple[float, ...]) -> Comparison | None:
        """The second prediction on the same window (see :class:`Comparison`), or ``None``."""
        missing = tuple(m for m in MODALITIES if not available[m])
        hidden = tuple(m for m in MODALITIES if m in self._compare_hidden and available[m])
        if missing:  # the network as it is, the missing input at its training mean: no recovery
            kind, modalities = WITHOUT_RECOVERY, missing
            other, _, _ = self._predict(model, features, {m: True for m in MODALITIES})
            ours = probabilities
        elif hidden and len(hidden) < len(MODALITIES):
            kind, modalities = HIDDEN_RECOVERED, hidden
            other, _, _ = self._predict(model, features, {m: m not in hidden for m in MODALITIES})
            ours = probabilities
        else:
            self._comparison_key = None
            return None
        key = (kind, modalities, model.method)
        if key != self._comparison_key:
            self._comparison_key = key
            self._comparison_smoother.reset()
        smoothed = self._comparison_smoother.update(now, tuple(model.labels), other)
        agreement, windows = self._agreement.add(now, key, int(np.argmax(ours)) == int(np.argmax(other)))
        return Comparison(kind, tuple(m.value for m in modalities), other, smoothed or other, agreement, windows)

    @property
    def speaker_expert_active(self) -> bool:
        """Whether the audio prediction uses the per-speaker expert now (enough speech heard)."""
        stats = self._speaker_stats.get(Modality.AUDIO)
        settings = self._speaker_settings.get(Modality.AUDIO, {})
        return stats is not None and use_speaker_features(stats, settings)

    def _windows(self, model: LiveModel, now: float, statuses: tuple[ModalityStatus, ...]):
        normed, available, newest, speaker = {}, {}, {}, {}
        for status in statuses:
            m = status.modality
            spec = model.config.specs[m]
            window = None
            if status.available:
                window = self.inputs.tracks[m].window(now, spec.seq_len, _step_rate(spec), self.inputs.hold_s[m])
            available[m] = window is not None
            if window is not None:
                stats = self._speaker_stats.get(m)
                settings = self._speaker_settings.get(m, {})
                if stats is not None:
                    self._count_speech(m, stats, now)
                normalised, by_speaker = route_voice_window(
                    window.values, stats, settings,
                    partial(self._globally_normalised, model, m))
                if by_speaker is not None:
                    speaker[m] = by_speaker
                if np.isfinite(normalised).all():
                    normed[m] = normalised
                    newest[m] = window.newest_time
                else:  # a NaN / inf feature is never fed to the network: the modality counts as missing
                    available[m] = False
        features = window_features(model, [normed], self.device, normalise=False)
        for m, values in speaker.items():
            if m in normed:
                features[m.value + "@speaker"] = torch.from_numpy(values[None].astype(np.float32)).to(self.device)
        return features, available, newest

    def _globally_normalised(self, model: LiveModel, modality: Modality, values: np.ndarray) -> np.ndarray:
        """``values`` shifted by the neutral baseline, then normalised with the checkpoint's statistics."""
        return model.normalise(modality, self._shifted(model, modality, values)).astype(np.float32)

    def _shifted(self, model: LiveModel, modality: Modality, values: np.ndarray) -> np.ndarray:
        """``values`` minus the neutral baseline's offset for ``modality`` (unchanged without one)."""
        baseline = self._neutral_baseline
        offset = None if baseline is None else baseline.offset(modality, model.metadata.get("neutral_reference"))
        return values if offset is None else values - offset

    def _count_speech(self, modality: Modality, stats: RunningSpeakerStats, now: float) -> None:
        """Fold the steps that arrived since the last window into the running speaker statistics."""
        if self.inputs.speech_track is None:
            return
        since = self._counted_until.get(modality, -np.inf)
        times, values = self.inputs.tracks[modality].between(since, now)
        speech_times, speech = self.inputs.speech_track.between(since, now)
        fresh = times > since
        times, values = times[fresh], values[fresh]
        if not len(times):
            return
        fraction = np.zeros(len(times))  # a step without a speech fraction is not counted
        if len(speech_times):
            index = np.minimum(np.searchsorted(speech_times, times), len(speech_times) - 1)
            found = speech_times[index] == times
            fraction[found] = speech[index[found], 0]
        stats.update(values, fraction)
        self._counted_until[modality] = float(times[-1])

    def _predict(self, model: LiveModel, features, available) -> tuple[tuple[float, ...], float, float]:
        mask = availability_mask([[m for m in MODALITIES if available[m]]], self.device)
        recovered = recover(model, features, mask, SamplingOptions(steps=self._requested_steps))
        _sync(self.device)
        t_rec = time.perf_counter()
        probs = classify(model, recovered, features, mask)[0]
        t_pred = time.perf_counter()
        if not np.isfinite(probs).all():
            raise NonFiniteOutputError(f"the {model.method} model produced NaN or infinite probabilities; "
                                       "no prediction is shown (the checkpoint or its inputs are broken)")
        return tuple(float(p) for p in probs), t_rec, t_pred

    def _latencies(self, statuses, newest, t0, t_window, t_rec, t_pred) -> tuple[tuple[str, float], ...]:
        feature_ms = self.inputs.feature_latency_ms()
        observed = [s.modality for s in statuses if s.available and s.modality in feature_ms]
        stages = [("capture_to_features", max((feature_ms[m] for m in observed), default=0.0)),
                  ("window", 1e3 * (t_window - t0)), ("recovery", 1e3 * (t_rec - t_window)),
                  ("prediction", 1e3 * (t_pred - t_rec))]
        captured = [newest[m] for m in (Modality.VISION, Modality.AUDIO) if m in newest]
        if captured:
            done = time.monotonic() - (time.perf_counter() - t_pred)
            stages.append(("end_to_end", 1e3 * (done - max(captured))))
        return tuple(stages)

    def _result(self, now, statuses, probabilities, recovered, latency, message,
                comparison: Comparison | None = None) -> LiveResult:
        self.sequence += 1
        labels = tuple(self._model.labels) if self._model is not None else ()
        smoothed = self.smoother.update(now, labels, probabilities)
        return LiveResult(self.sequence, now, time.time(), self.method, self._requested_steps, self.device,
                          labels, probabilities, statuses, tuple(recovered), tuple(latency), message,
                          smoothed, comparison)


def _speaker_stats_of(model: LiveModel) -> dict[Modality, RunningSpeakerStats]:
    """Running statistics for each modality the checkpoint was trained with per-speaker normalisation."""
    out = {}
    for name, settings in speaker_normalization_settings(model.metadata).items():
        modality = Modality(name)
        if modality not in model.mean:
            raise LiveModelError(f"{model.path}: speaker normalisation of {name} needs its feature_normalization")
        out[modality] = RunningSpeakerStats(model.mean[modality], model.std[modality], settings["prior_steps"],
                                            settings["min_speech_fraction"])
    return out


def _step_rate(spec: FeatureSpec) -> float:
    """A live checkpoint's steps per second (its compatibility check refuses a spec without one)."""
    if spec.rate_hz is None:
        raise LiveModelError(f"{spec.modality.value} features: no step rate in the checkpoint's spec")
    return float(spec.rate_hz)


def _without_features(status: ModalityStatus) -> ModalityStatus:
    """``status`` (observed by the health monitor) as failing: the window held none of its features."""
    reason = ("no transcript in the window (speech recognition is behind the speech)"
              if status.modality is Modality.TEXT else f"no {status.modality.value} features in the window")
    if status.reason:  # an observed modality's reason says what it deliberately does less of
        reason = f"{reason}; {status.reason}"
    return ModalityStatus(status.modality, ModalityState.FAILING, reason, status.since)


def _nothing_available(statuses: Iterable[ModalityStatus]) -> str:
    """Why there is no prediction: what is loading, or that every modality is off or failing."""
    loading = sorted({s.reason for s in statuses if s.state is ModalityState.LOADING})
    if loading:
        return "no prediction yet: " + "; ".join(loading)
    return "no modality available: every modality is disabled or failing"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
