"""Evaluation metrics, matching MMSA / IMDer for CMU-MOSI and CMU-MOSEI.

:func:`regression_metrics` reproduces ``MetricsTop.__eval_mosei_regression``
of MMSA (also used by IMDer for MOSI and MOSEI):

* ``Has0_acc_2`` / ``Has0_F1_score``: binary "non-negative vs negative"
  (``>= 0``) over all samples.
* ``Non0_acc_2`` / ``Non0_F1_score``: binary "positive vs negative" (``> 0``)
  over the samples whose true label is not exactly 0.
* ``Mult_acc_5`` / ``Mult_acc_7``: predictions and labels clipped to [-2, 2]
  / [-3, 3] and rounded with ``np.round`` (half to even: 2.5 -> 2).
* ``MAE``: mean absolute error; ``Corr``: Pearson correlation.

F1 scores are sklearn's ``average="weighted"`` (computed here in numpy with
sklearn's definitions, so that importing the metrics does not cost a training
process sklearn's ~2.5 s import; ``tests/test_metrics.py`` compares them).  Unlike MMSA, values are not
rounded to 4 decimals (rounding before averaging over seeds loses precision),
``Corr`` is 0 instead of NaN when either side is constant, and metrics that
are undefined (``Non0_*`` with no non-zero label) are NaN.  All values are
fractions in [0, 1] (MAE and Corr on their own scale).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

REGRESSION_KEYS: tuple[str, ...] = (
    "Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
    "Mult_acc_5", "Mult_acc_7", "MAE", "Corr",
)
# summarize_seeds reports keys containing one of these (case-insensitive) x100:
# accuracies, F1 scores and recalls.  Everything else (MAE, Corr, losses,
# recovery errors, missing rates) keeps its raw scale.
PERCENT_KEY_PARTS: tuple[str, ...] = ("acc", "f1", "uar", "recall")


def is_percent_key(key: str) -> bool:
    """Whether :func:`summarize_seeds` reports ``key`` multiplied by 100."""
    lowered = key.lower()
    return any(part in lowered for part in PERCENT_KEY_PARTS)


def _as_numpy(values: Any) -> np.ndarray:
    """Flatten a numpy array, list or torch tensor (any device) to a float64 vector."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def accuracy_score(true: Any, pred: Any) -> float:
    """Fraction of equal entries (sklearn's ``accuracy_score``)."""
    return float(np.mean(np.asarray(true).reshape(-1) == np.asarray(pred).reshape(-1)))


