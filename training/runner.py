"""Run one experiment end to end: data → model → two training stages → test metrics → checkpoint."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from imer_core.checkpoint import save_checkpoint
from imer_core.config import ModelConfig, fold_fusion_option
from imer_core.methods.base import PRETRAIN, RECOVERY, RecoveryModel
from imer_core.modalities import FeatureSpecs
from imer_core.registry import create_model

from .data import (
    MMIN_DATASETS,
    SYNTHETIC_MMIN_NOTE,
    MMINDataset,
    MMSADataset,
    load_mmin_fold,
    load_mmsa,
    write_synthetic_mmin,
)
from .data.linear_gaussian import LINEAR_GAUSSIAN_NOTE, LinearGaussianTask, make_linear_gaussian_mmsa
from .data.mmsa import DATASET_DIMS
from .data.synthetic import SYNTHETIC_NOTE, make_synthetic_mmsa, write_pickle_atomically
from .distributed import DistContext
from .experiment import Experiment
from .protocols import MissingProtocol
from .runs import RunFolder
from .trainer import Trainer, seed_everything

MMSA_CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")
"""Class names of the MMSA ``classification_labels`` (ids 0, 1, 2)."""


@dataclass
class LoadedData:
    """The three splits as datasets, their feature specs, label names, and where they came from.

    ``labels`` are the model's output names: ``("sentiment",)`` for regression,
    the class names (index = class id) for classification.  ``fold`` is the
    MMIN cross-validation fold (``None`` for MMSA data).  ``metadata`` goes
    into every checkpoint trained on the data (the live data source puts its
    feature normalisation and label space there).
    """

    datasets: dict[str, Dataset]
    specs: FeatureSpecs
    source: str
    synthetic: bool
    note: str = ""
    labels: tuple[str, ...] = ("sentiment",)
    fold: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    oracle: Any = None
    """The :class:`~training.data.linear_gaussian.LinearGaussianTask` that generated the data (else ``None``)."""


@dataclass
class RunResult:
    """Metrics and files of one run."""

    run_dir: Path
    test: dict[str, float]
    valid: dict[str, float]
    stages: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None


def load_data(experiment: Experiment, cache_dir: Path, fold: int | None = None) -> LoadedData:
    """Load the experiment's data: an MMSA pickle or one fold of the MMIN release.

    Synthetic data is generated into ``cache_dir`` first and then goes through
    the same loader as the real files, so the code path a user with the real
    corpora runs is the one exercised here.  ``fold`` (MMIN only) defaults to
    the first of ``data.folds``, else 1.
    """
    if experiment.data.dataset.lower() == "live":
        from .live.dataset import load_live_experiment_data  # lazy: the live data source

        return load_live_experiment_data(experiment)
    if experiment.data.is_mmin:
        return _load_mmin(experiment, Path(cache_dir), fold)
    cfg = experiment.data
    oracle = None
    if cfg.synthetic:
        sizes = tuple(int(s) for s in cfg.synthetic_sizes)
        dims = tuple(int(d) for d in cfg.synthetic_dims) or None
        dims_name = "-".join(map(str, dims)) if dims else "default"
        shape = f"_d{dims_name}_l{cfg.synthetic_seq_len}" if dims or cfg.synthetic_seq_len != 50 else ""
        linear = cfg.synthetic_kind == "linear-gaussian"
        path = cache_dir / (f"synthetic_{cfg.dataset}_aligned_50_{'-'.join(map(str, sizes))}"
                            f"{shape}{'_lingauss' if linear else ''}_s{cfg.synthetic_seed}.pkl")
        if not path.exists():
            make = make_linear_gaussian_mmsa if linear else make_synthetic_mmsa
            write_pickle_atomically(path, make(dataset=cfg.dataset, seed=cfg.synthetic_seed, sizes=sizes, dims=dims,
                                               seq_len=cfg.synthetic_seq_len))
        splits = load_mmsa(path)
        source, note = str(path), LINEAR_GAUSSIAN_NOTE if linear else SYNTHETIC_NOTE
        if linear:
            oracle = LinearGaussianTask(dims or DATASET_DIMS[cfg.dataset.lower()], cfg.synthetic_seq_len,
                                        cfg.synthetic_seed)
    else:
        path = Path(cfg.path).expanduser()
        corpus = cfg.dataset.lower() if cfg.dataset.lower() in ("mosi", "mosei") else None  # "mmsa": either
        splits = load_mmsa(path, expected_sha256=cfg.expected_sha256 or None, dataset=corpus,
                           verify_sha256=cfg.verify_sha256, trust_pickle=cfg.trust_pickle)
        source, note = str(path), ""
    train = splits["train"]
    dims = (train.text.shape[2], train.audio.shape[2], train.vision.shape[2])
    lens = (train.text.shape[1], train.audio.shape[1], train.vision.shape[1])
    extractor = "synthetic-mmsa" if cfg.synthetic else f"mmsa-{Path(source).stem}"
    specs = FeatureSpecs.from_dims(dims, lens, extractor=extractor)
    regression = experiment.task == "regression"
    label_key = "regression_labels" if regression else "classification_labels"
    text_key = "text_bert" if uses_bert_tokens(experiment) else "text"
    datasets: dict[str, Dataset] = {name: MMSADataset(split, text_key=text_key, label_key=label_key)
                                    for name, split in splits.items()}
    labels = ("sentiment",) if regression else MMSA_CLASSES
    return LoadedData(datasets, specs, source, cfg.synthetic, note, labels, oracle=oracle)


def uses_bert_tokens(experiment: Experiment) -> bool:
    """Whether the model reads MMSA's ``text_bert`` token ids (``model.options.text_encoder = "bert"``)."""
    return str(experiment.method_options.get("text_encoder", "features")).strip().lower() == "bert"


