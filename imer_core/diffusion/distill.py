"""Few-step generators distilled from the probability-flow ODE of a trained score network.

Method: regression of a student onto the teacher's **deterministic ODE coupling**
``(z, condition) ↦ x_0 = Φ_teacher(z, condition)`` — the one-step distillation of
rectified flow (Liu, Gong & Liu, "Flow Straight and Fast: Learning to Generate and
Transfer Data with Rectified Flow", ICLR 2023, Sec. 2.3 / eq. 8, which itself
follows Luhman & Luhman, "Knowledge Distillation in Iterative Generative Models
for Improved Sampling Speed", 2021).  Here the flow that is distilled is the
teacher's probability-flow ODE (Song et al. 2021, eq. 13) integrated with Heun
(Karras et al. 2022), i.e. the 1-rectified coupling without a further reflow
round.  The student has the teacher's architecture and starts from its weights;
it is read as a denoiser ``D(x, σ) = x + σ² s(x, σ)`` and sampled with
:class:`~imer_core.diffusion.samplers.DistilledSampler` in one or two
evaluations.  The loss is the mean squared error between the teacher's endpoint
and the student's denoised estimate after *every* step of its schedule, so one
student serves 1-step and ``N``-step sampling.

Why this and not the alternatives named in the literature:

* *consistency distillation* (Song et al., ICML 2023) bootstraps from an EMA target
  over a discretised schedule and needs many iterations and schedule tuning
  before the one-step output is good; our conditions are few and training time
  on a CPU is scarce;
* *progressive distillation* (Salimans & Ho, ICLR 2022) halves the step count per
  round: reaching 1–2 steps from a 10-step teacher takes 3–4 full training rounds;
* the deterministic coupling is exact and cheap here: the teacher's Heun solution
  costs ``2N − 1`` evaluations once per training pair (cached for all epochs),
  and a regression loss on it is a single, stable training stage.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .samplers import DistilledSampler, HeunSampler, ScoreFn
from .sde import VESDE


@dataclass(frozen=True)
class DistillOptions:
    """Settings of the distillation stage.

    Attributes:
        steps: student evaluations at inference (1 or 2 are the intended budgets).
        teacher_steps: Heun steps of the teacher's probability-flow ODE.
        epochs: passes over the cached teacher pairs.
        batch_size: pairs per optimisation step.
        learning_rate: Adam learning rate of the student.
        noise_draws: noise draws ``z`` per condition (more pairs per condition).
        seed: seed of the noise and of the shuffling.
    """

    steps: int = 1
    teacher_steps: int = 10
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 2e-4
    noise_draws: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "teacher_steps", "epochs", "batch_size", "noise_draws"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"distillation {name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"distillation learning_rate must be > 0, got {self.learning_rate}")


@dataclass
class TeacherPairs:
    """Cached teacher couplings: conditions, noise ``z`` and the ODE endpoints ``x_0``."""

    condition: torch.Tensor | None
    noise: torch.Tensor
    target: torch.Tensor

    def __len__(self) -> int:
        return int(self.noise.shape[0])


@torch.no_grad()
def teacher_pairs(teacher: ScoreFn, sde: VESDE, condition: torch.Tensor | None, shape: Sequence[int],
                  teacher_steps: int = 10, noise_draws: int = 1, generator: torch.Generator | None = None,
                  batch_size: int = 256, eps: float = 1e-3) -> TeacherPairs:
    """Integrate the teacher's probability-flow ODE from fresh noise for every condition.

    Args:
        condition: ``(B, ...)`` conditions (``None``: unconditional, ``shape`` gives the batch).
        shape: sample shape ``(B, ...)``.
        noise_draws: repeat every condition with that many independent ``z``.
    """
    shape = tuple(int(s) for s in shape)
    heun = HeunSampler(teacher_steps, eps=eps)
    device = condition.device if condition is not None else torch.device("cpu")
    conds, zs, targets = [], [], []
    for _ in range(int(noise_draws)):
        z = torch.randn(shape, generator=generator, device=device)
        for start in range(0, shape[0], batch_size):
            part = slice(start, start + batch_size)
            cond = None if condition is None else condition[part]
            z_part = z[part]
            targets.append(heun.sample(teacher, sde, tuple(z_part.shape), condition=cond, noise=z_part))
            zs.append(z_part)
            if cond is not None:
                conds.append(cond)
    return TeacherPairs(torch.cat(conds) if conds else None, torch.cat(zs), torch.cat(targets))


def distillation_loss(student: ScoreFn, sde: VESDE, sampler: DistilledSampler, pairs: TeacherPairs,
                      index: torch.Tensor | slice | None = None) -> torch.Tensor:
    """Mean over the student's steps of the squared error to the teacher endpoint (mean per element)."""
    index = slice(None) if index is None else index
    z, target = pairs.noise[index], pairs.target[index]
    cond = None if pairs.condition is None else pairs.condition[index]
    outputs = sampler.trajectory(student, sde, z, cond)
    return torch.stack([torch.mean((out - target) ** 2) for out in outputs]).mean()


@dataclass
class DistillReport:
    """Outcome of :func:`fit_student`: per-epoch training loss, best validation loss and timings."""

    train_losses: list[float]
    valid_loss: float
    initial_valid_loss: float
    best_epoch: int
    seconds: float


def fit_student(students: dict[str, nn.Module], train: dict[str, TeacherPairs], sde: VESDE,
                options: DistillOptions, valid: dict[str, TeacherPairs] | None = None,
                progress: Callable[[int, float, float], None] | None = None) -> DistillReport:
    """Train each ``students[k]`` on ``train[k]`` (one Adam over all of them) and keep the best weights.

    The pairs of all keys are visited in one shuffled order per epoch; the
    validation loss (``valid`` or, if absent, the training pairs) picks the epoch
    whose weights are kept.  ``progress(epoch, train_loss, valid_loss)`` is called
    after every epoch.
    """
    sampler = DistilledSampler(options.steps)
    params = [p for net in students.values() for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the student has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=options.learning_rate)
    generator = torch.Generator().manual_seed(options.seed)
    valid = valid or train
    started = time.perf_counter()

    def validation() -> float:
        for net in students.values():
            net.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for key, pairs in valid.items():
                for start in range(0, len(pairs), 256):
                    part = slice(start, start + 256)
                    n = len(pairs.noise[part])
                    total += float(distillation_loss(students[key], sde, sampler, pairs, part)) * n
                    count += n
        return total / max(count, 1)

    best = initial = validation()
    best_state, best_epoch, losses = copy.deepcopy({k: n.state_dict() for k, n in students.items()}), 0, []
    for epoch in range(1, options.epochs + 1):
        for net in students.values():
            net.train()
        batches = [(key, idx) for key, pairs in train.items()
                   for idx in torch.randperm(len(pairs), generator=generator).split(options.batch_size)]
        order = torch.randperm(len(batches), generator=generator).tolist()
        total, count = 0.0, 0
        for b in order:
            key, idx = batches[b]
            loss = distillation_loss(students[key], sde, sampler, train[key], idx)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"distillation epoch {epoch}: loss is {value}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + value * len(idx), count + len(idx)
        losses.append(total / max(count, 1))
        current = validation()
        if current < best:
            best, best_epoch = current, epoch
            best_state = copy.deepcopy({k: n.state_dict() for k, n in students.items()})
        if progress is not None:
            progress(epoch, losses[-1], current)
    for key, net in students.items():
        net.load_state_dict(best_state[key])
        net.eval()
    return DistillReport(losses, best, initial, best_epoch, time.perf_counter() - started)
