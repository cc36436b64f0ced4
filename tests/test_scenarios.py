"""Six-scenario (MMIN) protocols and result summaries."""

from __future__ import annotations

import numpy as np
import pytest

from imer_core.modalities import Modality
from training.protocols import FixedSubsetProtocol, MissingProtocol
from training.scenarios import (
    COMPLETE_SCENARIO,
    MISSING_SCENARIO_NAMES,
    MMIN_MISS_TYPES,
    SCENARIOS,
    RandomScenarioProtocol,
    make_scenario_protocol,
    scenario_row,
    summarize_folds,
    summarize_scenarios,
)

# (text, audio, vision) rows, in MMIN's table order, then complete.
EXPECTED_ROWS = {
    "a": (False, True, False), "v": (False, False, True), "l": (True, False, False),
    "av": (False, True, True), "al": (True, True, False), "vl": (True, False, True),
    "avl": (True, True, True),
}


def test_scenario_table_order_and_masks():
    assert [name for name, _ in SCENARIOS] == list(EXPECTED_ROWS)
    assert MISSING_SCENARIO_NAMES == ("a", "v", "l", "av", "al", "vl") and COMPLETE_SCENARIO == "avl"
    assert [MMIN_MISS_TYPES[n] for n in MISSING_SCENARIO_NAMES] == ["azz", "zvz", "zzl", "avz", "azl", "zvl"]
    letters = {"l": Modality.TEXT, "a": Modality.AUDIO, "v": Modality.VISION}
    for name, protocol in SCENARIOS:
        assert isinstance(protocol, FixedSubsetProtocol)
        assert protocol.available == frozenset(letters[c] for c in name)
        rows = protocol.eval_masks(7, 4, "test")
        assert rows.dtype == bool and rows.shape == (7, 3)
        assert (rows == np.array(EXPECTED_ROWS[name])).all()
        train = protocol.train_mask(0, 1, np.arange(5), 0, np.random.default_rng(0))
        assert (train == np.array(EXPECTED_ROWS[name])).all()
        assert (scenario_row(MMIN_MISS_TYPES[name]) == np.array(EXPECTED_ROWS[name])).all()
    assert len({tuple(EXPECTED_ROWS[n]) for n in EXPECTED_ROWS}) == 7


@pytest.mark.parametrize("include_complete", [False, True])
def test_random_scenario_training_frequencies(include_complete):
    protocol = RandomScenarioProtocol(include_complete)
    assert isinstance(protocol, MissingProtocol)
    rng = np.random.default_rng(0)
    masks = np.concatenate([protocol.train_mask(b, 300, np.arange(64), 0, rng) for b in range(300)])
    assert masks.shape == (19200, 3) and masks.dtype == bool
    assert masks.any(axis=1).all()  # never all-missing
    patterns, counts = np.unique(masks, axis=0, return_counts=True)
    k = 7 if include_complete else 6
    assert len(patterns) == k
    assert all(p.any() and (include_complete or not p.all()) for p in patterns)
    expected = len(masks) / k
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)  # ~uniform
    assert abs((~masks).mean() - protocol.expected_missing_rate) < 0.01
    assert protocol.expected_missing_rate == pytest.approx(3 / 7 if include_complete else 0.5)


def test_random_scenario_eval_masks_balanced_and_deterministic():
    protocol = RandomScenarioProtocol(False, seed=3)
    masks = protocol.eval_masks(61, 8, "valid")
    assert np.array_equal(masks, protocol.eval_masks(61, 8, "valid"))
    assert not np.array_equal(masks, protocol.eval_masks(61, 8, "test"))
    _, counts = np.unique(masks, axis=0, return_counts=True)
    assert len(counts) == 6 and counts.max() - counts.min() <= 1


def test_make_scenario_protocol():
    assert make_scenario_protocol("scenario").name == "scenario"
    assert not make_scenario_protocol("scenario:missing").include_complete
    protocol = make_scenario_protocol("Scenario:complete", seed=4)
    assert protocol.include_complete and protocol.seed == 4 and protocol.name == "scenario:complete"
    assert make_scenario_protocol(protocol.name).include_complete
    for bad in ("scenario:8", "batch:0.3", ""):
        with pytest.raises(ValueError):
            make_scenario_protocol(bad)


def _metrics(war: float, uar: float, f1: float) -> dict[str, float]:
    return {"accuracy": war, "uar": uar, "macro_f1": f1, "weighted_f1": f1, "recall_anger": 0.5}


