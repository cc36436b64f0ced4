"""Compare recovery methods (IMDer, RoHyDR, CM-ARR, ...) on the same data and protocol.

One experiment config per method; all of them get the *first* config's
``[data]`` table (``seq_lens`` excepted: the padding length is part of a
model's input format, e.g. IMDer/RoHyDR need equal projected lengths), so
every method sees the same utterances, splits and folds.  Two protocols:

* ``batch`` / ``sample`` (MOSI / MOSEI): per seed, complete-data pre-training
  once, then the recovery stage and test per missing rate
  (:func:`training.runner.pretrain_state` + :func:`training.runner.run_experiment`,
  as :mod:`training.sweep`); mean ± std over seeds;
* ``scenario`` (IEMOCAP / MSP-IMPROV): :func:`training.cv.run_cv` per method
  (first seed); mean ± std over folds, one row per scenario.

Besides the task metrics the table reports the recovery feature error:
recovery MSE and zero-fill MSE over the missing modalities, and their
**ratio**.  The MSEs live in each method's own recovery space (IMDer/RoHyDR:
MulT projections; CM-ARR: Gaussian means), so only the ratio (< 1: better
than zero-filling) is comparable across methods.  Also: parameter counts and
the **recovery latency** per sample on CPU — :meth:`RecoveryModel.recover` on
one test utterance (batch 1) under each of the six missing patterns, after one
warm-up pass, median over ``latency_runs`` × 6 timed calls, measured on the
trained model (a CPU copy, the process's torch thread setting), with the
method's default sampler and its fast setting (the class's ``fast_sampler``, see
:func:`sampler_settings`).

On the linear-Gaussian synthetic task (``[data] synthetic = true``,
``synthetic_kind = "linear-gaussian"``) a second table gives each method's
distance to the Bayes optimum — Acc-2, MAE and recovery MSE of the exact
optimal predictor and recovery on the same test samples and masks
(:mod:`training.oracle`) — not only to zero-filling.
"""

from __future__ import annotations

import copy
import csv
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from imer_core.config import REGRESSION
from imer_core.methods.base import RecoveryModel, SamplingOptions
from imer_core.modalities import MODALITIES
from imer_core.registry import get_method_class, method_title

from .cv import fmt_pm, run_cv, scenario_order
from .data.source import SCENARIO, LoadedData
from .distributed import DistContext
from .experiment import Experiment
from .metrics import summarize_seeds, t_interval
from .oracle import bayes_optimal_metrics
from .protocol_spec import make_protocol
from .runner import load_data, pretrain_state, run_experiment
from .scenarios import SCENARIOS, scenario_row
from .trainer import dataset_size

REGRESSION_COLUMNS = (("Acc-2", "Non0_acc_2"), ("F1", "Non0_F1_score"), ("Acc-7", "Mult_acc_7"), ("MAE", "MAE"),
                      ("Corr", "Corr"))
CLASSIFICATION_COLUMNS = (("WAR", "accuracy"), ("UAR", "uar"), ("macro-F1", "macro_f1"))
ERROR_COLUMNS = (("recovery MSE", "recovery_mse"), ("zero-fill MSE", "zero_fill_mse"), ("ratio", "recovery_ratio"))


@dataclass
class MethodSummary:
    """One method's results: ``stats[condition][metric] = (mean, std)`` (accuracies ×100), size and latency."""

    experiment: Experiment
    stats: dict[str, dict[str, tuple[float, float]]]
    parameters: int
    latency_ms: dict[str, float]
    samplers: dict[str, str]


@dataclass
class CompareResult:
    """The comparison table and where it was written."""

    methods: list[MethodSummary]
    markdown_path: Path
    csv_path: Path
    synthetic: bool


def shared_data(experiments: Sequence[Experiment]) -> list[Experiment]:
    """Give every experiment the first one's ``[data]`` (own ``seq_lens`` kept); check tasks and methods."""
    if not experiments:
        raise ValueError("compare needs at least one experiment config")
    for exp in experiments:
        get_method_class(exp.method)  # KeyError with the available methods
    tasks = {exp.task for exp in experiments}
    if len(tasks) != 1:
        raise ValueError(f"all compared configs need the same task, got {sorted(tasks)}")
    data = experiments[0].data
    own = data.source.per_experiment_options
    return [replace(exp, data=data.with_options(**{k: exp.data.option(k) for k in own
                                                   if exp.data.source is data.source}))
            for exp in experiments]


