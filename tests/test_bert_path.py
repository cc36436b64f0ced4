"""The BERT token path: through the runner end to end, and stage-1 fine-tuning with its own learning rate.

A tiny randomly initialised BERT is built from a ``transformers`` config and saved
to a temporary folder: nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers", reason="the BERT token path needs the optional `transformers` package")

from imer_core.config import ModelConfig  # noqa: E402
from imer_core.methods.base import PRETRAIN, RECOVERY  # noqa: E402
from imer_core.modalities import FeatureSpecs, full_mask  # noqa: E402
from imer_core.registry import create_model  # noqa: E402
from training.cli import main as cli_main  # noqa: E402

HIDDEN = 16
SEQ_LEN = 26


def write_tiny_bert(folder) -> str:
    """Save a randomly initialised 1-layer BERT (vocabulary of bert-base, ids up to 30521)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=24, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


TINY_SETS = [
    "data.synthetic_sizes=[48,16,16]", f"data.synthetic_dims=[{HIDDEN},5,20]", f"data.synthetic_seq_len={SEQ_LEN}",
    "model.nlevels=1", "model.mem_layers=1",
    "model.options.score_channels=[32,32,32,32]", "model.options.score_embed_dim=16", "model.options.refiner_blocks=1",
    "model.options.sampler_steps=2", "model.options.train_sampler_steps=2",
    "train.max_epochs=1", "train.pretrain_max_epochs=1", "train.batch_size=16",
]


def test_cli_train_with_bert_tokens_runs_end_to_end(tiny_bert, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--config", "quick_synthetic", "--synthetic", "--no-progress", "--device", "cpu",
            "--out", str(out), "--protocol", "batch:0.5",
            "--set", 'model.options.text_encoder="bert"', "--set", f'model.options.bert_path="{tiny_bert}"']
    for item in TINY_SETS:
        argv += ["--set", item]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{"):])
    assert torch.isfinite(torch.tensor(result["test"]["MAE"]))
    assert result["test"]["realised_missing_rate"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["stage"] for s in metrics["stages"]] == [PRETRAIN, RECOVERY]


def _bert_model(tiny_bert: str, **options):
    specs = FeatureSpecs.from_dims((HIDDEN, 5, 20), SEQ_LEN)
    config = ModelConfig(method="imder", specs=specs, method_options={
        "text_encoder": "bert", "bert_path": tiny_bert, "score_channels": [32, 32, 32, 32], "score_embed_dim": 16,
        "refiner_blocks": 1, "sampler_steps": 2, "train_sampler_steps": 2, **options})
    return create_model(config)


def _tokens(batch: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30000, (batch, SEQ_LEN), generator=gen)
    tokens = torch.stack([ids, torch.ones_like(ids), torch.zeros_like(ids)], dim=1).float()
    return {"text": tokens, "audio": torch.randn(batch, SEQ_LEN, 5, generator=gen),
            "vision": torch.randn(batch, SEQ_LEN, 20, generator=gen)}


def test_stage1_finetunes_bert_with_its_own_learning_rate_and_stage2_freezes_it(tiny_bert) -> None:
    model = _bert_model(tiny_bert, bert_learning_rate=3e-5)
    bert_params = list(model.text_encoder.parameters())
    model.prepare_stage(PRETRAIN)
    optimizer = model.configure_optimizers(2e-3)["main"]
    rates = sorted(group["lr"] for group in optimizer.param_groups)
    assert rates == [3e-5, 2e-3]
    bert_group = next(g for g in optimizer.param_groups if g["lr"] == 3e-5)
    assert {id(p) for p in bert_group["params"]} == {id(p) for p in bert_params}

    feats, labels = _tokens(4), torch.randn(4)
    before = [p.detach().clone() for p in bert_params]
    model.train_step(feats, labels, full_mask(4), {"main": optimizer})
    assert any(not torch.equal(a, p) for a, p in zip(before, bert_params))     # BERT was fine-tuned

    model.prepare_stage(RECOVERY)
    assert not any(p.requires_grad for p in bert_params)
    optimizer = model.configure_optimizers(2e-3)["main"]
    assert len(optimizer.param_groups) == 1
    frozen = [p.detach().clone() for p in bert_params]
    mask = torch.tensor([[True, False, True]] * 4)
    model.train_step(feats, labels, mask, {"main": optimizer})
    assert all(torch.equal(a, p) for a, p in zip(frozen, bert_params))


def test_bert_finetune_off_keeps_bert_frozen_in_stage1(tiny_bert) -> None:
    model = _bert_model(tiny_bert, bert_finetune=False)
    model.prepare_stage(PRETRAIN)
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert len(model.configure_optimizers(2e-3)["main"].param_groups) == 1


def test_bert_tokens_on_mmin_data_give_one_clear_error(capsys) -> None:
    code = cli_main(["train", "--config", "quick_cv_imder", "--synthetic", "--no-progress",
                     "--set", 'model.options.text_encoder="bert"', "--set", 'model.options.bert_path="/nowhere"'])
    assert code == 2
    assert "no token ids" in capsys.readouterr().err
