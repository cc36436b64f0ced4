"""Distillation stage: a trained IMDer checkpoint → the same model plus a one/two-evaluation generator.

``imer-train distill --checkpoint model.pt --data aligned_50.pkl --out model-distilled.pt``
(any data ``imer-train evaluate`` reads: ``--dataset live --data runs/live_cache`` for the live model)

1. the model projects the train and valid splits; for every availability pattern
   with something missing, the condition of each missing modality is built as
   in recovery (the available projection, or the 1×1 fusion of two);
2. the teacher (the model's score network, probability-flow ODE with Heun;
   by default the sampler and steps the refiners were trained on) maps fresh
   noise ``z`` to an endpoint for every condition — the cached couplings;
3. per modality a student (teacher architecture, teacher weights at start) is fitted
   to the couplings (:func:`imer_core.diffusion.distill.fit_student`), keeping
   the epoch with the lowest validation error;
4. the checkpoint is written with the students and, unless ``--keep-sampler``,
   ``"distilled"`` as its default sampler, so the live engine and ``imer-train
   evaluate`` use it by name; ``--score-backend traced`` also makes the traced
   networks its default inference backend (the shipped live IMDer: see
   ``docs/live_model.md``).

Conditions come from the dataset's samples; with unpaired corpora (the live
data) these are class-matched pseudo-pairs, as in training.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from imer_core.diffusion.distill import DistillOptions, DistillReport, TeacherPairs, fit_student, teacher_pairs
from imer_core.methods.base import RecoveryModel
from imer_core.methods.imder import IMDer
from imer_core.modalities import AVAILABLE_SUBSETS, MODALITIES

PAPER = ("Liu, Gong & Liu, Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow, "
         "ICLR 2023 (one-step distillation of the deterministic coupling)")


def add_parser(sub: Any) -> None:
    """The ``distill`` sub-command."""
    p = sub.add_parser("distill", help="distil an IMDer checkpoint's probability-flow ODE into a 1-2 step generator")
    p.add_argument("--checkpoint", required=True, help="trained IMDer checkpoint")
    p.add_argument("--data", default=None,
                   help="the training data: MMSA pickle, MMIN feature root or live feature cache (folder)")
    p.add_argument("--dataset", default=None,
                   help="mosi, mosei, mmsa, iemocap, msp or live (default: the checkpoint's)")
    p.add_argument("--synthetic", action="store_true", help="the synthetic benchmark of the dataset")
    p.add_argument("--config", default=None,
                   help="experiment whose [data] table to use (default: the checkpoint's training config)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a data value")
    p.add_argument("--fold", type=int, default=None, help="MMIN fold (default: the config's first, else 1)")
    p.add_argument("--trust-pickle", action="store_true", help="see imer-train evaluate --help")
    p.add_argument("--skip-sha256", action="store_true", help="see imer-train evaluate --help")
    p.add_argument("--out", default=None, help="output checkpoint (default: <checkpoint>-distilled.pt)")
    p.add_argument("--steps", type=int, default=1, help="student evaluations per sample (1 or 2)")
    p.add_argument("--teacher-steps", type=int, default=None,
                   help="Heun steps of the teacher (default: the train sampler's when it is heun, else 10)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--noise-draws", type=int, default=1, help="noise draws per training condition")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-sampler", action="store_true", help="keep the checkpoint's default sampler")
    p.add_argument("--score-backend", default=None, choices=("eager", "traced", "cuda-graph"),
                   help="default inference backend saved in the checkpoint (default: keep the checkpoint's)")
    p.add_argument("--device", default="auto")


def default_teacher_steps(model: IMDer) -> int:
    """The refiners learned from the train sampler's outputs: copy it when it is the (deterministic) Heun ODE."""
    opts = model.options
    return int(opts.train_sampler_steps) if opts.train_sampler.strip().lower() == "heun" else 10


