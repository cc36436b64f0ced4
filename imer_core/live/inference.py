"""One prediction step of a live model, shared by the live engine and offline analysis.

A *window* maps each observed modality to its raw ``(seq_len, dim)`` features
(the extractors' natural units, ``seq_len`` steps at the checkpoint's rate);
a modality absent from the mapping is missing and the model's recovery
method generates it.  :func:`window_features` normalises and stacks windows
into a batch, :func:`availability_mask` says which inputs are real,
:func:`recover` runs the recovery method and :func:`classify` turns the
recovered inputs into class probabilities; :func:`predict_windows` does the
four in one call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from ..methods.base import SamplingOptions
from ..modalities import MODALITIES, Modality
from .models import LiveModel

#: A window: raw features of the observed modalities (a missing modality has no entry).
Window = Mapping[Modality, np.ndarray]


def repeat_vector(vector: np.ndarray, seq_len: int) -> np.ndarray:
    """A ``(seq_len, dim)`` window holding one feature vector at every step (a still image, a sentence)."""
    v = np.asarray(vector, np.float32).reshape(1, -1)
    return np.repeat(v, int(seq_len), axis=0)


def window_features(model: LiveModel, windows: Sequence[Window], device: str = "cpu",
                    normalise: bool = True) -> dict[str, torch.Tensor]:
    """``{modality: (B, seq_len, dim)}`` model inputs; missing modalities are zeros.

    ``normalise``: apply the checkpoint's feature normalisation (``False``: the windows are normalised already,
    e.g. with per-speaker statistics).

    Raises:
        ValueError: a window's shape differs from the checkpoint's spec.
    """
    out = {}
    for m in MODALITIES:
        spec = model.config.specs[m]
        batch = np.zeros((len(windows), spec.seq_len, spec.dim), np.float32)
        for i, window in enumerate(windows):
            values = window.get(m)
            if values is None:
                continue
            if values.shape != (spec.seq_len, spec.dim):
                raise ValueError(f"{m.value} window has shape {values.shape}, the checkpoint expects "
                                 f"({spec.seq_len}, {spec.dim})")
            batch[i] = model.normalise(m, values) if normalise else values
        out[m.value] = torch.from_numpy(batch).to(device)
    return out


def availability_mask(available: Iterable[Iterable[Modality]], device: str = "cpu") -> torch.Tensor:
    """``(B, 3)`` bool mask in :data:`MODALITIES` order from the observed modalities of each window."""
    rows = [set(a) for a in available]
    return torch.tensor([[m in row for m in MODALITIES] for row in rows], dtype=torch.bool,
                        device=device).reshape(len(rows), len(MODALITIES))


def recover(model: LiveModel, features: Mapping[str, torch.Tensor], mask: torch.Tensor,
            sampling: SamplingOptions = SamplingOptions()) -> dict[str, torch.Tensor]:
    """The method's recovered inputs for ``features`` under ``mask`` (no gradients)."""
    with torch.inference_mode():
        return model.model.recover(dict(features), mask, sampling)


def classify(model: LiveModel, recovered: Mapping[str, torch.Tensor],
             features: Mapping[str, torch.Tensor] | None = None, mask: torch.Tensor | None = None) -> np.ndarray:
    """``(B, K)`` float64 class probabilities (softmax) of recovered inputs, in ``model.labels`` order.

    A checkpoint with an expert-fusion head also needs the (normalised) ``features`` and the ``mask``
    the recovery ran on: its prediction is the product of the per-modality experts plus a
    correction from the method's own output.

    Raises:
        ValueError: the model has an expert-fusion head and ``features`` or ``mask`` is missing.
    """
    with torch.inference_mode():
        logits = model.model.predict_from_recovered(recovered)
        if getattr(model.model, "expert_fusion", None) is not None:
            if features is None or mask is None:
                raise ValueError(f"{model.method}: an expert-fusion checkpoint needs the features and mask")
            logits = model.model.fused_output(features, mask, logits)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)


def predict_windows(model: LiveModel, windows: Sequence[Window], sampling: SamplingOptions = SamplingOptions(),
                    device: str = "cpu", normalise: bool = True,
                    extra_features: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """``(B, K)`` probabilities of a batch of windows; each window's missing modalities are recovered.

    ``normalise``: see :func:`window_features`.  ``extra_features``: further ``(B, seq_len, dim)``
    model inputs by key, e.g. ``"audio@speaker"`` for an expert-fusion head's speaker expert.

    Raises:
        ValueError: a window observes no modality, or has the wrong shape.
    """
    if not windows:
        return np.zeros((0, len(model.labels)))
    if any(not window for window in windows):
        raise ValueError("a window observes no modality: there is nothing to predict from")
    features = window_features(model, windows, device, normalise)
    for key, values in (extra_features or {}).items():
        features[key] = torch.from_numpy(np.asarray(values, np.float32)).to(device)
    mask = availability_mask([list(w) for w in windows], device)
    return classify(model, recover(model, features, mask, sampling), features, mask)


def predict_normalised_windows(model: LiveModel, windows: Sequence[Window],
                               speaker_windows: Sequence[Mapping[Modality, np.ndarray]],
                               sampling: SamplingOptions = SamplingOptions(), device: str = "cpu") -> np.ndarray:
    """``(B, K)`` probabilities of normalised windows, each with its speaker-expert windows (may be empty).

    An expert-fusion head takes ``"<modality>@speaker"`` for a whole batch, so the windows
    are predicted in groups with the same speaker-expert modalities (see
    :func:`imer_core.live.speaker_norm.route_voice_window`); the rows keep their order.
    """
    if len(speaker_windows) != len(windows):
        raise ValueError(f"{len(windows)} windows but {len(speaker_windows)} speaker windows")
    out = np.zeros((len(windows), len(model.labels)))
    groups: dict[tuple[Modality, ...], list[int]] = {}
    for i, extra in enumerate(speaker_windows):
        groups.setdefault(tuple(m for m in MODALITIES if m in extra), []).append(i)
    for modalities, indices in groups.items():
        extra_features = {m.value + "@speaker": np.stack([speaker_windows[i][m] for i in indices])
                          for m in modalities}
        out[indices] = predict_windows(model, [windows[i] for i in indices], sampling, device, normalise=False,
                                       extra_features=extra_features)
    return out
