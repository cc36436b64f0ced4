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
from ..methods.base import RecoveryModel
from ..modalities import MODALITIES, Modality

#: Window of the live models: steps and step rate (2 s at 10 Hz); training and calibration use it.
LIVE_WINDOW_STEPS, LIVE_WINDOW_RATE_HZ = 20, 10.0


class LiveModelError(RuntimeError):
    """A checkpoint cannot drive the live pipeline (missing, corrupt, untrained or mismatched)."""


def shipped_checkpoints(directory: "str | os.PathLike[str] | None" = None) -> dict[str, Path]:
    """``{method: path}`` of the ``live_<method>.pt`` files in ``assets/models`` (or ``directory``)."""
    folder = Path(directory) if directory is not None else assets_dir() / "models"
    return {p.stem[len("live_"):]: p for p in sorted(folder.glob("live_*.pt"))}


def running_extractors() -> dict[Modality, tuple[str, int]]:
    """``{modality: (extractor id, dim)}`` of the extractors the pipeline runs."""
    from ..features.face import live_vision_feature
    from ..features.voice import VOICE_EXTRACTOR_ID, VOICE_FEATURE_DIM
    from ..text_features import TEXT_DIM, TEXT_EXTRACTOR
    return {Modality.TEXT: (TEXT_EXTRACTOR, TEXT_DIM), Modality.AUDIO: (VOICE_EXTRACTOR_ID, VOICE_FEATURE_DIM),
            Modality.VISION: live_vision_feature()}


def compatibility_problems(config: ModelConfig, metadata: Mapping[str, Any]) -> list[str]:
    """Everything that keeps a checkpoint from running live (empty when it fits)."""
    problems = []
    if config.task != CLASSIFICATION:
        problems.append(f"it is a {config.task} model; the live engine needs emotion classes")
    if not metadata.get("trained", False):
        problems.append("its metadata does not mark it as trained (\"trained\": true)")
    if config.task == CLASSIFICATION and tuple(config.labels) != LIVE_EMOTIONS:
        problems.append(f"its classes {list(config.labels)} are not the live label space {list(LIVE_EMOTIONS)}")
    for modality, (extractor, dim) in running_extractors().items():
        spec = config.specs[modality]
        if spec.extractor != extractor or spec.dim != dim:
            problems.append(f"{modality.value} features: checkpoint expects {spec.extractor or 'unnamed'!r} "
                            f"({spec.dim}-d), the pipeline runs {extractor!r} ({dim}-d)")
        if spec.rate_hz is None or spec.rate_hz <= 0:
            problems.append(f"{modality.value} features: no step rate in the checkpoint's spec")
    from ..features.voice import VoiceConfig
    audio_rate, voice_rate = config.specs[Modality.AUDIO].rate_hz, VoiceConfig().rate_hz
    if audio_rate is not None and abs(audio_rate - voice_rate) > 1e-6:
        problems.append(f"audio features at {audio_rate} Hz; the voice extractor runs at {voice_rate} Hz")
    problems.extend(_normalization_problems(config, metadata.get("feature_normalization")))
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


def load_live_model(path: "str | os.PathLike[str]", device: str = "cpu") -> LiveModel:
    """Load and check a live checkpoint.

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
        problems = compatibility_problems(config, metadata)
    except Exception as exc:  # a malformed config can fail in many ways; say which file and why
        raise LiveModelError(f"cannot use checkpoint {path}: invalid configuration "
                             f"({type(exc).__name__}: {exc})") from exc
    if problems:
        raise LiveModelError(f"checkpoint {path} does not fit the live pipeline: " + "; ".join(problems))
    try:
        model = load_checkpoint(path, map_location=device)
    except CheckpointError as exc:
        raise LiveModelError(str(exc)) from exc
    norm = metadata.get("feature_normalization") or {}
    mean = {m: np.asarray(norm[m.value]["mean"], np.float32) for m in MODALITIES if m.value in norm}
    std = {m: np.maximum(np.asarray(norm[m.value]["std"], np.float32), 1e-6) for m in MODALITIES if m.value in norm}
    return LiveModel(str(payload["method"]), path, model, config, metadata, mean, std)


class ModelBank:
    """One checkpoint per recovery method; models are loaded on first use and kept.

    Args:
        checkpoints: ``{method: path}``; see :func:`shipped_checkpoints`.
        device: torch device the models are loaded to.
    """

    def __init__(self, checkpoints: Mapping[str, "str | os.PathLike[str]"], device: str = "cpu") -> None:
        self.checkpoints = {str(k): Path(v) for k, v in checkpoints.items()}
        self.device = device
        self._loaded: dict[str, LiveModel] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_paths(cls, paths: "list[str | os.PathLike[str]]", device: str = "cpu") -> "ModelBank":
        """A bank of checkpoint files, keyed by the method each one holds."""
        bank: dict[str, Path] = {}
        for p in paths:
            try:
                method = str(read_checkpoint(p)["method"])
            except CheckpointError as exc:
                raise LiveModelError(str(exc)) from exc
            bank[method] = Path(p)
        return cls(bank, device)

    @property
    def methods(self) -> list[str]:
        """Methods with a checkpoint."""
        return sorted(self.checkpoints)

    def get(self, method: str) -> LiveModel:
        """The loaded model of ``method`` (raises :class:`LiveModelError`)."""
        with self._lock:
            if method in self._loaded:
                return self._loaded[method]
            if method not in self.checkpoints:
                have = ", ".join(self.methods) or "none"
                raise LiveModelError(f"no trained checkpoint for {method!r} (available: {have})")
            model = load_live_model(self.checkpoints[method], self.device)
            if model.method != method:
                raise LiveModelError(f"{model.path} holds {model.method!r}, not {method!r}")
            self._loaded[method] = model
            return model