def mmin_folds(experiment: Experiment) -> list[int]:
    """The MMIN folds an experiment runs: ``data.folds``, or all folds of the corpus."""
    info = MMIN_DATASETS[experiment.data.dataset.lower()]
    return [int(f) for f in experiment.data.folds] or list(range(1, info.n_folds + 1))


def _load_mmin(experiment: Experiment, cache_dir: Path, fold: int | None) -> LoadedData:
    cfg = experiment.data
    key = cfg.dataset.lower()
    if experiment.task != "classification":
        raise ValueError(f"{experiment.name}: {key} (MMIN release) is a classification corpus; "
                         "set [model] task = \"classification\"")
    if uses_bert_tokens(experiment):
        raise ValueError(f"{experiment.name}: the MMIN release carries BERT-large word vectors, no token ids; "
                         "use model.options.text_encoder=\"features\"")
    fold = int(fold) if fold is not None else mmin_folds(experiment)[0]
    if cfg.synthetic:
        root = cache_dir / f"synthetic_mmin_{key}_n{cfg.synthetic_utterances}_s{cfg.synthetic_seed}"
        if not (root / "target").is_dir():
            _write_synthetic_root(root, key, cfg.synthetic_utterances, cfg.synthetic_seed)
        note = SYNTHETIC_MMIN_NOTE
    else:
        root, note = Path(cfg.path).expanduser(), ""
    splits = load_mmin_fold(root, key, fold, seq_lens=tuple(cfg.seq_lens) or None, audio_norm=cfg.audio_norm)
    train = splits["train"]
    extractor = f"{'synthetic-' if cfg.synthetic else ''}mmin-{key}"
    specs = FeatureSpecs.from_dims(train.dims, train.seq_lens, extractor=extractor)
    datasets: dict[str, Dataset] = {name: MMINDataset(split) for name, split in splits.items()}
    return LoadedData(datasets, specs, str(root), cfg.synthetic, note, tuple(train.classes), fold)


def _write_synthetic_root(root: Path, dataset: str, utterances: int, seed: int) -> None:
    """Write the synthetic MMIN release (all folds) to a private folder, then rename it into place."""
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic_mmin(tmp, dataset, n_utterances=utterances, seed=seed)
    try:
        tmp.rename(root)
    except OSError:  # another process (DDP rank) finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / "target").is_dir():
            raise


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