def measure_latency(model: RecoveryModel, features: dict[str, torch.Tensor], sampling: SamplingOptions,
                    runs: int = 5) -> float:
    """Median CPU milliseconds of ``model.recover`` on one sample over the six missing patterns."""
    cpu = copy.deepcopy(model).cpu().eval()
    feats = {k: v[:1].detach().cpu() for k, v in features.items()}
    masks = [torch.as_tensor(scenario_row(name)).view(1, len(MODALITIES)) for name, _ in SCENARIOS
             if not scenario_row(name).all()]
    times = []
    with torch.inference_mode():
        for mask in masks:  # warm-up
            cpu.recover(feats, mask, sampling)
        for _ in range(max(1, runs)):
            for mask in masks:
                started = time.perf_counter()
                cpu.recover(feats, mask, sampling)
                times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def _latencies(model: RecoveryModel, data: LoadedData, runs: int, fast_steps: int,
               seed: int) -> tuple[dict[str, float], dict[str, str]]:
    item = data.datasets["test"][0]
    features = {m.value: item[m.value].unsqueeze(0) for m in MODALITIES}
    settings, samplers = sampler_settings(model, fast_steps, seed)
    return {key: measure_latency(model, features, sampling, runs) for key, sampling in settings.items()}, samplers


def sampler_settings(model: RecoveryModel, fast_steps: int, seed: int) -> tuple[dict[str, SamplingOptions],
                                                                               dict[str, str]]:
    """The ``"default"`` and ``"fast"`` sampling of ``model`` and their descriptions (``"heun ×10"``).

    The fast setting is the class's ``fast_sampler`` (its default sampler when ``None``) with
    ``fast_steps`` steps, or one pass for a method whose samplers take no step count.
    """
    options = getattr(model, "options", None)
    default_name = getattr(options, "sampler", None) or type(model).default_sampler() or "default"
    fast_name = type(model).fast_sampler or default_name
    fast_steps_used = fast_steps if type(model).uses_sampler_steps else None
    default_steps = getattr(options, "sampler_steps", None) if type(model).uses_sampler_steps else None
    settings = {"default": SamplingOptions(seed=seed),
                "fast": SamplingOptions(sampler=type(model).fast_sampler, steps=fast_steps_used, seed=seed)}
    samplers = {"default": default_name + (f" ×{default_steps}" if default_steps else ""),
                "fast": fast_name + (f" ×{fast_steps_used}" if fast_steps_used else "")}
    return settings, samplers


def _with_ratio(metrics: dict[str, float]) -> dict[str, float]:
    out = dict(metrics)
    if out.get("zero_fill_mse", 0.0) > 0:
        out["recovery_ratio"] = out["recovery_mse"] / out["zero_fill_mse"]
    return out


def _compare_rates(exp: Experiment, data: LoadedData, kind: str, rates: Sequence[float], seeds: Sequence[int],
                   out_dir: Path, ctx: DistContext, progress: bool) -> tuple[dict, RecoveryModel | None]:
    per_rate: dict[str, list[dict[str, float]]] = {}
    model = None
    for seed in seeds:
        weights = pretrain_state(exp, data, make_protocol(f"{kind}:0"), seed, out_dir / f"seed{seed}" / "pretrain",
                                 ctx, progress)
        for rate in rates:
            protocol = make_protocol(f"{kind}:{rate}", seed=seed)
            result, model = run_experiment(exp, data, protocol, seed, out_dir / f"seed{seed}" / f"mr{rate:.2f}",
                                           ctx, pretrained=weights, progress=progress, save=False)
            if ctx.is_main:
                metrics = _with_ratio(result.test)
                if data.oracle is not None:             # the same test samples and masks as the method
                    test = data.datasets["test"]
                    masks = protocol.eval_masks(dataset_size(test), exp.train.batch_size, "test")
                    metrics.update(bayes_optimal_metrics(data.oracle, test, masks, model))
                per_rate.setdefault(f"{float(rate):.2f}", []).append(metrics)
    return {cond: summarize_seeds(results) for cond, results in per_rate.items()}, model


def _scenario_stats(summary: dict[str, Any]) -> dict[str, dict[str, tuple[float, float]]]:
    names = {"war": "accuracy", "uar": "uar", "macro_f1": "macro_f1"}
    stats = {}
    for cond in scenario_order():
        values = summary.get(cond, {})
        stats[cond] = {names.get(k, k): ((v[0] * 100, v[1] * 100) if k in names else v)
                       for k, v in values.items() if isinstance(v, tuple)}
    return stats


