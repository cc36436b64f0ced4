"""Checkpoints for live use: compatibility with the running extractors, and a bank per method.

A live checkpoint is an ordinary :mod:`imer_core.checkpoint` file whose
feature specs name the extractors the pipeline runs (face, voice and text
extractor ids, dims and step rates) and whose metadata says it was trained
(``"trained": True``) and, optionally, how to normalise the features
(``"feature_normalization"``: per modality ``mean``/``std`` lists).  The
engine refuses anything else with a message that says what differs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..assets import ASSETS_ENV, assets_dir  # noqa: F401 - re-exported (where they were defined before)
from ..checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from ..config import CLASSIFICATION, LIVE_EMOTIONS, ModelConfig
from ..features.base import ExtractorSpec
from ..features.registry import default_extractor_specs
from ..methods.base import RecoveryModel
from ..modalities import MODALITIES, Modality
from . import checkpoint_keys as keys

#: Window of the live models: steps and step rate (2 s at 10 Hz); training and calibration use it.
LIVE_WINDOW_STEPS, LIVE_WINDOW_RATE_HZ = 20, 10.0


class LiveModelError(RuntimeError):
    """A checkpoint cannot drive the live pipeline (missing, corrupt, untrained or mismatched)."""


def shipped_checkpoints(directory: "str | os.PathLike[str] | None" = None) -> dict[str, Path]:
    """``{method: path}`` of the ``live_<method>.pt`` files in ``assets/models`` (or ``directory``)."""
    folder = Path(directory) if directory is not None else assets_dir() / "models"
    return {p.stem[len("live_"):]: p for p in sorted(folder.glob("live_*.pt"))}


def compatibility_problems(config: ModelConfig, metadata: Mapping[str, Any],
                           extractors: Mapping[Modality, ExtractorSpec] | None = None) -> list[str]:
    """Everything that keeps a checkpoint from running live on ``extractors`` (empty when it fits).

    ``extractors``: ``{modality: spec}`` of the extractors that will feed it
    (:attr:`PipelineParts.extractor_specs <imer_core.live.parts.PipelineParts.extractor_specs>`);
    default: the registered defaults.
    """
    problems = []
    if config.task != CLASSIFICATION:
        problems.append(f"it is a {config.task} model; the live engine needs emotion classes")
    if not metadata.get(keys.TRAINED, False):
        problems.append("its metadata does not mark it as trained (\"trained\": true)")
    if config.task == CLASSIFICATION and tuple(config.labels) != LIVE_EMOTIONS:
        problems.append(f"its classes {list(config.labels)} are not the live label space {list(LIVE_EMOTIONS)}")
    running = default_extractor_specs() if extractors is None else extractors
    for modality in MODALITIES:
        problems.extend(running[modality].problems_with(config.specs[modality]))
    problems.extend(_normalization_problems(config, metadata.get(keys.FEATURE_NORMALIZATION)))
    return problems


def _normalization_problems(config: ModelConfig, norm: Any) -> list[str]:
    if norm is None:
        return []
    if not isinstance(norm, Mapping):
        return ["feature_normalization must map modality -> {mean, std}"]
    problems = []
    for modality in MODALITIES:
        entry = norm.get(modality.value)
        if entry is None:
            continue
        dim = config.specs[modality].dim
        if not isinstance(entry, Mapping):
            problems.append(f"feature_normalization of {modality.value} must be a dict with mean and std")
            continue
        try:
            mean = np.asarray(entry.get("mean", ()), np.float64)
            std = np.asarray(entry.get("std", ()), np.float64)
        except (TypeError, ValueError):
            problems.append(f"feature_normalization of {modality.value} holds values that are not numbers")
            continue
        if mean.shape != (dim,) or std.shape != (dim,):
            problems.append(f"feature_normalization of {modality.value} does not have {dim} means and stds")
        elif not (np.isfinite(mean).all() and np.isfinite(std).all()):
            problems.append(f"feature_normalization of {modality.value} holds NaN or infinite values")
    return problems


@dataclass(frozen=True, eq=False)
class LiveModel:
    """A loaded, checked checkpoint ready for the engine."""

    method: str
    path: Path
    model: RecoveryModel
    config: ModelConfig
    metadata: Mapping[str, Any]
    mean: Mapping[Modality, np.ndarray]
    std: Mapping[Modality, np.ndarray]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.config.labels)

    def normalise(self, modality: Modality, values: np.ndarray) -> np.ndarray:
        """``(values - mean) / std`` with the checkpoint's training statistics (identity without them)."""
        if modality not in self.mean:
            return values
        return (values - self.mean[modality]) / self.std[modality]


