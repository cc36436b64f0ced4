"""Scoring analysis rows against a ``path,label`` CSV: accuracy, macro-F1, UAR, recalls, confusion matrix.

* Labels are matched to rows by path: as written, normalised, resolved
  (relative paths also against the labels file's folder); a label of
  ``notes.txt`` covers every line ``notes.txt:N`` and a label of a video
  every window of it.  Every row counts once (a video's windows each count).
* Label names are compared case-insensitively after the label map (a JSON
  object, a two-column CSV ``source,live`` or inline ``joy=happy,anger=angry``);
  a name that is not in the model's label space is *unknown*: such rows are
  left out of the scores and reported with their counts.
* Macro-F1 and UAR (unweighted average recall) are over the classes present
  in the labels; accuracy is over every scored row.  Rows without a
  prediction (unreadable file, no face) are left out and counted.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import LIVE_EMOTIONS
from .core import AnalysisRow

_LINE_SUFFIX = re.compile(r"^(.*):\d+$")


def read_labels(path: "str | os.PathLike[str]") -> dict[str, str]:
    """``{path: label}`` from a CSV with the columns ``path`` and ``label`` (a header row is required).

    Raises:
        ValueError: unreadable file, missing columns, or a path labelled twice with different labels.
    """
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the labels file {path}: {exc}") from None
    reader = csv.DictReader(content.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "path" not in header or "label" not in header:
        raise ValueError(f"labels file {path} needs a header with the columns path,label "
                         f"(found: {', '.join(header) or 'nothing'})")
    reader.fieldnames = header
    labels: dict[str, str] = {}
    for number, row in enumerate(reader, start=2):
        key, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not key:
            continue
        if key in labels and labels[key] != label:
            raise ValueError(f"labels file {path}, line {number}: {key!r} is labelled both {labels[key]!r} "
                             f"and {label!r}")
        labels[key] = label
    return labels


def read_label_map(spec: "str | os.PathLike[str] | Mapping[str, str] | None") -> dict[str, str]:
    """``{source label: live label}`` (lower case) from a mapping, a ``.json``/``.csv`` file or ``a=b,c=d``.

    Raises:
        ValueError: a file that cannot be read, or a malformed inline map.
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        pairs = dict(spec)
    elif Path(spec).suffix.lower() in (".json", ".csv") or Path(spec).is_file():
        pairs = _map_file(Path(spec))
    else:
        pairs = {}
        for item in str(spec).split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise ValueError(f"label map entry {item.strip()!r} is not source=live (e.g. joy=happy)")
            source, target = item.split("=", 1)
            pairs[source] = target
    return {str(k).strip().lower(): str(v).strip().lower() for k, v in pairs.items()}


