"""The MMIN six-scenario cross-validation protocol (IEMOCAP / MSP-IMPROV).

For every fold of a cross-validated data source (the MMIN release: :func:`training.data.mmin_source.mmin_folds`):

1. **pretrain** on complete data (stage 1 of :class:`~training.trainer.Trainer`);
2. **recovery** stage trained with :class:`~training.scenarios.RandomScenarioProtocol`
   (every sample draws one of the six missing scenarios every epoch, MMIN's
   training protocol; ``"scenario:complete"`` also draws the complete one);
3. **model selection**: each stage keeps the epoch with the best validation
   ``train.key_eval`` (MMIN's scripts: UAR for IEMOCAP, macro-F1 for
   MSP-IMPROV) computed as MMIN does: every validation utterance under each of
   the six missing scenarios, metrics pooled over the 6 N predictions
   (:meth:`~training.scenarios.RandomScenarioProtocol.eval_passes`); the
   complete condition takes no part in selection (as MMIN);
4. **test**: every test utterance under each of the seven conditions of
   :data:`~training.scenarios.SCENARIOS` (six missing + complete), giving
   WAR (accuracy), UAR and macro-F1 per scenario, plus the recovery error.

Folds are then summarised (mean ± sample std; one fold: the mean alone).  Outputs: ``results.csv``
(one row per fold × scenario, plus each fold's ``missing_avg``),
``results.md`` and ``summary.json``; synthetic data is labelled SYNTHETIC.
Training is :func:`training.runner.run_experiment` (the one trainer loop).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imer_core.methods.base import RecoveryModel

from .data.source import SCENARIO, LoadedData
from .distributed import DistContext
from .experiment import Experiment
from .protocol_spec import make_protocol
from .runner import load_data, run_experiment
from .runs import RunFolder
from .scenarios import COMPLETE_SCENARIO, SCENARIOS, summarize_folds, summarize_scenarios
from .trainer import Trainer

SCENARIO_LABELS: dict[str, str] = {"a": "{a}", "v": "{v}", "l": "{l}", "av": "{a,v}", "al": "{a,l}",
                                   "vl": "{v,l}", "avl": "{a,v,l} (complete)", "missing_avg": "average (6 missing)"}
CSV_METRICS: tuple[str, ...] = ("war", "uar", "macro_f1", "recovery_mse", "zero_fill_mse", "recovery_ratio")


@dataclass
class CVResult:
    """Outputs of :func:`run_cv`.

    Attributes:
        rows: one dict per fold × scenario (the CSV rows).
        per_fold: ``{fold: {scenario: metrics}}`` (scenario metrics as fractions).
        summary: :func:`~training.scenarios.summarize_folds` of ``per_fold`` values.
        markdown_path, csv_path, json_path: the written files.
        model: the model trained on the last fold (for latency measurements).
        data: the data of the last fold.
        synthetic: whether the data were synthetic.
    """

    rows: list[dict[str, Any]]
    per_fold: dict[int, dict[str, dict[str, float]]]
    summary: dict[str, Any]
    markdown_path: Path
    csv_path: Path
    json_path: Path
    model: RecoveryModel | None = None
    data: LoadedData | None = None
    synthetic: bool = False
    stages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def evaluate_scenarios(trainer: Trainer, split: str = "test") -> dict[str, dict[str, float]]:
    """Metrics of ``split`` under each of the seven scenarios (every utterance in every scenario).

    Returns ``{scenario: {"war", "uar", "macro_f1"[, "recovery_mse", "zero_fill_mse",
    "recovery_ratio"]}}`` (fractions; recovery terms only for missing scenarios) and
    ``"missing_avg"`` (means over the six missing scenarios).
    """
    raw = {name: trainer.evaluate(split, protocol=protocol) for name, protocol in SCENARIOS}
    table = summarize_scenarios(raw)
    for name, metrics in raw.items():
        if "recovery_mse" in metrics:
            ratio = metrics["recovery_mse"] / metrics["zero_fill_mse"] if metrics["zero_fill_mse"] > 0 else math.nan
            table[name].update(recovery_mse=metrics["recovery_mse"], zero_fill_mse=metrics["zero_fill_mse"],
                               recovery_ratio=ratio)
    missing = [n for n, _ in SCENARIOS if n != COMPLETE_SCENARIO]
    for key in ("recovery_mse", "zero_fill_mse", "recovery_ratio"):
        if all(key in table[n] for n in missing):
            table["missing_avg"][key] = sum(table[n][key] for n in missing) / len(missing)
    return table


def run_cv(experiment: Experiment, out_dir: Path, ctx: DistContext, folds: Sequence[int] | None = None,
           seed: int = 1111, protocol: str = "scenario", progress: bool = True,
           save_checkpoints: bool = False) -> CVResult | None:
    """Cross-validate ``experiment`` over ``folds`` (default: the config's, else all); see the module docstring.

    Rank 0 returns the :class:`CVResult`; other ranks return ``None``.
    """
    source = experiment.data.source
    if source.protocol_kind != SCENARIO or source.folds is None:
        raise ValueError(f"{experiment.name}: the six-scenario CV needs an MMIN dataset (iemocap / msp) "
                         f"or another cross-validated one, "
                         f"got {experiment.data.dataset!r}")
    out_dir = Path(out_dir)
    folds = [int(f) for f in folds] if folds else source.folds(experiment)
    per_fold: dict[int, dict[str, dict[str, float]]] = {}
    stages: dict[int, list[dict[str, Any]]] = {}
    model, data = None, None
    for fold in folds:
        data = load_data(experiment, out_dir / "data", fold)
        train_protocol = make_protocol(protocol, seed=seed)
        fold_dir = out_dir / f"fold{fold}"
        result, model = run_experiment(experiment, data, train_protocol, seed, fold_dir, ctx,
                                       progress=progress, save=save_checkpoints)
        if not ctx.is_main:
            continue
        trainer = Trainer(model, data.datasets, experiment.train, train_protocol, ctx,
                          RunFolder(fold_dir, enabled=False), seed, progress=False)
        per_fold[fold] = evaluate_scenarios(trainer)
        stages[fold] = result.stages
        RunFolder(fold_dir).write_json("scenarios.json", per_fold[fold])
    if not ctx.is_main:
        return None
    return write_cv_tables(experiment, per_fold, out_dir, data, model, stages, protocol)


def write_cv_tables(experiment: Experiment, per_fold: dict[int, dict[str, dict[str, float]]], out_dir: Path,
                    data: LoadedData | None, model: RecoveryModel | None = None,
                    stages: dict[int, list[dict[str, Any]]] | None = None,
                    protocol: str = "scenario") -> CVResult:
    """Write ``results.csv``, ``results.md`` and ``summary.json`` for per-fold scenario tables."""
    out_dir.mkdir(parents=True, exist_ok=True)
    synthetic = bool(data and data.synthetic)
    rows = [{"fold": fold, "scenario": scenario, **{k: metrics.get(k, math.nan) for k in CSV_METRICS}}
            for fold, table in per_fold.items() for scenario, metrics in table.items()]
    csv_path = out_dir / "results.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["fold", "scenario", *CSV_METRICS])
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize_folds(list(per_fold.values()))
    md_path = out_dir / "results.md"
    md_path.write_text(_markdown(experiment, summary, sorted(per_fold), data, protocol))
    json_path = out_dir / "summary.json"
    json_path.write_text(json.dumps(finite_json({
        "experiment": experiment.to_dict(), "synthetic": synthetic, "note": data.note if data else "",
        "protocol": {"train": protocol,
                     "selection": "validation key_eval pooled over every utterance under all six missing scenarios",
                     "test": [name for name, _ in SCENARIOS]},
        "folds": sorted(per_fold), "per_fold": {str(k): v for k, v in per_fold.items()},
        "summary": summary, "stages": {str(k): v for k, v in (stages or {}).items()},
    }), indent=2))
    return CVResult(rows, per_fold, summary, md_path, csv_path, json_path, model, data, synthetic, stages or {})


def scenario_order() -> list[str]:
    """Table order: the six missing scenarios (MMIN order), their average, then complete."""
    missing = [name for name, _ in SCENARIOS if name != COMPLETE_SCENARIO]
    return [*missing, "missing_avg", COMPLETE_SCENARIO]


def fmt_pm(stat: Any, scale: float = 1.0, digits: int = 1) -> str:
    """``mean ± std`` of a ``(mean, std)`` pair, scaled; ``–`` when absent or NaN."""
    if not isinstance(stat, tuple) or not math.isfinite(stat[0]):
        return "–"
    if not math.isfinite(stat[1]):                       # one seed / fold: no spread to report
        return f"{stat[0] * scale:.{digits}f}"
    return f"{stat[0] * scale:.{digits}f} ± {stat[1] * scale:.{digits}f}"


def _markdown(experiment: Experiment, summary: dict[str, Any], folds: list[int], data: LoadedData | None,
              protocol: str) -> str:
    dataset = experiment.data.dataset.upper()
    synthetic = bool(data and data.synthetic)
    lines = [f"# {experiment.method.upper()} on {'SYNTHETIC ' if synthetic else ''}{dataset}: "
             "six-scenario cross-validation", ""]
    if data is not None and data.synthetic:
        lines += [f"**SYNTHETIC: {data.note}**", ""]
    lines += [f"Experiment `{experiment.name}`; folds {', '.join(map(str, folds))} (mean ± sample std over "
              f"{len(folds)} fold(s); one fold: the mean alone); recovery stage trained with `{protocol}` "
              "(random missing scenario per "
              "sample and epoch); best epoch on validation `" + experiment.train.key_eval + "` pooled over every "
              "utterance under all six missing scenarios (as MMIN); every test utterance evaluated under each "
              "scenario. WAR = accuracy, "
              "UAR = unweighted average recall (×100). Recovery MSE / zero-fill MSE on the method's recovery "
              "space; their ratio (< 1: better than zero-filling) is comparable across methods.", "",
              "| scenario | WAR | UAR | macro-F1 | recovery MSE | zero-fill MSE | ratio |",
              "|---|---|---|---|---|---|---|"]
    for name in scenario_order():
        stats = summary.get(name, {})
        lines.append("| " + " | ".join([SCENARIO_LABELS[name], fmt_pm(stats.get("war"), 100),
                                          fmt_pm(stats.get("uar"), 100), fmt_pm(stats.get("macro_f1"), 100),
                                          fmt_pm(stats.get("recovery_mse"), 1, 4),
                                          fmt_pm(stats.get("zero_fill_mse"), 1, 4),
                                          fmt_pm(stats.get("recovery_ratio"), 1, 3)]) + " |")
    return "\n".join(lines) + "\n"


def finite_json(value: Any) -> Any:
    """Plain JSON types: tuples → lists, paths → strings, NaN / inf → ``None``."""
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) or hasattr(value, "item"):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