def test_summarize_scenarios():
    results = {name: _metrics(0.5 + 0.01 * i, 0.4 + 0.02 * i, 0.3) for i, name in enumerate(EXPECTED_ROWS)}
    results["azl"] = results.pop("al")  # MMIN codes are accepted
    summary = summarize_scenarios(results)
    assert list(summary) == [*EXPECTED_ROWS, "missing_avg"]
    assert summary["al"] == pytest.approx({"war": 0.54, "uar": 0.48, "macro_f1": 0.3})
    assert summary["missing_avg"]["war"] == pytest.approx(np.mean([0.5 + 0.01 * i for i in range(6)]))
    assert summary["missing_avg"]["uar"] == pytest.approx(np.mean([0.4 + 0.02 * i for i in range(6)]))
    del results["vl"]
    with pytest.raises(ValueError, match="absent"):
        summarize_scenarios(results)
    with pytest.raises(ValueError, match="unknown scenario"):
        summarize_scenarios({**results, "vl": _metrics(1, 1, 1), "xyz": _metrics(1, 1, 1)})


def test_missing_average_equals_pooled_war_uar():
    from training.metrics import classification_metrics
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 50)
    names = ("anger", "happiness", "neutral", "sadness")
    preds = {n: np.where(rng.random(50) < 0.3 + 0.1 * i, labels, rng.integers(0, 4, 50))
             for i, n in enumerate(MISSING_SCENARIO_NAMES)}
    summary = summarize_scenarios({n: classification_metrics(p, labels, names) for n, p in preds.items()})
    pooled = classification_metrics(np.concatenate(list(preds.values())), np.tile(labels, 6), names)
    assert summary["missing_avg"]["war"] == pytest.approx(pooled["accuracy"])
    assert summary["missing_avg"]["uar"] == pytest.approx(pooled["uar"])


def test_summarize_folds():
    folds = [summarize_scenarios({n: _metrics(w, w, w) for n in EXPECTED_ROWS}) for w in (0.5, 0.7)]
    folds[0]["note"] = "text is skipped"
    summary = summarize_folds(folds)                                    # sample std, as over seeds
    assert summary["n_folds"] == 2
    assert summary["missing_avg"]["war"] == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))
    assert summary["avl"]["uar"] == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))
    assert "note" not in summary
    assert summarize_folds(folds, ddof=0)["a"]["war"] == pytest.approx((0.6, 0.1))
    mean, spread = summarize_folds([{"war": 0.4}])["war"]
    assert mean == 0.4 and np.isnan(spread)                              # one fold: no spread, not 0.0
    with pytest.raises(ValueError):
        summarize_folds([])


def test_validation_evaluates_every_utterance_under_all_six_scenarios(tmp_path):
    """MMIN's val/tst sets hold each utterance six times (one per missing scenario); metrics pool them."""
    import torch
    from test_cv_compare import MMIN_TINY, TINY, TRAIN

    from training.distributed import DistContext
    from training.experiment import load_experiment
    from training.runner import build_model, load_data
    from training.runs import RunFolder
    from training.trainer import Trainer

    protocol = RandomScenarioProtocol(seed=3)
    passes = protocol.eval_passes(5, 4, "valid")
    assert len(passes) == 6 and all(p.shape == (5, 3) and (p == p[0]).all() for p in passes)
    assert {tuple(p[0]) for p in passes} == {tuple(scenario_row(n)) for n in MISSING_SCENARIO_NAMES}
    exp = load_experiment("quick_cv_cmarr", [*MMIN_TINY, *TRAIN, *TINY["cmarr"]])
    data = load_data(exp, tmp_path)
    model = build_model(exp, data.specs, data.labels).eval()
    seen = []
    recover = model.recover
    model.recover = lambda feats, mask, sampling=None: seen.append(mask.clone()) or recover(feats, mask, sampling)
    trainer = Trainer(model, data.datasets, exp.train, protocol, DistContext(), RunFolder(tmp_path, enabled=False),
                      progress=False)
    n = len(data.datasets["valid"])
    results = trainer.evaluate("valid")
    masks = torch.cat(seen).numpy()
    assert len(masks) == 6 * n and results["realised_missing_rate"] == pytest.approx(0.5)
    for name in MISSING_SCENARIO_NAMES:
        assert (masks == scenario_row(name)).all(axis=1).sum() == n


def test_cv_table_gives_the_sample_std_and_one_fold_prints_no_zero_spread():
    from training.cv import _markdown
    from training.experiment import load_experiment

    experiment = load_experiment("quick_cv_cmarr")
    fold = {n: _metrics(w, w, w) for w, n in zip((0.5, 0.6, 0.7, 0.4, 0.55, 0.65, 0.8), EXPECTED_ROWS)}
    one = _markdown(experiment, summarize_folds([summarize_scenarios(fold)]), [1], None, "scenario")
    assert "±" not in one.split("| scenario |")[1] and "one fold: the mean alone" in one
    shifted = {n: _metrics(m["accuracy"] + 0.1, m["uar"], m["macro_f1"]) for n, m in fold.items()}
    two = _markdown(experiment, summarize_folds([summarize_scenarios(fold), summarize_scenarios(shifted)]), [1, 2],
                    None, "scenario")
    spread = 100 * np.std([0.5, 0.6], ddof=1)                         # WAR of the first scenario row, two folds
    assert f"55.0 ± {spread:.1f}" in two and "sample std" in two
