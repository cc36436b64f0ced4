"""Live-model corpora: label mapping, corpus readers (schema-exact tiny trees), audio windows, real-data counts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from imer_core.config import LIVE_EMOTIONS
from training.cli import main
from training.live.corpora import (
    CorpusNotFound,
    check_corpus,
    emodb_clips,
    load_fer2013,
    meld_utterances,
    ravdess_clips,
    spread_subset,
)
from training.live.extract import loudest_window
from training.live.labels import CORPUS_LABEL_MAPS, live_index, live_label, mapping_table

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
               "Episode", "StartTime", "EndTime"]


def test_every_mapping_lands_in_the_live_label_space():
    for corpus, mapping in CORPUS_LABEL_MAPS.items():
        targets = {t for t in mapping.values() if t is not None}
        assert targets <= set(LIVE_EMOTIONS), corpus
    assert live_label("ravdess", "calm") == "neutral"
    assert live_label("emodb", "boredom") is None and live_index("emodb", "boredom") == -1
    assert live_index("meld", "joy") == LIVE_EMOTIONS.index("happy")
    assert live_index("fer2013", "disgust") == LIVE_EMOTIONS.index("disgusted")
    assert {"corpus": "emodb", "source": "boredom", "live": "(dropped)"} in mapping_table()
    with pytest.raises(KeyError, match="unknown emotion"):
        live_label("meld", "calm")


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_audio_readers_parse_names_and_split_by_speaker(tmp_path):
    for name in ("03-01-02-01-01-01-01", "03-01-08-02-02-01-19", "03-01-05-01-01-02-24"):
        _touch(tmp_path / "ravdess_speech" / f"Actor_{name[-2:]}" / f"{name}.flac")
    for name in ("03a01Lb", "12b02Fa", "16a05Ab"):
        _touch(tmp_path / "emodb" / f"{name}.flac")
    clips = ravdess_clips(tmp_path)
    assert [(c.source_label, c.split, c.speaker) for c in clips] == [   # sorted by file name
        ("calm", "train", "ravdess-01"), ("angry", "test", "ravdess-24"), ("surprised", "val", "ravdess-19")]
    assert clips[2].sentence == "Dogs are sitting by the door"
    emodb = emodb_clips(tmp_path)
    assert [(c.source_label, c.split) for c in emodb] == [("boredom", "train"), ("happiness", "val"),
                                                          ("fear", "test")]
    _touch(tmp_path / "emodb" / "bad_name.flac")
    with pytest.raises(ValueError, match="SSTTTEV"):
        emodb_clips(tmp_path)


def test_fer_and_meld_readers(tmp_path):
    (tmp_path / "fer2013").mkdir()
    np.savez(tmp_path / "fer2013" / "fer2013_48x48.npz", images=np.zeros((3, 48, 48), np.uint8),
             labels=np.array([3, 1, 6], np.int8), split=np.array(["train", "val", "test"]),
             source_name=np.array(["train/happy/0.jpg", "x/1.jpg", "y/2.jpg"]),
             classes=np.array(["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]))
    fer = load_fer2013(tmp_path)
    assert fer.source_labels.tolist() == ["happy", "disgust", "surprise"] and fer.images.shape == (3, 48, 48)
    meld = tmp_path / "meld"
    meld.mkdir()
    for name, emotion in (("train", "joy"), ("dev", "fear"), ("test", "neutral")):
        with (meld / f"{name}_sent_emo.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(MELD_HEADER)
            writer.writerow([1, f" {name} line ", "Ross", emotion, "x", 0, 0, 1, 1, "0", "1"])
    rows = meld_utterances(tmp_path)
    assert [(r.text, r.split, r.source_label) for r in rows] == [
        ("train line", "train", "joy"), ("dev line", "val", "fear"), ("test line", "test", "neutral")]


def test_missing_data_fails_clearly(tmp_path, capsys):
    with pytest.raises(CorpusNotFound, match="data root .* does not exist"):
        check_corpus(tmp_path / "nope", "meld")
    with pytest.raises(CorpusNotFound, match="meld"):
        check_corpus(tmp_path, "meld")
    assert main(["extract-live", "--data", str(tmp_path / "nope"), "--cache", str(tmp_path / "cache")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_loudest_window_and_spread_subset():
    audio = np.zeros(38240, np.float32)
    audio[-20000:] = 0.5
    window, offset = loudest_window(audio, 32000, 1600)
    assert offset == len(audio) - 32000 and len(window) == 32000
    padded, offset = loudest_window(np.ones(100, np.float32), 32000, 1600)
    assert offset == 0 and padded.shape == (32000,) and padded[100:].sum() == 0
    assert spread_subset(10, None).tolist() == list(range(10))
    assert spread_subset(10, 3).tolist() == [0, 4, 9]


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real corpora not present at {REAL_DATA} (../shared/data)")
def test_real_corpora_counts_and_speaker_independence():
    ravdess, emodb = ravdess_clips(REAL_DATA), emodb_clips(REAL_DATA)
    assert len(ravdess) == 1434 and len(emodb) == 535
    for clips in (ravdess, emodb):
        speakers = {split: {c.speaker for c in clips if c.split == split} for split in ("train", "val", "test")}
        assert not (speakers["train"] & speakers["val"] or speakers["train"] & speakers["test"]
                    or speakers["val"] & speakers["test"])
    assert len(meld_utterances(REAL_DATA)) == 9989 + 1109 + 2610
    assert load_fer2013(REAL_DATA).images.shape == (35887, 48, 48)


def _fake_audio_cache(cache: Path, corpus: str = "ravdess") -> Path:
    """A feature-free audio cache whose meta is what extract-live would record today."""
    from training.live.extract import CACHE_VERSION, _settings, _write_npz, cache_path, extractor_ids

    speakers = np.array(["ravdess-01", "ravdess-19", "ravdess-21"])
    meta = {"version": CACHE_VERSION, "corpus": corpus, "limit": None, "extractors": extractor_ids(),
            "settings": _settings(corpus), "stats": {"n": 3}}
    path = cache_path(cache, corpus)
    _write_npz(path, meta, {"ids": np.array(["a", "b", "c"]), "speaker": speakers,
                            "split": np.array(["train", "val", "test"]), "audio": np.zeros((3, 20, 44), np.float32)})
    return path


def test_split_tables_are_part_of_the_cache_and_a_change_is_not_silent(tmp_path, monkeypatch):
    from training.live import corpora
    from training.live.extract import extract_live, load_cache, read_meta

    cache = tmp_path / "cache"
    path = _fake_audio_cache(cache)
    assert read_meta(path)["settings"]["speaker_splits"]["test"] == [21, 22, 23, 24]
    assert load_cache(cache, "ravdess")["split"].tolist() == ["train", "val", "test"]
    # actor 19 moves from val to test: the stored split is now stale and must be refused
    monkeypatch.setattr(corpora, "RAVDESS_SPLITS", {"train": tuple(range(1, 19)), "val": (20,),
                                                    "test": (19, 21, 22, 23, 24)})
    with pytest.raises(ValueError, match="split table"):
        load_cache(cache, "ravdess")
    # a re-run re-derives the splits from the cached speakers without extracting anything
    (tmp_path / "data" / "ravdess_speech").mkdir(parents=True)
    lines: list[str] = []
    extract_live(tmp_path / "data", cache, corpora=["ravdess"], progress=False, log=lines.append)
    assert "re-split" in lines[0]
    data = load_cache(cache, "ravdess")
    assert data["split"].tolist() == ["train", "test", "test"] and data["audio"].shape == (3, 20, 44)
    assert data["meta"]["settings"]["speaker_splits"]["test"] == [19, 21, 22, 23, 24]
    assert data["meta"]["stats"] == {"n": 3}
    extract_live(tmp_path / "data", cache, corpora=["ravdess"], progress=False, log=lines.append)
    assert "up to date" in lines[1]
