"""Experts that ``live-experts`` does not train from scratch, and the experts' calibration.

Two steps of :func:`training.live.experts.add_expert_fusion`:

* **The text network's own head as the text expert** (``--text-expert text-net-head``).
  The live text feature is the fine-tuned text network's mean-pooled embedding,
  L2-normalised (:class:`~imer_core.live.text_net.TextNetRunner`), and the network
  was trained with its linear head on the *un-normalised* pooled vector over all
  of MELD train, where an MLP trained on the few thousand training tuples has
  less to learn from.  The head is carried over as a linear expert (depth 0) on
  the expert's input, the normalised features' mean and std over time:

      logits = s · W (σ ⊙ mean_t x̂ + μ) + b − log π_MELD

  with ``x̂ = (x − μ) / σ`` the model's feature normalisation, ``s`` the median
  norm of the pooled vector on MELD training utterances (the scale that the
  L2 normalisation removed) and ``π_MELD`` the MELD training prior the head was
  trained under (plain cross-entropy), so that the expert, like the others,
  scores under a uniform prior.  The std part gets zero weight.
* **Temperature scaling** of every expert (:func:`imer_core.nn.expert_fusion.fit_temperature`)
  on the validation tuples, one modality at a time.  Each expert's argmax is
  unchanged; the product of experts depends on how confident each one is, and
  ensembles of MLPs trained to their best validation epoch were overconfident
  (all fitted temperatures above 1 on the live cache, ``docs/live_model.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from imer_core.nn.expert_fusion import SPEAKER_SUFFIX, ExpertFusionHead, fit_temperature

from .corpora import spread_subset
from .extract import load_cache
from .labels import LIVE_LABELS, live_index

#: Choices of ``live-experts --text-expert``.
TEXT_EXPERTS = ("auto", "mlp", "text-net-head")
#: MELD training utterances run through the text network to measure the pooled vector's norm.
NORM_SAMPLE = 512


def resolve_text_expert(choice: str, text_extractor: str, text_net_path: str | Path | None = None) -> str:
    """``"mlp"`` or ``"text-net-head"`` for ``choice`` given the cache's text feature id.

    ``"auto"`` picks the head when the text feature is the embedding of the text
    network at ``text_net_path`` (default: the shipped file), else the MLP.

    Raises:
        ValueError: ``"text-net-head"`` was asked for but the text feature is another network's.
    """
    if choice not in TEXT_EXPERTS:
        raise ValueError(f"unknown text expert {choice!r}; choose one of {list(TEXT_EXPERTS)}")
    if choice == "mlp":
        return choice
    from imer_core.features.text import text_net_extractor_spec

    spec = text_net_extractor_spec(text_net_path)
    matches = spec is not None and spec.extractor_id == text_extractor
    if choice == "auto":
        return "text-net-head" if matches else "mlp"
    if not matches:
        found = spec.extractor_id if spec is not None else "no text network file"
        raise ValueError(f"--text-expert text-net-head: the cache's text feature is {text_extractor!r}, the text "
                         f"network gives {found!r}; use --text-expert mlp or re-extract with that network")
    return choice


def meld_training_texts(cache: str | Path) -> tuple[list[str], np.ndarray]:
    """MELD training utterances of the cache with a live label, and those labels."""
    data = load_cache(cache, "meld")
    labels = np.asarray([live_index("meld", str(s)) for s in data["source_label"]], np.int64)
    keep = (labels >= 0) & (data["split"].astype(str) == "train")
    return [str(u) for u in data["utterance"][keep]], labels[keep]


def head_as_linear_expert(weight: np.ndarray, bias: np.ndarray, scale: float, log_prior: np.ndarray,
                          mean: np.ndarray, std: np.ndarray) -> dict[str, torch.Tensor]:
    """State of a depth-0 :class:`~imer_core.nn.expert_fusion.ModalityExpert` computing the head (module docstring).

    ``weight (C, D)`` and ``bias (C,)`` are the head's; ``mean`` and ``std`` the feature normalisation.
    """
    w = np.asarray(weight, np.float64)
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    on_mean = scale * w * std[None, :]
    full = np.concatenate([on_mean, np.zeros_like(on_mean)], axis=1)
    b = scale * w @ mean + np.asarray(bias, np.float64) - np.asarray(log_prior, np.float64)
    return {"net.0.weight": torch.tensor(full, dtype=torch.float32), "net.0.bias": torch.tensor(b, dtype=torch.float32)}


def text_net_head_expert(cache: str | Path, normalization: Mapping[str, list[float]],
                         text_net_path: str | Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The text network's head as a linear text expert's state, and a summary (scale, prior, MELD test check)."""
    from imer_core.live.text_net import TextNetRunner

    runner = TextNetRunner(text_net_path)
    texts, labels = meld_training_texts(cache)
    if len(texts) == 0:
        raise ValueError(f"{cache}: no MELD training utterances with a live label")
    sample = [texts[i] for i in spread_subset(len(texts), NORM_SAMPLE)]
    norms = np.linalg.norm(runner.pooled(sample, batch_size=64), axis=1)
    scale = float(np.median(norms))
    counts = np.bincount(labels, minlength=len(LIVE_LABELS)).astype(np.float64)
    log_prior = np.log(np.maximum(counts, 1.0) / counts.sum())
    head = runner.model.head[-1]
    weight = head.weight.detach().float().numpy()
    bias = head.bias.detach().float().numpy()
    state = head_as_linear_expert(weight, bias, scale, log_prior, np.asarray(normalization["mean"]),
                                  np.asarray(normalization["std"]))
    info = {"kind": "text-net-head", "text_net": runner.weights_id, "scale": round(scale, 4),
            "scale_from": f"median pooled norm of {len(sample)} MELD training utterances "
                          f"(5-95 %: {np.percentile(norms, 5):.2f}-{np.percentile(norms, 95):.2f})",
            "meld_train_prior": {name: round(float(c / counts.sum()), 4) for name, c in zip(LIVE_LABELS, counts)}}
    return state, info


@torch.no_grad()
def _expert_logits(head: ExpertFusionHead, key: str, dataset: Any, feature_key: str,
                   batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw logits (no temperature) of one expert on ``dataset``'s ``feature_key`` and the labels."""
    expert = head.expert(key).eval()
    logits, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits.append(expert(batch[feature_key]).float())
        labels.append(batch["label"])
    return torch.cat(logits), torch.cat(labels)


def fit_expert_temperatures(head: ExpertFusionHead, valid: Any, speaker_valid: Any | None = None
                            ) -> dict[str, dict[str, float]]:
    """Fit each expert's temperature on validation tuples (its own modality only); set them on ``head``.

    ``speaker_valid``: validation tuples carrying ``<modality>@speaker`` features for the
    speaker experts (skipped when ``None``).  Returns ``{key: {T, nll_before, nll_after}}``.
    """
    found: dict[str, float] = {}
    report: dict[str, dict[str, float]] = {}
    for key in head.expert_keys:
        speaker = key.endswith(SPEAKER_SUFFIX)
        if speaker and speaker_valid is None:
            continue
        logits, labels = _expert_logits(head, key, speaker_valid if speaker else valid, key)
        t = fit_temperature(logits, labels)
        before = float(torch.nn.functional.cross_entropy(logits, labels))
        after = float(torch.nn.functional.cross_entropy(logits / t, labels))
        if not (math.isfinite(after) and after <= before):
            t, after = 1.0, before
        found[key] = round(t, 4)
        report[key] = {"temperature": round(t, 4), "valid_nll_before": round(before, 4),
                       "valid_nll_after": round(after, 4)}
    head.set_temperatures(found)
    return report
