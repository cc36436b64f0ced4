"""Modalities, feature specifications and availability masks.

Every tensor that carries one row per sample and one column per modality uses
the canonical order :data:`MODALITIES` = (text, audio, vision).  An
*availability mask* is a boolean tensor of shape ``(batch, 3)`` in that order:
``True`` means the modality is observed for that sample, ``False`` means it is
missing and must be recovered.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported by the mask functions only: importing this module stays light
    import torch


class Modality(str, Enum):
    """One input modality."""

    TEXT = "text"
    AUDIO = "audio"
    VISION = "vision"

    @property
    def short(self) -> str:
        """One-letter code used in tables and logs (``l``, ``a``, ``v`` as in MulT)."""
        return {"text": "l", "audio": "a", "vision": "v"}[self.value]


MODALITIES: tuple[Modality, ...] = (Modality.TEXT, Modality.AUDIO, Modality.VISION)
MODALITY_INDEX: dict[Modality, int] = {m: i for i, m in enumerate(MODALITIES)}


def as_modality(value: "Modality | str") -> Modality:
    """Parse ``"text"``, ``"l"``, ``"audio"``, ``"a"``, ``"vision"``, ``"v"`` (or a Modality)."""
    if isinstance(value, Modality):
        return value
    text = str(value).strip().lower()
    for modality in MODALITIES:
        if text in (modality.value, modality.short):
            return modality
    raise ValueError(f"unknown modality {value!r}; expected one of text/audio/vision (or l/a/v)")


@dataclass(frozen=True)
class FeatureSpec:
    """What one modality's input features look like.

    Attributes:
        modality: which modality the features describe.
        dim: feature dimension per time step.
        seq_len: number of time steps the model is built for.
        rate_hz: time steps per second for live extractors (``None`` for
            word-aligned corpus features).
        extractor: free-text identifier of the extractor that produced them
            (checked against the running extractors by the live engine).
    """

    modality: Modality
    dim: int
    seq_len: int
    rate_hz: float | None = None
    extractor: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "modality", as_modality(self.modality))
        if self.dim <= 0 or self.seq_len <= 0:
            raise ValueError(f"{self.modality.value}: dim and seq_len must be positive, got {self.dim}, {self.seq_len}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-type representation, safe for ``torch.load(weights_only=True)``."""
        data = asdict(self)
        data["modality"] = self.modality.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        return cls(**dict(data))


@dataclass(frozen=True)
class FeatureSpecs:
    """Feature specifications of the three modalities."""

    text: FeatureSpec
    audio: FeatureSpec
    vision: FeatureSpec

    def __getitem__(self, modality: "Modality | str") -> FeatureSpec:
        return getattr(self, as_modality(modality).value)

    def __iter__(self):
        return iter((self.text, self.audio, self.vision))

    @property
    def dims(self) -> tuple[int, int, int]:
        """(text, audio, vision) feature dimensions."""
        return (self.text.dim, self.audio.dim, self.vision.dim)

    @classmethod
    def from_dims(cls, dims: Sequence[int], seq_lens: "int | Sequence[int]" = 50,
                  extractor: str = "") -> "FeatureSpecs":
        """Build specs from (text, audio, vision) dims and one or three sequence lengths."""
        lens = [seq_lens] * 3 if isinstance(seq_lens, int) else list(seq_lens)
        specs = [FeatureSpec(m, int(d), int(n), extractor=extractor) for m, d, n in zip(MODALITIES, dims, lens)]
        return cls(*specs)

    def to_dict(self) -> dict[str, Any]:
        return {spec.modality.value: spec.to_dict() for spec in self}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpecs":
        return cls(*(FeatureSpec.from_dict(data[m.value]) for m in MODALITIES))


# The six non-empty proper subsets of modalities plus the complete set
# (l, a, v, la, lv, av, lav); training.scenarios.SCENARIOS has the MMIN table order.
AVAILABLE_SUBSETS: tuple[frozenset[Modality], ...] = tuple(
    frozenset(c) for r in (1, 2, 3) for c in itertools.combinations(MODALITIES, r)
)


def subset_name(available: Iterable["Modality | str"]) -> str:
    """Short name of a set of available modalities, e.g. ``{"l", "a"}`` → ``"la"``."""
    present = {as_modality(m) for m in available}
    return "".join(m.short for m in MODALITIES if m in present)


def mask_from_available(available: Iterable["Modality | str"], batch_size: int,
                        device: "torch.device | str | None" = None) -> torch.Tensor:
    """Availability mask of shape ``(batch_size, 3)`` with the given modalities observed."""
    present = {as_modality(m) for m in available}
    if not present:
        raise ValueError("at least one modality must be available")
    import torch

    row = torch.tensor([m in present for m in MODALITIES], dtype=torch.bool, device=device)
    return row.unsqueeze(0).expand(batch_size, 3).clone()


def full_mask(batch_size: int, device: "torch.device | str | None" = None) -> torch.Tensor:
    """Mask with every modality observed."""
    import torch

    return torch.ones(batch_size, 3, dtype=torch.bool, device=device)


def validate_mask(mask: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Check shape/dtype of an availability mask and that every sample keeps a modality."""
    if mask.dim() != 2 or mask.shape[1] != 3:
        raise ValueError(f"availability mask must have shape (batch, 3), got {tuple(mask.shape)}")
    if batch_size is not None and mask.shape[0] != batch_size:
        raise ValueError(f"availability mask has {mask.shape[0]} rows for a batch of {batch_size}")
    mask = mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every sample must keep at least one available modality")
    return mask


def missing_rate(mask: torch.Tensor) -> float:
    """Realised missing rate ``MR = sum_i N_i / (m * N)`` of a mask (paper definition)."""
    return float((~mask.bool()).float().mean().item()) if mask.numel() else 0.0
