"""MMIN feature-release loader on synthetic data in the published layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from training.data import (  # noqa: E402
    MMIN_DATASETS,
    SYNTHETIC_MMIN_NOTE,
    MMINDataset,
    MMINFormatError,
    load_mmin_fold,
    write_synthetic_mmin,
)
from training.data.mmin_synthetic import fold_speakers  # noqa: E402

N_UTT = 60


@pytest.fixture(scope="module")
def iemocap_root(tmp_path_factory) -> Path:
    return write_synthetic_mmin(tmp_path_factory.mktemp("iemocap"), "iemocap", n_utterances=N_UTT,
                                folds=(1, 2), seed=0)


@pytest.fixture(scope="module")
def msp_root(tmp_path_factory) -> Path:
    return write_synthetic_mmin(tmp_path_factory.mktemp("msp"), "msp", n_utterances=N_UTT,
                                folds=(12,), seed=1)


def _speaker(dataset: str, uid: str) -> str:
    if dataset == "iemocap":  # Ses02F_synthetic_F0002
        return f"S{uid[3:5]}{uid[5]}"
    parts = uid.split("-")  # MSP-IMPROV-synthetic-S02-F-0002
    return parts[3] + parts[4]


@pytest.fixture
def broken(iemocap_root, tmp_path) -> Path:
    """A private copy of the IEMOCAP root that a test may damage."""
    return Path(shutil.copytree(iemocap_root, tmp_path / "copy"))


def test_published_layout_written(iemocap_root, msp_root):
    for rel in ("A/comparE.h5", "A/comparE_mean_std.h5", "V/denseface.h5", "L/bert_large.h5"):
        assert (iemocap_root / rel).is_file()
    assert (msp_root / "A/comparE_raw.h5").is_file() and not (msp_root / "A/comparE_mean_std.h5").exists()
    labels = np.load(iemocap_root / "target/1/trn_label.npy")
    names = np.load(iemocap_root / "target/1/trn_int2name.npy")
    assert labels.dtype == np.float32 and labels.ndim == 2 and labels.shape[1] == 4
    assert np.array_equal(labels.sum(axis=1), np.ones(len(labels)))
    assert names.dtype.kind == "S" and names.shape == (len(labels), 1)
    assert "synthetic" in names[0, 0].decode()
    msp_labels = np.load(msp_root / "target/12/tst_label.npy")
    msp_names = np.load(msp_root / "target/12/tst_int2name.npy")
    assert msp_labels.ndim == 1 and msp_labels.dtype.kind == "i" and msp_names.dtype.kind == "U"
    with h5py.File(iemocap_root / "V/denseface.h5", "r") as h5:
        assert h5[names[0, 0].decode()].shape == (50, 342)
    assert "Synthetic" in SYNTHETIC_MMIN_NOTE


@pytest.mark.parametrize("dataset", ["iemocap", "msp"])
def test_round_trip(dataset, iemocap_root, msp_root):
    root, fold = (iemocap_root, 2) if dataset == "iemocap" else (msp_root, 12)
    info = MMIN_DATASETS[dataset]
    splits = load_mmin_fold(root, dataset, fold)
    assert list(splits) == ["train", "valid", "test"]
    assert sum(len(s) for s in splits.values()) == N_UTT
    ids = [set(s.ids.tolist()) for s in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    val_spk, tst_spk = fold_speakers(fold, info.n_folds)
    speakers = {name: {_speaker(dataset, u) for u in s.ids} for name, s in splits.items()}
    assert speakers["valid"] == {val_spk} and speakers["test"] == {tst_spk}
    assert not speakers["train"] & {val_spk, tst_spk}
    lens = splits["train"].seq_lens                       # derived from the data: the longest sequences
    assert np.max([s.lengths.max(axis=0) for s in splits.values()], axis=0).tolist() == list(lens)
    for split in splits.values():
        n = len(split)
        assert split.seq_lens == lens
        assert split.text.shape == (n, lens[0], 1024) and split.text.dtype == np.float32
        assert split.audio.shape == (n, lens[1], 130) and split.audio.dtype == np.float32
        assert split.vision.shape == (n, lens[2], 342) and split.vision.dtype == np.float32
        assert split.labels.dtype == np.int64 and split.lengths.dtype == np.int64
        assert split.lengths.shape == (n, 3) and (split.lengths >= 0).all()
        assert (split.lengths <= np.array(split.seq_lens)).all()
        assert set(split.labels.tolist()) <= {0, 1, 2, 3} and split.classes == info.classes
        for i in range(n):  # padding after the valid steps is exactly zero
            for array, length in zip((split.text, split.audio, split.vision), split.lengths[i]):
                assert not array[i, length:].any()


def test_labels_and_features_match_files(iemocap_root):
    split = load_mmin_fold(iemocap_root, "iemocap", 1, audio_norm="none")["test"]
    one_hot = np.load(iemocap_root / "target/1/tst_label.npy")
    assert np.array_equal(split.labels, one_hot.argmax(axis=1))
    names = [n[0].decode() for n in np.load(iemocap_root / "target/1/tst_int2name.npy")]
    assert split.ids.tolist() == names
    with h5py.File(iemocap_root / "A/comparE.h5", "r") as a, h5py.File(iemocap_root / "L/bert_large.h5") as t:
        raw_audio, raw_text = a[names[0]][()], t[names[0]][()]
    steps = len(raw_audio)                                # no truncation by default
    np.testing.assert_array_equal(split.audio[0, :steps], raw_audio)
    assert split.lengths[0, 1] == steps
    fixed = load_mmin_fold(iemocap_root, "iemocap", 1, audio_norm="none", seq_lens=(22, 60, 50))["test"]
    assert fixed.lengths[0, 1] == min(60, steps)          # MMIN's fixed-length export: 6 s at 10 frames/s
    np.testing.assert_array_equal(split.text[0], raw_text)


def test_padding_truncation_and_norm(iemocap_root):
    raw = load_mmin_fold(iemocap_root, "iemocap", 1, audio_norm="none")["train"]
    short = load_mmin_fold(iemocap_root, "iemocap", 1, seq_lens=(5, 8, 70), audio_norm="none")["train"]
    assert short.seq_lens == (5, 8, 70)
    np.testing.assert_array_equal(short.text, raw.text[:, :5])
    np.testing.assert_array_equal(short.audio, raw.audio[:, :8])
    np.testing.assert_array_equal(short.vision[:, :50], raw.vision)
    assert not short.vision[:, 50:].any()
    assert (short.lengths == np.minimum(raw.lengths, [5, 8, 70])).all()
    norm = load_mmin_fold(iemocap_root, "iemocap", 1)["train"]  # published fold statistics
    with h5py.File(iemocap_root / "A/comparE_mean_std.h5", "r") as h5:
        mean, std = h5["1"]["mean"][()], h5["1"]["std"][()]
    i, steps = 0, norm.lengths[0, 1]
    expected = (raw.audio[i, :steps] - mean) / std
    np.testing.assert_allclose(norm.audio[i, :steps], expected, rtol=1e-5, atol=1e-5)
    assert abs(float(norm.audio[:, :10].mean())) < 0.2
    assert np.isfinite(load_mmin_fold(iemocap_root, "iemocap", 1, audio_norm="train")["test"].audio).all()


def test_msp_whole_file_audio_statistics(msp_root):
    raw = load_mmin_fold(msp_root, "msp", 12, audio_norm="none")["test"]
    norm = load_mmin_fold(msp_root, "msp", 12)["test"]
    with h5py.File(msp_root / "A/comparE_raw.h5", "r") as h5:  # MMIN calc_mean_std: every stored frame
        frames = np.concatenate([h5[k][()] for k in h5.keys()]).astype(np.float64)
    mean, std = frames.mean(axis=0), frames.std(axis=0)
    steps = norm.lengths[0, 1]
    expected = (raw.audio[0, :steps] - mean) / std
    np.testing.assert_allclose(norm.audio[0, :steps], expected, rtol=1e-4, atol=1e-4)


def test_dataset_items(iemocap_root):
    split = load_mmin_fold(iemocap_root, "iemocap", 1)["valid"]
    dataset = MMINDataset(split)
    item = dataset[3]
    assert set(item) == {"index", "text", "audio", "vision", "label", "lengths"}
    assert item["label"].dtype == torch.int64 and item["label"].shape == ()
    assert item["lengths"].shape == (3,) and item["audio"].shape == (split.seq_lens[1], 130)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["text"].shape == (4, 22, 1024) and batch["label"].dtype == torch.int64


def _expect(root, match, **kwargs):
    with pytest.raises(MMINFormatError, match=match):
        load_mmin_fold(root, kwargs.pop("dataset", "iemocap"), kwargs.pop("fold", 1), **kwargs)


def test_missing_paths(broken, tmp_path):
    _expect(tmp_path / "nope", "feature root not found")
    _expect(broken, "fold 3 not found", fold=3)
    (broken / "V/denseface.h5").unlink()
    _expect(broken, "vision feature file not found.*denseface.h5")
    (broken / "target/1/val_label.npy").unlink()
    _expect(broken, "label file not found.*val_label.npy")
    shutil.rmtree(broken / "target")
    _expect(broken, "target folder not found")


def test_missing_stats(broken):
    (broken / "A/comparE_mean_std.h5").unlink()
    _expect(broken, "audio statistics file not found")
    load_mmin_fold(broken, "iemocap", 1, audio_norm="train")  # not needed then


def test_unknown_utterance(broken):
    names = np.load(broken / "target/1/tst_int2name.npy")
    names[0, 0] = b"Ses09X_not_there"
    np.save(broken / "target/1/tst_int2name.npy", names)
    _expect(broken, r"1 test utterance id.*not in .*\.h5.*Ses09X_not_there")


def test_wrong_feature_dim(broken):
    uid = np.load(broken / "target/1/trn_int2name.npy")[0, 0].decode()
    with h5py.File(broken / "L/bert_large.h5", "r+") as h5:
        del h5[uid]
        h5[uid] = np.zeros((22, 768), dtype=np.float32)
    _expect(broken, f"bert_large.h5.*{uid}.*expected feature dim 1024, got 768")
    with h5py.File(broken / "L/bert_large.h5", "r+") as h5:
        del h5[uid]
        h5[uid] = np.full((22, 1024), np.nan, dtype=np.float32)
    _expect(broken, f"bert_large.h5.*{uid}.*NaN/inf")


def test_count_mismatch_and_bad_labels(broken):
    labels = np.load(broken / "target/1/val_label.npy")
    np.save(broken / "target/1/val_label.npy", labels[:-1])
    _expect(broken, r"val_label.npy has \d+ labels but .*val_int2name.npy has \d+")
    np.save(broken / "target/1/val_label.npy", labels[:, :3])
    _expect(broken, "one-hot labels need 4 columns")
    np.save(broken / "target/1/val_label.npy", np.full(len(labels), 7))
    _expect(broken, "class ids in 0..3")
    np.save(broken / "target/1/val_label.npy", np.array([{"a": 1}] * len(labels), dtype=object))
    _expect(broken, "Python objects")


def test_argument_errors(iemocap_root):
    with pytest.raises(ValueError, match="fold must be"):
        load_mmin_fold(iemocap_root, "iemocap", 11)
    with pytest.raises(ValueError, match="unknown MMIN dataset"):
        load_mmin_fold(iemocap_root, "mosi", 1)
    with pytest.raises(ValueError, match="audio_norm"):
        load_mmin_fold(iemocap_root, "iemocap", 1, audio_norm="utt")


def test_synthetic_labels_predictable_from_each_modality(tmp_path):
    from sklearn.linear_model import LogisticRegression
    root = write_synthetic_mmin(tmp_path / "big", "iemocap", n_utterances=200, folds=(1,), seed=5)
    splits = load_mmin_fold(root, "iemocap", 1)
    held_out = [splits["valid"], splits["test"]]

    def pooled(split, m):  # mean over valid steps
        values = getattr(split, ("text", "audio", "vision")[m])
        return values.sum(1) / np.maximum(split.lengths[:, m], 1)[:, None]

    for m in range(3):
        clf = LogisticRegression(max_iter=2000).fit(pooled(splits["train"], m), splits["train"].labels)
        x = np.concatenate([pooled(s, m) for s in held_out])
        y = np.concatenate([s.labels for s in held_out])
        assert clf.score(x, y) > 0.5  # chance is about 0.25
