"""CM-ARR: Cross-Modal Alignment, Reconstruction and Refinement (Sun et al., arXiv 2407.09029, 2024).

No reference code is public.  **Fixed by the paper's abstract**: each modality
is represented by a Gaussian distribution; *alignment* by unsupervised,
distribution-based contrastive learning with the 2-Wasserstein distance;
*reconstruction* of missing modalities by normalizing flows that transform the
aligned distributions of the available ones; *refinement* by supervised,
point-based contrastive learning; cross-modal fusion and a classifier.

**Our choices** (documented, configurable in :class:`CMARROptions`):

1. Encoders (:class:`~imer_core.nn.cmarr_modules.GaussianEncoder`): Conv1d +
   one Transformer layer over time, mean pooling, heads for ``μ`` and
   ``σ = softplus + σ_min`` of width ``d = latent_dim``.  In training the
   representation passed on is ``μ + σ ⊙ ε`` (reparameterised; ``μ`` at
   inference) and a small ``KL(q || N(0, I))`` keeps the scale bounded.
2. Alignment: :func:`~imer_core.nn.contrastive.wasserstein_info_nce` on all
   three modality pairs, logits ``-W2²/(d τ)`` with the diagonal closed form
   ``W2² = ||μ1-μ2||² + ||σ1-σ2||²``; positives = same sample.  Only rows where
   both modalities are observed, only while encoders train.
3. Reconstruction: one conditional RealNVP per target modality
   (:class:`~imer_core.nn.flows.ConditionalGaussianFlow`).  Its base is the
   product of experts ``N(μ_c, σ_c²)`` of the *available* modalities' Gaussians
   (the target excluded), and every coupling network also sees
   ``[μ_c, log σ_c, availability bits]``.  Loss: exact NLL of the target
   ``μ_m`` per dimension (change of variables; base/context detached, so it
   only trains the flow) plus the L2 error of ``f⁻¹(μ_c)`` (whose gradient also
   reaches the conditioning encoders while they train; targets detached).
   Inference: ``f⁻¹(μ_c)`` (sampler ``"mean"``, default) or
   ``f⁻¹(μ_c + T σ_c ε)`` (``"sample"``, seeded by ``SamplingOptions.seed``);
   ``SamplingOptions.steps`` is ignored.  In the pretrain stage flows learn on
   complete data with a random non-empty subset of the other two modalities
   as condition.
4. Refinement: a residual MLP per modality, then SupCon (Khosla et al. 2020)
   on projected, L2-normalised refined representations of the three
   modalities of every sample (3B points).  Labels: class ids; for regression
   the sign of the label (negative / neutral ``|y| <= regression_neutral_band``
   / positive).
5. Fusion: a 2-layer Transformer over the three modality tokens, mean over
   tokens, MLP head (:class:`~imer_core.nn.cmarr_modules.TokenFusion`).

Stages: ``"pretrain"`` (complete data) trains everything with
``task + λ_a align + λ_kl KL + λ_s SupCon + λ_f NLL + λ_r L2``;
``"recovery"`` freezes the encoders (kept in eval mode) and trains flows,
refiners and fusion with ``task + λ_s SupCon + λ_f NLL + λ_r L2`` (flow
terms averaged over the missing rows).  **Recovery space**: the encoder means
``μ_m`` as ``(B, d, 1)`` tensors; :meth:`CMARR.recover` replaces the rows of
missing modalities by the flow outputs, :meth:`CMARR.project` gives the means
of complete features.
Everything is per sample, so per-sample masks need no pattern grouping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, cast

import torch
from torch import nn

from ..config import CLASSIFICATION, ModelConfig, options_from_dict
from ..modalities import MODALITIES, full_mask, validate_mask
from ..nn.cmarr_modules import GaussianEncoder, ResidualRefiner, TokenFusion
from ..nn.contrastive import kl_standard_normal, product_of_experts, supervised_contrastive_loss, wasserstein_info_nce
from ..nn.flows import ConditionalGaussianFlow
from ..registry import register_method
from .base import PRETRAIN, RECOVERY, Features, LossOutput, RecoveryModel, SamplingOptions

SAMPLERS = ("mean", "sample")
_PAIRS = ((0, 1), (0, 2), (1, 2))


@dataclass(frozen=True)
class CMARROptions:
    """CM-ARR options (all defaults are our choices; see the module docstring).

    Attributes:
        latent_dim: width ``d`` of the modality Gaussians / recovery space.
        encoder_hidden, encoder_layers, encoder_heads: encoder width, Transformer layers, heads.
        flow_layers, flow_hidden, flow_scale_clamp: coupling layers, coupling-net width, log-scale clamp
            (``flow_layers = 0``: no flow, a missing modality is recovered as the product-of-experts
            mean ``μ_c`` of the available ones — the ablation of the flow).
        refiner_hidden: width of the residual refiners.
        supcon_dim: width of the SupCon projection head.
        fusion_layers, fusion_heads, head_hidden: token-fusion Transformer and output MLP.
        dropout: dropout of encoders, refiners and fusion.
        min_std: ``σ_min`` of the encoders.
        alignment_temperature, supcon_temperature: ``τ`` of the two contrastive losses.
        alignment_weight, prior_weight, supcon_weight, flow_nll_weight, reconstruction_weight:
            ``λ_a, λ_kl, λ_s, λ_f, λ_r`` of the total loss.
        regression_neutral_band: ``|y|`` up to which a regression label counts as neutral for SupCon.
        reparameterize: pass ``μ + σ ε`` on in training (else ``μ``).
        flows_in_pretrain: train the flows in the pretrain stage too.
        freeze_encoders_in_recovery: freeze the encoders in the recovery stage.
        sampler: default inference sampler, ``"mean"`` or ``"sample"``.
        sample_temperature: ``T`` scaling the base noise of the ``"sample"`` sampler.
    """

    latent_dim: int = 64
    encoder_hidden: int = 128
    encoder_layers: int = 1
    encoder_heads: int = 4
    flow_layers: int = 6
    flow_hidden: int = 128
    flow_scale_clamp: float = 3.0
    refiner_hidden: int = 128
    supcon_dim: int = 64
    fusion_layers: int = 2
    fusion_heads: int = 4
    head_hidden: int = 128
    dropout: float = 0.1
    min_std: float = 1e-2
    alignment_temperature: float = 0.1
    supcon_temperature: float = 0.07
    alignment_weight: float = 0.1
    prior_weight: float = 1e-3
    supcon_weight: float = 0.1
    flow_nll_weight: float = 0.01
    reconstruction_weight: float = 1.0
    regression_neutral_band: float = 0.0
    reparameterize: bool = True
    flows_in_pretrain: bool = True
    freeze_encoders_in_recovery: bool = True
    sampler: str = "mean"
    sample_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; CM-ARR samplers: {', '.join(SAMPLERS)}")
        if self.latent_dim < 2 or self.flow_layers < 0:
            raise ValueError("latent_dim must be >= 2 and flow_layers >= 0")
        if self.alignment_temperature <= 0 or self.supcon_temperature <= 0:
            raise ValueError("temperatures must be positive")


@register_method
class CMARR(RecoveryModel):
    """CM-ARR recovery model (see module docstring)."""

    name = "cmarr"
    options_class = CMARROptions
    display_name = "CM-ARR"
    summary = "Gaussian encoders aligned by 2-Wasserstein contrast and a normalizing flow; fastest"
    fast_sampler = "mean"
    uses_sampler_steps = False
    live_rank: ClassVar[int | None] = 0
    """First among live methods: CM-ARR scored best on the live test table and is the fastest
    (assets/MODEL_CARD.md); the others stay one switch away."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        o: CMARROptions = options_from_dict(CMARROptions, config.method_options)
        self.options = o
        d = o.latent_dim
        self.encoders = nn.ModuleDict({
            m.value: GaussianEncoder(config.specs[m].dim, o.encoder_hidden, d, o.encoder_layers, o.encoder_heads,
                                     o.dropout, o.min_std) for m in MODALITIES})
        context_dim = 2 * d + len(MODALITIES)                         # [μ_c, log σ_c, availability bits]
        self.flows = nn.ModuleDict({
            m.value: ConditionalGaussianFlow(d, context_dim, o.flow_layers, o.flow_hidden, o.flow_scale_clamp)
            for m in MODALITIES})
        self.refiners = nn.ModuleDict({m.value: ResidualRefiner(d, o.refiner_hidden, o.dropout) for m in MODALITIES})
        self.supcon_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, o.supcon_dim))
        self.fusion = TokenFusion(d, len(MODALITIES), o.fusion_heads, o.fusion_layers, o.head_hidden,
                                  config.output_dim, o.dropout)
        self.prepare_stage(self.stage)

    # ------------------------------------------------------------------ stages
    @property
    def encoders_frozen(self) -> bool:
        """Whether the encoders are frozen (recovery stage with ``freeze_encoders_in_recovery``)."""
        return self.stage == RECOVERY and self.options.freeze_encoders_in_recovery

    def prepare_stage(self, stage: str) -> None:
        """``"pretrain"``: everything trains; ``"recovery"``: encoders frozen (by default)."""
        super().prepare_stage(stage)
        for p in self.encoders.parameters():
            p.requires_grad_(not self.encoders_frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "CMARR":
        """Set the training mode; frozen encoders stay in eval mode so the flow targets are deterministic."""
        super().train(mode)
        if self.encoders_frozen:
            self.encoders.eval()
        return self

    # ---------------------------------------------------------------- helpers
    def _encode(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked Gaussians ``(B, 3, d)`` (μ and σ) of the given features."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoders_frozen):
            outs = [self.encoders[m.value](features[m.value]) for m in MODALITIES]
        return torch.stack([mu for mu, _ in outs], dim=1), torch.stack([s for _, s in outs], dim=1)

    def _condition(self, mu: torch.Tensor, sigma: torch.Tensor,
                   available: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Base ``(μ_c, σ_c)`` = product of the available experts, and the coupling context."""
        base_mu, base_sigma = product_of_experts(mu, sigma, available)
        context = torch.cat([base_mu, torch.log(base_sigma), available.to(mu.dtype)], dim=-1)
        return base_mu, base_sigma, context

    def _flow(self, modality: str) -> ConditionalGaussianFlow:
        return cast(ConditionalGaussianFlow, self.flows[modality])   # the dict holds nothing else

    def _masked(self, features: Features, mask: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        masked = self.mask_features(features, mask)
        device = next(iter(masked.values())).device
        return masked, validate_mask(mask, self.check_features(features)).to(device)

    def _flow_losses(self, t: int, target: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                     available: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-dimension NLL and L2 error of target ``t`` over ``rows``, and the mean-mode reconstruction."""
        flow = self._flow(MODALITIES[t].value)
        base_mu, base_sigma, context = self._condition(mu, sigma, available)
        generated = flow.generate(base_mu, base_sigma, context)
        nll = -flow.log_prob(target, base_mu.detach(), base_sigma.detach(), context.detach()) / target.shape[-1]
        l2 = (generated - target).pow(2).mean(dim=-1)
        w = rows.to(target.dtype)
        count = w.sum().clamp_min(1.0)
        return (w * nll).sum() / count, (w * l2).sum() / count, generated

    def _contrastive_labels(self, labels: torch.Tensor) -> torch.Tensor:
        if self.config.task == CLASSIFICATION:
            return labels.view(-1).long()
        y = labels.view(-1).float()
        band = self.options.regression_neutral_band                  # negative 0 / neutral 1 / positive 2
        return torch.where(y > band, 2, torch.where(y < -band, 0, 1)).long()

    def _refine(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.refiners[m.value](tokens[:, i]) for i, m in enumerate(MODALITIES)], dim=1)

    # ------------------------------------------------------------------ API
    def training_losses(self, features: Features, labels: torch.Tensor, mask: torch.Tensor) -> LossOutput:
        """All CM-ARR loss terms of the current stage (see module docstring)."""
        o = self.options
        if self.stage == PRETRAIN:                                     # stage 1: complete data
            mask = full_mask(self.check_features(features), device=mask.device)
        masked, mask = self._masked(features, mask)
        mu, sigma = self._encode(masked)
        rep = mu + sigma * torch.randn_like(mu) if (self.training and o.reparameterize) else mu
        zero = mu.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        if not self.encoders_frozen:                                   # alignment (+ prior) shapes the encoders
            aligns = []
            for a, b in _PAIRS:                                        # rows observing both modalities
                both = mask[:, a] & mask[:, b]
                if int(both.sum()) >= 2:
                    aligns.append(wasserstein_info_nce(mu[both, a], sigma[both, a], mu[both, b], sigma[both, b],
                                                       o.alignment_temperature))
            parts["alignment"] = torch.stack(aligns).mean() if aligns else zero
            parts["prior"] = (kl_standard_normal(mu, sigma) * mask.to(mu.dtype)).sum() / mask.sum()
        has_missing = bool((~mask).any())
        if has_missing or (self.stage == PRETRAIN and o.flows_in_pretrain):
            targets = self._encode(features)[0].detach() if has_missing else mu.detach()
            nll, l2, tokens = zero, zero, []
            for t in range(len(MODALITIES)):
                if has_missing:                                        # condition on what is really available
                    rows = ~mask[:, t]
                    available = mask.clone()
                else:                                                  # complete data: random other subset
                    rows = torch.ones_like(mask[:, t])
                    pick = torch.randint(0, 3, (mask.shape[0], 1), device=mask.device)
                    others = [k for k in range(len(MODALITIES)) if k != t]
                    available = torch.zeros_like(mask)
                    available[:, others[0]] = (pick != 2).view(-1)
                    available[:, others[1]] = (pick != 1).view(-1)
                available[:, t] = False
                n, r, generated = self._flow_losses(t, targets[:, t], mu, sigma, available, rows)
                nll, l2 = nll + n, l2 + r
                tokens.append(torch.where(rows.view(-1, 1), generated, rep[:, t]) if has_missing else rep[:, t])
            rep = torch.stack(tokens, dim=1)
            parts["flow_nll"], parts["reconstruction"] = nll, l2
        refined = self._refine(rep)
        prediction, _ = self.fusion(refined)
        parts["task"] = self.task_loss(prediction, labels.to(prediction.device))
        con_labels = self._contrastive_labels(labels.to(prediction.device)).repeat_interleave(len(MODALITIES))
        parts["supcon"] = supervised_contrastive_loss(self.supcon_head(refined.reshape(-1, refined.shape[-1])),
                                                      con_labels, o.supcon_temperature)
        total = parts["task"] + o.supcon_weight * parts["supcon"]
        if "alignment" in parts:
            total = total + o.alignment_weight * parts["alignment"] + o.prior_weight * parts["prior"]
        if "flow_nll" in parts:
            total = total + o.flow_nll_weight * parts["flow_nll"] + o.reconstruction_weight * parts["reconstruction"]
        parts["total"] = total
        return LossOutput(total=total, parts=parts, prediction=prediction)

    @torch.no_grad()
    def recover(self, features: Features, mask: torch.Tensor,
                sampling: SamplingOptions | None = None) -> dict[str, torch.Tensor]:
        """Encoder means ``(B, d, 1)`` of every modality, the missing ones generated by the flows."""
        sampling = sampling or SamplingOptions()
        sampler = (sampling.sampler or self.options.sampler).strip().lower()
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampling.sampler!r}; CM-ARR samplers: {', '.join(SAMPLERS)}")
        masked, mask = self._masked(features, mask)
        mu, sigma = self._encode(masked)
        generator = None
        if sampler == "sample" and sampling.seed is not None:
            generator = torch.Generator(device=mu.device).manual_seed(int(sampling.seed))
        out = {}
        for t, m in enumerate(MODALITIES):
            rows = ~mask[:, t]
            value = mu[:, t]
            if bool(rows.any()):
                available = mask.clone()
                available[:, t] = False
                base_mu, base_sigma, context = self._condition(mu, sigma, available)
                noise = None
                if sampler == "sample":
                    noise = torch.randn(base_mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
                    noise = noise * self.options.sample_temperature
                generated = self._flow(m.value).generate(base_mu, base_sigma, context, noise)
                value = torch.where(rows.view(-1, 1), generated, value)
            out[m.value] = value.unsqueeze(-1)
        return out

    @torch.no_grad()
    def project(self, features: Features) -> dict[str, torch.Tensor]:
        """Encoder means ``(B, d, 1)`` of the given (complete) features: the recovery targets."""
        self.check_features(features)
        mu, _ = self._encode(features)
        return {m.value: mu[:, i].unsqueeze(-1) for i, m in enumerate(MODALITIES)}

    def predict_from_recovered(self, recovered: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Refiners + token fusion + head on ``{modality: (B, d, 1)}`` (or ``(B, d, L')``, averaged over L')."""
        parts = [recovered[m.value] for m in MODALITIES]
        tokens = torch.stack([x.mean(dim=-1) if x.dim() == 3 else x for x in parts], dim=1)
        prediction, _ = self.fusion(self._refine(tokens))
        return prediction
