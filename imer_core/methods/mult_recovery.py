"""Shared base of the methods that recover MulT projections per availability pattern (IMDer, RoHyDR).

Both project every modality with the MulT convolutions to ``x_m (B, d, L')``,
condition the generator of a missing modality on the available projection — or
on the 1×1 convolution (``cat_la``, ``cat_lv``, ``cat_av``) of the two available
ones concatenated in the reference order —, freeze the projections in the
recovery stage, handle per-sample masks one availability pattern at a time and
seed their sampling noise from :class:`~imer_core.methods.base.SamplingOptions`.
MulT's settings are the method's ``fusion`` option (a
:class:`~imer_core.config.FusionConfig`).
:class:`MulTRecoveryModel` holds that; each method keeps its generators,
losses and training steps.

Subclasses build their modules in the order that fixes their initial weights:
:meth:`MulTRecoveryModel._build_fusion` first, then their generators, then
:meth:`MulTRecoveryModel._build_pair_convs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..config import FusionConfig, ModelConfig
from ..modalities import MODALITIES, Modality
from ..nn.mult import MulTFusion
from .base import PRETRAIN, RECOVERY, Features, RecoveryModel, SamplingOptions, pattern_groups

PAIR_CONDITIONS: dict[Modality, tuple[str, tuple[Modality, Modality]]] = {
    Modality.TEXT: ("cat_av", (Modality.VISION, Modality.AUDIO)),
    Modality.VISION: ("cat_la", (Modality.TEXT, Modality.AUDIO)),
    Modality.AUDIO: ("cat_lv", (Modality.TEXT, Modality.VISION)),
}
"""Two available modalities → (fusing 1×1 conv, concatenation order), keyed by the missing modality.
The order is the references': (v, a) for missing text, (l, a) for missing vision, (l, v) for missing audio."""


@dataclass(frozen=True)
class PatternGroup:
    """The rows of a batch that share one availability pattern with at least one missing modality.

    Attributes:
        available: the observed modalities, in :data:`MODALITIES` order.
        missing: the modalities to recover, in :data:`MODALITIES` order.
        rows: ``(n,)`` row indices into the batch.
        weight: ``n / batch`` (the group's share of batch-mean losses).
        condition: the generators' condition ``(n, d, L')`` for these rows.
    """

    available: tuple[Modality, ...]
    missing: tuple[Modality, ...]
    rows: torch.Tensor
    weight: float
    condition: torch.Tensor


class MulTRecoveryModel(RecoveryModel):
    """A recovery method on MulT projections (see module docstring)."""

    fusion: MulTFusion

    # ------------------------------------------------------------------ building
    def _build_fusion(self, config: ModelConfig, fusion: FusionConfig, positions: bool = True,
                      multiple_of: int = 1) -> int:
        """Create :attr:`fusion` (MulT with the method's ``fusion`` option); returns the one projected length ``L'``.

        Raises:
            ValueError: the modalities' projected lengths differ, or are no multiple of ``multiple_of``.
        """
        self.fusion = MulTFusion(config.specs, fusion, config.output_dim, positions=positions)
        lengths = {self.fusion.projected_length(m) for m in MODALITIES}
        if len(lengths) != 1 or next(iter(lengths)) % multiple_of != 0:
            rule = f", divisible by {multiple_of}" if multiple_of > 1 else ""
            raise ValueError(f"{type(self).__name__} needs one projected length for all modalities{rule}; got "
                             f"{sorted(lengths)} (adjust seq_len / conv kernels)")
        return lengths.pop()

    def _build_pair_convs(self, width: int) -> None:
        """The 1×1 convolutions fusing two available projections into one condition."""
        self.cat_la = nn.Conv1d(2 * width, width, 1)
        self.cat_lv = nn.Conv1d(2 * width, width, 1)
        self.cat_av = nn.Conv1d(2 * width, width, 1)

    # ------------------------------------------------------------------ stages
    def prepare_stage(self, stage: str) -> None:
        """``"pretrain"``: complete data, projections train; ``"recovery"``: projections frozen."""
        super().prepare_stage(stage)
        for module in self.fusion.projections().values():
            for p in module.parameters():
                p.requires_grad_(stage == PRETRAIN)

    # ---------------------------------------------------------------- helpers
    def _project(self, features: Features) -> dict[str, torch.Tensor]:
        """MulT projections; without gradients in the recovery stage (the projections are frozen)."""
        if self.stage == RECOVERY:
            with torch.no_grad():
                return self.fusion.project(features)
        return self.fusion.project(features)

    def _condition(self, available: tuple[Modality, ...], proj: dict[str, torch.Tensor]) -> torch.Tensor:
        """The available projection, or the pair convolution of the two available ones."""
        if len(available) == 1:
            return proj[available[0].value]
        missing = next(m for m in MODALITIES if m not in available)
        conv_name, order = PAIR_CONDITIONS[missing]
        conv: nn.Module = getattr(self, conv_name)
        return conv(torch.cat([proj[m.value] for m in order], dim=1))

    def _pattern_groups(self, proj: dict[str, torch.Tensor], mask: torch.Tensor) -> Iterator[PatternGroup]:
        """The batch's availability patterns that miss a modality, each with its condition."""
        batch = mask.shape[0]
        for available, rows in pattern_groups(mask):
            missing = tuple(m for m in MODALITIES if m not in available)
            if not missing:
                continue
            condition = self._condition(available, {m.value: proj[m.value].index_select(0, rows) for m in available})
            yield PatternGroup(available, missing, rows, rows.numel() / batch, condition)

    @staticmethod
    def _write_rows(recovered: dict[str, torch.Tensor], modality: Modality, rows: torch.Tensor,
                    values: torch.Tensor) -> None:
        """Replace ``rows`` of ``recovered[modality]`` by ``values`` (out of place, so autograd sees it)."""
        target = recovered[modality.value]
        recovered[modality.value] = target.index_copy(0, rows, values.to(target.dtype))

    @staticmethod
    def _generator(sampling: SamplingOptions, device: torch.device) -> torch.Generator | None:
        """A generator seeded with ``sampling.seed`` on ``device`` (``None`` without a seed)."""
        if sampling.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(int(sampling.seed))
