"""What the live results carry for display: loading state, smoothing, the recovery comparison, one truth per window."""

from __future__ import annotations

import csv
import json
import math
import time

import numpy as np
import pytest
from test_live_engine import _statuses, _tracks

from imer_core.live.engine import HIDDEN_RECOVERED, WITHOUT_RECOVERY, EngineInputs, InferenceEngine
from imer_core.live.health import HealthMonitor, ModalitySignals, ModalityState, ModalityStatus
from imer_core.live.models import ModelBank
from imer_core.live.session import SessionRecorder
from imer_core.live.smoothing import AgreementWindow, ProbabilitySmoother
from imer_core.modalities import MODALITIES, Modality

LABELS = ("a", "b")


# -- loading is not failure --------------------------------------------------------------------
def test_a_loading_model_is_a_loading_state_that_says_what_loads():
    monitor = HealthMonitor()
    signals = {Modality.VISION: ModalitySignals(loading=True, loading_what="the face model (MediaPipe)"),
               Modality.AUDIO: ModalitySignals(last_data=99.9, started=90.0),
               Modality.TEXT: ModalitySignals(held=True, loading=True, loading_what="speech recognition")}
    out = monitor.evaluate(100.0, signals)
    assert out[Modality.VISION].state is ModalityState.LOADING
    assert out[Modality.VISION].reason == "loading the face model (MediaPipe)"
    assert out[Modality.TEXT].state is ModalityState.LOADING and "speech recognition" in out[Modality.TEXT].reason
    assert not out[Modality.VISION].available


def test_waiting_for_the_first_data_is_loading_then_failing():
    monitor = HealthMonitor()
    early = monitor.evaluate(2.0, {m: ModalitySignals(started=0.0) for m in MODALITIES})
    assert early[Modality.VISION].state is ModalityState.LOADING
    assert early[Modality.VISION].reason == "waiting for the first frames"
    late = monitor.evaluate(30.0, {m: ModalitySignals(started=0.0) for m in MODALITIES})
    assert late[Modality.VISION].state is ModalityState.FAILING and "since the start" in late[Modality.VISION].reason


def test_a_broken_camera_while_the_model_loads_is_failing_not_loading():
    out = HealthMonitor().evaluate(1.0, {Modality.VISION: ModalitySignals(source_ok=False, source_reason="no camera",
                                                                          loading=True)})
    assert out[Modality.VISION].state is ModalityState.FAILING and out[Modality.VISION].reason == "no camera"


def test_engine_says_what_is_loading_instead_of_failing(live_checkpoints):
    now = time.monotonic()
    statuses = {m: ModalityStatus(m, ModalityState.LOADING, f"loading {m.value} model") for m in MODALITIES}
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(_tracks(now), lambda: statuses))
    result = engine.step(now)
    assert result.probabilities is None
    assert "disabled or failing" not in result.message and "loading vision model" in result.message


# -- smoothing -------------------------------------------------------------------------------------
def test_smoother_follows_a_step_with_its_time_constant():
    smoother = ProbabilitySmoother(1.0)
    assert smoother.update(0.0, LABELS, (1.0, 0.0)) == (1.0, 0.0)  # the first value as it is
    t, shown = 0.0, None
    while t < 1.0 - 1e-9:  # 0.1 s hops: the weight follows the real gap
        t += 0.1
        shown = smoother.update(t, LABELS, (0.0, 1.0))
    assert shown[1] == pytest.approx(1 - math.exp(-1.0), abs=1e-9)  # 63 % of the step after one time constant
    assert sum(shown) == pytest.approx(1.0)


def test_smoother_is_independent_of_the_prediction_rate():
    fast, slow = ProbabilitySmoother(0.5), ProbabilitySmoother(0.5)
    fast.update(0.0, LABELS, (1.0, 0.0)), slow.update(0.0, LABELS, (1.0, 0.0))
    for k in range(1, 11):
        a = fast.update(0.05 * k, LABELS, (0.0, 1.0))
    b = slow.update(0.5, LABELS, (0.0, 1.0))
    assert a[1] == pytest.approx(b[1], abs=1e-9)


def test_smoothing_off_shows_raw_and_a_gap_or_new_labels_restart_it():
    off = ProbabilitySmoother(0.0)
    off.update(0.0, LABELS, (1.0, 0.0))
    assert off.update(0.1, LABELS, (0.2, 0.8)) == (0.2, 0.8)
    on = ProbabilitySmoother(1.0, reset_after_s=2.0)
    on.update(0.0, LABELS, (1.0, 0.0))
    assert on.update(5.0, LABELS, (0.2, 0.8)) == (0.2, 0.8)  # after a gap of 5 s: raw again
    assert on.update(5.1, ("x", "y"), (0.3, 0.7)) == (0.3, 0.7)
    assert on.update(5.2, ("x", "y"), None) is None
    with pytest.raises(ValueError):
        ProbabilitySmoother(-1.0)
    with pytest.raises(ValueError):
        ProbabilitySmoother(float("nan"))


def test_engine_results_carry_smoothed_probabilities(live_checkpoints):
    now = time.monotonic()
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(_tracks(now), lambda: _statuses({})))
    engine.set_smoothing(1.0)
    first = engine.step(now)
    assert first.smoothed == pytest.approx(first.probabilities)
    engine.set_smoothing(0.0)
    raw = engine.step(now + 0.15)
    assert raw.smoothed == pytest.approx(raw.probabilities) and raw.shown_top == raw.top


