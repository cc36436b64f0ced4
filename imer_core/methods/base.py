"""The one interface every recovery method implements.

A recovery model is a full emotion-recognition network: per-modality
projections, a recovery module that generates the projected features of the
missing modalities from the available ones, and the fusion backbone with its
output head.  The trainer, the evaluator and the live engine only use the
methods defined here:

* :meth:`RecoveryModel.training_losses` (also ``forward``, so DDP works) — all
  loss terms for a batch whose missing modalities are given by ``mask``;
* :meth:`RecoveryModel.train_step` — the per-method optimisation hook (the
  default does one backward pass; methods with several optimisation stages per
  batch override it);
* :meth:`RecoveryModel.recover` — available features + mask → recovered
  projected features of every modality;
* :meth:`RecoveryModel.predict` — features + mask → outputs (regression value or
  class logits), i.e. :meth:`predict_from_recovered` of :meth:`recover`;
* :meth:`RecoveryModel.project` — complete features → the recovery space (the
  targets recovered features are compared with);
* :meth:`RecoveryModel.prepare_stage` — switch between the two training stages
  (``"pretrain"``: complete data, ``"recovery"``: with missing modalities).

Input features are dictionaries ``{"text": (B, L, D_l), "audio": (B, L, D_a),
"vision": (B, L, D_v)}``; masks are ``(B, 3)`` booleans in the order of
:data:`imer_core.modalities.MODALITIES`.  Features of a missing modality are
zeroed before they reach the model so they can never leak into a prediction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import CLASSIFICATION, ModelConfig
from ..modalities import MODALITIES, Modality, validate_mask
from ..nn.layers import zero_missing

Features = Mapping[str, torch.Tensor]

PRETRAIN = "pretrain"
RECOVERY = "recovery"
STAGES = (PRETRAIN, RECOVERY)


@dataclass
class LossOutput:
    """Loss terms of one batch.

    Attributes:
        total: the scalar that is back-propagated.
        parts: named scalar terms (for logging), ``total`` included.
        prediction: model outputs for the batch, ``(B, output_dim)``.
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    prediction: torch.Tensor | None = None


@dataclass(frozen=True)
class SamplingOptions:
    """How a generative method samples at inference time.

    Attributes:
        sampler: sampler name understood by the method (``None``: the method's default).
        steps: number of sampler steps (``None``: the method's default).
        seed: seed for the sampler's noise (``None``: non-deterministic).
        backend: how a generative method runs its networks at inference (IMDer:
            ``"eager"``, ``"traced"`` or ``"cuda-graph"``; ``None``: the method's default).
    """

    sampler: str | None = None
    steps: int | None = None
    seed: int | None = None
    backend: str | None = None


