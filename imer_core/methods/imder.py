"""IMDer: Incomplete Multimodality-Diffused Emotion Recognition (Wang, Li, Cui; NeurIPS 2023).

Each modality ``m`` is projected by the MulT convolutions to ``x_m (B, d, L')``.
For every missing modality a conditional score network ``s_θ^m`` (paper eq. 3-5)
learns ``∇ log p_t(x_m | c)`` with denoising score matching, where the
condition ``c`` is the projection of the available modality, or the 1×1
convolution of the two available ones concatenated (paper Sec. 3.3).  At
recovery time the missing projection is sampled from the reverse VE-SDE
(paper eq. 6), refined by an RCAN refiner and fused by MulT.

Training loss (reference trainer)::

    total = task + 0.1 * (L_score_l + L_score_v + L_score_a + L_rec),

with ``L_rec`` the mean squared error of the refined features.  Batches with
per-sample masks are handled pattern by pattern (:func:`pattern_groups`); each
group's losses are weighted by its share of the batch, so a batch with one
pattern gives exactly the reference numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import FusionConfig, ModelConfig, fusion_config, options_from_dict
from ..diffusion.fast import CudaGraphRunner, InferenceCache, check_backend, trace_module, trace_score_net
from ..diffusion.samplers import DistilledSampler
from ..diffusion.sampling import SCORE, Sampler, available_samplers, make_sampler
from ..diffusion.sde import VESDE, denoising_score_matching_loss
from ..modalities import MODALITIES, Modality, full_mask, validate_mask
from ..nn.rcan import Refiner
from ..nn.score_unet import ConditionalScoreUNet1d
from ..registry import register_method
from .base import PRETRAIN, Features, LossOutput, SamplingOptions
from .mult_recovery import MulTRecoveryModel

if TYPE_CHECKING:
    from ..text_encoder import BertTextEncoder


@dataclass(frozen=True)
class IMDerOptions:
    """IMDer-specific options (defaults: the reference settings).

    Attributes:
        sigma: σ of the VE-SDE ``dx = σ^t dw``.
        score_channels: channels per level of the score U-Net.
        score_embed_dim: width of the time embedding.
        score_attn_layers: layers of each cross-attention Transformer of the score U-Net
            (reference: 2); fewer make a small test or CPU configuration cheaper.
        refiner_blocks: RCAB blocks of each refiner.
        refiner_reduction: channel-attention reduction of each refiner.
        sampler: inference sampler (``"euler-maruyama"`` or ``"heun"``).
        sampler_steps: inference sampler steps.
        train_sampler: sampler whose outputs the refiners are trained on (reference:
            Euler–Maruyama).  The refiners learn to correct *that* sampler's
            outputs, so fast configurations should train and infer with the same one.
        train_sampler_steps: sampler steps used while training (reference: 100).
        eps: smallest sampling time.
        loss_eps: smallest time of the score-matching loss.
        recovery_loss_weight: weight of score + reconstruction losses.
        text_encoder: ``"features"`` (pre-extracted 768-d text) or ``"bert"`` (token ids).
        bert_path: local BERT checkpoint folder for ``text_encoder="bert"``.
        bert_finetune: fine-tune BERT in stage 1 (the reference's ``use_finetune: true``;
            the released ``pretrained-*.pth`` holds a fine-tuned BERT).  The recovery
            stage always keeps BERT frozen, as the reference's forward does.
        bert_learning_rate: Adam learning rate of BERT's parameter group in stage 1.
            The IMDer release does not publish its stage-1 script; 2e-5 is the
            ``learning_rate_bert`` of the same group's RoHyDR MOSI config (MOSEI: 2e-6, set by ``imder_mosei``),
            the MMSA convention for BERT fine-tuning.
        distill_steps: steps of the distilled few-step generator (0: none; ``imer-train
            distill`` adds one, see :mod:`imer_core.diffusion.distill`).  Sampler
            ``"distilled"`` runs it.
        score_backend: inference backend of the score networks: ``"eager"``,
            ``"traced"`` (``jit.trace`` + ``freeze``, per input shape) or ``"cuda-graph"``
            (the whole sampler loop replayed from a CUDA graph; eager on CPU).
        fusion: the MulT backbone (a :class:`~imer_core.config.FusionConfig` or a dict of its fields).
    """

    sigma: float = 25.0
    score_channels: tuple[int, ...] = (32, 64, 128, 256)
    score_embed_dim: int = 256
    score_attn_layers: int = 2
    refiner_blocks: int = 20
    refiner_reduction: int = 16
    sampler: str = "euler-maruyama"
    sampler_steps: int = 100
    train_sampler: str = "euler-maruyama"
    train_sampler_steps: int = 100
    eps: float = 1e-3
    loss_eps: float = 1e-5
    recovery_loss_weight: float = 0.1
    text_encoder: str = "features"
    bert_path: str = ""
    bert_finetune: bool = True
    bert_learning_rate: float = 2e-5
    distill_steps: int = 0
    score_backend: str = "eager"
    fusion: FusionConfig = FusionConfig()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion", fusion_config(self.fusion))
        object.__setattr__(self, "score_channels", tuple(int(c) for c in self.score_channels))
        if not self.bert_learning_rate > 0:
            raise ValueError(f"bert_learning_rate must be > 0, got {self.bert_learning_rate}")
        object.__setattr__(self, "score_backend", check_backend(self.score_backend))
        if self.distill_steps < 0:
            raise ValueError(f"distill_steps must be >= 0, got {self.distill_steps}")
        if self.score_attn_layers < 1:
            raise ValueError(f"score_attn_layers must be >= 1, got {self.score_attn_layers}")
        if self.train_sampler.strip().lower() == DistilledSampler.name:
            raise ValueError("train_sampler cannot be 'distilled' (the refiners learn from the teacher's samples)")
        if self.sampler.strip().lower() == DistilledSampler.name and self.distill_steps == 0:
            raise ValueError("sampler 'distilled' needs a distilled generator (distill_steps >= 1; "
                             "run imer-train distill)")
        if self.text_encoder not in ("features", "bert"):
            raise ValueError(f"text_encoder must be 'features' or 'bert', got {self.text_encoder!r}")
        self._check_samplers()

    def _check_samplers(self) -> None:
        for name in (self.sampler, self.train_sampler):
            if name.strip().lower() not in available_samplers(SCORE):
                raise ValueError(f"unknown sampler {name!r}; available: {', '.join(available_samplers(SCORE))}")
        if self.sampler_steps < 1 or self.train_sampler_steps < 1:
            raise ValueError("sampler_steps and train_sampler_steps must be >= 1")


def _check_score_channels(d_model: int, channels: tuple[int, ...]) -> None:
    """Refuse U-Net widths that cannot run with features of width ``d_model``, in words.

    The first level cross-attends the condition (``d_model`` channels) at ``channels[0]``
    channels, and the U-Net's decoder normalises every level but the deepest in 32 groups.
    """
    if len(channels) < 2:
        raise ValueError(f"model.options.score_channels needs at least two levels, got {list(channels)}")
    if channels[0] != d_model:
        raise ValueError(f"IMDer's score U-Net attends to the condition at its first level: "
                         f"model.options.score_channels[0] ({channels[0]}) must equal model.d_model ({d_model})")
    if any(c % 32 for c in channels):
        raise ValueError(f"model.options.score_channels {list(channels)}: every level must be a multiple of 32 "
                         "(the U-Net's group normalisation)")


@register_method
class IMDer(MulTRecoveryModel):
    """IMDer recovery model (see module docstring)."""

    name = "imder"
    options_class = IMDerOptions
    display_name = "IMDer"
    summary = ("score-based diffusion (VE-SDE) conditioned on the available modalities; slowest, "
               "uses sampler steps")
    fast_sampler = "heun"
    live_rank: ClassVar[int | None] = 1
    generative = True
    """``False`` in :class:`~imer_core.methods.regression.ConditionalRegression`: the refiner regresses the
    missing projection from the condition directly (no score networks, no sampling)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        opts: IMDerOptions = options_from_dict(self.options_class, config.method_options)
        self.options = opts
        d = opts.fusion.d_model
        self.sde = VESDE(opts.sigma)
        self.text_encoder: BertTextEncoder | None = None
        if opts.text_encoder == "bert":
            from ..text_encoder import BertTextEncoder

            self.text_encoder = BertTextEncoder(opts.bert_path)
            if self.text_encoder.hidden_size != config.specs.text.dim:
                raise ValueError(f"BERT hidden size {self.text_encoder.hidden_size} != text feature dim "
                                 f"{config.specs.text.dim}")
        if self.generative:
            _check_score_channels(d, opts.score_channels)
        self._build_fusion(config, opts.fusion, multiple_of=2 ** (len(opts.score_channels) - 1))   # the U-Net's depth
        self.score_nets = nn.ModuleDict({
            m.value: ConditionalScoreUNet1d(d, opts.score_channels, opts.score_embed_dim,
                                            attn_layers=opts.score_attn_layers, marginal_std=self.sde.marginal_std)
            for m in MODALITIES
        } if self.generative else {})
        self._build_pair_convs(d)
        self.refiners = nn.ModuleDict({m.value: Refiner(d, opts.refiner_blocks, opts.refiner_reduction)
                                       for m in MODALITIES})
        self.student_nets: nn.ModuleDict | None = None
        if opts.distill_steps > 0:
            self.student_nets = copy.deepcopy(self.score_nets)
        self._traced = InferenceCache()
        self._graphs = CudaGraphRunner()
        self.prepare_stage(self.stage)

    # ------------------------------------------------------------ distillation
    def enable_distillation(self, steps: int, make_default: bool = True) -> nn.ModuleDict:
        """Add (or reset) the few-step student generators, initialised from the score networks.

        The options (and so the saved configuration) record ``distill_steps``; with
        ``make_default`` the inference sampler becomes ``"distilled"`` with ``steps``.
        """
        if int(steps) < 1:
            raise ValueError(f"distillation steps must be >= 1, got {steps}")
        self.student_nets = copy.deepcopy(self.score_nets)
        for p in self.student_nets.parameters():
            p.requires_grad_(True)
        changes: dict = {"distill_steps": int(steps)}
        if make_default:
            changes.update(sampler=DistilledSampler.name, sampler_steps=int(steps))
        self.config = self.config.with_options(**changes)
        self.options = options_from_dict(self.options_class, self.config.method_options)
        self._clear_inference_caches()
        return self.student_nets

    def _clear_inference_caches(self) -> None:
        self._traced.clear()
        self._graphs.clear()

    def train(self, mode: bool = True) -> "IMDer":
        """Switch train/eval mode; entering training drops traced networks and CUDA graphs (weights will change)."""
        if mode:
            self._clear_inference_caches()
        return super().train(mode)

    def load_state_dict(self, state_dict: Mapping, strict: bool = True, assign: bool = False):
        """Load weights (traced networks and CUDA graphs are dropped: they hold the old weights)."""
        self._clear_inference_caches()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ stages
    def prepare_stage(self, stage: str) -> None:
        """``"pretrain"``: full data, projections (and BERT when fine-tuned) train;
        ``"recovery"``: projections and BERT frozen."""
        super().prepare_stage(stage)
        if self.text_encoder is not None:
            self.text_encoder.set_trainable(stage == PRETRAIN and self.options.bert_finetune)
        if self.student_nets is not None:                              # trained only by the distillation stage
            for p in self.student_nets.parameters():
                p.requires_grad_(False)

    def configure_optimizers(self, learning_rate: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        """One Adam; a fine-tuned BERT gets its own parameter group at ``bert_learning_rate``."""
        bert = ([p for p in self.text_encoder.parameters() if p.requires_grad]
                if self.text_encoder is not None else [])
        bert_ids = {id(p) for p in bert}
        others = [p for p in self.parameters() if p.requires_grad and id(p) not in bert_ids]
        groups = [{"params": others, "lr": learning_rate}]
        if bert:
            groups.append({"params": bert, "lr": self.options.bert_learning_rate})
        return {"main": torch.optim.Adam(groups, lr=learning_rate, weight_decay=weight_decay)}

    def check_features(self, features: Features) -> int:
        """Validate shapes; with the BERT text encoder ``text`` holds ``(B, 3, L)`` token tensors."""
        if self.text_encoder is None:
            return super().check_features(features)
        tokens = features["text"]
        spec = self.config.specs.text
        if tokens.dim() != 3 or tokens.shape[1] != 3 or tokens.shape[2] != spec.seq_len:
            raise ValueError(f"text tokens must have shape (batch, 3, {spec.seq_len}), got {tuple(tokens.shape)}")
        stand_in = tokens.new_zeros((), dtype=torch.float32).expand(tokens.shape[0], spec.seq_len, spec.dim)
        return super().check_features({**features, "text": stand_in})

    # ---------------------------------------------------------------- helpers
    def _project(self, features: Features) -> dict[str, torch.Tensor]:
        feats = dict(features)
        if self.text_encoder is not None:
            feats["text"] = self.text_encoder(feats["text"])          # no_grad inside unless fine-tuned
        return super()._project(feats)

    def _generate(self, modality: Modality, sampler: Sampler | None, cond: torch.Tensor,
                  generator: torch.Generator | None, backend: str) -> torch.Tensor:
        """Sample the missing ``modality``'s projection given ``cond`` with the chosen network backend."""
        if sampler is None:
            raise ValueError(f"{self.name} samples the missing modalities: it needs a sampler")
        if isinstance(sampler, DistilledSampler):
            if self.student_nets is None:
                raise ValueError("this IMDer model has no distilled generator; run `imer-train distill` first "
                                 "or choose the heun / euler-maruyama sampler")
            net, role = self.student_nets[modality.value], "student"
        else:
            net, role = self.score_nets[modality.value], "teacher"
        shape = tuple(cond.shape)
        if self.training or backend == "eager":
            return sampler.sample(net, self.sde, shape, condition=cond, generator=generator)
        key = (role, modality.value, shape, cond.device, cond.dtype)
        if backend == "cuda-graph" and generator is None and CudaGraphRunner.available(cond.device):
            return self._graphs.run((repr(sampler),) + key,
                                    lambda c: sampler.sample(net, self.sde, shape, condition=c), cond)
        if backend == "traced":
            def traced_score(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
                traced = self._traced.get(key + (c is not None,), lambda: trace_score_net(net, x, t, c))
                return traced(x, t, c)

            return sampler.sample(traced_score, self.sde, shape, condition=cond, generator=generator)
        return sampler.sample(net, self.sde, shape, condition=cond, generator=generator)

    def _refine(self, modality: Modality, generated: torch.Tensor, backend: str) -> torch.Tensor:
        """The modality's refiner; traced and frozen (per shape) with the ``traced`` backend at inference."""
        refiner = self.refiners[modality.value]
        if self.training or backend != "traced":
            return refiner(generated)
        key = ("refiner", modality.value, tuple(generated.shape), generated.device, generated.dtype)
        return self._traced.get(key, lambda: trace_module(refiner, generated))(generated)

    def _recover(self, proj: dict[str, torch.Tensor], mask: torch.Tensor, sampler: Sampler | None,
                 generator: torch.Generator | None, targets: dict[str, torch.Tensor] | None = None,
                 backend: str = "eager") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Generate + refine missing projections per availability pattern; losses when ``targets`` given."""
        zero = proj["text"].new_zeros(())
        recovered = dict(proj)
        score_losses = {m.value: zero for m in MODALITIES}
        rec_loss = zero
        for group in self._pattern_groups(proj, mask):
            missing, idx, weight, cond = group.missing, group.rows, group.weight, group.condition
            group_targets = ({m: targets[m.value].index_select(0, idx) for m in missing}
                             if targets is not None else {})
            if targets is not None and self.generative:               # score losses first, as the reference
                for m in missing:
                    loss = denoising_score_matching_loss(self.score_nets[m.value], group_targets[m], self.sde,
                                                         condition=cond, eps=self.options.loss_eps)
                    score_losses[m.value] = score_losses[m.value] + weight * loss
            generated = {m: self._generate(m, sampler, cond, generator, backend) if self.generative else cond
                         for m in missing}
            for m in missing:
                refined = self._refine(m, generated[m], backend)     # gradients flow through the refiner
                if targets is not None:
                    rec_loss = rec_loss + weight * F.mse_loss(refined, group_targets[m])
                self._write_rows(recovered, m, idx, refined)
        return recovered, score_losses, rec_loss

    def _training_sampler(self) -> Sampler | None:
        """The sampler whose outputs the refiners learn to correct (``train_sampler`` option)."""
        return make_sampler(SCORE, self.options.train_sampler, self.options.train_sampler_steps, eps=self.options.eps)

    def _inference_sampler(self, sampling: SamplingOptions | None) -> Sampler | None:
        """The sampler of ``sampling``, else the default one.

        With the distilled generator as default, a step count other than the one it
        was distilled for (the app's "sampler steps", ``--steps``) runs the teacher
        (the ``train_sampler``, i.e. Heun) with that many steps: a distilled student
        is only trained on its own schedule.
        """
        opts, sampling = self.options, sampling or SamplingOptions()
        name = (sampling.sampler or opts.sampler).strip().lower()
        steps = sampling.steps
        if (sampling.sampler is None and name == DistilledSampler.name and steps is not None
                and steps != opts.distill_steps):
            name = opts.train_sampler.strip().lower()
        if steps is None and name == opts.sampler.strip().lower():
            steps = opts.sampler_steps
        elif steps is None and name == DistilledSampler.name and opts.distill_steps:
            steps = opts.distill_steps
        return make_sampler(SCORE, name, steps, eps=opts.eps)

    def _masked(self, features: Features, mask: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        masked = self.mask_features(features, mask)
        device = next(iter(masked.values())).device
        return masked, validate_mask(mask, self.check_features(features)).to(device)

    # ------------------------------------------------------------------ API
    def training_losses(self, features: Features, labels: torch.Tensor, mask: torch.Tensor) -> LossOutput:
        """Task loss + 0.1 × (score-matching losses + reconstruction loss) (reference trainer)."""
        if self.stage == PRETRAIN:                                     # stage 1: complete data
            mask = full_mask(self.check_features(features), device=mask.device)
        masked, mask = self._masked(features, mask)
        proj = self._project(masked)
        has_missing = bool((~mask).any())
        targets = self._project(features) if has_missing else None     # ground truth, loss targets only
        sampler = self._training_sampler()
        recovered, score_losses, rec_loss = self._recover(proj, mask, sampler, None, targets)
        prediction = self.fusion(recovered).prediction
        task = self.task_loss(prediction, labels.to(prediction.device))
        parts = {"task": task}
        total = task
        if has_missing:
            recovery = sum(score_losses.values()) + rec_loss
            total = task + self.options.recovery_loss_weight * recovery
            parts.update({f"score_{m}": v for m, v in score_losses.items()})
            parts["reconstruction"] = rec_loss
        parts["total"] = total
        return LossOutput(total=total, parts=parts, prediction=prediction)

    @torch.inference_mode()
    def recover(self, features: Features, mask: torch.Tensor,
                sampling: SamplingOptions | None = None) -> dict[str, torch.Tensor]:
        """Projected features ``(B, d, L')`` of every modality, the missing ones diffused and refined.

        Runs under ``torch.inference_mode``; ``sampling.backend`` (default: the
        ``score_backend`` option) picks eager, traced or CUDA-graph score networks.
        A seeded CUDA-graph call samples eagerly (graphs draw from the default generator).
        """
        masked, mask = self._masked(features, mask)
        proj = self._project(masked)
        sampling = sampling or SamplingOptions()
        backend = check_backend(sampling.backend or self.options.score_backend)
        generator = self._generator(sampling, mask.device)
        recovered, _, _ = self._recover(proj, mask, self._inference_sampler(sampling), generator, backend=backend)
        return recovered

    @torch.inference_mode()
    def condition_for(self, available: tuple[Modality, ...], proj: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The score networks' condition for an availability pattern, from projected features ``proj``."""
        available = tuple(m for m in MODALITIES if m in available)
        if not available or len(available) == len(MODALITIES):
            raise ValueError("a condition needs one or two available modalities")
        return self._condition(available, dict(proj))

    @torch.inference_mode()
    def project(self, features: Features) -> dict[str, torch.Tensor]:
        """MulT projections ``(B, d, L')`` of the given features (the recovery targets)."""
        self.check_features(features)
        return self._project(features)

    def predict_from_recovered(self, recovered: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """MulT fusion and output head on projected (recovered) features."""
        return self.fusion(recovered).prediction