def load_live_model(path: "str | os.PathLike[str]", device: str = "cpu",
                    extractors: Mapping[Modality, ExtractorSpec] | None = None) -> LiveModel:
    """Load and check a live checkpoint against ``extractors`` (see :func:`compatibility_problems`).

    Raises:
        LiveModelError: the file is missing/corrupt, or it does not fit the
            running extractors (the message lists every difference).
    """
    path = Path(path)
    try:
        payload = read_checkpoint(path)
    except CheckpointError as exc:
        raise LiveModelError(f"cannot use checkpoint {path}: {exc}") from exc
    try:
        config = ModelConfig.from_dict(payload["config"])
        metadata = dict(payload.get("metadata", {}))
        problems = compatibility_problems(config, metadata, extractors)
    except Exception as exc:  # a malformed config can fail in many ways; say which file and why
        raise LiveModelError(f"cannot use checkpoint {path}: invalid configuration "
                             f"({type(exc).__name__}: {exc})") from exc
    if problems:
        raise LiveModelError(f"checkpoint {path} does not fit the live pipeline: " + "; ".join(problems))
    try:
        model = load_checkpoint(path, map_location=device)
    except CheckpointError as exc:
        raise LiveModelError(str(exc)) from exc
    norm = metadata.get(keys.FEATURE_NORMALIZATION) or {}
    mean = {m: np.asarray(norm[m.value]["mean"], np.float32) for m in MODALITIES if m.value in norm}
    std = {m: np.maximum(np.asarray(norm[m.value]["std"], np.float32), 1e-6) for m in MODALITIES if m.value in norm}
    return LiveModel(str(payload["method"]), path, model, config, metadata, mean, std)


def warm_up(model: LiveModel) -> bool:
    """Build a traced model's per-shape networks now, at load time, instead of at its first windows.

    Only for a checkpoint whose default inference backend is not eager (the shipped live
    IMDer traces its networks): one batch-1 window of zeros per availability pattern goes
    through ``recover`` under ``torch.inference_mode``.  Tracing takes the GIL for a
    while; done here it delays the model load, not the predictions and the face thread
    of a running session.  Returns whether anything was run.
    """
    import torch

    from ..modalities import AVAILABLE_SUBSETS, mask_from_available

    backend = getattr(getattr(model.model, "options", None), "score_backend", "eager")
    if backend == "eager":
        return False
    specs = model.config.specs
    device = next(model.model.parameters()).device
    features = {s.modality.value: torch.zeros(1, s.seq_len, s.dim, device=device) for s in specs}
    with torch.inference_mode():
        for available in AVAILABLE_SUBSETS:
            if len(available) < len(MODALITIES):
                model.model.recover(features, mask_from_available(available, 1).to(device))
    return True


class ModelBank:
    """One checkpoint per recovery method; models are loaded on first use and kept.

    Args:
        checkpoints: ``{method: path}``; see :func:`shipped_checkpoints`.
        device: torch device the models are loaded to.
        extractors: ``{modality: spec}`` of the extractors feeding the models
            (default: the registered defaults); each model is checked against them.
    """

    def __init__(self, checkpoints: Mapping[str, "str | os.PathLike[str]"], device: str = "cpu",
                 extractors: Mapping[Modality, ExtractorSpec] | None = None) -> None:
        self.checkpoints = {str(k): Path(v) for k, v in checkpoints.items()}
        self.device = device
        self.extractors = dict(extractors) if extractors is not None else None
        self._loaded: dict[str, LiveModel] = {}
        self._refused: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_paths(cls, paths: "list[str | os.PathLike[str]]", device: str = "cpu",
                   extractors: Mapping[Modality, ExtractorSpec] | None = None) -> "ModelBank":
        """A bank of checkpoint files, keyed by the method each one holds."""
        bank: dict[str, Path] = {}
        for p in paths:
            try:
                method = str(read_checkpoint(p)["method"])
            except CheckpointError as exc:
                raise LiveModelError(str(exc)) from exc
            bank[method] = Path(p)
        return cls(bank, device, extractors)

    @property
    def methods(self) -> list[str]:
        """Methods with a checkpoint."""
        return sorted(self.checkpoints)

    @property
    def refused(self) -> dict[str, str]:
        """``{method: why}`` of the checkpoints that were tried and cannot run (e.g. made for other features)."""
        with self._lock:
            return dict(self._refused)

    def get(self, method: str) -> LiveModel:
        """The loaded model of ``method`` (raises :class:`LiveModelError`; a refused checkpoint is
        remembered in :attr:`refused` and not read again)."""
        with self._lock:
            if method in self._loaded:
                return self._loaded[method]
            if method not in self.checkpoints:
                have = ", ".join(self.methods) or "none"
                raise LiveModelError(f"no trained checkpoint for {method!r} (available: {have})")
            if method in self._refused:
                raise LiveModelError(self._refused[method])
            try:
                model = load_live_model(self.checkpoints[method], self.device, self.extractors)
                if model.method != method:
                    raise LiveModelError(f"{model.path} holds {model.method!r}, not {method!r}")
            except LiveModelError as exc:
                self._refused[method] = str(exc)
                raise
            warm_up(model)
            self._loaded[method] = model
            return model
