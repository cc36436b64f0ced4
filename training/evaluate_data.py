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

from .data.source import LoadedData, available_datasets, data_source
from .experiment import CONFIG_DIR, DataConfig, Experiment, load_experiment
from .runner import load_data


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
            raise ValueError(f"{args.data} is a folder: pass --dataset {_folder_datasets()}")
        dataset = "mmsa"                                 # an MMSA pickle of either corpus (dims not checked)
    data_source(dataset)  # ValueError naming the supported datasets
    if not args.synthetic and not args.data:
        raise ValueError("pass --data (MMSA pickle, MMIN feature root or live cache) or --synthetic")
    same_source = data_source(dataset) is experiment.data.source
    data = replace(experiment.data, dataset=dataset.lower(), synthetic=bool(args.synthetic),
                   path=str(args.data or experiment.data.path),
                   options=experiment.data.options if same_source else None)
    if args.skip_sha256:
        data = data.with_options(verify_sha256=False)
    if args.trust_pickle:
        data = data.with_options(trust_pickle=True)
    return replace(experiment, data=data, method=model.config.method, task=model.config.task,
                   method_options=dict(model.config.method_options))


def _folder_datasets() -> str:
    """``"iemocap or msp (MMIN feature release), or live (live feature cache)"``: the datasets read from folders."""
    sources = {id(data_source(d)): data_source(d) for d in available_datasets() if data_source(d).folder_data}
    return ", or ".join(f"{' or '.join(s.datasets)} ({s.description})" for s in sources.values())


def load_evaluation_data(experiment: Experiment, model: RecoveryModel, cache_dir: Path,
                         fold: int | None = None) -> LoadedData:
    """Load the data and check that it fits the checkpoint's feature specs (one clear error otherwise).

    A source that needs the checkpoint to load its data (the live source normalises with the
    checkpoint's own ``feature_normalization``) gets its metadata.
    """
    source = experiment.data.source
    if source.load_for_checkpoint is not None:
        metadata = getattr(model, "checkpoint_metadata", {}) or {}
        loaded = source.load_for_checkpoint(experiment, metadata, Path(cache_dir), fold)
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


__all__ = ["DataConfig", "evaluation_experiment", "load_evaluation_data"]
