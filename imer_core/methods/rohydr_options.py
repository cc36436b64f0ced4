"""Options of the RoHyDR recovery method (:mod:`imer_core.methods.rohydr`) and its MOSEI preset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import FusionConfig, fusion_config
from ..diffusion.sampling import DDPM, available_samplers

MOSEI_OPTIONS: dict[str, Any] = {"reconstructor_hidden": (128, 64), "reconstructor_dropout": 0.2,
                                 "discriminator_hidden": (80, 32)}
"""MOSEI overrides (reference ``config.json``); loss weights stay the MOSI ones (no MOSEI values in the reference)."""


@dataclass(frozen=True)
class RoHyDROptions:
    """RoHyDR-specific options (defaults: the reference MOSI settings).

    Attributes:
        dit_hidden, dit_depth, dit_heads, dit_mlp_ratio: DiT size (reference 64, 6, 16, 4).
        diffusion_steps, beta_start, beta_end: training schedule (1000, 1e-4, 0.02, linear).
        sampler: inference sampler, ``"ddim"`` (η = 0) or ``"ddpm"`` (ancestral).
        sampler_steps: inference sampler steps.
        train_sampler_steps: DDIM steps used during training (reference: 50).
        clip_denoised: clamp of ``x̂_0`` while sampling (reference diffusers default 1.0; 0: off).
        sampler_grad: back-propagate through the training-time sampler (reference: yes).
        refiner_blocks, refiner_reduction: RCAN refiner size.
        reconstructor_hidden, reconstructor_dropout: ``R`` widths and dropout.
        discriminator_hidden: ``D`` widths.
        lambda_g, lambda_al, lambda_c: loss weights λ_g, λ_al, λ_c.
        discriminator_loss_weight: factor of D's BCE loss (0.1).
        discriminator_lr: D's learning rate (``None``: the main one).
        discriminator_weight_decay: D's Adam weight decay (reference ``decay``).
        mode: ``"improved"`` (default) or ``"reference"``.

            * ``"reference"`` — the released code's semantics where they are
              numerical: the diffusers ``DDIMScheduler(num_train_timesteps=S)`` loop
              (:class:`~imer_core.diffusion.ddpm.ReferenceDDIMSampler`: its own S-step
              schedule, the DiT queried at t = S-1..0 of its 1000-step training
              schedule, ``x̂_0`` clamped to ``[-clip_denoised, clip_denoised]``, ε not
              recomputed), for training and inference; ``D`` in the main
              optimiser too, so the R step also moves ``D`` (its own Adam still steps it);
              and MulT Transformers without position embeddings (the release builds its
              ``TransformerEncoder`` with ``position_embedding=False``).
            * ``"improved"`` — the sampler respaces the DiT's own training schedule,
              ε is recomputed from the clamped ``x̂_0``, the clamp range is
              ``clip_rms_multiple`` × the running RMS of the recovery targets (the
              features have an RMS far from 1, where a ``[-1, 1]`` clamp destroys them),
              ``D`` has only its own optimiser, and the Transformers add sinusoidal
              position embeddings (as MulT and IMDer).

            Both modes draw the text dropout once per batch (the release projects
            the dropped text once and uses it as condition and as target).
        clip_rms_multiple: improved mode's clamp range in units of the targets' running RMS
            (0: no clamp).
        fusion: the MulT backbone (a :class:`~imer_core.config.FusionConfig` or a dict of its fields).
    """

    dit_hidden: int = 64
    dit_depth: int = 6
    dit_heads: int = 16
    dit_mlp_ratio: float = 4.0
    diffusion_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    sampler: str = "ddim"
    sampler_steps: int = 50
    train_sampler_steps: int = 50
    clip_denoised: float = 1.0
    sampler_grad: bool = True
    refiner_blocks: int = 20
    refiner_reduction: int = 16
    reconstructor_hidden: tuple[int, int] = (80, 96)
    reconstructor_dropout: float = 0.4
    discriminator_hidden: tuple[int, int] = (128, 64)
    lambda_g: float = 1.0
    lambda_al: float = 0.5
    lambda_c: float = 0.4
    discriminator_loss_weight: float = 0.1
    discriminator_lr: float | None = None
    discriminator_weight_decay: float = 1e-5
    mode: str = "improved"
    clip_rms_multiple: float = 4.0
    fusion: FusionConfig = FusionConfig()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion", fusion_config(self.fusion))
        for name in ("reconstructor_hidden", "discriminator_hidden"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"{name} must be two positive widths, got {value}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "mode", str(self.mode).strip().lower())
        if self.mode not in ("improved", "reference"):
            raise ValueError(f"mode must be 'improved' or 'reference', got {self.mode!r}")
        if self.clip_rms_multiple < 0:
            raise ValueError(f"clip_rms_multiple must be >= 0, got {self.clip_rms_multiple}")
        if self.sampler.strip().lower() not in available_samplers(DDPM):
            raise ValueError(f"unknown sampler {self.sampler!r}; available: {', '.join(available_samplers(DDPM))}")
        if not 1 <= min(self.sampler_steps, self.train_sampler_steps) <= max(
                self.sampler_steps, self.train_sampler_steps) <= self.diffusion_steps:
            raise ValueError("sampler_steps and train_sampler_steps must be in [1, diffusion_steps]")
        if self.lambda_g < 0 or not (0 <= self.lambda_al <= 1 and 0 <= self.lambda_c <= 1):
            raise ValueError("need lambda_g >= 0 and lambda_al, lambda_c in [0, 1]")
