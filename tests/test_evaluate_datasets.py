"""``imer-train evaluate`` reads every supported dataset: MMSA pickles, the MMIN release, synthetic benchmarks."""

from __future__ import annotations

import json

import pytest

from imer_core.checkpoint import load_checkpoint, save_checkpoint
from training.cli import main as cli_main
from training.data import write_synthetic_mmin, write_synthetic_mmsa

CMARR_TINY = ["model.options.latent_dim=8", "model.options.encoder_hidden=16", "model.options.encoder_heads=2",
              "model.options.flow_layers=2", "model.options.flow_hidden=16", "model.options.refiner_hidden=16",
              "model.options.head_hidden=16", "model.options.fusion_heads=2", "model.options.supcon_dim=8"]
MMIN_DATA = ["data.synthetic_utterances=40", "data.seq_lens=[8, 12, 10]"]
TRAIN = ["train.max_epochs=1", "train.pretrain_max_epochs=1", "train.batch_size=16"]


def _sets(items):
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def mmin_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmarr") / "run"
    assert cli_main(["train", "--config", "cmarr_iemocap", "--synthetic", "--out", str(out), "--no-progress",
                     "--device", "cpu", *_sets([*TRAIN, *MMIN_DATA, *CMARR_TINY])]) == 0
    return out / "model.pt"


def _evaluate(capsys, *argv) -> dict:
    assert cli_main(["evaluate", "--device", "cpu", *argv]) == 0
    printed = capsys.readouterr().out
    return json.loads(printed[printed.index("{"):])


def test_evaluate_reads_the_mmin_release_and_its_synthetic_benchmark(mmin_checkpoint, tmp_path, capsys) -> None:
    assert load_checkpoint(mmin_checkpoint).checkpoint_metadata["dataset"] == "iemocap"
    root = write_synthetic_mmin(tmp_path / "IEMOCAP_features_2021", "iemocap", n_utterances=40, seed=0)
    on_files = _evaluate(capsys, "--checkpoint", str(mmin_checkpoint), "--data", str(root),
                         *_sets(MMIN_DATA[1:]), "--fold", "2")
    assert on_files["dataset"] == "iemocap" and on_files["fold"] == 2 and on_files["protocol"].startswith("scenario")
    assert 0.0 <= on_files["accuracy"] <= 1.0 and on_files["synthetic"] is False
    synthetic = _evaluate(capsys, "--checkpoint", str(mmin_checkpoint), "--synthetic", *_sets(MMIN_DATA))
    assert synthetic["synthetic"] is True and 0.0 <= synthetic["uar"] <= 1.0


def test_evaluate_reads_mmsa_and_refuses_mismatches_clearly(mmin_checkpoint, small_imder, tmp_path, capsys) -> None:
    from conftest import SMALL_DIMS, SMALL_LEN

    pickle = write_synthetic_mmsa(tmp_path / "synthetic.pkl", seed=1, sizes=(24, 12, 12), seq_len=SMALL_LEN,
                                  dims=SMALL_DIMS)
    ckpt = save_checkpoint(small_imder, tmp_path / "model.pt")         # no metadata: a file means MMSA
    results = _evaluate(capsys, "--checkpoint", str(ckpt), "--data", str(pickle), "--protocol", "sample:0.5")
    assert results["dataset"] == "mmsa" and results["realised_missing_rate"] > 0
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path)]) == 2
    assert "pass --dataset iemocap or msp" in capsys.readouterr().err
    assert cli_main(["evaluate", "--checkpoint", str(mmin_checkpoint), "--data", str(pickle),
                     "--dataset", "mosi"]) == 2
    assert "expected feature dim 768 for mosi" in capsys.readouterr().err
    assert cli_main(["evaluate", "--checkpoint", str(mmin_checkpoint), "--data", str(pickle),
                     "--dataset", "mmsa"]) == 2
    assert "does not fit the checkpoint" in capsys.readouterr().err
    assert cli_main(["evaluate", "--checkpoint", str(ckpt)]) == 2
    assert "pass --data" in capsys.readouterr().err
