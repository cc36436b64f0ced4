"""Tests of the MMSA pickle loader and the synthetic MMSA-schema generator."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from training.data import (
    REQUIRED_KEYS,
    SPLITS,
    SYNTHETIC_NOTE,
    MMSADataset,
    MMSAFormatError,
    file_sha256,
    load_mmsa,
    make_synthetic_mmsa,
    synthetic_file_name,
    write_synthetic_mmsa,
)

TINY = {"sizes": (60, 20, 30), "seq_len": 10, "dims": (16, 5, 8)}


def _dump(data: dict, path: Path) -> Path:
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return path


@pytest.fixture()
def tiny_file(tmp_path: Path) -> Path:
    return write_synthetic_mmsa(tmp_path / synthetic_file_name("mosi"), seed=1, **TINY)


def test_synthetic_matches_published_mosi_schema() -> None:
    data = make_synthetic_mmsa("mosi", sizes=(4, 3, 2))
    assert set(data) == set(SPLITS)
    for split, n in zip(SPLITS, (4, 3, 2)):
        part = data[split]
        assert set(part) == set(REQUIRED_KEYS)
        assert part["text"].shape == (n, 50, 768) and part["text"].dtype == np.float32
        assert part["text_bert"].shape == (n, 3, 50) and part["text_bert"].dtype.kind == "i"
        assert part["audio"].shape == (n, 50, 5) and part["audio"].dtype == np.float32
        assert part["vision"].shape == (n, 50, 20) and part["vision"].dtype == np.float32
        assert part["regression_labels"].shape == (n,) and part["regression_labels"].dtype == np.float32
        assert list(part["audio_lengths"]) == [50] * n and list(part["vision_lengths"]) == [50] * n
        assert all(i.startswith("synthetic_") for i in part["id"])
        assert all("synthetic" in t for t in part["raw_text"])
        labels, classes = part["regression_labels"], part["classification_labels"]
        np.testing.assert_array_equal(classes, np.where(labels < 0, 0, np.where(labels > 0, 2, 1)))
        names = np.array(["Negative", "Neutral", "Positive"])[classes]
        np.testing.assert_array_equal(part["annotations"], names)
    assert "synthetic" in SYNTHETIC_NOTE.lower()


def test_synthetic_mosei_dims_and_determinism() -> None:
    data = make_synthetic_mmsa("mosei", sizes=(3, 2, 2), seq_len=6)
    assert data["train"]["audio"].shape == (3, 6, 74) and data["train"]["vision"].shape == (3, 6, 35)
    again = make_synthetic_mmsa("mosei", sizes=(3, 2, 2), seq_len=6)
    np.testing.assert_array_equal(data["test"]["text"], again["test"]["text"])
    ids = np.concatenate([data[s]["id"] for s in SPLITS])
    assert len(set(ids)) == len(ids)


def test_round_trip_replaces_neg_inf_audio(tiny_file: Path) -> None:
    with open(tiny_file, "rb") as handle:
        raw = pickle.load(handle)
    splits = load_mmsa(tiny_file, dataset=None)
    for name in SPLITS:
        split, source = splits[name], raw[name]
        neg_inf = np.isneginf(source["audio"])
        assert neg_inf.any(), "the generator must plant -inf audio values"
        assert np.isfinite(split.audio).all()
        assert (split.audio[neg_inf] == 0).all()
        np.testing.assert_array_equal(split.audio[~neg_inf], source["audio"][~neg_inf])
        np.testing.assert_array_equal(split.text, source["text"])
        np.testing.assert_array_equal(split.regression_labels, source["regression_labels"])
        assert split.dims == (16, 5, 8) and split.seq_lens == (10, 10, 10)
        assert split.text.dtype == split.audio.dtype == split.vision.dtype == np.float32
        assert split.regression_labels.dtype == np.float32
        assert split.classification_labels.dtype == np.int64
        assert split.audio_lengths.dtype == np.int64 and (split.audio_lengths == 10).all()
        assert list(split.ids) == list(source["id"])


def test_dataset_items_collate_with_default_collate(tiny_file: Path) -> None:
    split = load_mmsa(tiny_file)["train"]
    dataset = MMSADataset(split)
    item = dataset[3]
    assert item["index"] == 3 and item["label"].shape == () and item["label"].dtype == torch.float32
    batch = next(iter(DataLoader(dataset, batch_size=7, shuffle=False)))
    assert batch["text"].shape == (7, 10, 16) and batch["audio"].shape == (7, 10, 5)
    assert batch["vision"].shape == (7, 10, 8) and batch["label"].shape == (7,)
    assert batch["index"].tolist() == list(range(7))
    bert = next(iter(DataLoader(MMSADataset(split, text_key="text_bert"), batch_size=4)))
    assert bert["text"].shape == (4, 3, 10) and bert["text"].dtype == torch.float32
    assert (bert["text"][:, 0, 0] == 101).all()
    with pytest.raises(ValueError, match="text_key"):
        MMSADataset(split, text_key="words")


def test_dataset_dims_checked_against_published(tmp_path: Path) -> None:
    path = write_synthetic_mmsa(tmp_path / "mosi.pkl", sizes=(3, 2, 2), seq_len=4)
    assert load_mmsa(path, dataset="mosi")["valid"].dims == (768, 5, 20)
    with pytest.raises(MMSAFormatError, match=r"'audio'.*expected feature dim 74 for mosei, got 5"):
        load_mmsa(path, dataset="mosei")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_mmsa(path, dataset="sims")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MMSAFormatError, match="not found"):
        load_mmsa(tmp_path / "nope.pkl")


def test_truncated_file(tiny_file: Path) -> None:
    blob = tiny_file.read_bytes()
    tiny_file.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(MMSAFormatError, match=r"truncated or corrupt.*re-download") as info:
        load_mmsa(tiny_file)
    assert str(tiny_file) in str(info.value)


def test_missing_split_and_key(tmp_path: Path) -> None:
    data = make_synthetic_mmsa(**TINY)
    del data["valid"]
    with pytest.raises(MMSAFormatError, match=r"missing split\(s\) \['valid'\]"):
        load_mmsa(_dump(data, tmp_path / "a.pkl"))
    data = make_synthetic_mmsa(**TINY)
    del data["test"]["vision_lengths"]
    with pytest.raises(MMSAFormatError, match=r"\['test'\].*missing key\(s\) \['vision_lengths'\]"):
        load_mmsa(_dump(data, tmp_path / "b.pkl"))


def test_wrong_shape_and_counts(tmp_path: Path) -> None:
    data = make_synthetic_mmsa(**TINY)
    data["train"]["audio"] = data["train"]["audio"].mean(axis=1)
    with pytest.raises(MMSAFormatError, match=r"'audio'.*expected 3 dimensions.*got shape \(60, 5\)"):
        load_mmsa(_dump(data, tmp_path / "a.pkl"))
    data = make_synthetic_mmsa(**TINY)
    data["valid"]["text_bert"] = data["valid"]["text_bert"][:, :2]
    with pytest.raises(MMSAFormatError, match=r"'text_bert'.*expected shape \(N, 3, 10\)"):
        load_mmsa(_dump(data, tmp_path / "b.pkl"))
    data = make_synthetic_mmsa(**TINY)
    data["train"]["regression_labels"] = data["train"]["regression_labels"][:-1]
    with pytest.raises(MMSAFormatError, match=r"sample counts differ.*'regression_labels': 59"):
        load_mmsa(_dump(data, tmp_path / "c.pkl"))


def test_non_finite_labels_and_features(tmp_path: Path) -> None:
    data = make_synthetic_mmsa(**TINY)
    data["train"]["regression_labels"][[1, 4, 7]] = np.nan
    data["train"]["regression_labels"][9] = np.inf
    with pytest.raises(MMSAFormatError, match=r"'regression_labels'.*3 NaN and 1 infinite"):
        load_mmsa(_dump(data, tmp_path / "a.pkl"))
    data = make_synthetic_mmsa(**TINY)
    data["test"]["vision"][0, 0, :2] = np.nan
    with pytest.raises(MMSAFormatError, match=r"\['test'\]\['vision'\]: 2 NaN"):
        load_mmsa(_dump(data, tmp_path / "b.pkl"))


def test_sha256_check(tiny_file: Path) -> None:
    digest = file_sha256(tiny_file)
    assert len(load_mmsa(tiny_file, expected_sha256=digest.upper())["train"]) == 60
    with pytest.raises(MMSAFormatError, match="SHA-256 mismatch"):
        load_mmsa(tiny_file, expected_sha256="0" * 64)


def test_labels_predictable_from_each_modality_best_from_all() -> None:
    data = make_synthetic_mmsa(seed=3, sizes=(600, 50, 400), seq_len=20, dims=(24, 5, 12))

    def features(split: str, keys: tuple[str, ...]) -> np.ndarray:
        parts = []
        for key in keys:
            x = data[split][key].copy()
            x[np.isneginf(x)] = 0.0
            parts.append(x.mean(axis=1))
        return np.concatenate(parts + [np.ones((len(parts[0]), 1), np.float32)], axis=1)

    def held_out_r2(keys: tuple[str, ...]) -> float:
        weights, *_ = np.linalg.lstsq(features("train", keys), data["train"]["regression_labels"], rcond=None)
        pred, true = features("test", keys) @ weights, data["test"]["regression_labels"]
        return 1.0 - float(((pred - true) ** 2).sum() / ((true - true.mean()) ** 2).sum())

    single = {key: held_out_r2((key,)) for key in ("text", "audio", "vision")}
    joint = held_out_r2(("text", "audio", "vision"))
    assert all(r2 > 0.05 for r2 in single.values()), single
    assert joint > max(single.values()) + 0.05, (joint, single)


class _RunsCode:
    """Pickles to a call of ``os.system``: loading it with pickle.load would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_naming_the_global(tmp_path: Path) -> None:
    marker = tmp_path / "payload_ran"
    data = make_synthetic_mmsa(**TINY)
    data["train"]["raw_text"] = _RunsCode(marker)
    path = _dump(data, tmp_path / "evil.pkl")
    with pytest.raises(MMSAFormatError, match=r"posix\.system.*--trust-pickle"):
        load_mmsa(path)
    assert not marker.exists()


