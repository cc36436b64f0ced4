"""The data ``imer-train evaluate`` reads: every dataset the trainer supports.

MMSA pickles (MOSI / MOSEI), the MMIN feature release (IEMOCAP / MSP-IMPROV,
one fold), the live-model feature cache and the synthetic benchmarks all go
through :func:`training.runner.load_data`, the loader training uses, so a
checkpoint is evaluated on exactly the inputs it was trained on (BERT token
ids included when the model reads them).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from imer_core.methods.base import RecoveryModel

from .experiment import CONFIG_DIR, DataConfig, Experiment, load_experiment
from .runner import LoadedData, load_data

EVAL_DATASETS = ("mosi", "mosei", "mmsa", "iemocap", "msp", "live")


def evaluation_experiment(args: argparse.Namespace, model: RecoveryModel) -> Experiment:
    """An experiment whose ``[data]`` describes what to evaluate on and whose model part is the checkpoint's.

    ``args``: ``config`` (experiment whose ``[data]`` table to start from; default: the
    checkpoint's training config when it is a shipped one), ``data``, ``dataset``,
    ``synthetic``, ``set`` overrides, ``skip_sha256`` and ``trust_pickle``.
    """
    meta = getattr(model, "checkpoint_metadata", {}) or {}
    config = args.config or (meta.get("experiment") if (CONFIG_DIR / f"{meta.get('experiment')}.toml").is_file()
                             else None)
    overrides = list(args.set or [])
    experiment = load_experiment(config, overrides) if config else Experiment(name="evaluate")
    dataset = args.dataset or meta.get("dataset") or (experiment.data.dataset if config else None)
    if dataset is None:
        if args.data and Path(args.data).expanduser().is_dir():
            raise ValueError(f"{args.data} is a folder: pass --dataset iemocap or msp (MMIN feature release), "
                             "or live (live feature cache)")
        dataset = "mmsa"                                 # an MMSA pickle of either corpus (dims not checked)
    if dataset.lower() not in EVAL_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; supported: {', '.join(EVAL_DATASETS)}")
    if not args.synthetic and not args.data:
        raise ValueError("pass --data (MMSA pickle, MMIN feature root or live cache) or --synthetic")
    data = replace(experiment.data, dataset=dataset.lower(), synthetic=bool(args.synthetic),
                   path=str(args.data or experiment.data.path))
    if args.skip_sha256:
        data = replace(data, verify_sha256=False)
    if args.trust_pickle:
        data = replace(data, trust_pickle=True)
    return replace(experiment, data=data, method=model.config.method, task=model.config.task,
                   method_options=dict(model.config.method_options))


def load_evaluation_data(experiment: Experiment, model: RecoveryModel, cache_dir: Path,
                         fold: int | None = None) -> LoadedData:
    """Load the data and check that it fits the checkpoint's feature specs (one clear error otherwise).

    Live data is normalised with the checkpoint's own ``feature_normalization`` when it has one
    (the statistics it was trained with, whatever subset of the corpora the cache holds).
    """
    stored = (getattr(model, "checkpoint_metadata", {}) or {}).get("feature_normalization")
    if experiment.data.dataset.lower() == "live" and stored:
        from .live.dataset import load_live_experiment_data  # lazy: the live data source

        loaded = load_live_experiment_data(experiment, stored)
    else:
        loaded = load_data(experiment, cache_dir, fold)
    want, got = model.config.specs, loaded.specs
    if tuple(want.dims) != tuple(got.dims) or [s.seq_len for s in want] != [s.seq_len for s in got]:
        raise ValueError(f"the data ({experiment.data.dataset}, dims {tuple(got.dims)}, lengths "
                         f"{[s.seq_len for s in got]}) does not fit the checkpoint (dims {tuple(want.dims)}, "
                         f"lengths {[s.seq_len for s in want]}); pick the matching --dataset / --config")
    if model.config.task == "classification" and tuple(loaded.labels) != tuple(model.config.labels):
        raise ValueError(f"the data's classes {list(loaded.labels)} differ from the checkpoint's "
                         f"{list(model.config.labels)}")
    return loaded


__all__ = ["EVAL_DATASETS", "DataConfig", "evaluation_experiment", "load_evaluation_data"]
