"""The MMIN-protocol configs optimise as MMIN's public code: Adam β1 0.5 (0.9 in stage 1) and the
'linear' policy (constant for ``--niter`` epochs, then linear decay over ``--niter_decay``)."""

from __future__ import annotations

import csv

import pytest
from conftest import small_specs

from imer_core.methods.base import PRETRAIN, RECOVERY
from training.cli import main as cli_main
from training.experiment import load_experiment
from training.runner import build_model
from training.schedule import build_stage_optimizers, linear_decay_factor

CMARR_TINY = ["model.options.latent_dim=8", "model.options.encoder_hidden=16", "model.options.encoder_heads=2",
              "model.options.flow_layers=2", "model.options.flow_hidden=16", "model.options.refiner_hidden=16",
              "model.options.head_hidden=16", "model.options.fusion_heads=2", "model.options.supcon_dim=8"]
LABELS = ("anger", "happiness", "neutral", "sadness")


def _epoch_rates(config_name: str, stage: str, epochs: int) -> tuple[tuple[float, float], list[float]]:
    """Adam betas of the main optimiser and the learning rate each epoch trains at."""
    experiment = load_experiment(config_name, CMARR_TINY)
    model = build_model(experiment, small_specs(), LABELS)
    model.prepare_stage(stage)
    optimizers, schedule = build_stage_optimizers(model, experiment.train, stage)
    main = optimizers["main"]
    rates = []
    for _ in range(epochs):
        rates.append(main.param_groups[0]["lr"])
        schedule.step(valid_loss=1.0)               # a flat validation loss would trigger a plateau schedule
    return main.param_groups[0]["betas"], rates


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no optimiser steps here
@pytest.mark.parametrize("config_name, lr", [("cmarr_iemocap", 2e-4), ("cmarr_msp", 5e-4)])
def test_mmin_configs_build_adam_beta1_and_linear_decay_as_mmin(config_name: str, lr: float) -> None:
    experiment = load_experiment(config_name)
    assert experiment.train.max_epochs == 60 and experiment.train.pretrain_max_epochs == 20
    assert experiment.train.early_stop >= experiment.train.max_epochs        # MMIN never stops early
    betas, rates = _epoch_rates(config_name, RECOVERY, 60)
    assert betas == (0.5, 0.999)
    assert rates[:30] == pytest.approx([lr] * 30)                            # --niter 30: full rate
    assert rates[30] == pytest.approx(lr * (1 - 1 / 31))                     # first decayed epoch
    assert rates[44] == pytest.approx(lr * (1 - 15 / 31))
    assert rates[59] == pytest.approx(lr / 31)                               # last of --niter_decay 30
    betas, rates = _epoch_rates(config_name, PRETRAIN, 20)
    assert betas == (0.9, 0.999)                                             # utt-fusion scripts: beta1 0.9
    assert rates[:10] == pytest.approx([lr] * 10)
    assert rates[10] == pytest.approx(lr * (1 - 1 / 11)) and rates[19] == pytest.approx(lr / 11)


def test_linear_decay_factor_matches_mmins_rule() -> None:
    """MMIN: factor 1 - max(0, k + epoch_count - niter) / (niter_decay + 1) after k scheduler steps,
    epoch_count 1, so epoch e = k + 1 trains at 1 - max(0, e - niter) / (niter_decay + 1)."""
    assert [linear_decay_factor(e, 2, 3) for e in range(1, 6)] == pytest.approx([1, 1, 0.75, 0.5, 0.25])


def test_default_configs_keep_plateau_schedule_and_adam_defaults() -> None:
    experiment = load_experiment("quick_compare_cmarr", CMARR_TINY)
    assert experiment.train.lr_policy == "plateau"
    model = build_model(experiment, small_specs())
    model.prepare_stage(RECOVERY)
    optimizers, schedule = build_stage_optimizers(model, experiment.train, RECOVERY)
    assert optimizers["main"].param_groups[0]["betas"] == (0.9, 0.999)
    assert type(schedule.scheduler).__name__ == "ReduceLROnPlateau"


def test_trainer_logs_the_linear_schedule_per_epoch(tmp_path, monkeypatch) -> None:
    """The trainer uses the schedule: epochs.csv shows the rate each epoch trained at; stage 1 trains at
    its own batch size (``train.pretrain_batch_size``, as MMIN's MSP utterance-fusion script)."""
    import training.trainer

    training_batches: list[int] = []
    loader = training.trainer.DataLoader

    def recording_loader(dataset, *args, **kwargs):
        if kwargs.get("shuffle") or kwargs.get("sampler") is not None:          # training loaders only
            training_batches.append(kwargs["batch_size"])
        return loader(dataset, *args, **kwargs)

    monkeypatch.setattr(training.trainer, "DataLoader", recording_loader)
    out = tmp_path / "run"
    sets = ["data.synthetic_utterances=40", "data.seq_lens=[8, 12, 10]", "train.batch_size=16",
            "train.pretrain_batch_size=8", "train.max_epochs=3", "train.linear_constant_epochs=1",
            "train.linear_decay_epochs=2", "train.pretrain_max_epochs=1", *CMARR_TINY]
    argv = ["train", "--config", "cmarr_iemocap", "--synthetic", "--out", str(out), "--no-progress",
            "--device", "cpu"]
    assert cli_main([*argv, *[a for s in sets for a in ("--set", s)]]) == 0
    rows = [r for r in csv.DictReader((out / "epochs.csv").open()) if r["stage"] == RECOVERY]
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([2e-4, 2e-4 * 2 / 3, 2e-4 / 3], rel=1e-5)
    assert training_batches == [8, 16, 16, 16]                      # 1 stage-1 epoch, then 3 recovery epochs


def test_stage1_batch_size_follows_mmins_scripts() -> None:
    """MMIN: CAP_utt_fusion.sh and CAP_mmin.sh use batch 128; MSP_utt_fusion.sh 64, MSP_mmin.sh 128."""
    iemocap, msp = load_experiment("cmarr_iemocap").train, load_experiment("cmarr_msp").train
    assert (iemocap.batch_size, iemocap.pretrain_batch_size or iemocap.batch_size) == (128, 128)
    assert (msp.batch_size, msp.pretrain_batch_size) == (128, 64)


@pytest.mark.parametrize("setting, message", [
    ("train.lr_policy=\"cosine\"", "lr_policy"),
    ("train.adam_beta1=1.0", "adam_beta1"),
    ("train.linear_decay_epochs=-1", "linear_decay_epochs"),
    ("train.pretrain_adam_beta1=\"x\"", "pretrain_adam_beta1"),
    ("train.pretrain_batch_size=-1", "pretrain_batch_size"),
])
def test_bad_schedule_settings_are_one_clear_error(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_experiment("cmarr_iemocap", [setting])