def _map_file(path: Path) -> dict[str, str]:
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the label map {path}: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise ValueError(f"label map {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"label map {path} must be a JSON object of source label -> live label")
        return data
    rows = [r for r in csv.reader(content.splitlines()) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["source", "live"], ["from", "to"]):
        rows = rows[1:]
    bad = [r for r in rows if len(r) < 2]
    if bad:
        raise ValueError(f"label map {path}: each line needs two columns source,live (got {bad[0]!r})")
    return {r[0]: r[1] for r in rows}


@dataclass
class LabelEvaluation:
    """Scores of analysis rows against labels, and everything that could not be scored."""

    classes: tuple[str, ...]
    scored: int = 0
    accuracy: float | None = None
    macro_f1: float | None = None
    uar: float | None = None
    recall: dict[str, float] = field(default_factory=dict)
    support: dict[str, int] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)
    unknown_labels: dict[str, int] = field(default_factory=dict)
    unknown_examples: dict[str, str] = field(default_factory=dict)
    no_prediction: dict[str, int] = field(default_factory=dict)
    unlabelled_rows: int = 0
    labels_without_rows: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (fractions in [0, 1])."""
        return {"classes": list(self.classes), "scored_rows": self.scored, "accuracy": self.accuracy,
                "macro_f1_present_classes": self.macro_f1, "uar_present_classes": self.uar,
                "recall": self.recall, "support": self.support,
                "confusion": {"rows_true_columns_predicted": list(self.classes), "matrix": self.confusion},
                "unknown_labels": self.unknown_labels, "unknown_label_examples": self.unknown_examples,
                "rows_without_prediction": self.no_prediction, "rows_without_label": self.unlabelled_rows,
                "labels_without_rows": self.labels_without_rows}

    def markdown(self) -> str:
        """A short report: scores, per-class recall, confusion matrix, and what was not scored."""
        lines = ["## Evaluation against the labels", "",
                 f"Scored rows: {self.scored} (each row counts once; a video's windows each count).", "",
                 "| accuracy | macro-F1 (classes present) | UAR (classes present) |", "|---|---|---|",
                 f"| {_pct(self.accuracy)} | {_pct(self.macro_f1)} | {_pct(self.uar)} |", ""]
        if self.recall:
            lines += ["| class | support | recall |", "|---|---|---|"]
            lines += [f"| {c} | {self.support[c]} | {_pct(self.recall[c])} |" for c in self.classes if c in self.recall]
            lines += ["", "Confusion matrix (rows: true label, columns: predicted):", "",
                      "| true \\ predicted | " + " | ".join(self.classes) + " |",
                      "|---" * (len(self.classes) + 1) + "|"]
            lines += [f"| {c} | " + " | ".join(str(v) for v in row) + " |"
                      for c, row in zip(self.classes, self.confusion) if self.support.get(c)]
            lines.append("")
        if self.unknown_labels:
            items = ", ".join(f"{label!r} ({n} rows, e.g. {self.unknown_examples[label]})"
                              for label, n in sorted(self.unknown_labels.items()))
            lines += [f"**Unknown labels, not scored:** {items}. The model's labels are {', '.join(self.classes)}; "
                      "map other names with `--label-map` (e.g. `joy=happy`).", ""]
        if self.no_prediction:
            lines.append("Labelled rows without a prediction, not scored: "
                         + ", ".join(f"{n} ({why})" for why, n in sorted(self.no_prediction.items())) + ".")
        if self.unlabelled_rows:
            lines.append(f"Rows without a label, not scored: {self.unlabelled_rows}.")
        if self.labels_without_rows:
            shown = ", ".join(self.labels_without_rows[:5]) + (" ..." if len(self.labels_without_rows) > 5 else "")
            lines.append(f"Labelled paths that were not analysed: {len(self.labels_without_rows)} ({shown}).")
        return "\n".join(lines).rstrip() + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _keys(path: str, base: Path | None) -> list[str]:
    """Spellings under which ``path`` may be matched."""
    keys = [path, os.path.normpath(path)]
    for candidate in ([Path(path)] + ([base / path] if base is not None and not Path(path).is_absolute() else [])):
        try:
            keys.append(str(candidate.resolve()))
        except (OSError, RuntimeError):
            pass
    return keys


def _label_index(labels: Mapping[str, str], base: Path | None) -> dict[str, str]:
    index: dict[str, str] = {}
    for key in labels:
        for spelling in _keys(key, base):
            index.setdefault(spelling, key)
    return index


def _find(row_path: str, index: Mapping[str, str]) -> str | None:
    for spelling in _keys(row_path, None):
        if spelling in index:
            return index[spelling]
    line = _LINE_SUFFIX.match(row_path)
    return _find(line.group(1), index) if line else None


def evaluate_labels(rows: Sequence[AnalysisRow], labels: "Mapping[str, str] | str | os.PathLike[str]",
                    label_map: "Mapping[str, str] | str | None" = None,
                    classes: Iterable[str] = LIVE_EMOTIONS, base: "str | os.PathLike[str] | None" = None,
                    ) -> LabelEvaluation:
    """Score ``rows`` against ``labels`` (a ``{path: label}`` mapping or a ``path,label`` CSV file).

    Relative label paths are also tried against ``base`` (default: the labels file's folder).
    """
    base = Path(base) if base is not None else None
    if not isinstance(labels, Mapping):
        base = base or Path(labels).resolve().parent
        labels = read_labels(labels)
    mapping = read_label_map(label_map)
    classes = tuple(classes)
    index_of = {c: i for i, c in enumerate(classes)}
    index = _label_index(labels, base)
    result = LabelEvaluation(classes)
    used: set[str] = set()
    unknown: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    examples: dict[str, str] = {}
    truth: list[int] = []
    predicted: list[int] = []
    for row in rows:
        key = _find(row.path, index)
        if key is None:
            result.unlabelled_rows += 1
            continue
        used.add(key)
        name = labels[key].strip().lower()
        name = mapping.get(name, name)
        if name not in index_of:
            unknown[labels[key]] += 1
            examples.setdefault(labels[key], row.path)
            continue
        if row.probabilities is None or row.top_emotion not in index_of:
            missing[row.error or "no prediction"] += 1
            continue
        truth.append(index_of[name])
        predicted.append(index_of[row.top_emotion])
    result.unknown_labels, result.unknown_examples = dict(unknown), examples
    result.no_prediction = dict(missing)
    result.labels_without_rows = sorted(k for k in labels if k not in used)
    _score(result, np.asarray(truth, int), np.asarray(predicted, int))
    return result


def _score(result: LabelEvaluation, truth: np.ndarray, predicted: np.ndarray) -> None:
    k = len(result.classes)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (truth, predicted), 1)
    result.confusion = confusion.tolist()
    result.scored = int(len(truth))
    if not len(truth):
        return
    result.accuracy = float(np.mean(truth == predicted))
    present = sorted(set(truth.tolist()))
    f1s = []
    for c in present:
        tp, support, predicted_c = confusion[c, c], confusion[c].sum(), confusion[:, c].sum()
        recall = tp / support
        precision = tp / predicted_c if predicted_c else 0.0
        f1s.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
        result.recall[result.classes[c]] = float(recall)
        result.support[result.classes[c]] = int(support)
    result.uar = float(np.mean(list(result.recall.values())))
    result.macro_f1 = float(np.mean(f1s))
