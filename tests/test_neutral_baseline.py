"""Neutral baseline: means of a person's resting face and calm speech, the engine's shift, ``imer run``."""

from __future__ import annotations

import time

import numpy as np
import pytest
from live_fakes import LIVE_VISION_DIM, live_audio_dim, train_small_checkpoint

from imer_core.live.engine import EngineInputs, InferenceEngine
from imer_core.live.health import ModalityState, ModalityStatus
from imer_core.live.models import ModelBank
from imer_core.live.neutral_baseline import (
    NeutralBaseline,
    NeutralBaselineError,
    baseline_from_tracks,
    neutral_reference,
)
from imer_core.live.tracks import FeatureTrack
from imer_core.modalities import MODALITIES, Modality

AUDIO_DIM = live_audio_dim()


def _tracks(t0: float, face: float, voice: float, steps: int = 30):
    tracks = {Modality.TEXT: FeatureTrack(384), Modality.AUDIO: FeatureTrack(AUDIO_DIM),
              Modality.VISION: FeatureTrack(LIVE_VISION_DIM)}
    speech = FeatureTrack(1)
    rng = np.random.default_rng(0)
    for i in range(steps):
        t = t0 + 0.1 * i
        tracks[Modality.VISION].append(t, face + 0.01 * rng.standard_normal(LIVE_VISION_DIM))
        talking = i % 3 != 0
        tracks[Modality.AUDIO].append(t, (voice if talking else 1e6) + 0.01 * rng.standard_normal(AUDIO_DIM))
        speech.append(t, np.ones(1) if talking else np.zeros(1))
    return tracks, speech


def test_baseline_means_of_faces_and_speech_steps_only():
    tracks, speech = _tracks(100.0, face=2.0, voice=-3.0)
    baseline = baseline_from_tracks(tracks, speech, 99.95, 103.0)
    assert baseline.counts == {Modality.VISION: 30, Modality.AUDIO: 20}  # silent steps (1e6) are left out
    np.testing.assert_allclose(baseline.means[Modality.VISION], 2.0, atol=0.01)
    np.testing.assert_allclose(baseline.means[Modality.AUDIO], -3.0, atol=0.01)
    reference = {"vision": [0.5] * LIVE_VISION_DIM, "audio": [1.0] * AUDIO_DIM}
    np.testing.assert_allclose(baseline.offset(Modality.AUDIO, reference), -4.0, atol=0.01)
    assert baseline.offset(Modality.AUDIO, {"audio": [1.0] * 3}) is None  # another feature: not applied
    assert baseline.offset(Modality.TEXT, reference) is None
    again = NeutralBaseline.from_json(baseline.to_json())
    np.testing.assert_allclose(again.means[Modality.VISION], baseline.means[Modality.VISION])


def test_too_little_face_and_speech_is_one_clear_error(tmp_path):
    tracks, speech = _tracks(100.0, 0.0, 0.0, steps=3)
    with pytest.raises(NeutralBaselineError, match="no neutral baseline: only 3 face frames"):
        baseline_from_tracks(tracks, speech, 99.0, 101.0)
    (tmp_path / "neutral_baseline.json").write_text('{"means": {"vision": [1, "x"]}}')
    with pytest.raises(NeutralBaselineError):
        NeutralBaseline.load(tmp_path)
    (tmp_path / "neutral_baseline.json").write_text('{"means": {"vision": [1, NaN]}}')
    with pytest.raises(NeutralBaselineError, match="non-finite"):
        NeutralBaseline.load(tmp_path)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00 not text", b"[" * 100_000, b"[1, 2]", b'"means"', b"null",
                                     b'{"means": 5}', b'{"means": {"audio": []}}', b'{"means": {"smell": [1]}}',
                                     b'{"means": {"audio": [1]}, "counts": {"audio": "many"}}', b""])
def test_a_hostile_baseline_file_is_one_clear_error(tmp_path, content):
    (tmp_path / "neutral_baseline.json").write_bytes(content)
    with pytest.raises(NeutralBaselineError):
        NeutralBaseline.load(tmp_path)


def test_neutral_reference_is_the_mean_of_the_neutral_training_samples():
    class Pool:
        def __init__(self, features, labels, splits):
            self.features, self.labels, self.splits = features, np.asarray(labels), np.asarray(splits)

    vision = Pool(np.array([[1.0, 2.0], [3.0, 4.0], [100.0, 100.0], [50.0, 50.0]]), [0, 0, 1, 0],
                  ["train", "train", "train", "test"])
    reference = neutral_reference({"vision": vision})
    assert reference == {"vision": [2.0, 3.0]}


def test_engine_shifts_the_persons_features_onto_the_training_neutral_mean(tmp_path):
    reference = {"vision": [0.5] * LIVE_VISION_DIM, "audio": [0.0] * AUDIO_DIM}
    path = train_small_checkpoint(tmp_path / "m.pt", "cmarr", steps=1,
                                  extra_metadata={"neutral_reference": reference})
    now = time.monotonic()
    tracks, speech = _tracks(now - 3.0, face=2.0, voice=-3.0)
    statuses = {m: ModalityStatus(m, ModalityState.DISABLED if m is Modality.TEXT else ModalityState.OBSERVED, "")
                for m in MODALITIES}
    engine = InferenceEngine(ModelBank({"cmarr": path}), EngineInputs(tracks, lambda: statuses, speech_track=speech))
    assert engine.step(now).probabilities is not None
    before, _, _ = engine._windows(engine._model, now, engine._statuses())
    assert before["vision"].numpy().mean() == pytest.approx(2.0, abs=0.05)  # the checkpoint's norm is identity
    engine.set_neutral_baseline(baseline_from_tracks(tracks, speech, now - 3.1, now))
    assert engine.neutral_baseline_modalities() == ("audio", "vision")
    after, _, _ = engine._windows(engine._model, now, engine._statuses())
    assert after["vision"].numpy().mean() == pytest.approx(0.5, abs=0.05)  # resting face → training neutral
    assert engine.step(now).probabilities is not None
    engine.set_neutral_baseline(None)
    assert engine.neutral_baseline_modalities() == ()


@pytest.mark.slow
def test_imer_run_takes_a_neutral_baseline_and_saves_it(demo_test_clip, tmp_path, capsys):
    from app.cli import main as imer_main

    reference = {"vision": [0.0] * LIVE_VISION_DIM, "audio": [0.0] * AUDIO_DIM}
    path = train_small_checkpoint(tmp_path / "m.pt", "cmarr", steps=1,
                                  extra_metadata={"neutral_reference": reference})
    code = imer_main(["run", "--source", str(demo_test_clip.path), "--loop", "--neutral-baseline", "3",
                      "--duration", "4", "--quiet", "--checkpoint", str(path), "--out", str(tmp_path / "s")])
    assert code == 0
    err = capsys.readouterr().err
    assert "Neutral baseline: relax your face" in err and "shifts " in err, err
    saved = NeutralBaseline.load(next((tmp_path / "s").glob("session-*")))
    assert saved.counts[Modality.VISION] > 0 and Modality.VISION in saved.means
    code = imer_main(["run", "--source", str(demo_test_clip.path), "--baseline-file", str(tmp_path / "nope.json"),
                      "--checkpoint", str(path), "--out", str(tmp_path / "s2")])
    assert code != 0 and "cannot read neutral baseline" in capsys.readouterr().err
