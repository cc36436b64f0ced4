"""The method registry: built-ins found without a list, self-described methods, and a fourth method
registered from test code alone reaching ``imer-train compare`` and the live engine's method choice.

(The window's menus are checked in test_gui_toy_method.py.)
"""

from __future__ import annotations

import csv
import pkgutil
from pathlib import Path

import pytest
from toy_method import TOY, ToyRecovery, registered_toy

import imer_core.methods
from imer_core import registry
from imer_core.config import ModelConfig
from imer_core.registry import (
    available_methods,
    create_model,
    get_method_class,
    live_methods,
    method_summary,
    method_title,
    preferred_methods,
    register_method,
    unregister_method,
)
from training.cli import main as cli_main
from training.compare import sampler_settings

BUILTINS = ("cmarr", "imder", "regression", "rohydr")


def test_builtin_methods_are_found_by_walking_the_methods_package():
    modules = {info.name for info in pkgutil.iter_modules(imer_core.methods.__path__)}
    assert {f"imer_core.methods.{m}" for m in modules} == set(registry._builtin_modules())
    assert set(BUILTINS) <= set(available_methods())
    assert not hasattr(registry, "_BUILTIN_MODULES"), "no hand-kept module list"


def test_each_builtin_describes_itself():
    assert [method_title(m) for m in BUILTINS] == ["CM-ARR", "IMDer", "Regression", "RoHyDR"]
    assert all(method_summary(m) for m in BUILTINS)
    assert live_methods() == ["cmarr", "imder", "rohydr"], "regression is a baseline, not a live method"
    assert preferred_methods(["rohydr", "regression", "imder"]) == ["imder", "rohydr", "regression"]
    fast = {m: (get_method_class(m).fast_sampler, get_method_class(m).uses_sampler_steps) for m in BUILTINS}
    assert fast == {"imder": ("heun", True), "rohydr": ("ddim", True), "cmarr": ("mean", False),
                    "regression": ("mean", False)}
    assert get_method_class("imder").default_sampler() == "euler-maruyama"
    assert get_method_class("rohydr").default_sampler() == "ddim"
    assert method_title("no-such-method") == "no-such-method" and method_title(None) == "none"


def test_registering_a_name_twice_or_a_bad_name_is_refused():
    with registered_toy():
        class Other(ToyRecovery):
            name = TOY

        with pytest.raises(ValueError, match="already registered"):
            register_method(Other)

    class Shouting(ToyRecovery):
        name = "Toy"

    with pytest.raises(ValueError, match="lower case"):
        register_method(Shouting)


def test_a_ranked_toy_becomes_the_live_engines_first_choice():
    class RankedToy(ToyRecovery):
        name = "toy-ranked"
        live_rank = -1

    register_method(RankedToy)
    try:
        assert live_methods()[0] == "toy-ranked"
        assert preferred_methods(["cmarr", "imder", "toy-ranked"])[0] == "toy-ranked"
    finally:
        unregister_method("toy-ranked")
    assert "toy-ranked" not in available_methods()


def test_an_unranked_toy_is_used_when_it_is_the_only_one_loaded():
    with registered_toy():
        assert TOY in available_methods() and TOY not in live_methods()
        assert preferred_methods([TOY]) == [TOY]
        assert preferred_methods([TOY, "imder"]) == ["imder", TOY]


def test_sampler_settings_of_the_comparison_read_the_class(tmp_path):
    from conftest import small_specs

    with registered_toy():
        toy = create_model(ModelConfig(method=TOY, specs=small_specs()))
        settings, names = sampler_settings(toy, fast_steps=5, seed=1)
    assert names == {"default": "mean", "fast": "mean"}
    assert settings["fast"].sampler == "mean" and settings["fast"].steps is None
    imder = create_model(ModelConfig(method="imder", specs=small_specs(),
                                     method_options={"score_channels": (32, 32), "refiner_blocks": 1}))
    settings, names = sampler_settings(imder, fast_steps=5, seed=1)
    assert names == {"default": "euler-maruyama ×100", "fast": "heun ×5"}
    assert (settings["fast"].sampler, settings["fast"].steps, settings["default"].sampler) == ("heun", 5, None)


TOY_CONFIG = """
[data]
dataset = "mosi"
synthetic = true
synthetic_sizes = [48, 16, 16]
synthetic_dims = [16, 5, 20]
synthetic_seq_len = 8

[model]
method = "toy"
task = "regression"

[model.options]
width = 4

[train]
batch_size = 16
learning_rate = 0.01
max_epochs = 1
pretrain_max_epochs = 1
device = "cpu"
"""


def test_imer_train_compare_runs_a_method_registered_by_test_code(tmp_path: Path):
    config = tmp_path / "toy_compare.toml"
    config.write_text(TOY_CONFIG)
    out = tmp_path / "cmp"
    with registered_toy():
        code = cli_main(["compare", "--configs", str(config), "--synthetic", "--missing-rates", "0.5",
                         "--seeds", "1", "--out", str(out), "--no-progress", "--device", "cpu", "--latency-runs", "1"])
    assert code == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [(r["method"], r["condition"]) for r in rows] == [(TOY, "0.50")]
    assert float(rows[0]["recovery_mse_mean"]) >= 0 and float(rows[0]["latency_fast_ms"]) > 0
    markdown = (out / "compare.md").read_text()
    assert "| Toy method | toy_compare |" in markdown and "(mean)" in markdown


def test_the_live_engine_runs_a_toy_method_and_follows_its_rank(live_checkpoints, tmp_path, monkeypatch):
    import time

    from live_fakes import train_small_checkpoint
    from test_live_engine import _statuses, _tracks

    from imer_core.live.engine import EngineInputs, InferenceEngine
    from imer_core.live.models import ModelBank

    with registered_toy():
        toy = train_small_checkpoint(tmp_path / "live_toy.pt", TOY, steps=1, options={"width": 4})
        bank = ModelBank({"cmarr": live_checkpoints["cmarr"], TOY: toy})
        now = time.monotonic()
        assert InferenceEngine(bank, EngineInputs(_tracks(now), lambda: _statuses({}))).method == "cmarr"
        monkeypatch.setattr(ToyRecovery, "live_rank", -1)
        engine = InferenceEngine(bank, EngineInputs(_tracks(now), lambda: _statuses({})))
        result = engine.step(now)
    assert engine.method == TOY and result.method == TOY
    assert result.probabilities is not None and len(result.probabilities) == 7
