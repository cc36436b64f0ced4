"""scripts/train_live_models.py: the live recipe distils IMDer and ships the distilled checkpoint."""

from __future__ import annotations

from pathlib import Path

from script_loader import load_script

from training.cli import build_parser


def _recipe():
    return load_script("train_live_models")


def test_recipe_distils_imder_before_evaluating_and_shipping_it(capsys):
    recipe = _recipe()
    assert recipe.main(["--cache", "c", "--out", "o", "--ship", "assets/models", "--dry-run"]) == 0
    printed = [line.split("] ", 1)[1].split()[1:] for line in capsys.readouterr().out.splitlines()]
    steps = [argv[0] for argv in printed]
    assert steps == ["extract-live", "train", "train", "train", "distill", "live-experts", "live-experts",
                     "live-experts", "live-eval"]
    distill, experts, evaluate = printed[4], printed[5:8], printed[8]
    parser = build_parser()
    for argv in printed:                                   # every command is one imer-train accepts
        parser.parse_args(argv)
    out = distill[distill.index("--out") + 1]
    assert distill[distill.index("--checkpoint") + 1] == str(Path("o") / "imder" / "model.pt")
    assert experts[0][experts[0].index("--checkpoint") + 1] == out  # the distilled IMDer gets the experts
    fused = [argv[argv.index("--out") + 1] for argv in experts]
    assert evaluate[evaluate.index("--checkpoints") + 1].split(",") == fused
    assert evaluate[evaluate.index("--ship") + 1] == "assets/models"
    assert recipe.main(["--from", "distill", "--dry-run"]) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()] == ["distill"] + ["live-experts"] * 3 + [
        "live-eval"]
    assert recipe.main(["--methods", "cmarr", "--no-asr", "--skip-fill-baselines", "--dry-run"]) == 0
    printed = [line.split("] ", 1)[1].split()[1:] for line in capsys.readouterr().out.splitlines()]
    assert [argv[0] for argv in printed] == ["extract-live", "train", "live-experts", "live-eval"]
    assert "--no-asr" in printed[0] and "--skip-fill-baselines" in printed[-1]
    for argv in printed:
        parser.parse_args(argv)