def test_agreement_window_counts_the_last_minute_per_comparison():
    window = AgreementWindow(60.0)
    assert window.add(0.0, "k", True) == (1.0, 1)
    assert window.add(1.0, "k", False) == (0.5, 2)
    assert window.add(1.5, "other", False) == (0.0, 1)
    assert window.add(70.0, "k", True) == (1.0, 1)  # the first two fell out of the minute


# -- what recovery changes -------------------------------------------------------------------------
def test_a_missing_modality_brings_the_no_recovery_baseline_on_the_same_window(live_checkpoints):
    now = time.monotonic()
    tracks = _tracks(now)
    states = {Modality.VISION: ModalityState.DISABLED}
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(tracks, lambda: _statuses(states)),
                             method="cmarr")
    result = engine.step(now)
    comparison = result.comparison
    assert comparison is not None and comparison.kind == WITHOUT_RECOVERY and comparison.modalities == ("vision",)
    assert sum(comparison.probabilities) == pytest.approx(1.0, abs=1e-5)
    # The baseline is the same network with vision left at its training mean (no recovery):
    model = engine._model
    features, available, _ = engine._windows(model, now, result.statuses)
    expected, _, _ = engine._predict(model, features, {m: True for m in MODALITIES})
    assert comparison.probabilities == pytest.approx(expected, abs=1e-6)
    assert comparison.probabilities != pytest.approx(result.probabilities, abs=1e-4)
    assert comparison.windows == 1 and comparison.agreement in (0.0, 1.0)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["comparison"]["kind"] == WITHOUT_RECOVERY


def test_compare_mode_hides_an_observed_modality_and_recovers_it(live_checkpoints):
    now = time.monotonic()
    tracks = _tracks(now)
    tracks[Modality.TEXT].append(now - 0.1, np.ones(384))
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(tracks, lambda: _statuses({})), method="cmarr")
    assert engine.step(now).comparison is None  # all observed, compare mode off
    engine.set_compare_hidden(["vision"])
    result = engine.step(now + 0.15)
    assert result.recovered == ()  # the main prediction still uses the observed vision
    comparison = result.comparison
    assert comparison.kind == HIDDEN_RECOVERED and comparison.modalities == ("vision",)
    model = engine._model
    features, _, _ = engine._windows(model, now + 0.15, result.statuses)
    hidden, _, _ = engine._predict(model, features, {m: m is not Modality.VISION for m in MODALITIES})
    assert comparison.probabilities == pytest.approx(hidden, abs=1e-6)
    engine.set_compare_hidden([])
    assert engine.step(now + 0.3).comparison is None


# -- one source of truth per window ------------------------------------------------------------------
def test_an_observed_modality_without_features_in_the_window_is_reported_as_failing(live_checkpoints):
    now = time.monotonic()
    tracks = _tracks(now)  # text's only vector is 3 s old: held (15 s) ...
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(tracks, lambda: _statuses({})), method="cmarr")
    engine.inputs.hold_s[Modality.TEXT] = 0.5  # ... unless the hold is short: then the window has no text
    result = engine.step(now)
    text = result.status("text")
    assert "text" in result.recovered
    assert text.state is ModalityState.FAILING and "behind" in text.reason
    assert all((s.modality.value in result.recovered) == (not s.available) for s in result.statuses)


def test_session_files_store_smoothed_and_comparison_beside_raw(live_checkpoints, tmp_path):
    now = time.monotonic()
    engine = InferenceEngine(ModelBank(live_checkpoints),
                             EngineInputs(_tracks(now), lambda: _statuses({Modality.TEXT: ModalityState.FAILING})),
                             method="cmarr")
    writer = SessionRecorder(tmp_path, {"test": True})
    for k in range(3):
        writer.write_result(engine.step(now + 0.15 * k))
    writer.close()
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert rows[-1]["comparison"] == WITHOUT_RECOVERY and rows[-1]["comparison_modalities"] == "text"
    assert rows[-1]["smoothed_top"] and float(rows[-1]["smoothed_p_neutral"]) >= 0
    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").open()]
    assert len(records[-1]["smoothed_probabilities"]) == 7


def test_text_counts_as_heard_when_a_transcript_arrives_even_if_recognition_lags(live_checkpoints):
    from live_fakes import fake_rig

    from imer_core.live.pipeline import LivePipeline, PipelineConfig

    rig = fake_rig()
    pipeline = LivePipeline(PipelineConfig(checkpoints=(str(live_checkpoints["cmarr"]),)), rig.parts())
    pipeline.start()
    try:
        deadline = time.monotonic() + 20
        while pipeline.speech_worker.loading and time.monotonic() < deadline:
            time.sleep(0.05)
        now = time.monotonic()
        speech = pipeline.speech_worker
        speech.last_signal, speech.last_output = now - 40.0, now - 1.0  # speech 40 s ago, transcribed just now
        signal = pipeline.signals()[Modality.TEXT]
        assert signal.last_signal == pytest.approx(now - 1.0)
        speech.last_output = now - 40.0
        assert pipeline.signals()[Modality.TEXT].last_signal == pytest.approx(now - 40.0)
    finally:
        pipeline.stop()


def test_imer_run_takes_a_smoothing_time_constant():
    from app.cli import build_parser
    from app.headless import pipeline_config

    args = build_parser().parse_args(["run", "--source", "webcam", "--smoothing", "0"])
    assert pipeline_config(args).smoothing_s == 0.0
    args = build_parser().parse_args(["run", "--source", "webcam"])
    assert pipeline_config(args).smoothing_s == pytest.approx(1.0)
    with pytest.raises(SystemExit, match="smoothing"):
        pipeline_config(build_parser().parse_args(["run", "--source", "webcam", "--smoothing", "-1"]))
