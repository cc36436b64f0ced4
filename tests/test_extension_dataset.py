"""A dataset registered from test code alone is trained and compared by ``imer-train`` from a config file."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from imer_core.modalities import FeatureSpecs
from training.cli import main as cli_main
from training.data.source import (
    RATE,
    DataSource,
    LoadedData,
    available_datasets,
    data_source,
    register_data_source,
    unregister_data_source,
)
from training.experiment import load_experiment

CLASSES = ("calm", "loud")
DIMS, SEQ = (6, 4, 5), 3


@dataclass(frozen=True)
class BlobOptions:
    """Options of the toy source: samples per split and the class separation."""

    samples: tuple[int, int, int] = (32, 16, 16)
    separation: float = 2.0


class BlobDataset(Dataset):
    """Two Gaussian blobs per modality; every modality carries the class."""

    def __init__(self, n: int, separation: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.labels = np.arange(n) % 2
        sign = (2 * self.labels - 1)[:, None, None] * separation / 2
        self.features = {name: (rng.normal(size=(n, SEQ, d)) + sign).astype(np.float32)
                         for name, d in zip(("text", "audio", "vision"), DIMS)}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        item = {name: torch.from_numpy(values[index]) for name, values in self.features.items()}
        return {"index": index, **item, "label": torch.tensor(int(self.labels[index]))}


def load_blobs(experiment, cache_dir: Path, fold: int | None = None) -> LoadedData:
    opts: BlobOptions = experiment.data.options
    datasets = {split: BlobDataset(n, opts.separation, experiment.data.synthetic_seed + i)
                for i, (split, n) in enumerate(zip(("train", "valid", "test"), opts.samples))}
    specs = FeatureSpecs.from_dims(DIMS, SEQ, extractor="toy-blobs")
    return LoadedData(datasets, specs, "generated blobs", True, "TOY blobs: synthetic, not a corpus",
                      CLASSES)


BLOBS = DataSource("blobs", ("toy-blobs",), load_blobs, default_protocol="batch:0.3", protocol_kind=RATE,
                   options=BlobOptions, description="nothing (generated)")

CONFIG = """
[data]
dataset = "toy-blobs"
synthetic = true
separation = 3.0

[model]
method = "cmarr"
task = "classification"

[model.options]
latent_dim = 8
encoder_hidden = 16
encoder_heads = 2
flow_layers = 2
flow_hidden = 16
refiner_hidden = 16
head_hidden = 16
fusion_heads = 2
supcon_dim = 8

[train]
batch_size = 16
max_epochs = 1
pretrain_max_epochs = 1
device = "cpu"
"""


@pytest.fixture
def blobs(tmp_path):
    register_data_source(BLOBS)
    config = tmp_path / "toy_blobs_cmarr.toml"
    config.write_text(CONFIG)
    yield config
    unregister_data_source(BLOBS)


def test_a_registered_dataset_is_read_from_a_config(blobs):
    assert "toy-blobs" in available_datasets() and data_source("toy-blobs") is BLOBS
    experiment = load_experiment(str(blobs), ["data.samples=[8, 4, 4]"])
    assert experiment.data.options == BlobOptions((8, 4, 4), 3.0)
    assert experiment.data.source.default_protocol == "batch:0.3"
    with pytest.raises(ValueError, match="unknown key\\(s\\) \\['folds'\\] for dataset 'toy-blobs'"):
        load_experiment(str(blobs), ["data.folds=[1]"])
    with pytest.raises(ValueError, match="already served by 'blobs'"):
        register_data_source(BLOBS.__class__("other", ("toy-blobs",), load_blobs, "batch:0.3"))


def test_an_unknown_dataset_names_the_registered_ones(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\ndataset = "nosuch"\n')
    with pytest.raises(ValueError, match="unknown dataset 'nosuch'; supported: .*iemocap.*live.*mosi"):
        load_experiment(str(bad))


def test_imer_train_trains_and_compares_on_a_registered_dataset(blobs, tmp_path):
    assert cli_main(["train", "--config", str(blobs), "--out", str(tmp_path / "train"), "--no-progress"]) == 0
    assert (tmp_path / "train" / "model.pt").is_file()
    out = tmp_path / "compare"
    assert cli_main(["compare", "--configs", str(blobs), "--out", str(out), "--missing-rates", "0.0,0.3",
                     "--seeds", "1", "--latency-runs", "1", "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert {r["condition"] for r in rows} == {"0.00", "0.30"} and {r["config"] for r in rows} == {blobs.stem}
    assert all(r["synthetic"] == "True" for r in rows)
