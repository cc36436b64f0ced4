"""RoHyDR: Robust Hybrid Diffusion Recovery for incomplete multimodal emotion recognition (Jin et al., 2025).

Model (on the MulT projections ``x_m (B, d, L')``, ``d = 32``, ``L' = 48`` for MOSI):

* **unimodal recovery** — one conditional DDPM per modality, an ε-predicting
  :class:`~imer_core.nn.dit.DiT1d` conditioned on the diffusion step and the
  available modality (or the 1×1 conv of the two available ones); trained with
  ``L_diff = E ||ε - ε_θ(x_t, t, c)||²`` on a 1000-step linear schedule
  ``β ∈ [1e-4, 0.02]`` (Ho et al. eq. 14); sampled with DDIM (or ancestral
  DDPM) on a respaced subset of *that same* schedule; each sample is refined
  by an RCAN :class:`~imer_core.nn.rcan.Refiner`, ``L_rec = Σ_m MSE(x̂_m, x_m)``;
* **multimodal fusion recovery** — the MulT fusion gives ``F_lm`` on recovered +
  available features and ``F_gt`` on complete features (shared weights); a
  reconstructor ``R`` maps ``F_lm`` towards ``F_gt`` adversarially against a
  discriminator ``D``; predictions of the recovered path are the MulT residual
  head applied to ``R(F_lm)`` (rows without a missing modality skip ``R``).

Training (reference trainer, three optimisation stages per batch, each its own
forward, backward and step of the main optimizer):

1. ``(Σ_m L_diff,m + λ_g L_rec) / (1 + λ_g)``;
2. ``D`` step on ``0.1 [BCE(D(F_gt), 1) + BCE(D(F_lm), 0)]`` (inputs detached), then
   ``R`` step on ``λ_al BCE(D(R(F_lm)), 1) + (1 - λ_al) L1(F_gt, R(F_lm))``;
3. ``(1 - λ_c) L_task(ŷ_gt) + λ_c L_task(ŷ_lm)``, gradients clipped by value.

As in the reference, the training-time DDIM chain is differentiable, so
``L_rec`` and stages 2-3 also train the DiTs through the sampler.

Two modes (option ``mode``, see :class:`RoHyDROptions`): ``"reference"`` keeps
the release's sampler (diffusers DDIM on its own 50-step schedule, ``[-1, 1]``
clamp, ε not recomputed), its main optimiser holding ``D`` and its MulT
Transformers without position embeddings; ``"improved"`` (default) is described
by the deviations below plus a clamp range scaled to the features' running RMS
and position embeddings (as MulT).  Both draw the text dropout once per batch.
Deviations of the improved mode from the reference code (``Siowllience/RoHyDR``):

* the reference trains on the 1000-step schedule but samples with a diffusers
  ``DDIMScheduler(num_train_timesteps=50)``, i.e. a *different* 50-step β
  schedule whose steps 0..49 the DiT never saw; here the sampler respaces the
  training schedule (step count = ``SamplingOptions.steps``);
* the reference's main optimizer holds ``D``'s parameters too, so the R step
  also moves ``D`` towards calling reconstructions real; here ``D`` has only its
  own Adam (``"discriminator"``), and the R step sees ``D`` with frozen weights;
* per-sample masks: stages run on the rows that miss a modality (the reference
  draws one pattern per batch); stage 2 needs ≥ 2 such rows (BatchNorm);
* the reference gives no MOSEI loss weights: :data:`MOSEI_OPTIONS` keeps its
  MOSEI ``R``/``D`` widths and reuses the MOSI λ (1, 0.5, 0.4).

Under DDP every stage's loss is computed through ``forward(..., phase=...)``, so
all gradients of the main optimizer are all-reduced by DDP; ``D``'s gradients
(computed outside the DDP graph with ``autograd.grad``) are averaged, and whether
stages 1-2 run is agreed across ranks, by the trainer's
:class:`~imer_core.methods.base.StepHelpers` (``torch.distributed`` lives in ``training``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, options_from_dict
from ..diffusion.ddpm import GaussianDiffusion, ReferenceDDIMSampler, ScaledClipSampler
from ..diffusion.sampling import DDPM, Sampler, make_sampler
from ..modalities import MODALITIES, validate_mask
from ..nn.dit import DiT1d
from ..nn.fusion_recovery import (
    FusionDiscriminator,
    FusionReconstructor,
    discriminator_loss,
    frozen_forward,
)
from ..nn.layers import zero_missing
from ..nn.rcan import Refiner
from ..registry import register_method
from .base import PRETRAIN, Features, LossOutput, SamplingOptions, StepHelpers
from .mult_recovery import MulTRecoveryModel
from .rohydr_options import MOSEI_OPTIONS, RoHyDROptions

UNIMODAL, FUSION, TASK, ALL = "unimodal", "fusion", "task", "all"
AVAILABLE_KEY = "available"
"""Key of :meth:`RoHyDR.recover`'s output holding the ``(B, 3)`` availability mask."""
__all__ = ["AVAILABLE_KEY", "MOSEI_OPTIONS", "FusionRecoveryOutput", "RoHyDR", "RoHyDROptions"]

