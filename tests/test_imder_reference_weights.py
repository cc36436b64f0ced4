"""Converting the official IMDer's checkpoints: forward equivalence against outputs of the official code.

``fixtures/imder_reference/`` holds only outputs of the official code (mdswyz/IMDer,
commit recorded in the JSON), run outside this project on a deterministic state
dict: every parameter is ``randn(shape, seed=crc32(key)) * 0.2``, BERT a 1-layer
16-wide random BERT.  Here the same state dict is rebuilt *in the reference's key
layout* from the recorded key names, converted, loaded, and the project's modules
must reproduce the reference outputs.  No code of the reference is in this project.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from imer_core.config import FusionConfig, ModelConfig
from imer_core.methods.imder_reference import (
    ReferenceWeightsError,
    convert_reference_state_dict,
    load_reference_weights,
    reference_key_to_project,
)
from imer_core.modalities import FeatureSpecs, full_mask
from imer_core.registry import create_model

FIXTURES = Path(__file__).parent / "fixtures" / "imder_reference"
META = json.loads((FIXTURES / "imder_reference_keys.json").read_text())
OUTPUTS = dict(np.load(FIXTURES / "imder_reference_outputs.npz"))


def reference_state(with_bert: bool = True, prefix: str = "") -> dict[str, torch.Tensor]:
    """The fixture's state dict in the reference's key layout (parameters only, plus the constant buffers)."""
    state = {}
    for key, shape, is_param in META["keys"]:
        if not with_bert and key.startswith("text_model."):
            continue
        if is_param:
            gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
            state[prefix + key] = torch.randn(tuple(shape), generator=gen) * 0.2
        else:
            state[prefix + key] = torch.full(tuple(shape), 2.0)
    return state


def build_model(bert_path: str | None) -> torch.nn.Module:
    args = META["args"]
    specs = FeatureSpecs.from_dims(tuple(args["feature_dims"]), META["seq_len"])
    fusion = FusionConfig(nlevels=args["nlevels"], attn_dropout_a=args["attn_dropout_a"],
                          embed_dropout=args["embed_dropout"])
    options = {"text_encoder": "bert", "bert_path": bert_path} if bert_path else {}
    return create_model(ModelConfig(method="imder", specs=specs, method_options={**options, "fusion": fusion})).eval()


def fixture_inputs():
    batch, length = META["batch"], META["seq_len"]
    gen = torch.Generator().manual_seed(1234)
    ids = torch.randint(1000, 30000, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 40:] = 0
    tokens = torch.stack([ids * mask, mask, torch.zeros_like(ids)], dim=1).float()
    audio = torch.randn(batch, length, 5, generator=gen)
    vision = torch.randn(batch, length, 20, generator=gen)
    x = torch.randn(batch, 32, 48, generator=gen)
    cond = torch.randn(batch, 32, 48, generator=gen)
    return {"text": tokens, "audio": audio, "vision": vision}, x, cond


def assert_close_at_scale(actual: np.ndarray, desired: np.ndarray, fraction: float = 1e-2) -> None:
    """Every element within ``fraction`` of the reference's RMS.

    The refiners' outputs on the fixture's random weights reach ~1e12 (20 residual blocks
    of weights ~0.2), with cancellations that leave single elements at ~1e-3 relative
    error when the float32 summation order differs (CI's CPU against the fixture's):
    an element-wise ``rtol`` failed there.  A wrong conversion errs by the RMS itself.
    """
    assert np.isfinite(actual).all()
    scale = float(np.sqrt(np.mean(desired.astype(np.float64) ** 2)))
    worst = float(np.abs(actual.astype(np.float64) - desired).max())
    assert worst <= fraction * scale, f"max error {worst:.3g} > {fraction} x RMS {scale:.3g}"


@pytest.fixture(scope="module")
def converted_model(tmp_path_factory):
    pytest.importorskip("transformers", reason="the reference checkpoint holds a BERT")
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("ref_bert")
    config = {k: v for k, v in META["bert"].items() if k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                               "num_attention_heads", "intermediate_size",
                                                               "max_position_embeddings")}
    BertModel(BertConfig(**config)).save_pretrained(str(folder))
    model = build_model(str(folder))
    report = load_reference_weights(model, reference_state())
    return model, report


def test_fixture_records_the_reference_commit() -> None:
    assert META["reference"] == "https://github.com/mdswyz/IMDer"
    assert len(META["commit"]) == 40


def test_every_reference_key_has_a_counterpart_of_the_same_shape(converted_model) -> None:
    model, report = converted_model
    own = model.state_dict()
    for key, shape, is_param in META["keys"]:
        target = reference_key_to_project(key)
        if is_param:
            assert target in own, key
            assert list(own[target].shape) == shape, key
    assert report.not_in_file == []                       # a trained checkpoint covers the whole model
    assert all(k.endswith(("version", "_float_tensor")) for k in report.dropped)


def test_converted_weights_reproduce_the_reference_outputs(converted_model) -> None:
    model, _ = converted_model
    features, x, cond = fixture_inputs()
    t = torch.tensor(META["t"])
    with torch.no_grad():
        prediction = model.predict(features, full_mask(META["batch"]))
        np.testing.assert_allclose(prediction.numpy(), OUTPUTS["prediction"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(model.project(features)["text"].numpy(), OUTPUTS["proj_text"],
                                   rtol=1e-4, atol=1e-5)
        for name in ("text", "audio", "vision"):
            np.testing.assert_allclose(model.score_nets[name](x, t, cond).numpy(), OUTPUTS[f"score_{name}"],
                                       rtol=1e-4, atol=1e-4)
            assert_close_at_scale(model.refiners[name](x).numpy(), OUTPUTS[f"refine_{name}"])
        pair = torch.cat([x, cond], dim=1)
        for ref_name, ours in (("cat_lv", model.cat_lv), ("cat_la", model.cat_la), ("cat_va", model.cat_av)):
            np.testing.assert_allclose(ours(pair).numpy(), OUTPUTS[ref_name], rtol=1e-4, atol=1e-5)


def test_stage1_file_with_mmsa_prefix_loads_fusion_and_leaves_recovery_modules() -> None:
    """The released pretrained-*.pth: ``Model.``-prefixed keys, BERT + projections + MulT only."""
    stage1 = {k: v for k, v in reference_state(with_bert=False, prefix="Model.").items()
              if not k.startswith(("Model.score_", "Model.rec_", "Model.cat_"))}
    model = build_model(None)
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("score_nets.")}
    report = load_reference_weights(model, stage1)
    assert report.loaded and all(k.startswith("fusion.") for k in report.loaded)
    assert any(k.startswith("score_nets.") for k in report.not_in_file)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    gen = torch.Generator().manual_seed(zlib.crc32(b"proj1.weight"))
    torch.testing.assert_close(model.fusion.proj1.weight, torch.randn(192, 192, generator=gen) * 0.2)


def test_mismatches_are_refused_with_the_key_named(tmp_path) -> None:
    model = build_model(None)
    with pytest.raises(ReferenceWeightsError, match="text_encoder.*text_encoder='bert'"):
        load_reference_weights(model, reference_state(with_bert=True))
    bad = reference_state(with_bert=False)
    bad["proj_a.weight"] = torch.zeros(32, 7, 3)
    with pytest.raises(ReferenceWeightsError, match="fusion.proj_a.weight: reference shape"):
        load_reference_weights(model, bad)
    with pytest.raises(ReferenceWeightsError, match="no counterpart"):
        convert_reference_state_dict({"something_else.weight": torch.zeros(1)})
    with pytest.raises(ReferenceWeightsError, match="lack"):
        load_reference_weights(model, {"cat_lv.weight": torch.zeros(32, 64, 1)})
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ReferenceWeightsError, match="not a readable state dict"):
        load_reference_weights(model, junk)


def test_cli_train_from_a_reference_stage1_file_skips_stage1(tmp_path, capsys) -> None:
    from training.cli import main as cli_main
    from training.experiment import load_experiment
    from training.runner import build_model as build_experiment_model
    from training.runner import load_data

    sets = ["data.synthetic_sizes=[48,16,16]", "data.synthetic_dims=[16,5,20]", "data.synthetic_seq_len=26",
            "model.nlevels=1", "model.mem_layers=1", "model.options.score_channels=[32,32,32,32]",
            "model.options.score_embed_dim=16", "model.options.refiner_blocks=1", "model.options.sampler_steps=2",
            "model.options.train_sampler_steps=2", "train.max_epochs=1", "train.batch_size=16",
            "data.synthetic=true"]
    experiment = load_experiment("quick_synthetic", sets)
    data = load_data(experiment, tmp_path / "data")
    fusion = build_experiment_model(experiment, data.specs, data.labels).fusion.state_dict()
    stage1 = {f"Model.{k}": torch.full_like(v, 0.01) for k, v in fusion.items()}   # the released file's layout
    torch.save(stage1, tmp_path / "pretrained-mosi.pth")
    argv = ["train", "--config", "quick_synthetic", "--synthetic", "--no-progress", "--device", "cpu",
            "--out", str(tmp_path / "run")]
    for item in sets[:-1]:
        argv += ["--set", item]
    argv += ["--init-reference", str(tmp_path / "pretrained-mosi.pth")]
    assert cli_main(argv) == 0
    assert f"loaded {len(fusion)} tensors" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [s["stage"] for s in metrics["stages"]] == ["recovery"]
    assert cli_main(argv[:-1] + [str(tmp_path / "missing.pth")]) == 2
    assert "reference weights not found" in capsys.readouterr().err
