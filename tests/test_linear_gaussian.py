"""The linear-Gaussian task: its Bayes-optimal answers are right, and compare reports the distance to them."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from test_cv_compare import MMSA_TINY, TINY, TRAIN

from training.compare import run_compare
from training.data.linear_gaussian import LinearGaussianTask, make_linear_gaussian_mmsa
from training.distributed import DistContext
from training.experiment import load_experiment
from training.oracle import bayes_optimal_metrics
from training.protocol_spec import make_protocol
from training.runner import build_model, load_data

PATTERNS = [(True, True, True), (True, False, False), (False, True, True), (False, False, True)]


def test_posterior_is_the_joint_gaussian_conditional() -> None:
    """The time-mean sufficient statistic gives exactly E[s | all T×d observations] and its covariance."""
    task = LinearGaussianTask((7, 3, 5), seq_len=4, seed=3)
    feats, _, _ = task.sample(6, np.random.default_rng(0))
    available = (True, False, True)
    post = task.posterior(feats, available)
    observed, steps = [m for m in range(3) if available[m]], task.seq_len
    blocks = []
    for m in observed:
        row = []
        for other in observed:
            cov = np.kron(np.ones((steps, steps)), task.modalities[m].shared @ task.modalities[other].shared.T)
            if m == other:
                maps = task.modalities[m]
                cov = cov + np.kron(np.ones((steps, steps)), maps.private @ maps.private.T)
                cov = cov + np.kron(np.eye(steps), np.diag(maps.noise ** 2))
            row.append(cov)
        blocks.append(row)
    cov_xx = np.block(blocks)
    cov_sx = np.concatenate([np.kron(np.ones((1, steps)), task.modalities[m].shared.T) for m in observed], axis=1)
    x = np.concatenate([(feats[m] - task.modalities[m].offset).reshape(6, -1) for m in observed], axis=1)
    np.testing.assert_allclose(post.mean, x @ np.linalg.solve(cov_xx, cov_sx.T), atol=1e-8)
    np.testing.assert_allclose(post.cov, np.eye(8) - cov_sx @ np.linalg.solve(cov_xx, cov_sx.T), atol=1e-8)


@pytest.mark.parametrize("available", PATTERNS)
def test_closed_form_optimum_matches_monte_carlo(available) -> None:
    task = LinearGaussianTask((7, 3, 5), seq_len=4, seed=3)
    feats, labels, _ = task.sample(40000, np.random.default_rng(1))
    post = task.posterior(feats, available)
    pred = task.predict(post)
    expected = task.expected(available)
    assert np.mean((pred > 0) == (labels > 0)) == pytest.approx(expected["Non0_acc_2"], abs=0.01)
    assert np.mean(np.abs(pred - labels)) == pytest.approx(expected["MAE"], rel=0.02)
    for m in range(3):
        if not available[m]:
            mse = np.mean((task.recover(post, m) - feats[m]) ** 2)
            assert mse == pytest.approx(expected[f"recovery_mse_{m}"], rel=0.02)


def test_no_fitted_linear_estimator_beats_the_optimum() -> None:
    """Least squares fitted on 20000 samples (features of the available modalities → label / missing
    modality) approaches but does not beat the closed-form optimum on fresh samples."""
    task = LinearGaussianTask((7, 3, 5), seq_len=4, seed=5)
    rng = np.random.default_rng(2)
    (train, y_train, _), (test, y_test, _) = task.sample(20000, rng), task.sample(20000, rng)
    available = (False, True, True)
    design = lambda f: np.concatenate([f[1].reshape(len(f[1]), -1), f[2].reshape(len(f[2]), -1),  # noqa: E731
                                       np.ones((len(f[1]), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design(train), np.stack([y_train, *train[0][:, 0].T], axis=1), rcond=None)
    fitted = design(test) @ coef
    post = task.posterior(test, available)
    optimal_label = np.mean((task.predict(post) - y_test) ** 2)
    optimal_text = np.mean((task.recover(post, 0)[:, 0] - test[0][:, 0]) ** 2)
    fitted_label = np.mean((fitted[:, 0] - y_test) ** 2)
    fitted_text = np.mean((fitted[:, 1:] - test[0][:, 0]) ** 2)
    assert optimal_label <= fitted_label <= 1.03 * optimal_label
    assert optimal_text <= fitted_text <= 1.03 * optimal_text


def test_generated_pickle_follows_the_task_and_loads(tmp_path) -> None:
    exp = load_experiment("quick_compare_imder", ["data.synthetic=true", 'data.synthetic_kind="linear-gaussian"',
                                                  *MMSA_TINY])
    data = load_data(exp, tmp_path)
    assert isinstance(data.oracle, LinearGaussianTask) and data.oracle.dims == (16, 5, 20)
    assert "linear-Gaussian" in data.note and data.synthetic
    raw = make_linear_gaussian_mmsa("mosi", seed=0, sizes=(48, 16, 16), dims=(16, 5, 20), seq_len=18)
    np.testing.assert_array_equal(data.datasets["test"].split.audio, raw["test"]["audio"])
    test = data.datasets["test"]
    masks = np.ones((16, 3), dtype=bool)
    masks[:8, 0] = False
    metrics = bayes_optimal_metrics(data.oracle, test, masks)
    assert 0.5 <= metrics["bayes_Non0_acc_2"] <= 1.0 and metrics["bayes_raw_recovery_mse"] > 0
    with pytest.raises(ValueError, match="synthetic_kind"):
        load_experiment("quick_compare_imder", ['data.synthetic_kind="gaussian"'])


def test_compare_reports_each_methods_distance_to_the_optimum(tmp_path) -> None:
    sets = ["data.synthetic=true", 'data.synthetic_kind="linear-gaussian"', *MMSA_TINY, *TRAIN]
    experiment = load_experiment("quick_compare_imder", [*sets, *TINY["imder"]])
    result = run_compare([experiment], tmp_path / "cmp", DistContext(), "batch", [0.5], [1], progress=False,
                         latency_runs=1, fast_steps=2)
    row = next(csv.DictReader(result.csv_path.open()))
    own, best = float(row["recovery_mse_mean"]), float(row["bayes_recovery_mse_mean"])
    assert 0 < best < float(row["zero_fill_mse_mean"]) and best <= own
    data = load_data(experiment, tmp_path / "cmp" / "data")             # the same test samples and masks
    masks = make_protocol("batch:0.5", seed=1).eval_masks(16, experiment.train.batch_size, "test")
    direct = bayes_optimal_metrics(data.oracle, data.datasets["test"], masks)
    assert float(row["bayes_Non0_acc_2_mean"]) == pytest.approx(100 * direct["bayes_Non0_acc_2"])
    assert float(row["bayes_MAE_mean"]) == pytest.approx(direct["bayes_MAE"])
    markdown = result.markdown_path.read_text()
    assert "## Distance to the Bayes optimum" in markdown and f"{best:.4f}" in markdown


def test_no_recovery_optimum_in_a_non_affine_space(tmp_path) -> None:
    """CM-ARR recovers encoder means (non-linear in the features): only the task and raw-space optimum."""
    exp = load_experiment("quick_compare_cmarr", ["data.synthetic=true", 'data.synthetic_kind="linear-gaussian"',
                                                  *MMSA_TINY, *TINY["cmarr"]])
    data = load_data(exp, tmp_path)
    masks = np.ones((16, 3), dtype=bool)
    masks[:, 1] = False
    cmarr = bayes_optimal_metrics(data.oracle, data.datasets["test"], masks,
                                  build_model(exp, data.specs, data.labels))
    assert "bayes_recovery_mse" not in cmarr and cmarr["bayes_raw_recovery_mse"] > 0
    imder_exp = load_experiment("quick_compare_imder", ["data.synthetic=true", *MMSA_TINY, *TINY["imder"]])
    imder = bayes_optimal_metrics(data.oracle, data.datasets["test"], masks,
                                  build_model(imder_exp, data.specs, data.labels))
    assert imder["bayes_recovery_mse"] > 0 and imder["bayes_MAE"] == cmarr["bayes_MAE"]