def run_compare(experiments: Sequence[Experiment], out_dir: Path, ctx: DistContext, protocol_kind: str = "batch",
                missing_rates: Sequence[float] = (0.0, 0.3, 0.5), seeds: Sequence[int] = (1111,),
                folds: Sequence[int] | None = None, progress: bool = True, latency_runs: int = 5,
                fast_steps: int = 10) -> CompareResult | None:
    """Train, test and time every experiment on the same data and protocol; rank 0 writes the table."""
    if protocol_kind not in ("batch", "sample", "scenario"):
        raise ValueError(f"protocol kind must be batch, sample or scenario, got {protocol_kind!r}")
    experiments = shared_data(experiments)
    is_cv = experiments[0].data.source.protocol_kind == SCENARIO
    if is_cv != (protocol_kind == "scenario"):
        raise ValueError(f"protocol {protocol_kind!r} does not fit dataset {experiments[0].data.dataset!r}: "
                         "use scenario for iemocap / msp and batch or sample for mosi / mosei")
    out_dir = Path(out_dir)
    shared = None if is_cv else load_data(experiments[0], out_dir / "data")
    methods, synthetic = [], False
    for exp in experiments:
        method_dir = out_dir / exp.name
        if shared is None:                                  # cross-validation loads each fold
            cv = run_cv(exp, method_dir, ctx, folds, seed=seeds[0], progress=progress)
            stats, model, data = (_scenario_stats(cv.summary), cv.model, cv.data) if cv else ({}, None, None)
        else:
            stats, model = _compare_rates(exp, shared, protocol_kind, missing_rates, seeds, method_dir, ctx,
                                          progress)
            data = shared
        if not ctx.is_main or model is None or data is None:
            continue
        synthetic = synthetic or data.synthetic
        latency, samplers = _latencies(model, data, latency_runs, fast_steps, seeds[0])
        methods.append(MethodSummary(exp, stats, model.parameter_count(), latency, samplers))
    if not ctx.is_main:
        return None
    return write_compare_tables(methods, out_dir, protocol_kind, synthetic, seeds, experiments[0])