class StepHelpers:
    """Trainer-side services of :meth:`RecoveryModel.train_step` besides the optimizers.

    A method whose step leaves the data-parallel graph (RoHyDR's discriminator) or
    branches on its batch asks these so that every training process does the same.
    This default serves one process: the collectives are identities.  The trainer
    passes :class:`training.distributed.DistributedStepHelpers` under torchrun, so
    ``torch.distributed`` stays out of the model package.
    """

    distributed: bool = False

    def agree_max(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise maximum of ``values`` over the training processes (every process takes the same branch)."""
        return values

    def average_gradients(self, grads: Sequence[torch.Tensor]) -> None:
        """Average gradients computed outside the data-parallel graph over the processes, in place."""

    def step_detached(self, optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter],
                      loss: torch.Tensor | None) -> None:
        """One step of ``optimizer`` on ``params`` from ``loss``, outside the data-parallel wrapper.

        Gradients come from ``torch.autograd.grad``, so no ``AccumulateGrad`` hook of a
        DDP wrapper fires; they are averaged with :meth:`average_gradients`.  ``loss=None``
        steps on zero gradients (still averaged: every process must call this equally often).
        """
        grads = (list(torch.autograd.grad(loss, list(params))) if loss is not None
                 else [torch.zeros_like(p) for p in params])
        self.average_gradients(grads)
        optimizer.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()


class RecoveryModel(nn.Module, ABC):
    """Base class of all recovery methods (see module docstring)."""

    name: ClassVar[str] = ""
    """Registry name (lower case; also the ``live_<name>.pt`` of a shipped checkpoint)."""
    options_class: ClassVar[type] = object
    """Frozen dataclass of the method's options (parsed from ``ModelConfig.method_options``)."""
    display_name: ClassVar[str] = ""
    """Name shown in menus and tables (``""``: :attr:`name`)."""
    summary: ClassVar[str] = ""
    """One line on what the method does (the app's tooltips)."""
    fast_sampler: ClassVar[str | None] = None
    """Sampler of the method's fast setting (``None``: its default sampler)."""
    uses_sampler_steps: ClassVar[bool] = True
    """Whether sampler step counts mean anything to the method (``False``: one deterministic pass)."""
    live_rank: ClassVar[int | None] = None
    """Preference among live methods, lowest first (the engine's default, the menus' order);
    ``None``: not offered to the live app unless a checkpoint of it is loaded."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.stage = RECOVERY
        self.expert_fusion: nn.Module | None = None
        if config.expert_fusion is not None:
            from ..nn.expert_fusion import ExpertFusionHead

            dims = {m.value: config.specs[m].dim for m in MODALITIES}
            self.expert_fusion = ExpertFusionHead.from_settings(dims, config.output_dim, config.expert_fusion)
        #: The ``metadata`` of the checkpoint the model was loaded from (empty for a model built in code).
        self.checkpoint_metadata: dict[str, Any] = {}

    @classmethod
    def default_sampler(cls) -> str | None:
        """The default of the options' ``sampler`` field (``None``: the method has no sampler option)."""
        for f in fields(cls.options_class) if is_dataclass(cls.options_class) else ():
            if f.name == "sampler":
                return None if f.default is MISSING else str(f.default)
        return None

    # ------------------------------------------------------------------ abstract
    @abstractmethod
    def training_losses(self, features: Features, labels: torch.Tensor, mask: torch.Tensor) -> LossOutput:
        """All loss terms for a batch; ``features`` hold the ground truth of every modality."""

    @abstractmethod
    def recover(self, features: Features, mask: torch.Tensor,
                sampling: SamplingOptions | None = None) -> dict[str, torch.Tensor]:
        """Projected features of every modality, the missing ones generated.

        Returns ``{"text": (B, d, L'), "audio": ..., "vision": ...}`` in the
        method's recovery space; rows whose modality is available hold the
        projection of the observed features.  A method may add entries of its
        own for its :meth:`predict_from_recovered` (RoHyDR adds the ``(B, 3)``
        availability mask under ``"available"``): callers read the three
        modality entries and pass the mapping on unchanged.
        """

    @abstractmethod
    def project(self, features: Features) -> dict[str, torch.Tensor]:
        """Features of every modality mapped into the recovery space (no masking, no recovery).

        Applied to complete features this gives the targets that recovered
        features are compared with.
        """

    @abstractmethod
    def predict_from_recovered(self, recovered: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Outputs ``(B, output_dim)`` from the (recovered) features of :meth:`recover`."""

    @torch.no_grad()
    def predict(self, features: Features, mask: torch.Tensor,
                sampling: SamplingOptions | None = None) -> torch.Tensor:
        """Outputs ``(B, output_dim)`` computed with the missing modalities recovered.

        With an expert-fusion head (``config.expert_fusion``) the method's output
        is combined with the product of the per-modality experts (:meth:`fused_output`).
        """
        return self.fused_output(features, mask, self.predict_from_recovered(self.recover(features, mask, sampling)))

    def fused_output(self, features: Features, mask: torch.Tensor, method_output: torch.Tensor) -> torch.Tensor:
        """The final output from the method's own: unchanged without an expert-fusion head."""
        if self.expert_fusion is None:
            return method_output
        return self.expert_fusion(features, validate_mask(mask).to(method_output.device), method_output)

    # ------------------------------------------------------------ shared logic
    def forward(self, features: Features, labels: torch.Tensor, mask: torch.Tensor) -> LossOutput:
        """Alias of :meth:`training_losses` so DistributedDataParallel sees the computation."""
        return self.training_losses(features, labels, mask)

    def prepare_stage(self, stage: str) -> None:
        """Enter a training stage; the default only records it."""
        if stage not in STAGES:
            raise ValueError(f"unknown training stage {stage!r}; expected one of {STAGES}")
        self.stage = stage

    def configure_optimizers(self, learning_rate: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        """Optimizers used by :meth:`train_step`; the default is one Adam over trainable parameters."""
        params = [p for p in self.parameters() if p.requires_grad]
        return {"main": torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)}

    def train_step(self, features: Features, labels: torch.Tensor, mask: torch.Tensor,
                   optimizers: Mapping[str, torch.optim.Optimizer], grad_clip: float | None = None,
                   forward: Callable[..., LossOutput] | None = None,
                   helpers: StepHelpers | None = None) -> LossOutput:
        """One optimisation step on a batch (per-method hook of the trainer).

        Args:
            forward: the callable computing the losses — the DDP wrapper when
                training distributed, else ``self``.
            helpers: the trainer's collectives (``None``: one process, :class:`StepHelpers`).
        """
        forward = forward or self
        main = optimizers["main"]
        main.zero_grad(set_to_none=True)
        out = forward(features, labels, mask)
        out.total.backward()
        if grad_clip is not None and grad_clip > 0:
            nn.utils.clip_grad_value_([p for p in self.parameters() if p.requires_grad], grad_clip)
        main.step()
        return out

    def task_loss(self, prediction: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L1 for regression (as IMDer/MMSA), cross-entropy for classification."""
        if self.config.task == CLASSIFICATION:
            return nn.functional.cross_entropy(prediction, labels.view(-1).long())
        return nn.functional.l1_loss(prediction, labels.view(-1, 1).to(prediction.dtype))

    def mask_features(self, features: Features, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Zero the features of missing modalities (so they cannot leak) after validating inputs."""
        batch = self.check_features(features)
        mask = validate_mask(mask, batch).to(next(iter(features.values())).device)
        out = {}
        for i, modality in enumerate(MODALITIES):
            out[modality.value] = zero_missing(features[modality.value], mask[:, i])
        return out

    def check_features(self, features: Features) -> int:
        """Validate feature shapes against the config's specs; returns the batch size."""
        batch = None
        for modality in MODALITIES:
            spec = self.config.specs[modality]
            if modality.value not in features:
                raise KeyError(f"features are missing the {modality.value!r} entry "
                               "(zeros are fine for a missing modality)")
            x = features[modality.value]
            if x.dim() != 3 or x.shape[2] != spec.dim or x.shape[1] != spec.seq_len:
                raise ValueError(f"{modality.value} features must have shape (batch, {spec.seq_len}, {spec.dim}), "
                                 f"got {tuple(x.shape)}")
            if batch is None:
                batch = x.shape[0]
            elif x.shape[0] != batch:
                raise ValueError("all modalities must have the same batch size")
        if batch is None:
            raise ValueError("no modality features to check")
        return int(batch)

    def parameter_count(self, module: nn.Module | None = None) -> int:
        """Number of trainable + frozen parameters of ``module`` (default: the whole model)."""
        return sum(p.numel() for p in (module or self).parameters())

    def describe(self) -> dict[str, Any]:
        """Short description for model cards and logs."""
        return {"method": self.name, "parameters": self.parameter_count(), "task": self.config.task,
                "labels": list(self.config.labels)}


def pattern_groups(mask: torch.Tensor) -> list[tuple[tuple[Modality, ...], torch.Tensor]]:
    """Group batch rows by availability pattern.

    Returns a list of ``(available modalities, row indices)`` in a stable order,
    so a method that recovers one pattern at a time can handle per-sample masks.
    """
    patterns, inverse = torch.unique(mask.bool(), dim=0, return_inverse=True)
    groups = []
    for k in range(patterns.shape[0]):
        available = tuple(m for m, on in zip(MODALITIES, patterns[k].tolist()) if on)
        groups.append((available, torch.nonzero(inverse == k, as_tuple=False).view(-1)))
    return groups
