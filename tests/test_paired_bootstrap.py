"""The paired pigeonhole bootstrap of live-eval's macro-F1 differences (training/live/paired_bootstrap.py)."""

from __future__ import annotations

import numpy as np
import pytest

from training.live.labels import LIVE_LABELS
from training.live.paired_bootstrap import paired_difference, replicate_weights, sample_codes, weighted_macro_f1
from training.metrics import classification_metrics

K = len(LIVE_LABELS)


def _noisy(true: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    wrong = rng.random(len(true)) > accuracy
    return np.where(wrong, rng.integers(0, K, len(true)), true)


def test_weighted_macro_f1_is_sklearns_for_unit_weights_and_repeats_rows_for_counts():
    rng = np.random.default_rng(1)
    true = rng.integers(0, K - 1, 300)                 # the last class never true: present through predictions only
    pred = _noisy(true, 0.5, rng)
    assert weighted_macro_f1(true, pred, np.ones(300), K) == pytest.approx(
        classification_metrics(pred, true, LIVE_LABELS)["macro_f1"])
    counts = rng.integers(0, 4, 300)
    repeated = classification_metrics(np.repeat(pred, counts), np.repeat(true, counts), LIVE_LABELS)["macro_f1"]
    assert weighted_macro_f1(true, pred, counts.astype(float), K) == pytest.approx(repeated)


def test_replicate_weights_resample_each_modalitys_samples():
    sources = {"text": np.array(["t0", "t1", "t1", "t2"]), "audio": np.array(["a0", "a1", "a1", "a0"])}
    codes = sample_codes(sources, ["text", "audio"])
    draws = np.array([replicate_weights(codes, np.random.default_rng(seed)) for seed in range(200)])
    assert (draws >= 0).all() and np.allclose(draws, np.round(draws))
    assert (draws[:, 1] == draws[:, 2]).all()           # the same text and audio sample: always the same weight
    assert (draws[:, 0] != draws[:, 3]).any()           # the same audio, another text sample: not tied
    # one modality: the weights are multinomial counts summing to the number of samples
    one = replicate_weights(sample_codes({"audio": np.array(["x", "y", "z"])}, ["audio"]), np.random.default_rng(0))
    assert one.sum() == 3
    assert draws.mean() == pytest.approx(1.0, abs=0.15)  # E[count_text * count_audio] = 1
    with pytest.raises(ValueError):
        replicate_weights([], np.random.default_rng(0))


def test_identical_models_differ_by_exactly_zero():
    rng = np.random.default_rng(2)
    true = rng.integers(0, K, 400)
    pred = _noisy(true, 0.6, rng)
    out = paired_difference(true, pred, pred, {"audio": np.arange(400) % 50}, ["audio"], K, replicates=200)
    assert out["difference"] == out["low"] == out["high"] == 0.0 and out["share_below"] == 0.0


def test_a_clearly_better_model_has_an_interval_above_zero():
    rng = np.random.default_rng(3)
    true = rng.integers(0, K, 600)
    scores_a = np.eye(K)[true]                          # (N, K) scores: always right
    out = paired_difference(true, scores_a, _noisy(true, 0.5, rng), {"text": np.arange(600)}, ["text"], K,
                            replicates=300)
    assert out["low"] > 0.2 and out["share_below"] == 0.0 and out["low"] <= out["difference"] <= out["high"]


def test_samples_shared_by_many_tuples_widen_the_interval():
    """Ten tuples per sample carry the information of one: the interval must not shrink as if they were ten."""
    rng = np.random.default_rng(4)
    samples = 120
    true_s = rng.integers(0, K, samples)
    a_s, b_s = _noisy(true_s, 0.6, rng), _noisy(true_s, 0.6, rng)
    true, a, b = (np.repeat(x, 10) for x in (true_s, a_s, b_s))
    shared = paired_difference(true, a, b, {"audio": np.repeat(np.arange(samples), 10)}, ["audio"], K,
                               replicates=400, seed=1)
    as_if_independent = paired_difference(true, a, b, {"audio": np.arange(10 * samples)}, ["audio"], K,
                                          replicates=400, seed=1)
    assert shared["difference"] == as_if_independent["difference"]
    width = shared["high"] - shared["low"]
    assert width > 2.0 * (as_if_independent["high"] - as_if_independent["low"])   # ~sqrt(10) = 3.2 expected


def test_bad_arguments_raise():
    true = np.zeros(10, np.int64)
    with pytest.raises(ValueError, match="replicates"):
        paired_difference(true, true, true, {"text": np.arange(10)}, ["text"], K, replicates=10)
    with pytest.raises(ValueError, match="lengths"):
        paired_difference(true, true[:5], true, {"text": np.arange(10)}, ["text"], K, replicates=100)


def test_live_eval_refuses_too_few_replicates_before_any_work(tmp_path, capsys):
    from training.cli import main
    from training.live.evaluate import run_live_eval

    with pytest.raises(ValueError, match="at least 100"):
        run_live_eval(tmp_path / "no-cache", [], tmp_path / "out", bootstrap=10)
    assert not (tmp_path / "out").exists()
    assert main(["live-eval", "--cache", str(tmp_path), "--checkpoints", "x.pt", "--out", str(tmp_path / "o"),
                 "--bootstrap", "50"]) == 2
    assert "--bootstrap must be 0 or at least 100" in capsys.readouterr().err
