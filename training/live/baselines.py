"""Baselines of the live-model evaluation: fill-in fusion without recovery, and unimodal classifiers.

* :class:`FillFusion`: the MulT fusion network of the recovery methods with
  the features of a missing modality **filled with a constant** instead of
  recovered, trained with the same two stages and missing-modality protocol.
  ``"zero"`` fills the raw features with zeros, ``"mean"`` with the training
  mean (in the normalised space the model sees: ``-mean/std`` and ``0``).
* :class:`UnimodalClassifier`: one small classifier per modality (mean and
  standard deviation over time → MLP), trained on that modality alone.  Under
  a missing condition the available modalities' classifiers are combined by
  summing their log-probabilities (product of experts; the pseudo-pairs make
  the modalities conditionally independent given the label, and the training
  classes are balanced, so this is the naive-Bayes combination).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from imer_core.config import FusionConfig, ModelConfig, fusion_config, options_from_dict
from imer_core.methods.base import PRETRAIN, Features, LossOutput, RecoveryModel, SamplingOptions
from imer_core.modalities import MODALITIES, full_mask, validate_mask
from imer_core.nn.mult import MulTFusion

from ..metrics import classification_metrics

FILL_KINDS: tuple[str, ...] = ("zero", "mean")


def fill_vectors(kind: str, normalization: Mapping[str, Mapping[str, list[float]]]) -> dict[str, torch.Tensor]:
    """Normalised fill vector per modality: raw zeros (``"zero"``) or the raw training mean (``"mean"``)."""
    if kind not in FILL_KINDS:
        raise ValueError(f"fill kind must be one of {FILL_KINDS}, got {kind!r}")
    out = {}
    for modality, stats in normalization.items():
        mean, std = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
        out[modality] = -mean / std if kind == "zero" else torch.zeros_like(mean)
    return out


@dataclass(frozen=True)
class FillOptions:
    """Options of :class:`FillFusion`: the MulT backbone (a :class:`FusionConfig` or a dict of its fields)."""

    fusion: FusionConfig = FusionConfig()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion", fusion_config(self.fusion))


class FillFusion(RecoveryModel):
    """MulT fusion with missing inputs filled by a constant vector (no recovery; not registered).

    Args:
        config: the model configuration (specs, labels, ``method_options["fusion"]``).
        fill: normalised fill vector ``(dim,)`` per modality (:func:`fill_vectors`).
    """

    name = "fill"
    options_class = FillOptions

    def __init__(self, config: ModelConfig, fill: Mapping[str, torch.Tensor]) -> None:
        super().__init__(config)
        self.options: FillOptions = options_from_dict(FillOptions, config.method_options)
        self.fusion = MulTFusion(config.specs, self.options.fusion, config.output_dim)
        for modality in MODALITIES:
            self.register_buffer(f"fill_{modality.value}", fill[modality.value].float().view(1, 1, -1).clone())

    def _filled(self, features: Features, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = validate_mask(mask, self.check_features(features))
        out = {}
        for i, modality in enumerate(MODALITIES):
            x = features[modality.value]
            keep = mask[:, i].to(x.device).view(-1, 1, 1)
            out[modality.value] = torch.where(keep, x, getattr(self, f"fill_{modality.value}").to(x.dtype))
        return out

    def training_losses(self, features: Features, labels: torch.Tensor, mask: torch.Tensor) -> LossOutput:
        """Cross-entropy of the fused prediction (complete inputs in the pretrain stage)."""
        if self.stage == PRETRAIN:
            mask = full_mask(self.check_features(features), device=mask.device)
        prediction = self.fusion(self.fusion.project(self._filled(features, mask))).prediction
        task = self.task_loss(prediction, labels.to(prediction.device))
        return LossOutput(total=task, parts={"task": task, "total": task}, prediction=prediction)

    @torch.no_grad()
    def recover(self, features: Features, mask: torch.Tensor,
                sampling: SamplingOptions | None = None) -> dict[str, torch.Tensor]:
        """Projections of the filled features."""
        return self.fusion.project(self._filled(features, mask))

    @torch.no_grad()
    def project(self, features: Features) -> dict[str, torch.Tensor]:
        """Projections of complete features."""
        self.check_features(features)
        return self.fusion.project(features)

    def predict_from_recovered(self, recovered: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """MulT fusion and output head."""
        return self.fusion(recovered).prediction


class UnimodalClassifier(nn.Module):
    """Mean and std over time of one modality's ``(B, L, D)`` features → MLP → class logits."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)``."""
        return self.net(torch.cat([x.mean(dim=1), x.std(dim=1, unbiased=False)], dim=-1))


def predict_unimodal(model: UnimodalClassifier, dataset: Dataset, modality: str, batch_size: int) -> np.ndarray:
    """Log-probabilities ``(N, K)`` of ``model`` on ``dataset``'s ``modality``, in item order."""
    model.eval()
    chunks = []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            chunks.append(torch.log_softmax(model(batch[modality]), dim=-1).numpy())
    return np.concatenate(chunks)


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """The class ids a live dataset keeps in its ``labels`` attribute, one per item."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        raise TypeError(f"{type(dataset).__name__} has no labels attribute")
    return np.asarray(labels)


def train_unimodal(datasets: Mapping[str, Dataset], modality: str, dim: int, labels: tuple[str, ...],
                   epochs: int = 30, early_stop: int = 5, batch_size: int = 128, learning_rate: float = 1e-3,
                   seed: int = 0, progress: bool = True,
                   dropout: float = 0.2) -> tuple[UnimodalClassifier, dict[str, Any]]:
    """Train one unimodal classifier on the ``train`` tuples' ``modality``; best epoch by validation macro-F1."""
    torch.manual_seed(seed)
    model = UnimodalClassifier(dim, len(labels), dropout=dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    valid_labels = dataset_labels(datasets["valid"])
    best, best_epoch, best_state = -math.inf, 0, None
    generator = torch.Generator().manual_seed(seed)
    for epoch in tqdm(range(1, epochs + 1), desc=f"unimodal {modality}", leave=False, disable=not progress):
        model.train()
        for batch in DataLoader(datasets["train"], batch_size=batch_size, shuffle=True, generator=generator):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(batch[modality]), batch["label"])
            loss.backward()
            optimizer.step()
        scores = predict_unimodal(model, datasets["valid"], modality, batch_size)
        value = classification_metrics(scores, valid_labels, labels)["macro_f1"]
        if value > best + 1e-6:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
        if epoch - best_epoch >= early_stop:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), {"best_epoch": best_epoch, "valid_macro_f1": best, "epochs": epoch}


class LateFusion:
    """Product of unimodal experts: the sum of the available modalities' log-probabilities."""

    def __init__(self, classifiers: Mapping[str, UnimodalClassifier]) -> None:
        self.classifiers = dict(classifiers)

    @torch.no_grad()
    def predict(self, features: Features, mask: torch.Tensor,
                sampling: SamplingOptions | None = None) -> torch.Tensor:
        """Summed log-probabilities ``(B, K)`` of the available modalities."""
        mask = validate_mask(mask)
        parts = []
        for i, modality in enumerate(MODALITIES):
            logp = torch.log_softmax(self.classifiers[modality.value](features[modality.value]), dim=-1)
            parts.append(logp * mask[:, i].view(-1, 1).to(logp.dtype))
        return torch.stack(parts).sum(dim=0)
