"""``extract-live --no-asr``: voice features only, recorded in the cache and refused by the paired test."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

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
    assert data["audio"].shape == (3, 20, 44) and np.isfinite(data["audio"]).all()
    assert data["transcript"].tolist() == ["", "", ""] and not data["text"].any()
    assert data["meta"]["settings"]["asr"] == extract.NO_ASR and not extract.has_transcripts(data["meta"])
    normalization = {m: {"mean": [0.0] * d, "std": [1.0] * d} for m, d in (("text", 384), ("audio", 44),
                                                                           ("vision", 55))}
    with pytest.raises(ValueError, match="--no-asr"):
        paired_asr_dataset(cache, normalization, LiveDataOptions(audio_corpora=("ravdess",)))
    # a run with ASR does not take the voice-only cache for up to date: it transcribes
    monkeypatch.setattr(extract, "_load_asr", _FakeASR)
    monkeypatch.setattr(extract, "_embedder", _FakeEmbedder)
    extract.extract_live(tmp_path / "data", cache, corpora=["ravdess"], progress=False, log=lines.append)
    assert "up to date" not in lines[-1]
    data = extract.load_cache(cache, "ravdess")
    assert extract.has_transcripts(data["meta"]) and data["transcript"][0] == "kids are talking by the door"
    assert data["text"].all()
    assert len(paired_asr_dataset(cache, normalization, LiveDataOptions(audio_corpora=("ravdess",)))) == 1
