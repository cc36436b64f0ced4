"""Optimisers and learning-rate schedules of one training stage.

Two schedule policies (``TrainConfig.lr_policy``):

* ``"plateau"`` (default, IMDer's reference trainer): ``ReduceLROnPlateau`` on the
  validation loss (factor ``scheduler_factor``, patience ``scheduler_patience``).
* ``"linear"`` (MMIN's public code, AIM3-RUC/MMIN): the learning rate stays at its initial
  value for ``C`` epochs, then falls linearly towards zero over ``D`` more epochs.  MMIN's
  ``models/networks/tools.py`` (``get_scheduler``, policy ``'linear'``, about lines 48-52 at
  commit afeb523) multiplies the initial rate by ``1 - max(0, k + 1 - C) / (D + 1)``, with
  ``k`` the number of scheduler steps taken so far; ``train_miss.py`` /
  ``train_baseline.py`` step it once at the end of every epoch.  So epoch ``e`` (1-based)
  trains at ``lr * (1 - max(0, e - C) / (D + 1))``: epochs ``1..C`` at the full rate, epoch
  ``C + D`` (the last) at ``lr / (D + 1)``.  ``C`` and ``D`` are MMIN's ``--niter`` and
  ``--niter_decay`` (``TrainConfig.linear_constant_epochs`` / ``linear_decay_epochs``, and the
  ``pretrain_`` pair for stage 1).

The Adam β1 of the main optimiser is set per stage (``TrainConfig.adam_beta1`` for the
recovery stage, ``pretrain_adam_beta1`` for stage 1; β2 stays 0.999): MMIN's models build
``Adam(lr=opt.lr, betas=(opt.beta1, 0.999))`` and its scripts pass β1 0.5 for the MMIN stage
(option default in ``opts/train_opts.py``) and β1 0.9 for the utterance-fusion pre-training
(``scripts/CAP_utt_fusion.sh``, ``scripts/MSP_utt_fusion.sh``).  Other optimisers of a method
(RoHyDR's discriminator) keep their own settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from imer_core.methods.base import PRETRAIN, RecoveryModel

from .experiment import TrainConfig

#: Adam's β2 (torch's default; MMIN passes the same value).
ADAM_BETA2 = 0.999
LR_POLICIES = ("plateau", "linear")


def linear_decay_factor(epoch: int, constant_epochs: int, decay_epochs: int) -> float:
    """Learning-rate multiplier of epoch ``epoch`` (1-based) under MMIN's ``'linear'`` policy."""
    return 1.0 - max(0, epoch - constant_epochs) / float(decay_epochs + 1)


def stage_beta1(config: TrainConfig, stage: str) -> float:
    """Adam β1 of the main optimiser in ``stage``."""
    return config.pretrain_adam_beta1 if stage == PRETRAIN else config.adam_beta1


def stage_linear_epochs(config: TrainConfig, stage: str) -> tuple[int, int]:
    """``(constant, decay)`` epoch counts of the linear policy in ``stage``."""
    if stage == PRETRAIN:
        return config.pretrain_linear_constant_epochs, config.pretrain_linear_decay_epochs
    return config.linear_constant_epochs, config.linear_decay_epochs


@dataclass
class StageSchedule:
    """The learning-rate schedule of one stage, stepped once after every epoch's validation."""

    policy: str
    scheduler: Any

    def step(self, valid_loss: float) -> None:
        """Advance one epoch (the plateau policy watches ``valid_loss``; the linear one ignores it)."""
        if self.policy == "plateau":
            self.scheduler.step(valid_loss)
        else:
            self.scheduler.step()


def build_stage_optimizers(model: RecoveryModel, config: TrainConfig,
                           stage: str) -> tuple[dict[str, torch.optim.Optimizer], StageSchedule]:
    """The method's optimisers with the stage's Adam β1 on ``"main"``, and the stage's schedule.

    Call after :meth:`RecoveryModel.prepare_stage` (it decides which parameters train).
    """
    optimizers = model.configure_optimizers(config.learning_rate, config.weight_decay)
    main = optimizers["main"]
    beta1 = stage_beta1(config, stage)
    for group in main.param_groups:
        if "betas" in group:
            group["betas"] = (beta1, ADAM_BETA2)
    scheduler: Any
    if config.lr_policy == "linear":
        constant, decay = stage_linear_epochs(config, stage)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            main, lr_lambda=lambda steps: linear_decay_factor(steps + 1, constant, decay))
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            main, mode="min", factor=config.scheduler_factor, patience=config.scheduler_patience)
    return optimizers, StageSchedule(config.lr_policy, scheduler)
