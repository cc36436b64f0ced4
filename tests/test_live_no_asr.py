"""``extract-live --no-asr``: voice features only, recorded in the cache, no paired-transcript test on it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from live_fakes import live_audio_dim

from training.live import extract
from training.live.dataset import LiveDataOptions, paired_asr_dataset

RAVDESS = ("03-01-03-01-01-01-01", "03-01-04-01-02-01-19", "03-01-03-02-01-01-21")


def _tiny_ravdess(root: Path) -> None:
    """Three schema-exact RAVDESS files holding 2.39 s of a voiced-like tone with noise."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(38224) / 16000
    for i, stem in enumerate(RAVDESS):
        clip = 0.3 * np.sin(2 * np.pi * (140 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)
        path = root / "ravdess_speech" / f"Actor_{stem[-2:]}" / f"{stem}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, clip.astype(np.float32), 16000, format="FLAC", subtype="PCM_16")


class _FakeASR:
    def transcribe(self, audio: np.ndarray) -> SimpleNamespace:
        return SimpleNamespace(text="kids are talking by the door", processing_s=0.01)


class _FakeEmbedder:
    def embed(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 384), np.float32)


def test_no_asr_extracts_voice_only_and_the_paired_test_refuses_it(tmp_path, monkeypatch):
    def no_asr() -> None:
        raise AssertionError("--no-asr must not load a speech recogniser")

    monkeypatch.setattr(extract, "_load_asr", no_asr)
    monkeypatch.setattr(extract, "_embedder", no_asr)
    _tiny_ravdess(tmp_path / "data")
    cache = tmp_path / "cache"
    lines: list[str] = []
    extract.extract_live(tmp_path / "data", cache, corpora=["ravdess"], progress=False, log=lines.append, asr=False)
    data = extract.load_cache(cache, "ravdess")
    assert data["audio"].shape == (3, 20, live_audio_dim()) and np.isfinite(data["audio"]).all()
    assert data["transcript"].tolist() == ["", "", ""] and not data["text"].any()
    assert data["meta"]["settings"]["asr"] == extract.NO_ASR and not extract.has_transcripts(data["meta"])
    normalization = {m: {"mean": [0.0] * d, "std": [1.0] * d} for m, d in (("text", 384),
                                                                           ("audio", live_audio_dim()),
                                                                           ("vision", 55))}
    assert paired_asr_dataset(cache, normalization, LiveDataOptions(audio_corpora=("ravdess",))) is None
    # a run with ASR does not take the voice-only cache for up to date: it transcribes
    monkeypatch.setattr(extract, "_load_asr", _FakeASR)
    monkeypatch.setattr(extract, "_embedder", _FakeEmbedder)
    extract.extract_live(tmp_path / "data", cache, corpora=["ravdess"], progress=False, log=lines.append)
    assert "up to date" not in lines[-1]
    data = extract.load_cache(cache, "ravdess")
    assert extract.has_transcripts(data["meta"]) and data["transcript"][0] == "kids are talking by the door"
    assert data["text"].all()
    assert len(paired_asr_dataset(cache, normalization, LiveDataOptions(audio_corpora=("ravdess",)))) == 1


def _fake_caches(cache: Path) -> None:
    """Feature caches of FER2013, RAVDESS and MELD with 'happy' in every split, as extract-live records them."""
    rng = np.random.default_rng(1)
    splits = np.array(["train", "train", "val", "test"])

    def write(corpus: str, arrays: dict) -> None:
        meta = {"version": extract.CACHE_VERSION, "corpus": corpus, "limit": None,
                "extractors": extract.extractor_ids(), "settings": extract._settings(corpus, asr=False),
                "stats": {"n": 4}}
        extract._write_npz(extract.cache_path(cache, corpus), meta,
                           {"ids": np.array(["0", "1", "2", "3"]), "split": splits, **arrays})

    write("fer2013", {"source_label": np.array(["happy"] * 4), "detected": np.ones(4, bool),
                      "vision": rng.normal(2.0, 3.0, (4, 55)).astype(np.float32)})
    write("ravdess", {"source_label": np.array(["happy"] * 4),
                      "speaker": np.array(["ravdess-01", "ravdess-02", "ravdess-19", "ravdess-21"]),
                      "audio": rng.normal(1.0, 2.0, (4, 20, live_audio_dim())).astype(np.float32)})
    write("meld", {"source_label": np.array(["joy"] * 4), "text": rng.normal(0.0, 0.1, (4, 384)).astype(np.float32)})


def test_live_evaluation_data_uses_the_checkpoints_own_normalisation(tmp_path):
    from imer_core.config import LIVE_EMOTIONS
    from training.evaluate_data import load_evaluation_data
    from training.experiment import load_experiment
    from training.live.dataset import build_live_data, live_specs

    _fake_caches(tmp_path)
    options = LiveDataOptions(audio_corpora=("ravdess",), train_tuples_per_class=2)
    raw = extract.load_cache(tmp_path, "fer2013")["vision"][3]
    own = build_live_data(tmp_path, options)                     # statistics of these (two) training faces
    stored = {m: {"mean": [0.5] * d, "std": [2.0] * d}
              for m, d in (("text", 384), ("audio", live_audio_dim()), ("vision", 55))}
    given = build_live_data(tmp_path, options, stored)
    assert given.normalization == stored and own.normalization != stored
    assert np.allclose(given.datasets["test"][0]["vision"][0].numpy(), (raw - 0.5) / 2.0, atol=1e-5)
    experiment = load_experiment("live_imder", ["data.live.audio_corpora=['ravdess']",
                                                "data.live.train_tuples_per_class=2", f"data.path='{tmp_path}'"])
    config = SimpleNamespace(specs=live_specs(), task="classification", labels=tuple(LIVE_EMOTIONS))
    model = SimpleNamespace(config=config, checkpoint_metadata={"feature_normalization": stored})
    loaded = load_evaluation_data(experiment, model, tmp_path)
    assert torch.allclose(loaded.datasets["test"][0]["vision"], given.datasets["test"][0]["vision"])
