"""Tests of the MMSA-compatible metrics, against hand-computed values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from training.metrics import (
    REGRESSION_KEYS,
    classification_metrics,
    format_mean_std,
    is_percent_key,
    regression_metrics,
    summarize_seeds,
)

TRUE = [-2.5, -1.0, 0.0, 0.0, 1.5, 2.5]
PRED = [-1.5, 0.4, -0.2, 0.6, 2.5, 3.4]


def test_regression_metrics_by_hand() -> None:
    got = regression_metrics(np.array(PRED), np.array(TRUE))
    assert set(got) == set(REGRESSION_KEYS)
    # Has0 (>= 0): true F F T T T T, pred F T F T T T -> 4 of 6 correct.
    assert got["Has0_acc_2"] == pytest.approx(4 / 6)
    # class True: P = R = 3/4 -> F1 0.75 (support 4); class False: P = R = 1/2 -> 0.5 (support 2).
    assert got["Has0_F1_score"] == pytest.approx((4 * 0.75 + 2 * 0.5) / 6)
    # Non0 drops the two zero labels: true F F T T, pred F T T T -> 3 of 4.
    assert got["Non0_acc_2"] == pytest.approx(3 / 4)
    # True: P 2/3, R 1 -> F1 0.8; False: P 1, R 1/2 -> F1 2/3; supports 2 and 2.
    assert got["Non0_F1_score"] == pytest.approx((0.8 + 2 / 3) / 2)
    # Acc7: true rounds to -2 -1 0 0 2 2 (np.round(-2.5) = -2, 1.5 -> 2, 2.5 -> 2),
    # clipped pred -1.5 0.4 -0.2 0.6 2.5 3.0 rounds to -2 0 0 1 2 3 -> 3 of 6.
    # (Rounding half away from zero would give pred 2.5 -> 3 and only 2 of 6.)
    assert got["Mult_acc_7"] == pytest.approx(3 / 6)
    # Acc5: true clipped -2 -1 0 0 1.5 2 -> -2 -1 0 0 2 2; pred clipped -1.5 0.4 -0.2 0.6 2 2
    # -> -2 0 0 1 2 2 -> 4 of 6.
    assert got["Mult_acc_5"] == pytest.approx(4 / 6)
    # MAE: |diffs| 1.0 1.4 0.2 0.6 1.0 0.9 -> 5.1 / 6.
    assert got["MAE"] == pytest.approx(5.1 / 6)
    mean_t, mean_p = sum(TRUE) / 6, sum(PRED) / 6
    cov = sum((t - mean_t) * (p - mean_p) for t, p in zip(TRUE, PRED))
    var_t = sum((t - mean_t) ** 2 for t in TRUE)
    var_p = sum((p - mean_p) ** 2 for p in PRED)
    assert got["Corr"] == pytest.approx(cov / math.sqrt(var_t * var_p))


def test_regression_metrics_accepts_tensors_and_column_vectors() -> None:
    got = regression_metrics(torch.tensor(PRED).view(-1, 1), torch.tensor(TRUE).view(-1, 1))
    assert got["Mult_acc_7"] == pytest.approx(0.5) and got["Has0_acc_2"] == pytest.approx(4 / 6)


def test_np_round_half_to_even_semantics() -> None:
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0 (== 0).
    got = regression_metrics([0.5, 1.5, 2.5, -0.5], [0.0, 2.0, 2.0, 0.0])
    assert got["Mult_acc_7"] == 1.0 and got["Mult_acc_5"] == 1.0


def test_constant_predictions_and_all_zero_labels_are_quiet() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = regression_metrics(np.zeros(5), np.array([1.0, -1.0, 2.0, 0.0, -2.0]))
        assert got["Corr"] == 0.0
        zeros = regression_metrics(np.array([0.1, -0.1]), np.zeros(2))
    assert math.isnan(zeros["Non0_acc_2"]) and math.isnan(zeros["Non0_F1_score"])
    assert zeros["Has0_acc_2"] == 0.5


def test_regression_metrics_input_errors() -> None:
    with pytest.raises(ValueError, match="equal size"):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="pred has 1 non-finite"):
        regression_metrics([1.0, float("nan")], [1.0, 2.0])


def test_classification_metrics_by_hand() -> None:
    labels = ("neg", "neu", "pos")
    true = [0, 0, 1, 2, 2, 2]
    pred = [0, 1, 1, 2, 2, 0]
    got = classification_metrics(np.array(pred), true, labels)
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["recall_neg"] == pytest.approx(1 / 2)
    assert got["recall_neu"] == pytest.approx(1.0)
    assert got["recall_pos"] == pytest.approx(2 / 3)
    assert got["uar"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    # F1: neg P 1/2 R 1/2 -> 1/2; neu P 1/2 R 1 -> 2/3; pos P 1 R 2/3 -> 0.8.
    assert got["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert got["weighted_f1"] == pytest.approx((2 * 0.5 + 1 * 2 / 3 + 3 * 0.8) / 6)
    logits = torch.nn.functional.one_hot(torch.tensor(pred), 3).float() * 3.0 - 1.0
    assert classification_metrics(logits, torch.tensor(true), labels) == pytest.approx(got)


def test_classification_metrics_absent_class_and_errors() -> None:
    got = classification_metrics(np.array([0, 0, 2]), [0, 2, 2], ("a", "b", "c"))
    assert math.isnan(got["recall_b"])
    assert got["uar"] == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError, match="columns"):
        classification_metrics(np.zeros((2, 4)), [0, 1], ("a", "b", "c"))
    with pytest.raises(ValueError, match="outside"):
        classification_metrics(np.array([0, 3]), [0, 1], ("a", "b", "c"))


def test_summarize_seeds_and_format() -> None:
    results = [
        {"Has0_acc_2": 0.80, "MAE": 0.70, "Corr": 0.60, "Loss": 0.5, "note": "seed 1"},
        {"Has0_acc_2": 0.90, "MAE": 0.90, "Corr": 0.80, "Loss": 0.7, "note": "seed 2"},
    ]
    summary = summarize_seeds(results, ddof=0)
    assert set(summary) == {"Has0_acc_2", "MAE", "Corr", "Loss"}
    assert summary["Loss"] == pytest.approx((0.6, 0.1))
    assert summary["Has0_acc_2"] == pytest.approx((85.0, 5.0))  # x100, population std
    assert summary["MAE"] == pytest.approx((0.8, 0.1))
    assert summary["Corr"] == pytest.approx((0.7, 0.1))
    assert summarize_seeds(results)["Has0_acc_2"] == pytest.approx((85.0, 50 ** 0.5))   # default: sample std
    one = summarize_seeds(results[:1])["Has0_acc_2"]
    assert one[0] == pytest.approx(80.0) and np.isnan(one[1])                        # one seed: no spread
    assert format_mean_std(one) == "80.00"
    assert all(is_percent_key(k) for k in ("Non0_F1_score", "Mult_acc_7", "uar", "recall_pos", "macro_f1"))
    assert not any(is_percent_key(k) for k in ("MAE", "Corr", "Loss", "realised_missing_rate"))
    assert format_mean_std(summary["Has0_acc_2"]) == "85.00 ± 5.00"
    assert format_mean_std(0.8123, 0.01, digits=3) == "0.812 ± 0.010"
    assert format_mean_std(1.5) == "1.50"
    with pytest.raises(ValueError, match="at least one"):
        summarize_seeds([])


def test_seed_statistics_sample_std_and_t_interval() -> None:
    from training.metrics import format_seed_stats, seed_statistics

    values = [0.80, 0.82, 0.85, 0.79, 0.84]                 # five seeds, as the reference run.py
    stats = seed_statistics([{"Non0_acc_2": v} for v in values])["Non0_acc_2"]
    array = np.array(values) * 100
    assert stats.n == 5
    assert stats.std == pytest.approx(array.std(ddof=1))
    half = 2.7764451051977987 * array.std(ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert (stats.ci_low, stats.ci_high) == pytest.approx((array.mean() - half, array.mean() + half))
    assert format_seed_stats(stats) == f"{array.mean():.1f} ± {array.std(ddof=1):.1f} " \
                                       f"[{array.mean() - half:.1f}, {array.mean() + half:.1f}]"
    single = seed_statistics([{"Non0_acc_2": 0.8}])["Non0_acc_2"]
    assert format_seed_stats(single) == "80.0"                # never "± 0.0"
    assert "±" not in format_seed_stats(single)


def test_numpy_scores_equal_sklearns_on_random_and_edge_cases():
    sk = pytest.importorskip("sklearn.metrics")
    from training.metrics import accuracy_score, f1_score, recall_score

    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, k, n), rng.integers(0, k, n)) for k, n in [(7, 50), (7, 5), (3, 200), (2, 9)] * 5]
    cases += [(np.array([1, 1, 1]), np.array([0, 2, 2])),           # a class predicted but never true
              (np.array([0, 0]), np.array([0, 0])),                 # one class only
              (rng.random(30) > 0.5, rng.random(30) > 0.2)]         # booleans, as the binary MOSI metrics pass
    for true, pred in cases:
        assert accuracy_score(true, pred) == pytest.approx(sk.accuracy_score(true, pred), abs=1e-12)
        for average in ("macro", "weighted"):
            assert f1_score(true, pred, average) == pytest.approx(
                sk.f1_score(true, pred, average=average, zero_division=0), abs=1e-12)
        labels = list(range(8))
        np.testing.assert_allclose(recall_score(true, pred, labels),
                                   sk.recall_score(true, pred, labels=labels, average=None, zero_division=0),
                                   atol=1e-12)


def test_importing_the_metrics_does_not_import_sklearn():
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, training.metrics; print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-1000:]
