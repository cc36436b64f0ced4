"""MulT's settings are an option of the methods built on it; checkpoints written before still load."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import small_features, small_specs

from imer_core.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from imer_core.config import FusionConfig, ModelConfig
from imer_core.methods.base import SamplingOptions
from imer_core.registry import create_model

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "models"
MASK = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)


@pytest.mark.parametrize("method", ["cmarr", "imder", "rohydr"])
def test_shipped_checkpoints_load_and_resave_without_a_top_level_fusion(method: str, tmp_path: Path):
    path = ASSETS / f"live_{method}.pt"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    legacy = read_checkpoint(path)["config"]
    model = load_checkpoint(path).eval()
    if method == "cmarr":                                  # never used MulT: the legacy entry is dropped
        assert "fusion" not in model.config.method_options and not hasattr(model.options, "fusion")
    elif "fusion" in legacy:
        assert model.options.fusion == FusionConfig(**legacy["fusion"]) == model.fusion.fusion
    assert "fusion" not in model.config.to_dict()
    gen = torch.Generator().manual_seed(0)
    feats = {s.modality.value: torch.randn(4, s.seq_len, s.dim, generator=gen) for s in model.config.specs}
    sampling = SamplingOptions(seed=3, steps=2)
    before = model.predict(feats, MASK, sampling)
    resaved = load_checkpoint(save_checkpoint(model, tmp_path / "resaved.pt")).eval()
    assert "fusion" not in read_checkpoint(tmp_path / "resaved.pt")["config"]
    torch.testing.assert_close(resaved.predict(feats, MASK, sampling), before, rtol=0, atol=0)


def test_a_legacy_config_dict_moves_fusion_into_the_options():
    specs = small_specs().to_dict()
    legacy_fusion = {**asdict(FusionConfig(nlevels=1, num_heads=4)), "retired_field": 3}   # unknown: dropped
    config = ModelConfig.from_dict({"method": "rohydr", "specs": specs, "fusion": legacy_fusion,
                                    "method_options": {"dit_depth": 1}})
    assert config.method_options["fusion"]["nlevels"] == 1 and "retired_field" not in config.method_options["fusion"]
    assert create_model(config).options.fusion == FusionConfig(nlevels=1, num_heads=4)
    cmarr = ModelConfig.from_dict({"method": "cmarr", "specs": specs, "fusion": legacy_fusion})
    assert cmarr.method_options == {}
    unknown = ModelConfig.from_dict({"method": "no-such-method", "specs": specs, "fusion": legacy_fusion})
    assert unknown.method_options == {}


def test_the_fusion_option_takes_a_config_or_a_table_and_rejects_unknown_fields(small_imder, tmp_path: Path):
    as_table = ModelConfig(method="imder", specs=small_specs(),
                           method_options={"fusion": {"nlevels": 1, "num_heads": 4}, "score_channels": (32, 32)})
    as_config = as_table.with_options(fusion=FusionConfig(nlevels=1, num_heads=4))
    assert create_model(as_table).options == create_model(as_config).options
    torch.manual_seed(0)
    model = create_model(as_config)
    assert model.fusion.fusion.nlevels == 1 and len(model.fusion.trans_l_with_a.layers) == 1
    reloaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt"))   # weights_only: plain types only
    assert reloaded.options == model.options
    with pytest.raises(ValueError, match="unknown fusion option"):
        create_model(as_table.with_options(fusion={"n_levels": 2}))
    with pytest.raises(ValueError, match="unknown CMARROptions option"):
        create_model(ModelConfig(method="cmarr", specs=small_specs(), method_options={"fusion": {"nlevels": 1}}))
    assert small_imder.options.fusion == FusionConfig()          # default: IMDer's MOSI settings
    out = small_imder.predict(small_features(2), MASK[:2], SamplingOptions(seed=1, steps=1))
    assert out.shape == (2, 1)


def test_a_fusion_option_that_is_no_table_is_a_user_error_beside_top_level_mult_settings():
    from imer_core.cli_errors import is_user_error
    from imer_core.config import fold_fusion_option

    with pytest.raises(ValueError, match="must be a table of MulT settings") as caught:
        fold_fusion_option("imder", {"fusion": 5}, FusionConfig())  # e.g. model.options.fusion=5
    assert is_user_error(caught.value)  # one line from imer-train, not "internal error"
