"""Six-scenario CV, the method comparison and their CLI on tiny synthetic data (fast, CPU)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from training.cli import main as cli_main
from training.compare import run_compare
from training.cv import run_cv
from training.distributed import DistContext
from training.experiment import load_experiment
from training.runner import build_model, load_data
from training.scenarios import COMPLETE_SCENARIO, MISSING_SCENARIO_NAMES

SCENARIO_ROWS = {*MISSING_SCENARIO_NAMES, COMPLETE_SCENARIO}
TRAIN = ["train.max_epochs=1", "train.pretrain_max_epochs=1", 'train.device="cpu"', "train.batch_size=16"]
TINY = {  # tiny but structurally complete models (U-Net GroupNorm needs 32 channels)
    "imder": ["model.nlevels=1", "model.options.sampler_steps=2", "model.options.train_sampler_steps=2",
              "model.options.refiner_blocks=1", "model.options.score_channels=[32, 32, 32, 32]",
              "model.options.score_embed_dim=16"],
    "rohydr": ["model.nlevels=1", "model.options.sampler_steps=2", "model.options.train_sampler_steps=2",
               "model.options.refiner_blocks=1", "model.options.dit_depth=1", "model.options.dit_hidden=16",
               "model.options.dit_heads=2"],
    "cmarr": ["model.options.latent_dim=8", "model.options.encoder_hidden=16", "model.options.encoder_heads=2",
              "model.options.flow_layers=2", "model.options.flow_hidden=16", "model.options.refiner_hidden=16",
              "model.options.head_hidden=16", "model.options.fusion_heads=2", "model.options.supcon_dim=8"],
}
MMIN_TINY = ["data.synthetic_utterances=40", "data.folds=[1, 2]", "data.seq_lens=[18, 18, 18]"]
MMSA_TINY = ["data.synthetic_sizes=[48, 16, 16]", "data.synthetic_dims=[16, 5, 20]", "data.synthetic_seq_len=18"]


def _set_args(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def test_load_data_mmin_labels_and_specs(tmp_path):
    exp = load_experiment("cmarr_iemocap", ["data.synthetic=true", *MMIN_TINY])
    data = load_data(exp, tmp_path, fold=2)
    assert data.labels == ("anger", "happiness", "neutral", "sadness") and data.fold == 2 and data.synthetic
    assert [s.seq_len for s in data.specs] == [18, 18, 18] and data.specs.text.dim == 1024
    model = build_model(load_experiment("cmarr_iemocap", TINY["cmarr"]), data.specs, data.labels)
    assert model.config.labels == data.labels and model.config.output_dim == 4
    mmsa = load_experiment("cmarr_mosi", ["data.synthetic=true", "model.task=\"classification\"", *MMSA_TINY])
    loaded = load_data(mmsa, tmp_path)
    assert loaded.labels == ("negative", "neutral", "positive")
    label = loaded.datasets["train"][0]["label"]
    assert label.dtype == torch.int64 and 0 <= int(label) <= 2


def test_cv_writes_seven_scenarios_with_war_uar(tmp_path):
    exp = load_experiment("quick_cv_cmarr", [*MMIN_TINY, *TRAIN, *TINY["cmarr"]])
    result = run_cv(exp, tmp_path / "cv", DistContext(), progress=False)
    assert sorted(result.per_fold) == [1, 2] and result.synthetic
    with result.csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    for fold in ("1", "2"):
        scenarios = {r["scenario"] for r in rows if r["fold"] == fold}
        assert scenarios == SCENARIO_ROWS | {"missing_avg"}
    for row in rows:
        assert 0.0 <= float(row["war"]) <= 1.0 and 0.0 <= float(row["uar"]) <= 1.0
        assert math.isnan(float(row["recovery_mse"])) == (row["scenario"] == COMPLETE_SCENARIO)
    markdown = result.markdown_path.read_text()
    assert "SYNTHETIC" in markdown and "{a,v,l} (complete)" in markdown and "average (6 missing)" in markdown
    summary = json.loads(result.json_path.read_text())
    assert summary["synthetic"] and summary["summary"]["n_folds"] == 2
    assert set(summary["summary"]) >= SCENARIO_ROWS


def test_compare_three_methods_missing_rates(tmp_path):
    experiments = [load_experiment(f"quick_compare_{m}", [*MMSA_TINY, *TRAIN, *TINY[m]])
                   for m in ("imder", "rohydr", "cmarr")]
    result = run_compare(experiments, tmp_path / "cmp", DistContext(), "batch", [0.0, 0.5], [1], progress=False,
                         latency_runs=1, fast_steps=2)
    with result.csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["method"], r["condition"]) for r in rows} == {
        (m, c) for m in ("imder", "rohydr", "cmarr") for c in ("0.00", "0.50")}
    for row in rows:
        assert int(row["parameters"]) > 0 and float(row["latency_default_ms"]) > 0 and float(row["latency_fast_ms"]) > 0
        if row["condition"] == "0.50":
            ratio = float(row["recovery_ratio_mean"])
            assert ratio > 0 and math.isclose(ratio, float(row["recovery_mse_mean"]) / float(row["zero_fill_mse_mean"]))
    markdown = result.markdown_path.read_text()
    assert "SYNTHETIC" in markdown and "latency fast (ms)" in markdown and "ratio" in markdown


def test_compare_scenario_protocol_runs_cv_per_method(tmp_path):
    experiments = [load_experiment(f"quick_cv_{m}", [*MMIN_TINY, "data.folds=[1]", *TRAIN, *TINY[m]])
                   for m in ("imder", "cmarr")]
    experiments[1] = load_experiment("quick_cv_cmarr", ["data.seq_lens=[8, 12, 10]", *TRAIN, *TINY["cmarr"]])
    result = run_compare(experiments, tmp_path / "cmp", DistContext(), "scenario", seeds=[1], progress=False,
                         latency_runs=1, fast_steps=2)
    rows = list(csv.DictReader(result.csv_path.open()))
    assert {r["method"] for r in rows} == {"imder", "cmarr"}
    assert {r["condition"] for r in rows} == SCENARIO_ROWS | {"missing_avg"}
    assert all(0 <= float(r["accuracy_mean"]) <= 100 and 0 <= float(r["uar_mean"]) <= 100 for r in rows)
    # every method saw the first config's data (40 utterances, fold 1), with its own padding length
    assert (tmp_path / "cmp" / "quick_cv_cmarr" / "fold1").is_dir()
    assert not (tmp_path / "cmp" / "quick_cv_cmarr" / "fold2").exists()


def test_cli_compare_single_method(tmp_path):
    out = tmp_path / "cmp"
    code = cli_main(["compare", "--configs", "quick_compare_cmarr", "--synthetic", "--missing-rates", "0.3",
                     "--seeds", "2", "--out", str(out), "--no-progress", "--device", "cpu", "--latency-runs", "1",
                     *_set_args([*MMSA_TINY, *TRAIN, *TINY["cmarr"]])])
    assert code == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [(r["method"], r["condition"]) for r in rows] == [("cmarr", "0.30")]


def test_cli_errors_are_clear(tmp_path, capsys):
    assert cli_main(["cv", "--config", "no_such_config", "--synthetic"]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad_method.toml"
    bad.write_text('[data]\ndataset = "mosi"\nsynthetic = true\n[model]\nmethod = "nosuchmethod"\n')
    assert cli_main(["compare", "--configs", f"quick_compare_cmarr,{bad}", "--synthetic", "--out",
                     str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown recovery method 'nosuchmethod'" in err and "cmarr" in err
    assert cli_main(["compare", "--configs", "quick_compare_cmarr", "--protocol-kind", "scenario",
                     "--out", str(tmp_path / "y")]) == 2
    assert "does not fit dataset" in capsys.readouterr().err
    assert cli_main(["cv", "--config", "quick_compare_cmarr", "--out", str(tmp_path / "z")]) == 2
    assert "needs an MMIN dataset" in capsys.readouterr().err


@pytest.mark.parametrize("config, extra", [
    ("rohydr_mosi", [*MMSA_TINY, *TINY["rohydr"]]),
    ("cmarr_iemocap", ["data.synthetic_utterances=40", "data.seq_lens=[8, 12, 10]", *TINY["cmarr"]]),
])
def test_cli_train_smoke_reference_configs(tmp_path, config, extra):
    out = tmp_path / "run"
    code = cli_main(["train", "--config", config, "--synthetic", "--out", str(out), "--no-progress",
                     "--device", "cpu", *_set_args([*TRAIN, *extra])])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["synthetic"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == ("scenario" if config.startswith("cmarr") else "batch:0.3")
    assert (out / "model.pt").is_file()
