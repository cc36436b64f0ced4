"""imer-train text-head on a tiny MELD-like cache: picks a head on dev and reports test."""

from __future__ import annotations

import json

import numpy as np

from training.live.text_head import run_text_head


def test_text_head_on_a_tiny_cache(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array(["neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise"] * 12)
    centres = rng.standard_normal((7, 384))
    text = centres[np.arange(len(labels)) % 7] + 0.1 * rng.standard_normal((len(labels), 384))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    split = np.array(["train", "train", "val", "test"] * (len(labels) // 4))
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / "meld.npz", meta=np.asarray(json.dumps({"corpus": "meld"})), source_label=labels, split=split,
             text=text.astype(np.float32))
    summary = run_text_head(cache, tmp_path / "out", grid=({"hidden": 16, "power": 0.0, "dropout": 0.0},
                                                           {"hidden": 16, "power": 1.0, "dropout": 0.0}),
                            epochs=40, log=lambda line: None)
    assert len(summary["rows"]) == 3 and summary["counts"]["test"] == len(labels) // 4
    assert summary["chosen_test"]["weighted_f1"] > 0.5  # separable classes are learned
    assert (tmp_path / "out" / "text_head.pt").is_file()


def test_text_head_with_no_epochs_keeps_the_initial_weights():
    """``epochs=0`` returns the untrained head instead of loading a missing best state."""
    from training.live.text_head import train_head

    rng = np.random.default_rng(1)
    x = rng.standard_normal((14, 8)).astype(np.float32)
    y = np.arange(14) % 7
    model, dev_f1 = train_head((x, y), (x, y), hidden=4, power=0.0, dropout=0.0, epochs=0)
    assert dev_f1 == -1.0 and not model.training
