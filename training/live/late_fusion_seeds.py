"""The late-fusion baseline over several seeds (``imer-train live-eval --late-fusion-seeds N``).

``live-eval``'s late-fusion baseline is one unimodal classifier per modality,
trained with one seed.  On the live tuples its audio classifier alone moves by
about 10 macro-F1 points with the seed (RAVDESS + EmoDB have six test speakers),
and every condition with audio moves with it, so a fused model's margin over
one seed says little.  This module trains the baseline with more seeds, keeps
each seed's per-condition metrics, and adds their mean as a row of its own
(:data:`LATE_FUSION_MEAN`); the targets table then compares every model with
both the first seed (the row ``live-eval`` always had) and the mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .baselines import LateFusion, train_unimodal
from .labels import LIVE_LABELS

#: Row title of the late-fusion baseline of the first seed (the row ``live-eval`` always has).
LATE_FUSION = "unimodal (late fusion)"
#: Row title of the mean over the late-fusion seeds.
LATE_FUSION_MEAN = "unimodal (late fusion), mean over seeds"

Metrics = dict[str, dict[str, float]]


def train_late_fusion(data: Any, seed: int, progress: bool) -> tuple[LateFusion, dict[str, Any]]:
    """One late-fusion baseline: a unimodal classifier per modality trained with ``seed``."""
    classifiers, info = {}, {}
    for spec in data.specs:
        name = spec.modality.value
        classifiers[name], info[f"unimodal_{name}"] = train_unimodal(data.datasets, name, spec.dim, LIVE_LABELS,
                                                                    seed=seed, progress=progress)
    return LateFusion(classifiers), info


def mean_metrics(rows: Sequence[Mapping[str, Mapping[str, float]]]) -> Metrics:
    """Per condition, the mean of every metric that all ``rows`` have."""
    if not rows:
        raise ValueError("mean_metrics needs at least one row")
    conditions = [c for c in rows[0] if all(c in r for r in rows)]
    out: Metrics = {}
    for condition in conditions:
        names = set.intersection(*(set(r[condition]) for r in rows))
        out[condition] = {k: float(np.mean([float(r[condition][k]) for r in rows])) for k in sorted(names)}
    return out


def more_seeds(evaluate: Callable[[Any], Metrics], data: Any, first_seed: int, count: int,
               progress: bool) -> dict[int, Metrics]:
    """Per-condition metrics of the late-fusion baseline for seeds ``first_seed + 1 .. first_seed + count - 1``."""
    return {seed: evaluate(train_late_fusion(data, seed, progress)[0].predict)
            for seed in range(first_seed + 1, first_seed + max(1, int(count)))}


def spread_lines(report: Mapping[str, Any], fmt: Callable[[float], str]) -> list[str]:
    """Markdown: the late-fusion macro-F1 per seed and condition, with min and max (empty without seeds)."""
    seeds = report.get("late_fusion_seeds") or {}
    if len(seeds) < 2:
        return []
    conds = report["conditions"]
    lines = [f"### Late fusion over {len(seeds)} seeds (macro-F1)", "",
             "The first seed is the row `unimodal (late fusion)`; their mean is the row "
             f"`{LATE_FUSION_MEAN}`.", "", "| seed | " + " | ".join(conds) + " |", "|---" * (len(conds) + 1) + "|"]
    for seed, row in seeds.items():
        lines.append(f"| {seed} | " + " | ".join(fmt(row[c]["macro_f1"]) for c in conds) + " |")
    for name, pick in (("min", min), ("max", max)):
        lines.append(f"| {name} | " + " | ".join(fmt(pick(r[c]["macro_f1"] for r in seeds.values())) for c in conds)
                     + " |")
    return lines + [""]
