"""Live checkpoints (compatibility, trained flag) and the inference engine on hand-filled tracks."""

import re
import time

import numpy as np
import pytest
from live_fakes import LIVE_VISION_DIM, live_audio_dim, live_specs, train_small_checkpoint

from imer_core.live.engine import EngineInputs, InferenceEngine
from imer_core.live.health import ModalityState, ModalityStatus
from imer_core.live.models import LiveModelError, ModelBank, load_live_model, shipped_checkpoints
from imer_core.live.tracks import FeatureTrack
from imer_core.modalities import MODALITIES, FeatureSpec, FeatureSpecs, Modality


def _tracks(now: float) -> dict:
    dims = {Modality.TEXT: 384, Modality.AUDIO: live_audio_dim(), Modality.VISION: LIVE_VISION_DIM}
    tracks = {m: FeatureTrack(d) for m, d in dims.items()}
    rng = np.random.default_rng(0)
    for t in np.arange(now - 2.5, now, 0.05):
        for m in (Modality.AUDIO, Modality.VISION):
            tracks[m].append(float(t), rng.standard_normal(dims[m]))
    tracks[Modality.TEXT].append(now - 3.0, rng.standard_normal(384))
    return tracks


def _statuses(states: dict) -> dict:
    return {m: ModalityStatus(m, states.get(m, ModalityState.OBSERVED), "" if states.get(m) is None else "test")
            for m in MODALITIES}


def test_checkpoint_for_other_extractors_is_refused(tmp_path):
    specs = live_specs()
    other = FeatureSpecs(specs.text, specs.audio, FeatureSpec(Modality.VISION, LIVE_VISION_DIM, 20, 10.0, "openface2"))
    path = train_small_checkpoint(tmp_path / "other.pt", "cmarr", steps=1, specs=other)
    with pytest.raises(LiveModelError, match="vision features: checkpoint expects 'openface2'"):
        load_live_model(path)


def test_untrained_checkpoint_is_refused(tmp_path):
    path = train_small_checkpoint(tmp_path / "untrained.pt", "cmarr", steps=1, trained=False)
    with pytest.raises(LiveModelError, match="not mark it as trained"):
        load_live_model(path)


def test_missing_and_corrupt_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(LiveModelError, match="not found"):
        load_live_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(LiveModelError, match="corrupt|truncated|could not be read"):
        load_live_model(bad)
    assert shipped_checkpoints(tmp_path) == {}


def test_engine_without_model_says_so_and_predicts_nothing():
    now = time.monotonic()
    engine = InferenceEngine(ModelBank({}), EngineInputs(_tracks(now), lambda: _statuses({})))
    result = engine.step(now)
    assert result.probabilities is None and result.top is None
    assert "no trained model" in result.message


def test_engine_predicts_and_recovers_unavailable_modalities(live_checkpoints):
    now = time.monotonic()
    states = {Modality.VISION: ModalityState.FAILING, Modality.TEXT: ModalityState.DISABLED}
    bank = ModelBank(live_checkpoints)
    engine = InferenceEngine(bank, EngineInputs(_tracks(now), lambda: _statuses(states)), method="cmarr")
    result = engine.step(now)
    assert result.method == "cmarr" and len(result.labels) == 7
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert set(result.recovered) == {"vision", "text"}
    assert {"window", "recovery", "prediction", "end_to_end"} <= set(result.latency)
    record = result.to_dict()
    assert record["modalities"]["vision"] == {"state": "failing", "reason": "test", "recovered": True}
    assert record["modalities"]["audio"]["recovered"] is False


def test_engine_switches_method_and_steps_and_keeps_the_old_one_on_error(live_checkpoints):
    now = time.monotonic()
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(_tracks(now), lambda: _statuses(
        {Modality.AUDIO: ModalityState.FAILING})), method="cmarr")
    assert engine.step(now).method == "cmarr"
    engine.set_method("imder")
    engine.set_sampler_steps(1)
    result = engine.step(now)
    assert result.method == "imder" and result.sampler_steps == 1 and result.recovered == ("audio",)
    engine.set_method("rohydr")  # no checkpoint for it
    result = engine.step(now)
    assert result.method == "imder" and "no trained checkpoint for 'rohydr'" in result.message
    assert result.probabilities is not None
    with pytest.raises(ValueError):
        engine.set_sampler_steps(0)


def test_engine_with_nothing_available_explains_why(live_checkpoints):
    now = time.monotonic()
    states = {m: ModalityState.DISABLED for m in MODALITIES}
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(_tracks(now), lambda: _statuses(states)))
    result = engine.step(now)
    assert result.probabilities is None and "no modality available" in result.message


