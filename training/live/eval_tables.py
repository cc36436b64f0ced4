"""The tables of ``imer-train live-eval``: ``results.md`` and ``results.csv`` from its report.

The report is the dict :func:`training.live.evaluate.run_live_eval` returns (and writes as
``results.json``); values are fractions, the tables show percent.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .late_fusion_seeds import LATE_FUSION, LATE_FUSION_MEAN, spread_lines


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def markdown_tables(report: Mapping[str, Any]) -> str:
    """Macro-F1 and accuracy per condition, per-class recall per row, latency (percent values)."""
    conds = report["conditions"]
    counts = ", ".join(f"{k} {v}" for k, v in report["test_tuple_counts"].items())
    lines = [f"Held-out test tuples: {report['test_tuples']} ({counts}).",
             "Conditions list the available modalities: l text, a audio, v vision. Values in %.", ""]
    for metric, title in (("macro_f1", "Macro-F1"), ("accuracy", "Accuracy"), ("uar", "UAR (mean per-class recall)")):
        lines += [f"### {title}", "", "| model | " + " | ".join(conds) + " | mean |", "|---" * (len(conds) + 2) + "|"]
        for row, results in report["test"].items():
            values = [results[c][metric] if c in results else float("nan") for c in conds]
            mean = float(np.mean(values)) if all(c in results for c in conds) else float("nan")
            lines.append(f"| {row} | " + " | ".join(_fmt(v) for v in values) + f" | {_fmt(mean)} |")
        lines.append("")
    lines += _targets_table(report)
    lines += _difference_lines(report)
    lines += spread_lines(report, _fmt)
    lines += ["### Per-class recall", ""]
    for row, results in report["test"].items():
        lines += [f"**{row}**", "", "| condition | " + " | ".join(report["labels"]) + " |",
                  "|---" * (len(report["labels"]) + 1) + "|"]
        lines += [f"| {c} | " + " | ".join(_fmt(results[c][f'recall_{n}']) for n in report["labels"]) + " |"
                  for c in conds if c in results]
        lines.append("")
    lines += _paired_table(report)
    lines += [f"### CPU latency of one window (batch 1, median ms, {report['torch_threads']} torch threads)", "",
              "| model | " + " | ".join(conds) + " |", "|---" * (len(conds) + 1) + "|"]
    lines += [f"| {row} | " + " | ".join(f"{lat[c]:.1f}" for c in conds) + " |"
              for row, lat in report["latency_ms"].items()]
    return "\n".join(lines) + "\n"


def _targets_table(report: Mapping[str, Any]) -> list[str]:
    """The issue's targets per model: face only, voice only, conditions below late fusion, mean macro-F1.

    With several late-fusion seeds a column compares with their mean as well.
    """
    test, conds = report["test"], report["conditions"]
    late, late_mean = test.get(LATE_FUSION), test.get(LATE_FUSION_MEAN)
    intervals = report.get("difference_from_late_fusion") or {}
    seeds = len(report.get("late_fusion_seeds") or {})
    mean_column = f" below the late-fusion mean over {seeds} seeds |" if late_mean is not None else ""
    lines = ["### Targets (issue 11)", "",
             "Face only = condition v (FER2013 test faces), voice only = condition a (RAVDESS + EmoDB test "
             "speakers). Targets: face accuracy >= 65, macro-F1 >= 60, neutral recall >= 50; voice accuracy "
             ">= 60; macro-F1 >= late fusion in every condition; mean macro-F1 >= 62.", "",
             "| model | face acc | face macro-F1 | face neutral recall | voice acc | conditions below late fusion "
             "|" + mean_column + " mean macro-F1 |", "|---" * (7 + bool(mean_column)) + "|"]
    for row, results in test.items():
        if not all(c in results for c in conds):
            continue
        baseline = row in (LATE_FUSION, LATE_FUSION_MEAN)
        below = "n/a" if late is None or baseline else _below(results, late, conds, intervals.get(row))
        extra = (f" {'n/a' if baseline else _below(results, late_mean, conds)} |" if late_mean is not None else "")
        mean = float(np.mean([results[c]["macro_f1"] for c in conds]))
        v, a = results.get("v", {}), results.get("a", {})
        lines.append(f"| {row} | {_fmt(v.get('accuracy', float('nan')))} | {_fmt(v.get('macro_f1', float('nan')))} "
                     f"| {_fmt(v.get('recall_neutral', float('nan')))} | {_fmt(a.get('accuracy', float('nan')))} "
                     f"| {below} |{extra} {_fmt(mean)} |")
    return lines + [""]


def _below(results: Mapping[str, Mapping[str, float]], late: Mapping[str, Mapping[str, float]],
           conds: Sequence[str], intervals: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Conditions where ``results`` has a lower macro-F1 than ``late``, with the difference (or ``none``).

    With ``intervals`` (:func:`differences_from`) the 95 % bootstrap interval of the difference follows it.
    """
    def cell(c: str) -> str:
        diff = _fmt(results[c]["macro_f1"] - late[c]["macro_f1"])
        if intervals and c in intervals:
            return f"{c} ({diff}; 95 % interval {_interval(intervals[c])})"
        return f"{c} ({diff})"
    return ", ".join(cell(c) for c in conds if results[c]["macro_f1"] < late[c]["macro_f1"]) or "none"


