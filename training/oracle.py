"""Bayes-optimal metrics on the linear-Gaussian task, on the same test samples and masks as a method.

:func:`bayes_optimal_metrics` applies the exact posterior of
:class:`~training.data.linear_gaussian.LinearGaussianTask` to each test sample's
*available* modalities (its evaluation mask) and reports, with the prefix
``bayes_``, the task metrics of the optimal prediction (the same metric code as
the methods) and the recovery error of the optimal recovery: in the raw feature
space (``bayes_raw_recovery_mse``) and — when a model is given and its recovery
space is an affine map of the features (checked numerically; true for the MulT
projections of IMDer, RoHyDR and the regression baseline, not for CM-ARR's
encoder) — in that model's recovery space (``bayes_recovery_mse``), directly
comparable with the method's own ``recovery_mse`` on the same entries.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from imer_core.methods.base import RecoveryModel
from imer_core.modalities import MODALITIES

from .data.linear_gaussian import LinearGaussianTask
from .data.mmsa import MMSASplit
from .metrics import regression_metrics
from .trainer import _recovery_errors

BAYES_PREFIX = "bayes_"


def _split(dataset: object) -> MMSASplit:
    split = getattr(dataset, "split", None)                         # MMSADataset
    if not isinstance(split, MMSASplit):
        raise ValueError(f"the Bayes-optimal oracle needs an MMSA dataset, got {type(dataset).__name__}")
    return split


def _features(dataset: object) -> list[np.ndarray]:
    split = _split(dataset)
    if getattr(dataset, "text_key", "text") != "text":
        raise ValueError("the Bayes-optimal recovery needs the text features, not BERT token ids")
    return [np.asarray(getattr(split, m.value), dtype=np.float32) for m in MODALITIES]


def bayes_optimal_recovery(task: LinearGaussianTask, features: list[np.ndarray],
                           masks: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Features with every missing modality replaced by its optimal estimate, and the optimal predictions."""
    masks = np.asarray(masks, dtype=bool)
    recovered = [x.copy() for x in features]
    prediction = np.zeros(len(masks))
    for pattern in np.unique(masks, axis=0):
        rows = np.nonzero((masks == pattern).all(axis=1))[0]
        posterior = task.posterior([x[rows] for x in features], tuple(bool(v) for v in pattern))
        prediction[rows] = task.predict(posterior)
        for m, on in enumerate(pattern):
            if not on:
                recovered[m][rows] = task.recover(posterior, m)
    return recovered, prediction


def _is_affine(model: RecoveryModel, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``model.project`` is affine on these inputs: f(a) + f(b) = f(a + b) + f(0)."""
    zero = {k: torch.zeros_like(v) for k, v in a.items()}
    both = {k: a[k] + b[k] for k in a}
    fa, fb, fab, f0 = (model.project(x) for x in (a, b, both, zero))
    for key in fa:
        gap = (fa[key] + fb[key] - fab[key] - f0[key]).abs().max()
        if float(gap) > 1e-4 * (1.0 + float(fab[key].abs().max())):
            return False
    return True


@torch.no_grad()
def bayes_optimal_metrics(task: LinearGaussianTask, dataset: object, masks: np.ndarray,
                          model: RecoveryModel | None = None, batch_size: int = 256) -> dict[str, float]:
    """``bayes_*`` metrics of the optimal predictor and recovery for ``dataset`` (an MMSA split) under ``masks``."""
    features = _features(dataset)
    masks = np.asarray(masks, dtype=bool)
    labels = np.asarray(_split(dataset).regression_labels, dtype=np.float64)
    recovered, prediction = bayes_optimal_recovery(task, features, masks)
    out = {BAYES_PREFIX + k: v for k, v in regression_metrics(prediction, labels).items()}
    err = count = 0.0
    for m in range(len(MODALITIES)):
        rows = ~masks[:, m]
        if rows.any():
            err += float(np.sum((recovered[m][rows].astype(np.float64) - features[m][rows]) ** 2))
            count += rows.sum() * features[m][0].size
    if count:
        out[BAYES_PREFIX + "raw_recovery_mse"] = err / count
    if model is None or masks.all():
        return out
    model.eval()
    device = next(model.parameters()).device
    rows = np.nonzero(~masks.all(axis=1))[0]
    err = zero = 0.0
    n = 0
    for start in range(0, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        truth = {m.value: torch.from_numpy(features[i][idx]).to(device) for i, m in enumerate(MODALITIES)}
        guess = {m.value: torch.from_numpy(recovered[i][idx]).to(device) for i, m in enumerate(MODALITIES)}
        if start == 0 and not _is_affine(model, truth, guess):
            return out                                   # the optimum in a non-affine space has no closed form
        e, z, c = _recovery_errors(model.project(guess), model.project(truth),
                                   torch.from_numpy(masks[idx]).to(device))
        err, zero, n = err + e, zero + z, n + c
    if n:
        out[BAYES_PREFIX + "recovery_mse"] = err / n
    return out
