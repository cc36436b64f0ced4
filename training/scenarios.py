"""The MMIN six-scenario protocol: fixed-subset evaluation and random-scenario training.

MMIN (Zhao et al., ACL 2021; AIM3-RUC/MMIN ``data/multimodal_miss_dataset.py``,
``train_miss.py``) evaluates every validation / test utterance under each of
the six missing-modality conditions and reports them in the order
``{a}, {v}, {l}, {a,v}, {a,l}, {v,l}`` (its ``miss_type`` codes ``azz``,
``zvz``, ``zzl``, ``avz``, ``azl``, ``zvl``, availability ``[A, V, L]``) plus
their average; later papers often add the complete condition ``{a,v,l}``.
:data:`SCENARIOS` holds these seven as
:class:`~training.protocols.FixedSubsetProtocol` instances, named by their
MMIN letters (``"a"``, ..., ``"vl"``, ``"avl"``).

For training MMIN draws, for every sample and every epoch, one of the six
missing conditions uniformly (``random.choice``) and never trains on complete
input: :class:`RandomScenarioProtocol` with ``include_complete=False``
reproduces that; ``include_complete=True`` draws uniformly among all seven
(CM-ARR's training code was not available to check which variant it uses).

Averages: MMIN's "average" column is the metric over the pooled ``6 N``
predictions.  Since every scenario sees the same utterances, the pooled
accuracy (WAR) and the pooled UAR equal the means of the six per-scenario
values, which :func:`summarize_scenarios` computes (pooled macro-F1 can differ
slightly from the mean of the six macro-F1s).  MMIN reports the mean over
folds; :func:`summarize_folds` adds the standard deviation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imer_core.modalities import MODALITIES, as_modality
from training.protocols import FixedSubsetProtocol, MissingProtocol, split_seed

# (name, MMIN miss_type) in MMIN's table order; names list the available modalities.
_TABLE: tuple[tuple[str, str], ...] = (
    ("a", "azz"), ("v", "zvz"), ("l", "zzl"), ("av", "avz"), ("al", "azl"), ("vl", "zvl"),
)
MISSING_SCENARIO_NAMES: tuple[str, ...] = tuple(name for name, _ in _TABLE)
COMPLETE_SCENARIO = "avl"
MMIN_MISS_TYPES: dict[str, str] = {**dict(_TABLE), COMPLETE_SCENARIO: "avl"}
SCENARIOS: list[tuple[str, FixedSubsetProtocol]] = [
    (name, FixedSubsetProtocol(name)) for name in (*MISSING_SCENARIO_NAMES, COMPLETE_SCENARIO)
]
_ALIASES: dict[str, str] = {code: name for name, code in MMIN_MISS_TYPES.items()}
_METRIC_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("war", ("war", "accuracy", "acc")), ("uar", ("uar",)), ("macro_f1", ("macro_f1", "f1")),
)


def scenario_row(name: str) -> np.ndarray:
    """Availability row (text, audio, vision) of a scenario name such as ``"al"`` or ``"azl"``."""
    key = _canonical(name)
    present = {as_modality(letter) for letter in key}
    return np.array([m in present for m in MODALITIES], dtype=bool)


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in MMIN_MISS_TYPES:
        raise ValueError(f"unknown scenario {name!r}; expected one of {list(MMIN_MISS_TYPES)} "
                         f"or an MMIN code {sorted(_ALIASES)}")
    return key


class RandomScenarioProtocol(MissingProtocol):
    """Each sample gets one scenario drawn uniformly (MMIN's training protocol).

    Training: every row is drawn independently from the trainer's generator
    among the six missing scenarios (plus complete if ``include_complete``),
    so a sample sees a new scenario every epoch and no row is ever empty.

    Evaluation (:meth:`eval_passes`, what the trainer uses for validation and
    test): every sample under every scenario, metrics pooled over the ``k × N``
    predictions — MMIN's ``MultimodalMissDataset`` for ``val`` / ``tst``, so model
    selection sees all six scenarios per utterance.  :meth:`eval_masks` is a
    single balanced pass (each scenario on ``floor`` or ``ceil`` of ``N / k``
    samples, order permuted by ``seed`` and the split name).
    """

    def __init__(self, include_complete: bool = False, seed: int = 0) -> None:
        """``include_complete``: also draw the complete condition; ``seed`` fixes evaluation masks."""
        self.include_complete = bool(include_complete)
        self.seed = int(seed)
        names = MISSING_SCENARIO_NAMES + ((COMPLETE_SCENARIO,) if self.include_complete else ())
        self.scenario_names: tuple[str, ...] = names
        self._rows = np.stack([scenario_row(name) for name in names])

    @property
    def name(self) -> str:
        """``"scenario"`` or ``"scenario:complete"``."""
        return "scenario:complete" if self.include_complete else "scenario"

    @property
    def expected_missing_rate(self) -> float:
        """1/2 for the six missing scenarios, 3/7 with complete."""
        return float((~self._rows).mean())

    def train_mask(self, batch_index: int, n_batches: int, sample_indices: np.ndarray,
                   epoch: int, rng: np.random.Generator) -> np.ndarray:
        """One uniformly drawn scenario row per sample."""
        picks = rng.integers(0, len(self._rows), size=len(sample_indices))
        return self._rows[picks].copy()

    def eval_masks(self, n_samples: int, batch_size: int, split: str) -> np.ndarray:
        """Balanced scenario assignment, deterministic given ``seed`` and ``split``."""
        picks = np.arange(n_samples) % len(self._rows)
        order = split_seed(self.seed, split).permutation(n_samples)
        return self._rows[picks[order]].copy()

    def eval_passes(self, n_samples: int, batch_size: int, split: str) -> list[np.ndarray]:
        """One pass per scenario, every sample under it (MMIN's six-fold validation / test set)."""
        return [np.repeat(row[None], n_samples, axis=0) for row in self._rows]


_SPEC_HELP = ('expected "scenario" (six missing scenarios), "scenario:missing" (same) or '
              '"scenario:complete" (the six plus complete)')


def make_scenario_protocol(spec: str, *, seed: int = 0) -> RandomScenarioProtocol:
    """Parse ``"scenario"``, ``"scenario:missing"`` or ``"scenario:complete"``."""
    kind, _, value = str(spec).strip().lower().partition(":")
    value = value.strip()
    if kind.strip() != "scenario":
        raise ValueError(f"not a scenario protocol spec: {spec!r}: {_SPEC_HELP}")
    if value in ("", "missing", "six", "6"):
        return RandomScenarioProtocol(False, seed)
    if value in ("complete", "all", "seven", "7"):
        return RandomScenarioProtocol(True, seed)
    raise ValueError(f"invalid scenario protocol {spec!r}: {_SPEC_HELP}")


def _metric(result: Mapping[str, Any], aliases: Sequence[str]) -> float | None:
    for alias in aliases:
        if alias in result:
            return float(result[alias])
    return None


def summarize_scenarios(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-scenario WAR / UAR / macro-F1 and their average over the six missing scenarios.

    Args:
        results: ``{scenario: metrics}`` where scenario is a name of
            :data:`SCENARIOS` (or an MMIN code such as ``"azl"``) and metrics
            a :func:`training.metrics.classification_metrics` dict
            (``accuracy`` = WAR, ``uar``, ``macro_f1``; ``war`` / ``acc`` /
            ``f1`` are accepted too).  All six missing scenarios are required;
            ``"avl"`` (complete) is optional.

    Returns:
        ``{name: {"war", "uar"[, "macro_f1"]}}`` in table order, then
        ``"missing_avg"`` with the means over the six missing scenarios.
        Values keep the scale of the input (fractions from ``classification_metrics``).

    Raises:
        ValueError: unknown or duplicate scenario, missing scenario or metric.
    """
    by_name: dict[str, Mapping[str, Any]] = {}
    for name, metrics in results.items():
        key = _canonical(name)
        if key in by_name:
            raise ValueError(f"scenario {key!r} given twice (as {name!r})")
        by_name[key] = metrics
    absent = [name for name in MISSING_SCENARIO_NAMES if name not in by_name]
    if absent:
        raise ValueError(f"summarize_scenarios needs all six missing scenarios; absent: {absent}")
    summary: dict[str, dict[str, float]] = {}
    for name in (*MISSING_SCENARIO_NAMES, COMPLETE_SCENARIO):
        if name not in by_name:
            continue
        row = {}
        for key, aliases in _METRIC_KEYS:
            value = _metric(by_name[name], aliases)
            if value is None and key != "macro_f1":
                raise ValueError(f"scenario {name!r} has no {key} metric (looked for {aliases})")
            if value is not None:
                row[key] = value
        summary[name] = row
    keys = [k for k, _ in _METRIC_KEYS if all(k in summary[n] for n in MISSING_SCENARIO_NAMES)]
    summary["missing_avg"] = {k: float(np.mean([summary[n][k] for n in MISSING_SCENARIO_NAMES]))
                              for k in keys}
    return summary


def summarize_folds(per_fold: Sequence[Mapping[str, Any]], *, ddof: int = 1) -> dict[str, Any]:
    """Mean and standard deviation over folds of every numeric leaf.

    Args:
        per_fold: one (possibly nested) dict per fold, e.g. the outputs of
            :func:`summarize_scenarios` or flat metric dicts.
        ddof: 1 (sample std, as :func:`training.metrics.summarize_seeds`; one fold has
            no spread: NaN, so tables print the mean alone, never "± 0.0") or 0
            (population std).

    Returns:
        The same nesting with ``(mean, std)`` tuples at numeric leaves present
        in every fold (others are skipped), plus ``"n_folds"``.  Values keep
        their scale; NaNs propagate.
    """
    if not per_fold:
        raise ValueError("summarize_folds needs at least one fold")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1; got {ddof}")
    summary = _summarize_level(list(per_fold), ddof)
    summary["n_folds"] = len(per_fold)
    return summary


def _summarize_level(items: list[Mapping[str, Any]], ddof: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, first in items[0].items():
        values = [item.get(key) for item in items]
        if isinstance(first, Mapping):
            nested = [v for v in values if isinstance(v, Mapping)]
            if len(nested) == len(values):
                out[key] = _summarize_level(nested, ddof)
        elif all(_is_number(v) for v in values):
            array = np.asarray(values, dtype=np.float64)
            spread = float(np.std(array, ddof=ddof)) if array.size > ddof else float("nan")
            out[key] = (float(np.mean(array)), spread)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
