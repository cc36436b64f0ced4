"""The live data source: the live-model corpora as class-matched pseudo-pairs (:mod:`training.live.dataset`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.live.dataset import LiveDataOptions, load_live_experiment_data

from .source import RATE, DataSource, LoadedData

if TYPE_CHECKING:
    from training.experiment import Experiment


def load_live_data(experiment: Experiment, cache_dir: Path, fold: int | None = None) -> LoadedData:
    """The pseudo-paired live corpora from the feature cache at ``[data] path``."""
    return load_live_experiment_data(experiment)


def load_live_data_for_checkpoint(experiment: Experiment, metadata: Mapping[str, Any], cache_dir: Path,
                                  fold: int | None = None) -> LoadedData:
    """As :func:`load_live_data`, normalised with the checkpoint's own ``feature_normalization`` when it
    has one (the statistics it was trained with, whatever subset of the corpora the cache holds)."""
    return load_live_experiment_data(experiment, metadata.get("feature_normalization") or None)


LIVE_SOURCE = DataSource("live", ("live",), load_live_data, default_protocol="scenario:complete",
                         protocol_kind=RATE, options=LiveDataOptions,
                         load_for_checkpoint=load_live_data_for_checkpoint, folder_data=True,
                         description="live feature cache")

#: Discovered by :mod:`training.data.source`.
DATA_SOURCES = (LIVE_SOURCE,)
