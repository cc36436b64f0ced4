"""Data sources: one registered :class:`DataSource` per kind of training data.

A data source says how to load an experiment's data (:class:`LoadedData`), which
``[data] dataset`` names it serves, its default missing-modality protocol,
the kind of protocol it is evaluated with (``"rate"``: missing rates, MOSI /
MOSEI; ``"scenario"``: the six missing scenarios, cross-validated over folds,
IEMOCAP / MSP-IMPROV) and the dataclass of its options (the ``[data]`` keys
beyond ``dataset``/``path``/``synthetic``/``synthetic_seed``, or a
``[data.<source name>]`` table).

Built-in sources are found without a hand-kept list: on first use every
module of :mod:`training.data` is imported and the :class:`DataSource` objects
in its module-level ``DATA_SOURCES`` are registered.  Code anywhere else (a
test, a notebook) calls :func:`register_data_source`; ``imer-train train`` /
``compare`` / ``cv`` / ``evaluate`` then read ``[data] dataset = "<name>"``.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imer_core.modalities import FeatureSpecs

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from training.experiment import Experiment

RATE, SCENARIO = "rate", "scenario"
PROTOCOL_KINDS = (RATE, SCENARIO)


@dataclass
class LoadedData:
    """The three splits as datasets, their feature specs, label names, and where they came from.

    ``labels`` are the model's output names: ``("sentiment",)`` for regression,
    the class names (index = class id) for classification.  ``fold`` is the
    cross-validation fold (``None`` without folds).  ``metadata`` goes into
    every checkpoint trained on the data (the live data source puts its feature
    normalisation and label space there).
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


@dataclass(frozen=True)
class DataSource:
    """One kind of training data.

    Attributes:
        name: the source's name (also the ``[data.<name>]`` options table).
        datasets: the ``[data] dataset`` values it serves (lower case).
        load: ``load(experiment, cache_dir, fold) -> LoadedData`` (``fold``: ``None`` = the first).
        default_protocol: missing-modality protocol of training and evaluation when none is given.
        protocol_kind: ``"rate"`` (evaluated at missing rates) or ``"scenario"`` (six
            missing scenarios, cross-validated over :attr:`folds`).
        options: dataclass of its options (built from the ``[data]`` keys it knows).
        folds: ``folds(experiment) -> [fold, ...]`` of a cross-validated source.
        load_for_checkpoint: ``(experiment, checkpoint metadata, cache_dir, fold) -> LoadedData``
            when evaluating a checkpoint needs more than :attr:`load` (the live source
            normalises with the checkpoint's statistics); ``None``: :attr:`load`.
        per_experiment_options: options each experiment of a comparison keeps as its own
            (the rest of ``[data]`` is the first experiment's).
        folder_data: its ``path`` is a folder (``imer-train evaluate`` asks for ``--dataset`` then).
        description: what ``[data] path`` points at, for messages ("MMSA pickle").
    """

    name: str
    datasets: tuple[str, ...]
    load: Callable[[Experiment, Path, int | None], LoadedData]
    default_protocol: str
    protocol_kind: str = RATE
    options: type | None = None
    folds: Callable[[Experiment], list[int]] | None = None
    load_for_checkpoint: Callable[[Experiment, Mapping[str, Any], Path, int | None], LoadedData] | None = None
    per_experiment_options: tuple[str, ...] = ()
    folder_data: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.protocol_kind not in PROTOCOL_KINDS:
            raise ValueError(f"{self.name}: protocol_kind must be one of {PROTOCOL_KINDS}, got {self.protocol_kind!r}")
        if self.protocol_kind == SCENARIO and self.folds is None:
            raise ValueError(f"{self.name}: a scenario source is cross-validated and needs folds()")
        object.__setattr__(self, "datasets", tuple(d.strip().lower() for d in self.datasets))

    def default_options(self) -> Any:
        """The options dataclass with its defaults (``None`` without options)."""
        return self.options() if self.options is not None else None


_SOURCES: dict[str, DataSource] = {}
_LOCK = threading.RLock()
_LOADED = False


def register_data_source(source: DataSource, *, replace: bool = False) -> DataSource:
    """Register ``source`` for its dataset names (``replace``: allow taking over names already served)."""
    _load_builtins()
    with _LOCK:
        taken = [d for d in source.datasets if d in _SOURCES and _SOURCES[d] is not source]
        if taken and not replace:
            raise ValueError(f"dataset(s) {taken} are already served by {_SOURCES[taken[0]].name!r}")
        for dataset in source.datasets:
            _SOURCES[dataset] = source
    return source


def unregister_data_source(source: DataSource) -> None:
    """Remove a registered source (for code that registers one for a while, e.g. a test)."""
    with _LOCK:
        for dataset in source.datasets:
            if _SOURCES.get(dataset) is source:
                del _SOURCES[dataset]


def data_source(dataset: str) -> DataSource:
    """The source serving ``dataset`` (raises ``ValueError`` naming the known datasets)."""
    _load_builtins()
    source = _SOURCES.get(str(dataset).strip().lower())
    if source is None:
        raise ValueError(f"unknown dataset {dataset!r}; supported: {', '.join(available_datasets())}")
    return source


def available_datasets() -> list[str]:
    """Every ``[data] dataset`` value a registered source serves."""
    _load_builtins()
    return sorted(_SOURCES)


def _load_builtins() -> None:
    global _LOADED
    if _LOADED:
        return
    from training import data

    with _LOCK:
        if _LOADED:
            return
        _LOADED = True  # set first: a module registering at import time calls back in
        for info in sorted(pkgutil.iter_modules(data.__path__), key=lambda i: i.name):
            module = importlib.import_module(f"{data.__name__}.{info.name}")
            for source in getattr(module, "DATA_SOURCES", ()):
                for dataset in source.datasets:
                    _SOURCES.setdefault(dataset, source)
