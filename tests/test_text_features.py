"""Text features: all-MiniLM-L6-v2 sentence embeddings and the transcript time window."""

from __future__ import annotations

import time

import numpy as np
import pytest

from imer_core.asr import Segment, Transcript, Word
from imer_core.features.text import TEXT_DIM, TranscriptWindow, text_feature_spec
from imer_core.modalities import Modality


@pytest.fixture(scope="module")
def embedder():
    from imer_core.features.text import SentenceEmbedder, TextModelUnavailable

    try:
        return SentenceEmbedder(device="cpu")
    except TextModelUnavailable as exc:
        pytest.skip(f"all-MiniLM-L6-v2 unavailable: {exc}")


def test_embeddings_shape_norm_and_similarity(embedder):
    texts = ["I am so happy today, everything is wonderful.",
             "Today I feel really glad and cheerful.",
             "The invoice must be paid by the end of the quarter."]
    emb = embedder.embed(texts)
    assert emb.shape == (3, TEXT_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2
    assert embedder.embed([]).shape == (0, TEXT_DIM)
    assert embedder.embed("single text").shape == (1, TEXT_DIM)
    t0 = time.perf_counter()
    for _ in range(5):
        embedder.embed(texts[0])
    print(f"\nall-MiniLM-L6-v2 CPU latency: {(time.perf_counter() - t0) / 5 * 1000:.1f} ms per sentence")


def test_missing_model_dir_is_clear(tmp_path):
    from imer_core.features.text import SentenceEmbedder, TextModelUnavailable

    with pytest.raises(TextModelUnavailable, match="not found"):
        SentenceEmbedder(tmp_path / "nope")


def test_text_feature_spec():
    from imer_core.features.text import live_text_feature

    spec = text_feature_spec(seq_len=20, rate_hz=2.0)
    assert spec.modality is Modality.TEXT and spec.dim == 384
    assert spec.seq_len == 20 and spec.rate_hz == 2.0
    assert (spec.extractor, spec.dim) == live_text_feature()  # the registry's default text feature


def test_transcript_window_keeps_last_seconds():
    window = TranscriptWindow(horizon_s=30.0)
    window.add("hello there", 0.0, 1.0)
    window.add("how are you", 5.0, 6.5)
    window.add("  ", 6.5, 7.0)  # ignored
    words = (Word("I", 10.0, 10.2), Word("am", 10.3, 10.5), Word("fine", 12.0, 12.4))
    window.add("I am fine", 10.0, 12.4, words)
    assert len(window) == 3 and window.latest_time == pytest.approx(12.4)
    assert window.text() == "hello there how are you I am fine"
    assert window.text(last_s=8.0) == "how are you I am fine"
    assert window.text(last_s=1.0) == "fine"  # word timestamps cut inside the segment
    assert window.text(last_s=3.0, now=6.6) == "how are you"
    window.add("much later", 50.0, 51.0)  # older than 30 s horizon → pruned
    assert window.text() == "much later"
    with pytest.raises(ValueError):
        window.add("bad", 2.0, 1.0)


def test_transcript_window_replaces_retranscribed_audio():
    window = TranscriptWindow()
    first = Transcript(segments=(Segment("I think so", 0.5, 2.0), Segment("maybe n", 3.0, 4.0)),
                       start_time=0.0, duration=4.0, backend="test")
    window.add_transcript(first)
    second = Transcript(segments=(Segment("maybe not", 3.0, 4.2), Segment("indeed", 4.5, 5.5)),
                        start_time=3.0, duration=3.0, backend="test")
    window.add_transcript(second)
    assert window.text() == "I think so maybe not indeed"
    window.clear()
    assert window.text() == "" and window.latest_time is None