@torch.no_grad()
def collect_conditions(model: IMDer, dataset: Dataset, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Conditions of every (pattern, missing modality) pair over ``dataset``, concatenated per missing modality."""
    device = next(model.parameters()).device
    model.eval()
    per_modality: dict[str, list[torch.Tensor]] = {m.value: [] for m in MODALITIES}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        features = {m.value: batch[m.value].to(device) for m in MODALITIES}
        proj = model.project(features)
        for available in AVAILABLE_SUBSETS:
            if len(available) == len(MODALITIES):
                continue
            cond = model.condition_for(tuple(available), proj).clone()
            for m in MODALITIES:
                if m not in available:
                    per_modality[m.value].append(cond)
    return {k: torch.cat(v) for k, v in per_modality.items() if v}


def build_pairs(model: IMDer, conditions: dict[str, torch.Tensor], options: DistillOptions,
                generator: torch.Generator) -> dict[str, TeacherPairs]:
    """The teacher's couplings for each missing modality's conditions."""
    pairs = {}
    for name, cond in conditions.items():
        with torch.inference_mode(False):
            cond = cond.clone()
            pairs[name] = teacher_pairs(model.score_nets[name], model.sde, cond, tuple(cond.shape),
                                        options.teacher_steps, options.noise_draws, generator, eps=model.options.eps)
    return pairs


def set_score_backend(model: IMDer, backend: str) -> None:
    """Make ``backend`` the model's default inference backend (saved with its configuration)."""
    from imer_core.config import options_from_dict
    from imer_core.diffusion.fast import check_backend

    model.config = model.config.with_options(score_backend=check_backend(backend))
    model.options = options_from_dict(model.options_class, model.config.method_options)


def distill_model(model: RecoveryModel, datasets: Mapping[str, Dataset], options: DistillOptions,
                  make_default: bool = True, log: Any = print) -> DistillReport:
    """Add a distilled generator to ``model`` in place (see module docstring); returns the fit report."""
    if not isinstance(model, IMDer):
        raise ValueError(f"distillation needs an IMDer checkpoint, got method {getattr(model, 'name', '?')!r}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(options.seed)
    log(f"teacher: probability-flow ODE, Heun {options.teacher_steps} steps; student: {options.steps} step(s)")
    train = build_pairs(model, collect_conditions(model, datasets["train"]), options, generator)
    valid_set = datasets.get("valid")
    valid = build_pairs(model, collect_conditions(model, valid_set), options, generator) if valid_set else None
    log(f"teacher couplings: {sum(len(p) for p in train.values())} train, "
        f"{sum(len(p) for p in (valid or {}).values())} valid")
    students = model.enable_distillation(options.steps, make_default=make_default)
    report = fit_student({k: students[k] for k in train}, train, model.sde, options, valid,
                         progress=lambda e, tr, va: log(f"epoch {e}: train {tr:.5f}  valid {va:.5f}"))
    model.eval()
    return report


def cmd_distill(args: argparse.Namespace) -> int:
    """``imer-train distill``: distil, save the checkpoint, print the report."""
    from imer_core.checkpoint import load_checkpoint, save_checkpoint

    from .distributed import torch_device
    from .evaluate_data import evaluation_experiment, load_evaluation_data

    device = torch_device(args.device)
    model = load_checkpoint(args.checkpoint, map_location=device, expected_method="imder")
    if not isinstance(model, IMDer):
        raise ValueError(f"distillation needs an IMDer checkpoint, got method {model.name!r}")
    experiment = evaluation_experiment(args, model)
    options = DistillOptions(steps=args.steps, teacher_steps=args.teacher_steps or default_teacher_steps(model),
                             epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                             noise_draws=args.noise_draws, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="imer-distill-") as cache:   # synthetic data is generated here
        datasets = load_evaluation_data(experiment, model, Path(cache), args.fold).datasets
        report = distill_model(model, datasets, options, make_default=not args.keep_sampler)
    if args.score_backend:
        set_score_backend(model, args.score_backend)
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name(Path(args.checkpoint).stem + "-distilled.pt")
    summary = {"method": "PF-ODE coupling distillation", "paper": PAPER, "steps": options.steps,
               "teacher": f"heun, {options.teacher_steps} steps", "epochs": options.epochs,
               "best_epoch": report.best_epoch, "valid_mse_before": report.initial_valid_loss,
               "valid_mse": report.valid_loss, "seconds": round(report.seconds, 1),
               "data": "synthetic" if args.synthetic else str(args.data), "dataset": experiment.data.dataset,
               "score_backend": model.options.score_backend}
    metadata = {**getattr(model, "checkpoint_metadata", {}), "distillation": summary}
    save_checkpoint(model.cpu(), out, metadata)
    print(json.dumps({"checkpoint": str(out), **summary}, indent=2))
    return 0