def write_compare_tables(methods: list[MethodSummary], out_dir: Path, protocol_kind: str, synthetic: bool,
                         seeds: Sequence[int], reference: Experiment) -> CompareResult:
    """Write ``compare.md`` and ``compare.csv`` (one row per method × missing rate / scenario)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = REGRESSION_COLUMNS if reference.task == REGRESSION else CLASSIFICATION_COLUMNS
    condition = "scenario" if protocol_kind == "scenario" else "missing rate"
    csv_rows = []
    header = ["method", "config", condition, *(label for label, _ in columns), *(label for label, _ in ERROR_COLUMNS),
              "parameters", "latency default (ms)", "latency fast (ms)"]
    md = [f"# Method comparison on {'SYNTHETIC ' if synthetic else ''}{reference.data.dataset.upper()}", ""]
    if synthetic:
        md += ["**SYNTHETIC data: not the real corpus; numbers are not comparable to published results.**", ""]
    spread = "folds" if protocol_kind == "scenario" else f"seeds {', '.join(map(str, seeds))}"
    n_seeds = None if protocol_kind == "scenario" else len(seeds)     # seeds → a 95 % t-interval per cell
    interval = ("" if n_seeds is None or n_seeds < 2 else
                " [95 % confidence interval of the mean, Student's t with n − 1 degrees of freedom]")
    realised = ("" if protocol_kind == "scenario" else
                " Missing rate: nominal (realised: the fraction of missing modality entries in the test split; "
                "IMDer's batch schedule decides per batch, so a small split realises a rate far from the "
                "nominal one).")
    md += [f"Protocol `{protocol_kind}`; same data for every method; mean ± sample std{interval} over {spread} "
           "(test masks vary per seed; one seed or fold: the mean alone); accuracies ×100."
           f"{realised} "
           "Recovery / zero-fill MSE are in each method's own recovery space and not comparable across methods; "
           "their ratio (< 1: better than zero-filling) is. Latency: CPU, batch 1, `recover` only, median over "
           f"the six missing patterns × runs (torch threads: {torch.get_num_threads()}).", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for summary in methods:
        for cond, stats in summary.stats.items():
            cells = [method_title(summary.experiment.method), summary.experiment.name, _condition(cond, stats)]
            cells += [_cell(stats.get(key), 3 if key in ("MAE", "Corr") else 1, n_seeds) for _, key in columns]
            cells += [_cell(stats.get(key), 3 if key == "recovery_ratio" else 4, n_seeds)
                      for _, key in ERROR_COLUMNS]
            cells += [f"{summary.parameters:,}", f"{summary.latency_ms['default']:.1f} ({summary.samplers['default']})",
                      f"{summary.latency_ms['fast']:.1f} ({summary.samplers['fast']})"]
            md.append("| " + " | ".join(cells) + " |")
            row: dict[str, Any] = {"method": summary.experiment.method, "config": summary.experiment.name,
                                   "condition": cond}
            if n_seeds is not None:
                row["seeds"] = n_seeds
            for key in (*(k for _, k in (*columns, *ERROR_COLUMNS)), "realised_missing_rate",
                        *(k for k in stats if k.startswith("bayes_"))):
                if key == "realised_missing_rate" and key not in stats:
                    continue
                mean, std = stats.get(key, (float("nan"), float("nan")))
                row[f"{key}_mean"], row[f"{key}_std"] = mean, std
            row.update(parameters=summary.parameters, latency_default_ms=summary.latency_ms["default"],
                       sampler_default=summary.samplers["default"], latency_fast_ms=summary.latency_ms["fast"],
                       sampler_fast=summary.samplers["fast"], synthetic=synthetic)
            csv_rows.append(row)
    md += _optimum_section(methods)
    md_path, csv_path = out_dir / "compare.md", out_dir / "compare.csv"
    md_path.write_text("\n".join(md) + "\n")
    with csv_path.open("w", newline="") as fh:
        fields = list(dict.fromkeys(key for row in csv_rows for key in row)) or ["method"]
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(csv_rows)
    return CompareResult(methods, md_path, csv_path, synthetic)


def _cell(stat: Any, digits: int, n_seeds: int | None) -> str:
    """``mean ± sample std [95 % CI]`` over ``n_seeds`` seeds (no interval for folds or one seed)."""
    text = fmt_pm(stat, 1, digits)
    if n_seeds is not None and isinstance(stat, tuple) and "±" in text:
        low, high = t_interval(stat[0], stat[1], n_seeds)
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _condition(cond: str, stats: dict[str, tuple[float, float]]) -> str:
    """The missing rate with the realised one beside it (``0.50 (realised 0.667)``); scenarios as they are."""
    realised = stats.get("realised_missing_rate")
    if realised is None or not math.isfinite(realised[0]):
        return cond
    return f"{cond} (realised {realised[0]:.3f})"


OPTIMUM_COLUMNS = (("Acc-2", "Non0_acc_2", 1), ("MAE", "MAE", 3), ("recovery MSE", "recovery_mse", 4))


def _optimum_section(methods: list[MethodSummary]) -> list[str]:
    """Markdown lines of the distance-to-optimum table (linear-Gaussian data only; else none)."""
    rows = [(s, cond, stats) for s in methods for cond, stats in s.stats.items() if "bayes_MAE" in stats]
    if not rows:
        return []
    header = ["method", "config", "missing rate"]
    for label, _, _ in OPTIMUM_COLUMNS:
        header += [label, f"optimal {label}", "gap" if label == "Acc-2" else "÷ optimal"]
    md = ["", "## Distance to the Bayes optimum", "",
          "The data come from the linear-Gaussian task (`training.data.linear_gaussian`): the Bayes-optimal "
          "prediction and recovery are computed exactly from the generator, on the same test samples and missing "
          "masks as each method (optimal Acc-2 and MAE: the posterior mean of the label given the available "
          "modalities). Optimal recovery MSE is in the method's own recovery space (its projection of the "
          "optimal feature estimate; – where that space is not an affine map of the features, e.g. CM-ARR's "
          "encoder). Gap = optimal − method (percentage points); ÷ optimal ≥ 1 up to sampling error. At missing "
          "rate 0 nothing is recovered.", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for summary, cond, stats in rows:
        cells = [method_title(summary.experiment.method), summary.experiment.name, cond]
        for _, key, digits in OPTIMUM_COLUMNS:
            own, best = stats.get(key), stats.get(f"bayes_{key}")
            cells += [fmt_pm(own, 1, digits), fmt_pm(best, 1, digits)]
            if own is None or best is None or not best[0]:
                cells.append("–")
            elif key == "Non0_acc_2":
                cells.append(f"{best[0] - own[0]:.1f}")
            else:
                cells.append(f"{own[0] / best[0]:.3f}")
        md.append("| " + " | ".join(cells) + " |")
    return md