def test_trust_pickle_loads_a_file_with_other_globals(tmp_path: Path) -> None:
    from collections import OrderedDict
    data = make_synthetic_mmsa(**TINY)
    data["train"] = OrderedDict(data["train"])
    path = _dump(data, tmp_path / "ordered.pkl")
    with pytest.raises(MMSAFormatError, match="collections.OrderedDict"):
        load_mmsa(path)
    assert len(load_mmsa(path, trust_pickle=True)["train"]) == 60


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_reads_every_protocol_numpy_writes(tmp_path: Path, protocol: int) -> None:
    data = make_synthetic_mmsa(**TINY)
    data["train"]["audio_lengths"] = [np.int64(10)] * 60  # lists of numpy scalars, as published
    data["train"]["raw_text"] = np.array(list(data["train"]["raw_text"]), dtype=object)
    with open(tmp_path / "p.pkl", "wb") as handle:
        pickle.dump(data, handle, protocol=protocol)
    split = load_mmsa(tmp_path / "p.pkl")["train"]
    assert split.audio_lengths.tolist() == [10] * 60 and split.raw_text.dtype.kind == "U"


def test_published_names_are_checked_against_the_mmsa_readme_digests(tiny_file: Path, tmp_path: Path) -> None:
    from training.data import KNOWN_SHA256
    assert set(KNOWN_SHA256) == {"mosi/aligned_50.pkl", "mosi/unaligned_50.pkl", "mosei/aligned_50.pkl",
                                 "mosei/unaligned_50.pkl"}
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in KNOWN_SHA256.values())
    renamed = tmp_path / "MOSI" / "aligned_50.pkl"
    renamed.parent.mkdir()
    renamed.write_bytes(tiny_file.read_bytes())
    with pytest.raises(MMSAFormatError, match="published SHA-256.*--skip-sha256"):
        load_mmsa(renamed)
    with pytest.raises(MMSAFormatError, match="published SHA-256"):
        load_mmsa(renamed, dataset=None)
    assert len(load_mmsa(renamed, verify_sha256=False)["train"]) == 60
    assert len(load_mmsa(tiny_file)["train"]) == 60  # other names: no published digest to check


