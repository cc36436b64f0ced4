"""Running per-speaker normalisation of voice features: statistics on a known stream, and the engine's opt-in."""

from __future__ import annotations

import time

import numpy as np
import pytest
from live_fakes import live_audio_dim, train_small_checkpoint

from imer_core.live.engine import EngineInputs, InferenceEngine
from imer_core.live.health import ModalityState, ModalityStatus
from imer_core.live.models import ModelBank
from imer_core.live.speaker_norm import (
    RunningSpeakerStats,
    normalise_by_speaker,
    speaker_normalization_settings,
    speaker_statistics,
)
from imer_core.live.tracks import FeatureTrack
from imer_core.modalities import MODALITIES, Modality

DIM = live_audio_dim()


def _known_stream(seed: int = 0, n: int = 300):
    """Speech steps from N(3, 2²) per feature, interleaved with silent steps of huge values."""
    rng = np.random.default_rng(seed)
    speech = 3.0 + 2.0 * rng.standard_normal((n, DIM))
    silence = np.full((n // 3, DIM), 1e6)
    values = np.concatenate([speech, silence])
    fraction = np.concatenate([np.ones(n), np.zeros(n // 3)])
    order = rng.permutation(len(values))
    return values[order], fraction[order], speech


def test_running_statistics_of_a_known_stream():
    values, fraction, speech = _known_stream()
    stats = RunningSpeakerStats(np.zeros(DIM), np.ones(DIM), prior_steps=0)
    for chunk in np.array_split(np.arange(len(values)), 17):  # arrives in uneven pieces
        stats.update(values[chunk], fraction[chunk])
    mean, std = stats.running()
    assert stats.speech_steps == len(speech)
    np.testing.assert_allclose(mean, speech.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, speech.std(axis=0), rtol=1e-10)
    normalised = stats.normalise(speech)
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised.std(axis=0), 1.0, atol=1e-5)


def test_before_speech_the_prior_is_used_and_it_fades_with_speech():
    prior_mean, prior_std = np.full(DIM, -1.0), np.full(DIM, 0.5)
    stats = RunningSpeakerStats(prior_mean, prior_std, prior_steps=100)
    mean, std = stats.mean_std()
    np.testing.assert_allclose(mean, prior_mean) and np.testing.assert_allclose(std, prior_std)
    stats.update(np.full((5, DIM), 7.0), np.zeros(5))  # no speech: nothing counted
    np.testing.assert_allclose(stats.mean_std()[0], prior_mean)
    stats.update(np.full((100, DIM), 3.0), np.ones(100))  # 10 s of speech = the prior's weight: halfway
    mean, std = stats.mean_std()
    np.testing.assert_allclose(mean, (3.0 - 1.0) / 2)
    np.testing.assert_allclose(std, np.sqrt(0.25 / 2))
    stats.update(np.array([[np.nan] * DIM]), np.ones(1))  # a bad step is never folded in
    assert stats.speech_steps == 100 and np.all(np.isfinite(stats.mean_std()[0]))
    stats.reset()
    assert stats.speech_steps == 0
    np.testing.assert_allclose(stats.mean_std()[0], prior_mean)


def test_training_side_speaker_statistics():
    rng = np.random.default_rng(1)
    a = 5.0 + rng.standard_normal((4, 20, DIM))
    b = -5.0 + 3.0 * rng.standard_normal((6, 20, DIM))
    features = np.concatenate([a, b])
    speakers = np.array(["a"] * 4 + ["b"] * 6)
    stats = speaker_statistics(features, speakers)
    np.testing.assert_allclose(stats["a"][0], a.reshape(-1, DIM).mean(axis=0))
    np.testing.assert_allclose(stats["b"][1], b.reshape(-1, DIM).std(axis=0))
    normalised = normalise_by_speaker(features, speakers, stats)
    np.testing.assert_allclose(normalised[:4].reshape(-1, DIM).mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised[4:].reshape(-1, DIM).std(axis=0), 1.0, atol=1e-5)


def _inputs(now: float, offset: float) -> EngineInputs:
    tracks = {Modality.TEXT: FeatureTrack(384), Modality.AUDIO: FeatureTrack(DIM), Modality.VISION: FeatureTrack(55)}
    speech = FeatureTrack(1)
    rng = np.random.default_rng(0)
    for t in np.arange(now - 2.5, now, 0.1):
        tracks[Modality.AUDIO].append(float(t), offset + rng.standard_normal(DIM))
        speech.append(float(t), np.ones(1))
    statuses = {m: ModalityStatus(m, ModalityState.OBSERVED if m is Modality.AUDIO else ModalityState.DISABLED, "")
                for m in MODALITIES}
    return EngineInputs(tracks, lambda: statuses, speech_track=speech)


def test_engine_applies_running_normalisation_only_when_the_checkpoint_says_so(tmp_path):
    plain = train_small_checkpoint(tmp_path / "plain.pt", "cmarr", steps=1)
    opted = train_small_checkpoint(tmp_path / "speaker.pt", "cmarr", steps=1, extra_metadata={
        "speaker_normalization": {"audio": {"prior_steps": 0, "min_speech_fraction": 0.5}}})
    now = time.monotonic()
    outputs = {}
    for name, path in (("plain", plain), ("speaker", opted)):
        engine = InferenceEngine(ModelBank({"cmarr": path}), _inputs(now, offset=50.0))
        result = engine.step(now)
        assert result.probabilities is not None
        features, available, _ = engine._windows(engine._model, now, engine._statuses())
        outputs[name] = (engine, features["audio"].numpy()[0])
    engine, audio = outputs["plain"]
    assert engine.speaker_normalised == () and engine.speaker_speech_seconds() == 0.0
    assert audio.mean() == pytest.approx(50.0, abs=0.5)  # global stats (mean 0, std 1): the offset stays
    engine, audio = outputs["speaker"]
    assert engine.speaker_normalised == ("audio",)
    assert engine.speaker_speech_seconds() == pytest.approx(2.5, abs=0.11)  # each step counted once
    assert abs(audio.mean()) < 0.5  # the speaker's own offset is removed
    engine.reset_speaker_statistics()
    assert engine.speaker_speech_seconds() == 0.0


def test_settings_are_read_from_metadata():
    assert speaker_normalization_settings({}) == {}
    got = speaker_normalization_settings({"speaker_normalization": {"audio": {"prior_steps": 30}}})
    assert got == {"audio": {"prior_steps": 30.0, "min_speech_fraction": 0.5, "mode": "replace",
                             "switch_after_steps": 0.0}}


def test_running_normalisation_of_the_evaluation_spans_prior_to_speaker_statistics():
    from training.live.voice_norm_eval import running_normalised

    rng = np.random.default_rng(2)
    windows = np.concatenate([4.0 + rng.standard_normal((5, 20, DIM)), -4.0 + rng.standard_normal((5, 20, DIM))])
    speech = np.ones((10, 20))
    speakers = np.array(["a"] * 5 + ["b"] * 5)
    prior = (np.zeros(DIM), np.ones(DIM))
    np.testing.assert_allclose(running_normalised(windows, speech, speakers, 0.0, prior, 10.0, 0), windows,
                               rtol=1e-5)  # no speech heard: the prior (here the identity)
    everything = running_normalised(windows, speech, speakers, 1e6, prior, 10.0, 0)
    # all 100 steps of each speaker against a prior weight of 100 steps: the means meet halfway
    assert everything[:5].mean() == pytest.approx((4.0 - 2.0) / np.sqrt((1.0 + 1.0) / 2), abs=0.2)
    assert everything[5:].mean() == pytest.approx(-everything[:5].mean(), abs=0.3)


@pytest.mark.parametrize("switch_after, expect_speaker", [(20, True), (30, False)])
def test_expert_mode_keeps_global_features_and_switches_the_speaker_expert_after_enough_speech(
        tmp_path, switch_after, expect_speaker):
    path = train_small_checkpoint(tmp_path / "expert.pt", "cmarr", steps=1, extra_metadata={
        "speaker_normalization": {"audio": {"prior_steps": 0, "min_speech_fraction": 0.5, "mode": "expert",
                                            "switch_after_steps": switch_after}}})
    now = time.monotonic()
    engine = InferenceEngine(ModelBank({"cmarr": path}), _inputs(now, offset=50.0))  # 25 speech steps
    assert engine.step(now).probabilities is not None
    features, _, _ = engine._windows(engine._model, now, engine._statuses())
    assert features["audio"].numpy().mean() == pytest.approx(50.0, abs=0.5)  # the method sees global features
    assert engine.speaker_expert_active is expect_speaker
    assert ("audio@speaker" in features) is expect_speaker
    if expect_speaker:
        assert abs(features["audio@speaker"].numpy().mean()) < 0.5  # the speaker's own offset removed
    engine.reset_speaker_statistics()  # a new source: back to the global expert
    assert not engine.speaker_expert_active


@pytest.mark.parametrize("switch_after, expect_speaker", [(20, True), (30, False)])
def test_imer_analyze_routes_the_voice_as_the_engine_does_in_expert_mode(tmp_path, switch_after, expect_speaker):
    """Offline, a speaker-expert checkpoint's method sees global features too; the speaker window only
    goes to the speaker expert (``audio@speaker``), once the recording holds enough speech."""
    from imer_core.analysis.runner import Analyzer, _Pending
    from imer_core.live.inference import predict_windows
    from imer_core.live.models import load_live_model
    from imer_core.live.speaker_norm import RunningSpeakerStats
    from imer_core.methods.base import SamplingOptions

    path = train_small_checkpoint(tmp_path / "expert.pt", "cmarr", steps=1, extra_metadata={
        "speaker_normalization": {"audio": {"prior_steps": 0, "min_speech_fraction": 0.5, "mode": "expert",
                                            "switch_after_steps": switch_after}}})
    analyzer = object.__new__(Analyzer)  # the routing only: no extractors
    analyzer.model = load_live_model(path)
    analyzer.speaker_settings = speaker_normalization_settings(analyzer.model.metadata)["audio"]
    analyzer.sampling, analyzer.device = SamplingOptions(seed=0), "cpu"
    rng = np.random.default_rng(3)
    seq_len = analyzer.model.config.specs[Modality.AUDIO].seq_len
    stats = RunningSpeakerStats(analyzer.model.mean[Modality.AUDIO], analyzer.model.std[Modality.AUDIO], 0, 0.5)
    stats.update(50.0 + rng.standard_normal((25, DIM)), np.ones(25))  # 25 steps of speech
    window = 50.0 + rng.standard_normal((seq_len, DIM))
    pending = analyzer._normalised(_Pending({"path": "a.wav"}, {Modality.AUDIO: window}, speaker=stats))
    assert pending.window[Modality.AUDIO].mean() == pytest.approx(50.0, abs=0.5)  # global, as the engine
    assert (Modality.AUDIO in pending.speaker_window) is expect_speaker
    if expect_speaker:
        assert abs(pending.speaker_window[Modality.AUDIO].mean()) < 0.5
    other = _Pending({"path": "b.wav"}, {Modality.AUDIO: rng.standard_normal((seq_len, DIM)).astype(np.float32)})
    got = analyzer._probabilities([pending, _Pending({"path": "bad"}), other])  # mixed batch, order kept
    assert sorted(got) == [0, 2]
    alone = predict_windows(analyzer.model, [other.window], analyzer.sampling, "cpu", normalise=False)
    np.testing.assert_allclose(got[2], alone[0], atol=1e-5)


def test_route_voice_window_is_the_one_rule_of_replace_and_expert_mode():
    from imer_core.live.speaker_norm import RunningSpeakerStats, route_voice_window

    stats = RunningSpeakerStats(np.zeros(DIM), np.ones(DIM), 0, 0.5)
    stats.update(5.0 + np.random.default_rng(4).standard_normal((30, DIM)), np.ones(30))  # 30 speech steps
    window = np.full((20, DIM), 5.0)
    globally = lambda v: v * 0 + 7.0  # noqa: E731 - a marker for "the global normalisation ran"
    expert = {"mode": "expert", "switch_after_steps": 30}
    normed, speaker = route_voice_window(window, None, expert, globally)
    assert (normed == 7.0).all() and speaker is None  # no statistics: global only
    normed, speaker = route_voice_window(window, stats, {"mode": "replace"}, globally)
    assert abs(normed.mean()) < 0.5 and speaker is None  # replace: the running statistics normalise it
    normed, speaker = route_voice_window(window, stats, expert, globally)
    assert (normed == 7.0).all() and speaker is not None and abs(speaker.mean()) < 0.5  # expert, enough speech
    normed, speaker = route_voice_window(window, stats, {**expert, "switch_after_steps": 31}, globally)
    assert (normed == 7.0).all() and speaker is None  # not yet enough speech