def _class_counts(true: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """True positives, predicted counts and true counts (support) of each of ``labels``."""
    tp = np.array([np.sum((true == c) & (pred == c)) for c in labels], dtype=np.float64)
    predicted = np.array([np.sum(pred == c) for c in labels], dtype=np.float64)
    support = np.array([np.sum(true == c) for c in labels], dtype=np.float64)
    return tp, predicted, support


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (sklearn's ``zero_division=0``)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def recall_score(true: Any, pred: Any, labels: Sequence[Any]) -> np.ndarray:
    """Recall of each of ``labels`` (0 for a label absent from ``true``): sklearn's ``average=None``."""
    tp, _, support = _class_counts(np.asarray(true).reshape(-1), np.asarray(pred).reshape(-1), np.asarray(labels))
    return _safe_divide(tp, support)


def f1_score(true: Any, pred: Any, average: str) -> float:
    """F1 over the labels present in ``true`` or ``pred``, ``"macro"`` or ``"weighted"`` by support.

    sklearn's ``f1_score(..., zero_division=0)``: per class F1 = 2TP / (2TP + FP + FN),
    0 where that is 0/0; ``weighted`` averages with the true counts as weights.
    """
    true, pred = np.asarray(true).reshape(-1), np.asarray(pred).reshape(-1)
    labels = np.union1d(true, pred)
    tp, predicted, support = _class_counts(true, pred, labels)
    f1 = _safe_divide(2.0 * tp, predicted + support)  # 2TP + FP + FN = predicted + true counts
    if average == "macro":
        return float(np.mean(f1)) if f1.size else 0.0
    if average == "weighted":
        return float(np.sum(f1 * support) / np.sum(support)) if np.sum(support) > 0 else 0.0
    raise ValueError(f"average must be 'macro' or 'weighted', got {average!r}")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two vectors; 0.0 (no warning) if either is constant."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    denom = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    if denom == 0.0 or not math.isfinite(denom):
        return 0.0
    return float(np.clip(np.dot(x, y) / denom, -1.0, 1.0))


def multiclass_acc(pred: np.ndarray, true: np.ndarray) -> float:
    """Fraction of samples whose ``np.round``-ed prediction equals the rounded label."""
    return float(np.mean(np.round(pred) == np.round(true)))


def regression_metrics(pred: Any, true: Any) -> dict[str, float]:
    """MMSA regression metrics of sentiment predictions (see the module docstring).

    Args:
        pred: predictions, any shape with N elements (array, list or tensor).
        true: labels in [-3, 3], N elements.

    Returns:
        dict with the keys of :data:`REGRESSION_KEYS`.

    Raises:
        ValueError: empty inputs, different sizes, or non-finite values.
    """
    pred, true = _as_numpy(pred), _as_numpy(true)
    if pred.size == 0 or pred.size != true.size:
        raise ValueError(f"pred and true must be non-empty and of equal size, "
                         f"got {pred.size} and {true.size}")
    for label, values in (("pred", pred), ("true", true)):
        n_bad = int((~np.isfinite(values)).sum())
        if n_bad:
            raise ValueError(f"{label} has {n_bad} non-finite values")

    has0_true, has0_pred = true >= 0, pred >= 0
    non_zero = true != 0
    if non_zero.any():
        non0_true, non0_pred = true[non_zero] > 0, pred[non_zero] > 0
        non0_acc = accuracy_score(non0_true, non0_pred)
        non0_f1 = f1_score(non0_true, non0_pred, average="weighted")
    else:
        non0_acc = non0_f1 = float("nan")
    return {
        "Has0_acc_2": accuracy_score(has0_true, has0_pred),
        "Has0_F1_score": f1_score(has0_true, has0_pred, average="weighted"),
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": multiclass_acc(np.clip(pred, -2.0, 2.0), np.clip(true, -2.0, 2.0)),
        "Mult_acc_7": multiclass_acc(np.clip(pred, -3.0, 3.0), np.clip(true, -3.0, 3.0)),
        "MAE": float(np.mean(np.abs(pred - true))),
        "Corr": pearson(pred, true),
    }


def classification_metrics(logits_or_pred: Any, true: Any, labels: Sequence[str]) -> dict[str, float]:
    """Classification metrics for ``len(labels)`` classes.

    Args:
        logits_or_pred: (N, K) scores (argmax is taken) or (N,) class ids.
        true: (N,) class ids in ``range(K)``.
        labels: class names, index = class id.

    Returns:
        ``accuracy`` (weighted average recall, WAR), ``uar`` (unweighted
        average recall over the classes present in ``true``), ``macro_f1``
        (sklearn macro F1 over the classes present in ``true`` or the
        predictions), ``weighted_f1``, and ``recall_<name>`` per class (NaN for
        a class absent from ``true``).

    Raises:
        ValueError: inconsistent shapes or class ids out of range.
    """
    scores = logits_or_pred.detach().cpu().numpy() if hasattr(logits_or_pred, "detach") else logits_or_pred
    scores = np.asarray(scores)
    n_classes = len(labels)
    if scores.ndim == 2:
        if scores.shape[1] != n_classes:
            raise ValueError(f"scores have {scores.shape[1]} columns for {n_classes} labels")
        pred = scores.argmax(axis=1)
    elif scores.ndim == 1:
        pred = scores.astype(np.int64)
    else:
        raise ValueError(f"expected (N, K) scores or (N,) predictions, got shape {scores.shape}")
    true = _as_numpy(true).astype(np.int64)
    if pred.size == 0 or pred.size != true.size:
        raise ValueError(f"predictions and labels must be non-empty and of equal size, "
                         f"got {pred.size} and {true.size}")
    for label, values in (("predictions", pred), ("labels", true)):
        if values.min() < 0 or values.max() >= n_classes:
            raise ValueError(f"{label} contain class ids outside [0, {n_classes})")
    present = np.unique(true)
    recalls = recall_score(true, pred, labels=list(range(n_classes)))
    result = {
        "accuracy": accuracy_score(true, pred),
        "uar": float(np.mean(recalls[present])),
        "macro_f1": f1_score(true, pred, average="macro"),
        "weighted_f1": f1_score(true, pred, average="weighted"),
    }
    for index, name in enumerate(labels):
        result[f"recall_{name}"] = float(recalls[index]) if index in present else float("nan")
    return result


def summarize_seeds(results: Sequence[Mapping[str, Any]], ddof: int = 1) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation over seeds of every numeric metric.

    Follows the MMSA / IMDer papers' reporting: accuracies, F1 scores and
    recalls (:func:`is_percent_key`) are multiplied by 100; ``MAE``, ``Corr``
    and any other value (losses, recovery errors, missing rates) keep their
    raw scale.  The standard deviation is the sample one (``ddof=1``) by
    default; with fewer than ``ddof + 1`` seeds it is NaN (one seed has no
    spread: tables print the mean alone, never "± 0.0").  Keys are those of the
    first result that are numeric in every result; others (e.g. strings) are skipped.
    """
    return {key: (stats.mean, stats.std) for key, stats in seed_statistics(results, ddof).items()}


@dataclass(frozen=True)
class SeedStats:
    """Mean over ``n`` seeds, sample standard deviation and 95 % confidence interval of the mean.

    The interval is ``mean ± t(0.975, n − 1) · std / √n`` (Student's t); with one
    seed ``std`` and the interval bounds are NaN.
    """

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int


def seed_statistics(results: Sequence[Mapping[str, Any]], ddof: int = 1) -> dict[str, SeedStats]:
    """:class:`SeedStats` of every numeric metric over seeds (percent keys ×100, see :func:`summarize_seeds`)."""
    if not results:
        raise ValueError("summarize_seeds needs at least one result")
    summary: dict[str, SeedStats] = {}
    for key in results[0]:
        values = [r.get(key) for r in results]
        if not all(isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
                   for v in values):
            continue
        array = np.asarray(values, dtype=np.float64)
        if is_percent_key(key):
            array = array * 100.0
        n = array.size
        mean = float(np.mean(array))
        std = float(np.std(array, ddof=ddof)) if n > ddof else float("nan")
        low, high = t_interval(mean, float(np.std(array, ddof=1)) if n >= 2 else float("nan"), n)
        if not np.isfinite(std):
            low = high = float("nan")
        summary[key] = SeedStats(mean, std, low, high, n)
    return summary


def t_interval(mean: float, sample_std: float, n: int) -> tuple[float, float]:
    """95 % confidence interval of a mean over ``n`` seeds: ``mean ± t(0.975, n − 1) · sample_std / √n``
    (Student's t); NaN bounds for fewer than two seeds or a non-finite std."""
    if n < 2 or not np.isfinite(sample_std) or not np.isfinite(mean):
        return float("nan"), float("nan")
    from scipy import stats as scipy_stats  # lazy: only tables need it

    half = float(scipy_stats.t.ppf(0.975, n - 1)) * sample_std / float(np.sqrt(n))
    return mean - half, mean + half


def format_seed_stats(stats: "SeedStats | None", digits: int = 1, interval: bool = True) -> str:
    """``"84.1 ± 0.5 [83.5, 84.7]"`` (mean ± sample std [95 % CI]); one seed: the mean alone; ``–`` if absent."""
    if stats is None or not np.isfinite(stats.mean):
        return "–"
    if stats.n < 2 or not np.isfinite(stats.std):
        return f"{stats.mean:.{digits}f}"
    text = f"{stats.mean:.{digits}f} ± {stats.std:.{digits}f}"
    if interval:
        text += f" [{stats.ci_low:.{digits}f}, {stats.ci_high:.{digits}f}]"
    return text


def format_mean_std(mean: "float | tuple[float, float]", std: float | None = None,
                    digits: int = 2) -> str:
    """``"84.12 ± 0.53"``; accepts ``(mean, std)`` tuples from :func:`summarize_seeds`."""
    if isinstance(mean, tuple):
        mean, std = mean
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