def test_imer_train_refuses_the_payload_with_one_line(tmp_path: Path, capsys) -> None:
    from training.cli import main
    marker = tmp_path / "payload_ran"
    data = make_synthetic_mmsa(**TINY)
    data["valid"]["id"] = _RunsCode(marker)
    path = _dump(data, tmp_path / "evil.pkl")
    assert main(["train", "--config", "quick_synthetic", "--data", str(path), "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "posix.system" in err[0] and not marker.exists()


def test_the_digest_check_is_on_by_default_in_imer_train_and_skip_sha256_turns_it_off(tmp_path: Path,
                                                                                      capsys) -> None:
    from training.cli import _experiment, build_parser, main
    from training.data import KNOWN_SHA256
    # the four digests of the thuiar/MMSA README ("SHA-256 for feature files"), compared by hand on 2026-12-07
    assert KNOWN_SHA256["mosi/aligned_50.pkl"].startswith("d3994fd2") and \
        KNOWN_SHA256["mosei/unaligned_50.pkl"].endswith("6dd6fec1f")
    renamed = write_synthetic_mmsa(tmp_path / "MOSI" / "Processed" / "aligned_50.pkl", dataset="mosi",
                                   sizes=(4, 3, 2), seed=1)          # MOSI's dims, not the published file
    argv = ["train", "--config", "quick_synthetic", "--data", str(renamed), "--out", str(tmp_path / "run"),
            "--no-progress"]
    assert main(argv) == 2                                          # checked by default: refused in one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "published SHA-256" in err[0] and "--skip-sha256" in err[0]
    experiment = _experiment(build_parser().parse_args([*argv, "--skip-sha256"]))
    assert experiment.data.option("verify_sha256") is False
    from training.runner import load_data
    assert load_data(experiment, tmp_path / "data").datasets["train"] is not None
