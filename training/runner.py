"""Run one experiment end to end: data → model → two training stages → test metrics → checkpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from imer_core.checkpoint import save_checkpoint
from imer_core.config import ModelConfig, fold_fusion_option
from imer_core.methods.base import PRETRAIN, RECOVERY, RecoveryModel
from imer_core.modalities import FeatureSpecs
from imer_core.registry import create_model

from .data.mmsa_source import MMSA_CLASSES
from .data.source import LoadedData
from .distributed import DistContext
from .experiment import Experiment
from .protocols import MissingProtocol
from .runs import RunFolder
from .trainer import Trainer, seed_everything


@dataclass
class RunResult:
    """Metrics and files of one run."""

    run_dir: Path
    test: dict[str, float]
    valid: dict[str, float]
    stages: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None


def load_data(experiment: Experiment, cache_dir: Path, fold: int | None = None) -> LoadedData:
    """Load the experiment's data with the registered source of its dataset
    (:mod:`training.data.source`; ``fold``: of a cross-validated source, default its first)."""
    return experiment.data.source.load(experiment, Path(cache_dir), fold)


def build_model(experiment: Experiment, specs: FeatureSpecs,
                labels: tuple[str, ...] | None = None) -> RecoveryModel:
    """Instantiate the experiment's model for the given feature specs and output names.

    ``labels``: the loaded data's :attr:`LoadedData.labels`; without it,
    ``("sentiment",)`` for regression and the MMSA classes for classification.
    """
    if labels is None:
        labels = ("sentiment",) if experiment.task == "regression" else MMSA_CLASSES
    options = fold_fusion_option(experiment.method, experiment.method_options, experiment.fusion)
    config = ModelConfig(method=experiment.method, specs=specs, task=experiment.task, labels=tuple(labels),
                         method_options=options)
    return create_model(config)


def run_experiment(experiment: Experiment, data: LoadedData, protocol: MissingProtocol, seed: int,
                   run_dir: Path, ctx: DistContext, pretrained: dict[str, torch.Tensor] | None = None,
                   progress: bool = True, save: bool = True) -> tuple[RunResult, RecoveryModel]:
    """Train (pre-training unless ``pretrained`` weights are given, then recovery) and test one model."""
    seed_everything(seed)
    run = RunFolder(run_dir, enabled=ctx.is_main)
    run.write_config({"experiment": experiment.to_dict(), "seed": seed, "protocol": protocol.name,
                      "fold": data.fold, "data_source": data.source, "synthetic": data.synthetic, "note": data.note,
                      "world_size": ctx.world_size, "device": str(ctx.device)})
    model = build_model(experiment, data.specs, data.labels)
    trainer = Trainer(model, data.datasets, experiment.train, protocol, ctx, run, seed, progress)
    stages = []
    if pretrained is None:
        stages.append(_stage_summary(trainer.fit(PRETRAIN)))
    else:
        model.load_state_dict(pretrained)
    stages.append(_stage_summary(trainer.fit(RECOVERY)))
    result = RunResult(run_dir, test={}, valid={}, stages=stages)
    if ctx.is_main:
        started = time.perf_counter()
        result.valid = trainer.evaluate("valid")
        result.test = trainer.evaluate("test")
        result.test["eval_seconds"] = time.perf_counter() - started
        run.write_json("metrics.json", {"valid": result.valid, "test": result.test, "stages": stages,
                                        "protocol": protocol.name, "seed": seed, "synthetic": data.synthetic})
        if save:
            meta = {"experiment": experiment.name, "dataset": experiment.data.dataset, "protocol": protocol.name,
                    "seed": seed,
                    "data_source": data.source, "synthetic": data.synthetic, "test_metrics": result.test,
                    **data.metadata}
            result.checkpoint = save_checkpoint(model, run_dir / "model.pt", meta)
    return result, model


def pretrain_state(experiment: Experiment, data: LoadedData, protocol: MissingProtocol, seed: int,
                   run_dir: Path, ctx: DistContext, progress: bool = True) -> dict[str, torch.Tensor]:
    """Stage 1 only (complete data); returns the best weights for the recovery runs of a sweep."""
    seed_everything(seed)
    run = RunFolder(run_dir, enabled=ctx.is_main)
    run.write_config({"experiment": experiment.to_dict(), "seed": seed, "stage": PRETRAIN,
                      "data_source": data.source, "synthetic": data.synthetic, "note": data.note})
    model = build_model(experiment, data.specs, data.labels)
    trainer = Trainer(model, data.datasets, experiment.train, protocol, ctx, run, seed, progress)
    summary = _stage_summary(trainer.fit(PRETRAIN))
    if ctx.is_main:
        complete = trainer.evaluate("test", stage=PRETRAIN)
        run.write_json("metrics.json", {"stage": summary, "test_complete": complete})
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _stage_summary(result: Any) -> dict[str, Any]:
    return {"stage": result.stage, "best_epoch": result.best_epoch, "best_valid": result.best_valid,
            "epochs": result.epochs, "seconds": round(result.seconds, 2)}