@dataclass
class FusionRecoveryOutput(LossOutput):
    """Stage-2 outputs: ``total`` is ``L1(F_gt, R(F_lm))`` on the rows that miss a modality.

    Attributes:
        fused_gt: ``F_gt`` of those rows (detached).
        fused_lm: ``F_lm`` of those rows (detached).
        reconstructed: ``R(F_lm)`` (with graph); ``None`` when fewer than two rows miss a modality.
    """

    fused_gt: torch.Tensor | None = None
    fused_lm: torch.Tensor | None = None
    reconstructed: torch.Tensor | None = None


@register_method
class RoHyDR(MulTRecoveryModel):
    """RoHyDR recovery model (see module docstring)."""

    name = "rohydr"
    options_class = RoHyDROptions
    display_name = "RoHyDR"
    summary = "DiT diffusion recovery plus adversarial refinement of the fused representation; uses sampler steps"
    fast_sampler = "ddim"
    live_rank: ClassVar[int | None] = 2

    target_rms: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        opts: RoHyDROptions = options_from_dict(RoHyDROptions, config.method_options)
        self.options = opts
        d = opts.fusion.d_model
        self.process = GaussianDiffusion(opts.diffusion_steps, opts.beta_start, opts.beta_end)
        length = self._build_fusion(config, opts.fusion, positions=opts.mode != "reference")
        self.dits = nn.ModuleDict({m.value: DiT1d(d, length, opts.dit_hidden, opts.dit_depth, opts.dit_heads,
                                                  opts.dit_mlp_ratio) for m in MODALITIES})
        self._build_pair_convs(d)
        self.refiners = nn.ModuleDict({m.value: Refiner(d, opts.refiner_blocks, opts.refiner_reduction)
                                       for m in MODALITIES})
        self.reconstructor = FusionReconstructor(6 * d, opts.reconstructor_hidden, opts.reconstructor_dropout)
        self.discriminator = FusionDiscriminator(6 * d, opts.discriminator_hidden)
        # Running RMS of the recovery targets (improved mode's clamp range); 1 until trained.
        self.register_buffer("target_rms", torch.ones(()))
        self.prepare_stage(self.stage)

    # ------------------------------------------------------------------ hooks
    def configure_optimizers(self, learning_rate: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        """``"main"``: Adam over trainable parameters except ``D`` (reference mode: including ``D``);
        ``"discriminator"``: Adam over ``D``."""
        disc = list(self.discriminator.parameters())
        ids = set() if self.options.mode == "reference" else {id(p) for p in disc}
        params = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        lr_d = self.options.discriminator_lr if self.options.discriminator_lr is not None else learning_rate
        return {"main": torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay),
                "discriminator": torch.optim.Adam(disc, lr=lr_d, weight_decay=self.options.discriminator_weight_decay)}

    def train_step(self, features: Features, labels: torch.Tensor, mask: torch.Tensor,
                   optimizers: Mapping[str, torch.optim.Optimizer], grad_clip: float | None = None,
                   forward: Callable[..., LossOutput] | None = None,
                   helpers: StepHelpers | None = None) -> LossOutput:
        """The reference's three optimisation stages (module docstring); pretraining: one task step."""
        if self.stage == PRETRAIN:
            return super().train_step(features, labels, mask, optimizers, grad_clip, forward, helpers)
        forward = forward or self
        helpers = helpers or StepHelpers()
        main = optimizers["main"]
        rows = int((~mask.bool()).any(dim=1).sum())
        flags = torch.tensor([rows >= 1, rows >= 2], dtype=torch.float32, device=mask.device)
        flags = helpers.agree_max(flags)                                # all ranks run the same stages
        parts: dict[str, torch.Tensor] = {}
        unimodal = torch.zeros((), device=mask.device)
        if flags[0] > 0:                                                # stage 1: unimodal recovery
            main.zero_grad(set_to_none=True)
            out = forward(features, labels, mask, phase=UNIMODAL)
            out.total.backward()
            main.step()
            unimodal = out.total.detach()
            parts.update({k: v.detach() for k, v in out.parts.items() if k != "total"})
        if flags[1] > 0:                                                # stage 2: fusion recovery
            main.zero_grad(set_to_none=True)
            out = forward(features, labels, mask, phase=FUSION)
            if not isinstance(out, FusionRecoveryOutput):   # the fusion phase always returns one
                raise TypeError(f"RoHyDR's fusion phase returned {type(out).__name__}, not FusionRecoveryOutput")
            if "discriminator" not in optimizers:
                raise KeyError("RoHyDR needs a 'discriminator' optimizer (use configure_optimizers)")
            d_loss = None
            g_loss = (1 - self.options.lambda_al) * out.total
            reconstructed = out.reconstructed
            if reconstructed is not None and out.fused_gt is not None and out.fused_lm is not None:
                d_loss = discriminator_loss(self.discriminator, out.fused_gt, out.fused_lm,
                                            self.options.discriminator_loss_weight)
                parts["discriminator"] = d_loss.detach()
            helpers.step_detached(optimizers["discriminator"],
                                  [p for p in self.discriminator.parameters() if p.requires_grad], d_loss)
            if reconstructed is not None:                               # R step against the updated D
                judged = (self.discriminator(reconstructed) if self.options.mode == "reference"
                          else frozen_forward(self.discriminator, reconstructed))
                adversarial = F.binary_cross_entropy(judged, torch.ones_like(judged))
                g_loss = g_loss + self.options.lambda_al * adversarial
                parts["adversarial"] = adversarial.detach()
            g_loss.backward()
            main.step()
            parts["fusion_l1"], parts["generator"] = out.total.detach(), g_loss.detach()
        main.zero_grad(set_to_none=True)                                # stage 3: task
        out = forward(features, labels, mask, phase=TASK)
        out.total.backward()
        if grad_clip is not None and grad_clip > 0:
            nn.utils.clip_grad_value_([p for g in main.param_groups for p in g["params"]], grad_clip)
        main.step()
        parts.update({k: v.detach() for k, v in out.parts.items() if k != "total"})
        total = unimodal + out.total.detach()
        parts["total"] = total
        prediction = out.prediction.detach() if out.prediction is not None else None
        return LossOutput(total=total, parts=parts, prediction=prediction)

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _masked_projections(truth: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Projections of the masked features, from those of the complete ones.

        The projections are bias-free convolutions (or identities), so zeroing a
        projection equals projecting zeroed features; deriving both from one
        projection draws the text dropout once, as the release's ``forward``
        (``gt_l`` and the condition share one dropped ``x_l``).
        """
        return {m.value: zero_missing(truth[m.value], mask[:, i]) for i, m in enumerate(MODALITIES)}

    def _unimodal(self, proj: dict[str, torch.Tensor], mask: torch.Tensor, sampler: Sampler,
                  generator: torch.Generator | None,
                  targets: dict[str, torch.Tensor] | None, grad: bool,
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Generate + refine missing projections per pattern; L_diff, L_rec when ``targets`` given."""
        zero = proj["text"].new_zeros(())
        recovered, diffusion, rec = dict(proj), {m.value: zero for m in MODALITIES}, zero
        for group in self._pattern_groups(proj, mask):
            idx, weight, cond = group.rows, group.weight, group.condition
            for m in group.missing:
                net = self.dits[m.value]
                if targets is not None:
                    target = targets[m.value].index_select(0, idx)
                    diffusion[m.value] = diffusion[m.value] + weight * self.process.training_loss(net, target, cond)
                with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
                    sample = sampler.sample(net, self.process, tuple(cond.shape), cond, generator)
                refined = self.refiners[m.value](sample)
                if targets is not None:
                    rec = rec + weight * F.mse_loss(refined, target)
                self._write_rows(recovered, m, idx, refined)
        return recovered, diffusion, rec

    def _reconstruct(self, fused: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``F`` with the given rows replaced by ``R(F)`` (a lone training row uses R's running statistics)."""
        if rows.numel() == 0:
            return fused
        lone = self.training and rows.numel() < 2
        if lone:
            self.reconstructor.eval()
        try:
            out = self.reconstructor(fused.index_select(0, rows))
        finally:
            if lone:
                self.reconstructor.train()
        return fused.index_copy(0, rows, out.to(fused.dtype))

    def _graph_zero(self, *modules: nn.Module) -> torch.Tensor:
        """A zero loss touching ``modules``' parameters, so a rank without work still joins DDP's backward."""
        total = self.target_rms.new_zeros(())
        for p in (p for m in modules for p in m.parameters() if p.requires_grad):
            total = total + p.sum()
        return total * 0.0

    # ------------------------------------------------------------------ API
    def forward(self, features: Features, labels: torch.Tensor, mask: torch.Tensor,
                phase: str = ALL) -> LossOutput:
        """Losses of one training stage (``"unimodal"``, ``"fusion"``, ``"task"``) or ``"all"`` (stages 1 + 3)."""
        if phase not in (UNIMODAL, FUSION, TASK, ALL):
            raise ValueError(f"unknown RoHyDR phase {phase!r}")
        if self.stage == PRETRAIN:                                     # complete data, task loss only
            proj = self._project(features)
            prediction = self.fusion(proj).prediction
            task = self.task_loss(prediction, labels.to(prediction.device))
            return LossOutput(total=task, parts={"task": task, "total": task}, prediction=prediction)
        masked = self.mask_features(features, mask)
        mask = validate_mask(mask, self.check_features(features)).to(next(iter(masked.values())).device)
        truth = self._project(features)                                # loss targets / F_gt only
        proj = self._masked_projections(truth, mask)                    # one text-dropout draw, as the release
        rows = torch.nonzero(~mask.all(dim=1), as_tuple=False).view(-1)
        if self.training:
            self._track_target_rms(truth, mask)
        sampler = self._make_sampler("ddim", self.options.train_sampler_steps)
        grad = self.options.sampler_grad
        parts: dict[str, torch.Tensor] = {}
        total = proj["text"].new_zeros(())
        if phase in (UNIMODAL, ALL):
            if rows.numel() == 0:                                      # only reached under DDP or "all"
                total = self._graph_zero(self.dits, self.refiners) if phase == UNIMODAL else total
                recovered = proj
            else:
                recovered, diffusion, rec = self._unimodal(proj, mask, sampler, None, truth, grad)
                total = (sum(diffusion.values()) + self.options.lambda_g * rec) / (1 + self.options.lambda_g)
                parts.update({f"diffusion_{m}": v for m, v in diffusion.items()})
                parts.update(reconstruction=rec, unimodal=total)
            if phase == UNIMODAL:
                return LossOutput(total=total, parts={**parts, "total": total})
        else:
            recovered = self._unimodal(proj, mask, sampler, None, None, grad)[0] if rows.numel() else proj
        if phase == FUSION and rows.numel() < 2:
            zero = self._graph_zero(self.reconstructor)
            return FusionRecoveryOutput(total=zero, parts={"total": zero})
        both = self.fusion({m.value: torch.cat([recovered[m.value], truth[m.value]]) for m in MODALITIES}).fused
        fused_lm, fused_gt = both.chunk(2)
        if phase == FUSION:
            lm, gt = fused_lm.index_select(0, rows), fused_gt.index_select(0, rows)
            reconstructed = self.reconstructor(lm)
            l1 = F.l1_loss(reconstructed, gt)
            return FusionRecoveryOutput(total=l1, parts={"fusion_l1": l1, "total": l1}, fused_gt=gt.detach(),
                                        fused_lm=lm.detach(), reconstructed=reconstructed)
        labels = labels.to(both.device)
        prediction = self.fusion.head(self._reconstruct(fused_lm, rows))
        task_gt, task_lm = self.task_loss(self.fusion.head(fused_gt), labels), self.task_loss(prediction, labels)
        task = (1 - self.options.lambda_c) * task_gt + self.options.lambda_c * task_lm
        total = total + task
        parts.update(task_gt=task_gt, task_lm=task_lm, task=task, total=total)
        return LossOutput(total=total, parts=parts, prediction=prediction)

    def training_losses(self, features: Features, labels: torch.Tensor, mask: torch.Tensor) -> LossOutput:
        """Stage-1 and stage-3 terms of one batch from one recovery; ``total`` is their sum."""
        return self.forward(features, labels, mask, phase=ALL)

    def _inference_sampler(self, sampling: SamplingOptions) -> Sampler:
        name = (sampling.sampler or self.options.sampler).strip().lower()
        steps = sampling.steps if sampling.steps is not None else self.options.sampler_steps
        return self._make_sampler(name, steps)

    def _make_sampler(self, name: str, steps: int) -> Sampler:
        """The mode's sampler: the release's DDIM loop (reference) or a respaced one with a scale-aware clamp."""
        if self.options.mode == "reference":
            if name != "ddim":
                raise ValueError(f"reference mode samples with the release's DDIM loop only, not {name!r}")
            return ReferenceDDIMSampler(steps, clip_denoised=self.options.clip_denoised,
                                        beta_start=self.options.beta_start, beta_end=self.options.beta_end)
        inner = make_sampler(DDPM, name, steps, clip_denoised=None)
        if not self.options.clip_rms_multiple:
            return inner
        return ScaledClipSampler(inner, self.options.clip_rms_multiple * float(self.target_rms))

    @torch.no_grad()
    def _track_target_rms(self, truth: dict[str, torch.Tensor], mask: torch.Tensor, momentum: float = 0.05) -> None:
        """Exponential moving average of the RMS of the projections the DiTs learn (missing entries)."""
        values = [truth[m.value][~mask[:, i]] for i, m in enumerate(MODALITIES) if bool((~mask[:, i]).any())]
        if not values:
            return
        rms = torch.sqrt(torch.mean(torch.cat([v.reshape(-1) for v in values]).float() ** 2))
        if torch.isfinite(rms):
            first = bool(self.target_rms == 1.0)
            self.target_rms.copy_(rms if first else (1 - momentum) * self.target_rms + momentum * rms)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # Checkpoints written before the running RMS existed: keep 1 (the clamp range of their training).
        state_dict.setdefault(prefix + "target_rms", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    @torch.no_grad()
    def recover(self, features: Features, mask: torch.Tensor,
                sampling: SamplingOptions | None = None) -> dict[str, torch.Tensor]:
        """Projections ``(B, d, L')`` of every modality (missing ones sampled and refined) + ``"available"``."""
        masked = self.mask_features(features, mask)
        mask = validate_mask(mask, self.check_features(features)).to(next(iter(masked.values())).device)
        sampling = sampling or SamplingOptions()
        generator = self._generator(sampling, mask.device)
        recovered = self._unimodal(self._project(masked), mask, self._inference_sampler(sampling), generator,
                                   None, grad=False)[0]
        recovered[AVAILABLE_KEY] = mask
        return recovered

    @torch.no_grad()
    def project(self, features: Features) -> dict[str, torch.Tensor]:
        """MulT projections ``(B, d, L')`` of the given features (the recovery targets)."""
        self.check_features(features)
        return self._project(features)

    def predict_from_recovered(self, recovered: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Head on ``R(F_lm)`` for rows that missed a modality (per ``"available"``; absent: none did)."""
        fused = self.fusion({m.value: recovered[m.value] for m in MODALITIES}).fused
        available = recovered.get(AVAILABLE_KEY)
        rows = (torch.nonzero(~available.bool().all(dim=1), as_tuple=False).view(-1).to(fused.device)
                if available is not None else fused.new_zeros(0, dtype=torch.long))
        return self.fusion.head(self._reconstruct(fused, rows))