def _interval(values: Mapping[str, float]) -> str:
    return f"{100 * values['low']:+.1f} to {100 * values['high']:+.1f}"


def _difference_lines(report: Mapping[str, Any]) -> list[str]:
    """Markdown: each model's macro-F1 minus late fusion's per condition, with its 95 % bootstrap interval."""
    differences = report.get("difference_from_late_fusion") or {}
    if not differences:
        return []
    conds = report["conditions"]
    replicates = next(iter(next(iter(differences.values())).values()))["replicates"]
    lines = [f"### Macro-F1 minus late fusion (the row `{LATE_FUSION}`), with 95 % intervals", "",
             "Points of macro-F1; the interval is the 2.5-97.5 percentile range of a paired bootstrap that "
             "resamples the test samples of each modality the condition uses, independently per modality "
             f"(pigeonhole bootstrap, {replicates} replicates; a sample takes part in several pseudo-paired "
             "tuples). `share below` is the share of replicates in which the model is below late fusion.", "",
             "| model | " + " | ".join(conds) + " |", "|---" * (len(conds) + 1) + "|"]
    for row, per_condition in differences.items():
        cells = [f"{100 * d['difference']:+.1f} ({_interval(d)}; share below {d['share_below']:.2f})"
                 if (d := per_condition.get(c)) else "n/a" for c in conds]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines + [""]


def _paired_table(report: Mapping[str, Any]) -> list[str]:
    """Macro-F1 on test-speaker clips with their own ASR transcript (real pairs), overall and per corpus."""
    paired = report.get("paired_asr") or {}
    if not paired:
        return []
    first = next(iter(paired.values()))
    groups = list(first)
    columns = [(g, c) for g in groups for c in first[groups[0]]]
    lines = ["### Real audio + its own ASR transcript (test speakers; macro-F1 / accuracy)", "",
             f"Clips: {sum(report['paired_clips'].values())}. Vision is missing in all three conditions.", "",
             "| model | " + " | ".join(f"{c} ({g})" for g, c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row, results in paired.items():
        cells = [f"{_fmt(results[g][c]['macro_f1'])} / {_fmt(results[g][c]['accuracy'])}" for g, c in columns]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_tables(report: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """``results.md`` and ``results.csv`` (long format: row, condition, metric, value)."""
    md = out / "results.md"
    md.write_text("# Live model evaluation (held-out test split)\n\n" + markdown_tables(report))
    path = out / "results.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "condition", "metric", "value"])
        for row, results in report["test"].items():
            for condition, metrics in results.items():
                for metric, value in metrics.items():
                    writer.writerow([row, condition, metric, f"{value:.6f}"])
        for row, lat in report["latency_ms"].items():
            for condition, value in lat.items():
                writer.writerow([row, condition, "latency_ms", f"{value:.3f}"])
        for row, groups in report.get("paired_asr", {}).items():
            for group, results in groups.items():
                for condition, metrics in results.items():
                    for metric, value in metrics.items():
                        writer.writerow([f"{row} [asr-paired {group}]", condition, metric, f"{value:.6f}"])
    return md, path