def test_engine_thread_runs_at_the_hop_and_skips_when_late(live_checkpoints):
    now = time.monotonic()
    tracks = _tracks(now + 1.0)
    results = []
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(tracks, lambda: _statuses({})),
                             method="cmarr", hop_s=0.1, on_result=results.append)
    engine.start()
    time.sleep(1.0)
    engine.stop()
    assert not engine.running
    assert len(results) >= 3
    assert [r.sequence for r in results] == sorted(r.sequence for r in results)


def test_checkpoint_of_the_blendshape_feature_is_refused_when_the_face_network_feature_runs(tmp_path):
    from imer_core.features.face import (
        FACE_EXTRACTOR_ID,
        FACE_EXTRACTOR_SPEC,
        FACE_FEATURE_DIM,
        face_net_extractor_spec,
    )
    from imer_core.features.registry import default_extractor_specs

    face_net = face_net_extractor_spec()
    if face_net is None:
        pytest.skip("face network asset missing")
    specs = live_specs()
    old = FeatureSpecs(specs.text, specs.audio, FACE_EXTRACTOR_SPEC.feature_spec(20, 10.0))
    path = train_small_checkpoint(tmp_path / "old.pt", "cmarr", steps=1, specs=old)
    running = {**default_extractor_specs(), Modality.VISION: face_net}
    assert face_net.extractor_id.startswith("imer-face-net-v1-") and face_net.dim > FACE_FEATURE_DIM
    expected = (f"vision features: checkpoint expects '{FACE_EXTRACTOR_ID}' (55-d), "
                f"the pipeline runs '{face_net.extractor_id}' ({face_net.dim}-d)")
    with pytest.raises(LiveModelError, match=re.escape(expected)):
        load_live_model(path, extractors=running)
    assert load_live_model(path, extractors={**running, Modality.VISION: FACE_EXTRACTOR_SPEC}).labels


def test_checkpoint_of_the_frozen_text_feature_is_refused_when_the_fine_tuned_text_feature_runs(tmp_path):
    from imer_core.features.registry import default_extractor_specs
    from imer_core.features.text import TEXT_EXTRACTOR, text_net_extractor_spec

    text_net = text_net_extractor_spec()
    if text_net is None:
        pytest.skip("text network asset missing")
    specs = live_specs()
    frozen = FeatureSpec(Modality.TEXT, specs.text.dim, specs.text.seq_len, specs.text.rate_hz, TEXT_EXTRACTOR)
    path = train_small_checkpoint(tmp_path / "frozen_text.pt", "cmarr", steps=1,
                                  specs=FeatureSpecs(frozen, specs.audio, specs.vision))
    running = {**default_extractor_specs(), Modality.TEXT: text_net}
    expected = (f"text features: checkpoint expects '{TEXT_EXTRACTOR}' (384-d), "
                f"the pipeline runs '{text_net.extractor_id}' (384-d)")
    with pytest.raises(LiveModelError, match=re.escape(expected)):
        load_live_model(path, extractors=running)


def _refused_checkpoint(path):
    """A trained checkpoint made for a vision feature the pipeline does not run (refused at load)."""
    specs = live_specs()
    other = FeatureSpecs(specs.text, specs.audio, FeatureSpec(Modality.VISION, LIVE_VISION_DIM, 20, 10.0, "openface2"))
    return train_small_checkpoint(path, "cmarr", steps=1, specs=other)


def test_engine_falls_back_to_a_method_that_loads_when_the_requested_one_is_refused(tmp_path, live_checkpoints):
    now = time.monotonic()
    bank = ModelBank({"cmarr": _refused_checkpoint(tmp_path / "old.pt"), "imder": live_checkpoints["imder"]})
    engine = InferenceEngine(bank, EngineInputs(_tracks(now), lambda: _statuses({})), method="cmarr")
    result = engine.step(now)
    assert result.method == "imder" and result.probabilities is not None
    assert "checkpoint expects 'openface2'" in result.message and "using 'imder' instead" in result.message
    assert engine.method == "imder" and set(bank.refused) == {"cmarr"}
    with pytest.raises(LiveModelError, match="openface2"):  # remembered: not read again
        bank.get("cmarr")


def test_engine_whose_only_checkpoint_is_refused_says_why(tmp_path):
    now = time.monotonic()
    engine = InferenceEngine(ModelBank({"cmarr": _refused_checkpoint(tmp_path / "old.pt")}),
                             EngineInputs(_tracks(now), lambda: _statuses({})))
    result = engine.step(now)
    assert result.probabilities is None and "checkpoint expects 'openface2'" in result.message
    assert "instead" not in result.message
