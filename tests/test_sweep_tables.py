"""Reproduction tables: per-seed test masks, sample std + 95 % CI, realised missing rate, provenance."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from training import sweep
from training.distributed import DistContext
from training.experiment import load_experiment
from training.paper_results import CONTESTED, IMDER_PUBLISHED, source_of
from training.protocol_spec import make_protocol


def _rows(seeds, realised=0.5, rate=0.3):
    rng = np.random.default_rng(0)
    return [{"seed": s, "missing_rate": rate, "protocol": f"batch:{rate}", "Non0_acc_2": 0.8 + 0.01 * rng.random(),
             "Non0_F1_score": 0.79, "Mult_acc_7": 0.4, "Has0_acc_2": 0.78, "Has0_F1_score": 0.78, "Mult_acc_5": 0.45,
             "MAE": 0.9, "Corr": 0.6, "recovery_mse": 1.0, "zero_fill_mse": 2.0, "realised_missing_rate": realised}
            for s in seeds]


def test_table_shows_sample_std_ci_realised_rate_and_provenance(tmp_path) -> None:
    experiment = load_experiment("imder_mosi")
    result = sweep.write_tables(_rows([1, 2, 3, 4, 5]) + _rows([1, 2, 3, 4, 5], realised=0.4, rate=0.4),
                                experiment, tmp_path, synthetic=False, note="", protocol_kind="batch", plot=True)
    text = result.markdown_path.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 0.3"))
    assert "0.3 ‡" in row and "0.500" in row                  # realised 0.5 beside nominal 0.3 is flagged
    assert "[" in row and "±" in row                          # sample std and 95 % CI
    assert "5 seed(s)" in text and "Student's t" in text
    row04 = next(line for line in text.splitlines() if line.startswith("| 0.4"))
    assert "‡" not in row04 and "78.5\\*" in row04            # the contested MOSI MR 0.4 F1 is marked
    assert "contested" in text and "not the IMDer paper itself" in text
    assert result.plot_path is not None and result.plot_path.stat().st_size > 0


def test_one_seed_prints_no_zero_spread(tmp_path) -> None:
    experiment = load_experiment("imder_mosi")
    text = sweep.write_tables(_rows([1]), experiment, tmp_path, False, "", "batch").markdown_path.read_text()
    assert "± 0.0" not in text and "1 seed(s)" in text


def test_every_published_number_has_a_source() -> None:
    for dataset, table in IMDER_PUBLISHED.items():
        for rate in table:
            for column in ("Acc-2", "F1", "Acc-7"):
                assert source_of(dataset, rate, column) in ("third-party-script", "unverified")
    assert ("mosi", 0.4, "F1") in CONTESTED and "78.1" in CONTESTED[("mosi", 0.4, "F1")]
    with pytest.raises(KeyError):
        source_of("mosi", 0.9, "F1")


def test_sweep_varies_test_masks_per_seed(monkeypatch, tmp_path) -> None:
    a = make_protocol("sample:0.3", seed=1111).eval_masks(200, 32, "test")
    b = make_protocol("sample:0.3", seed=1112).eval_masks(200, 32, "test")
    assert not np.array_equal(a, b)
    seen = []
    data = SimpleNamespace(synthetic=True, note="synthetic")
    monkeypatch.setattr(sweep, "load_data", lambda *a, **k: data)
    monkeypatch.setattr(sweep, "pretrain_state", lambda *a, **k: {})

    def fake_run(experiment, data, protocol, seed, run_dir, ctx, **kwargs):
        seen.append((seed, protocol.eval_masks(200, 32, "test")))
        return SimpleNamespace(test={"realised_missing_rate": 0.3}), None

    monkeypatch.setattr(sweep, "run_experiment", fake_run)
    sweep.run_sweep(load_experiment("quick_synthetic"), [0.3], [1111, 1112], tmp_path, DistContext(),
                    protocol_kind="sample", progress=False)
    assert [s for s, _ in seen] == [1111, 1112]
    assert not np.array_equal(seen[0][1], seen[1][1])


def test_plot_x_axis_is_the_realised_missing_rate(monkeypatch, tmp_path) -> None:
    import matplotlib.axes

    drawn: list[list[float]] = []
    original = matplotlib.axes.Axes.errorbar

    def record(self, x, y, *args, **kwargs):
        drawn.append(list(x))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", record)
    sweep.write_tables(_rows([1, 2], realised=0.5, rate=0.3) + _rows([1, 2], realised=0.45, rate=0.4),
                       load_experiment("imder_mosi"), tmp_path, False, "", "batch", plot=True)
    assert drawn and all(x == [0.5, 0.45] for x in drawn)          # not the nominal 0.3 and 0.4


def test_sweep_and_compare_default_to_the_reference_run_py_five_seeds() -> None:
    from training.cli import build_parser

    parser = build_parser()
    for argv in (["sweep"], ["compare", "--configs", "quick_compare_imder"]):
        assert parser.parse_args(argv).seeds == [1111, 1112, 1113, 1114, 1115]


def _compare_markdown(tmp_path, seeds: list[int]) -> tuple[str, dict[str, str]]:
    import csv

    from training.compare import MethodSummary, write_compare_tables

    spread = float("nan") if len(seeds) == 1 else 2.0
    stats = {"0.30": {"Non0_acc_2": (60.0, spread), "MAE": (0.9, spread / 40), "recovery_mse": (1.0, spread / 20),
                      "zero_fill_mse": (2.0, spread / 20), "recovery_ratio": (0.5, spread / 80),
                      "realised_missing_rate": (0.5, 0.0)}}
    summary = MethodSummary(load_experiment("quick_compare_imder"), stats, 10, {"default": 1.0, "fast": 0.5},
                            {"default": "em ×10", "fast": "heun ×2"})
    result = write_compare_tables([summary], tmp_path, "batch", True, seeds, summary.experiment)
    return result.markdown_path.read_text(), next(csv.DictReader(result.csv_path.open()))


def test_compare_table_gives_sample_std_95_ci_and_the_realised_missing_rate(tmp_path) -> None:
    from scipy import stats as scipy_stats

    text, row = _compare_markdown(tmp_path / "three", [1, 2, 3])
    half = scipy_stats.t.ppf(0.975, 2) * 2.0 / np.sqrt(3)
    table_row = next(line for line in text.splitlines() if line.startswith("| IMDer"))
    assert f"60.0 ± 2.0 [{60 - half:.1f}, {60 + half:.1f}]" in table_row and "Student's t" in text
    assert "| 0.30 (realised 0.500) |" in table_row and "realised" in text.split("| method")[0]
    assert row["condition"] == "0.30" and float(row["realised_missing_rate_mean"]) == 0.5 and row["seeds"] == "3"
    text, _ = _compare_markdown(tmp_path / "one", [1])
    table_row = next(line for line in text.splitlines() if line.startswith("| IMDer"))
    assert "±" not in table_row and "[" not in table_row and "| 60.0 |" in table_row   # one seed: the mean alone
