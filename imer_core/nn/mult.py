"""MulT fusion backbone (Tsai et al., ACL 2019) as configured in IMDer.

Pipeline (all Transformers batch-first, see :mod:`imer_core.nn.transformer`):

1. per-modality temporal Conv1d projections to ``d`` channels (kernel ``k``,
   no padding, no bias: length ``L → L - k + 1``; identity when the input
   dimension already equals ``d``);
2. six cross-modal Transformers ``l←a, l←v, a←l, a←v, v←l, v←a`` with
   ``nlevels`` layers; the attention dropout of a direction is the one of its
   *source* modality (``attn_dropout`` for text, ``attn_dropout_a`` for audio,
   ``attn_dropout_v`` for vision), as the reference ``get_network``;
3. three memory (self-attention) Transformers of width ``2d`` with
   ``max(nlevels, mem_layers)`` layers;
4. the last time step of each, concatenated to ``6d``, a residual MLP and the
   output layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import FusionConfig
from ..modalities import MODALITIES, FeatureSpecs, Modality, as_modality
from .transformer import TransformerEncoder

# Cross-modal directions (target, source) in the reference order.
_DIRECTIONS: tuple[tuple[Modality, Modality], ...] = tuple(
    (target, source) for target in MODALITIES for source in MODALITIES if source is not target
)


@dataclass
class FusionOutput:
    """Outputs of :class:`MulTFusion`.

    Attributes:
        prediction: network outputs ``(B, output_dim)``.
        fused: concatenated last hidden states ``(B, 6d)`` (before the residual MLP).
        hidden: per-modality last hidden state ``(B, 2d)``, keyed by modality value.
    """

    prediction: torch.Tensor
    fused: torch.Tensor
    hidden: dict[str, torch.Tensor]


class MulTFusion(nn.Module):
    """Projections + cross-modal/memory Transformers + residual head (see module docstring).

    Args:
        specs: input feature specifications (dimensions of the three modalities).
        fusion: backbone hyper-parameters.
        output_dim: number of outputs (1 for regression, classes otherwise).
        positions: sinusoidal position embeddings in every Transformer (MulT/IMDer: yes;
            RoHyDR's reference mode: no, as its release).
    """

    def __init__(self, specs: FeatureSpecs, fusion: FusionConfig, output_dim: int, positions: bool = True) -> None:
        super().__init__()
        self.specs = specs
        self.positions = positions
        self.fusion = fusion
        d = fusion.d_model
        kernels = {Modality.TEXT: fusion.conv_kernel_l, Modality.AUDIO: fusion.conv_kernel_a,
                   Modality.VISION: fusion.conv_kernel_v}
        attn_dropouts = {Modality.TEXT: fusion.attn_dropout, Modality.AUDIO: fusion.attn_dropout_a,
                         Modality.VISION: fusion.attn_dropout_v}
        for m in MODALITIES:
            proj = (nn.Identity() if specs[m].dim == d
                    else nn.Conv1d(specs[m].dim, d, kernels[m], padding=0, bias=False))
            self.add_module(f"proj_{m.short}", proj)
        for target, source in _DIRECTIONS:
            self.add_module(f"trans_{target.short}_with_{source.short}",
                            self._encoder(d, fusion.nlevels, attn_dropouts[source]))
        mem_layers = max(fusion.nlevels, fusion.mem_layers)
        for m in MODALITIES:
            self.add_module(f"trans_{m.short}_mem", self._encoder(2 * d, mem_layers, fusion.attn_dropout))
        combined = 6 * d
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out_layer = nn.Linear(combined, output_dim)

    def _encoder(self, width: int, layers: int, attn_dropout: float) -> TransformerEncoder:
        f = self.fusion
        return TransformerEncoder(width, f.num_heads, layers, attn_dropout=attn_dropout,
                                  relu_dropout=f.relu_dropout, res_dropout=f.res_dropout,
                                  embed_dropout=f.embed_dropout, attn_mask=f.attn_mask, positions=self.positions)

    def projected_length(self, modality: Modality | str) -> int:
        """Sequence length after the projection of ``modality``."""
        m = as_modality(modality)
        proj = getattr(self, f"proj_{m.short}")
        spec = self.specs[m]
        return spec.seq_len if isinstance(proj, nn.Identity) else spec.seq_len - proj.kernel_size[0] + 1

    def projections(self) -> dict[str, nn.Module]:
        """The per-modality projection modules, keyed by modality value."""
        return {m.value: getattr(self, f"proj_{m.short}") for m in MODALITIES}

    def project(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Project ``{modality: (B, L, D)}`` features to ``{modality: (B, d, L')}``.

        Text features get ``text_dropout`` first (as the reference).
        """
        out = {}
        for m in MODALITIES:
            x = features[m.value].transpose(1, 2)
            if m is Modality.TEXT:
                x = F.dropout(x, p=self.fusion.text_dropout, training=self.training)
            out[m.value] = getattr(self, f"proj_{m.short}")(x)
        return out

    def forward(self, projected: Mapping[str, torch.Tensor]) -> FusionOutput:
        """Fuse projected features ``{modality: (B, d, L')}`` into predictions."""
        seqs = {m: projected[m.value].transpose(1, 2) for m in MODALITIES}   # (B, L', d)
        hidden = {}
        for target in MODALITIES:
            crossed = [getattr(self, f"trans_{target.short}_with_{source.short}")(seqs[target], seqs[source])
                       for source in MODALITIES if source is not target]
            memory = getattr(self, f"trans_{target.short}_mem")(torch.cat(crossed, dim=-1))
            hidden[target.value] = memory[:, -1]                             # last time step
        fused = torch.cat([hidden[m.value] for m in MODALITIES], dim=-1)
        return FusionOutput(prediction=self.head(fused), fused=fused, hidden=hidden)

    def head(self, fused: torch.Tensor) -> torch.Tensor:
        """Residual head ``out(proj2(dropout(relu(proj1(F)))) + F)`` on fused vectors ``(B, 6d)`` → outputs."""
        h = self.proj2(F.dropout(F.relu(self.proj1(fused)), p=self.fusion.output_dropout, training=self.training))
        return self.out_layer(h + fused)
