"""``imer-train finetune``: adapt a live checkpoint to one person with their calibration sessions.

Calibration sessions (``imer run --calibrate`` or the app's calibration
dialog) hold genuinely paired face + voice + text windows labelled with the
emotion the user was asked to act.  Fine-tuning runs the method's own
recovery-stage training step (recovery modules and classifier; projections
or encoders stay frozen as in that stage) on those windows, with modalities
randomly dropped so the recovery learns this person's cross-modal mapping,
and writes a personal checkpoint the app can select.  Windows whose modality
was not available while recording are never presented as observed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from imer_core.checkpoint import save_checkpoint
from imer_core.live import checkpoint_keys as keys
from imer_core.live.calibration import CalibrationData, load_calibration
from imer_core.live.models import LiveModel, load_live_model
from imer_core.modalities import MODALITIES

from .metrics import classification_metrics

# Metadata of the base checkpoint that measured *that* model (held-out test table, training-run test
# metrics); a personal checkpoint leaves them out and names its base under ``personalized.base_checkpoint``.
BASE_ONLY_METADATA: tuple[str, ...] = ("results", "test_metrics")


@dataclass(frozen=True)
class FinetuneOptions:
    """Settings of a fine-tuning run (few samples: small learning rate, few epochs)."""

    epochs: int = 30
    learning_rate: float = 1e-4
    batch_size: int = 16
    missing_rate: float = 0.3
    valid_share: float = 0.2
    seed: int = 0
    device: str = "cpu"


def _check_shapes(data: CalibrationData, live: LiveModel) -> None:
    if tuple(data.label_names) != tuple(live.labels):
        raise ValueError(f"calibration labels {data.label_names} differ from the checkpoint's {live.labels}")
    for m in MODALITIES:
        spec, got = live.config.specs[m], data.features[m.value].shape[1:]
        if got != (spec.seq_len, spec.dim):
            raise ValueError(f"{m.value} calibration windows are {got}, the checkpoint expects "
                             f"({spec.seq_len}, {spec.dim})")


def _split(labels: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split; classes with fewer than 3 windows stay entirely in training."""
    chosen: list[int] = []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        if len(idx) >= 3:
            chosen.extend(int(i) for i in idx[: max(1, int(round(share * len(idx))))])
    valid = np.asarray(sorted(chosen), np.int64)
    return np.setdiff1d(np.arange(len(labels)), valid), valid


def _tensors(data: CalibrationData, live: LiveModel, idx: np.ndarray, device: str) -> dict[str, torch.Tensor]:
    return {m.value: torch.from_numpy(live.normalise(m, data.features[m.value][idx]).astype(np.float32)).to(device)
            for m in MODALITIES}


def _drop(available: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Randomly hide available modalities (keeping at least one) so recovery is trained."""
    keep = available & (torch.rand(available.shape, generator=generator) >= rate)
    empty = ~keep.any(dim=1)
    if empty.any():
        first = torch.argmax(available[empty].int(), dim=1)
        keep[empty] = torch.nn.functional.one_hot(first, 3).bool()
    return keep


def _evaluate(live: LiveModel, data: CalibrationData, idx: np.ndarray, device: str) -> dict[str, float]:
    if len(idx) == 0:
        return {}
    model = live.model.eval()
    with torch.no_grad():
        mask = torch.from_numpy(data.available[idx]).to(device)
        logits = model.predict(_tensors(data, live, idx, device), mask)
    metrics = classification_metrics(logits.cpu().numpy(), data.labels[idx], live.labels)
    return {k: float(metrics[k]) for k in ("accuracy", "macro_f1")}


def finetune(checkpoint: "str | Path", sessions: Sequence["str | Path"], out: "str | Path",
             options: FinetuneOptions = FinetuneOptions(), progress: bool = True) -> dict:
    """Fine-tune ``checkpoint`` on the calibration windows under ``sessions``; write ``out``.

    Returns a summary (samples, validation accuracy / macro-F1 before and after).
    """
    if options.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {options.epochs}")
    torch.manual_seed(options.seed)
    live = load_live_model(checkpoint, options.device)
    data = load_calibration(sessions)
    _check_shapes(data, live)
    rng = np.random.default_rng(options.seed)
    train_idx, valid_idx = _split(data.labels, options.valid_share, rng)
    if len(train_idx) == 0:
        raise ValueError(f"no calibration window is left for training ({len(data)} in all); record a longer "
                         "calibration")
    before = _evaluate(live, data, valid_idx, options.device)
    model = live.model
    model.prepare_stage("recovery")
    optimizers = model.configure_optimizers(options.learning_rate)
    generator = torch.Generator().manual_seed(options.seed)
    losses = []
    for _ in tqdm(range(options.epochs), desc="fine-tuning", disable=not progress):
        model.train()
        order = rng.permutation(train_idx)
        for start in range(0, len(order), options.batch_size):
            batch = order[start:start + options.batch_size]
            available = torch.from_numpy(data.available[batch])
            mask = _drop(available, options.missing_rate, generator).to(options.device)
            labels = torch.from_numpy(data.labels[batch]).to(options.device)
            out_step = model.train_step(_tensors(data, live, batch, options.device), labels, mask, optimizers,
                                        grad_clip=1.0)
            losses.append(float(out_step.total.detach()))
    model.eval()
    bad = [name for name, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
    if bad or not all(np.isfinite(losses)):
        raise ValueError(f"fine-tuning diverged (loss {losses[-1] if losses else None}, {len(bad)} tensors with NaN "
                         f"or infinite weights); nothing was written - try a smaller --lr")
    after = _evaluate(live, data, valid_idx, options.device)
    summary = {"base_checkpoint": str(checkpoint), "sessions": [str(p) for p in data.sources],
               "samples": len(data), "train": int(len(train_idx)), "valid": int(len(valid_idx)),
               "valid_before": before, "valid_after": after, "final_loss": losses[-1] if losses else None,
               "options": options.__dict__}
    metadata = {k: v for k, v in live.metadata.items() if k not in BASE_ONLY_METADATA}
    metadata["personalized"] = summary
    metadata[keys.TRAINED] = True
    save_checkpoint(model, out, metadata)
    Path(out).with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary


def add_parser(sub) -> None:
    """Register ``imer-train finetune``."""
    p = sub.add_parser("finetune", help="fine-tune a live checkpoint on calibration sessions (personal model)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", nargs="+", required=True, metavar="DIR",
                   help="session folders with calibration.npz (folders are searched recursively)")
    p.add_argument("--checkpoint", default=None,
                   help="live checkpoint to start from (default: the app's default shipped model, "
                        "assets/models/live_cmarr.pt)")
    p.add_argument("--out", required=True, help="personal checkpoint to write (e.g. ~/imer/personal.pt)")
    p.add_argument("--epochs", type=int, default=FinetuneOptions.epochs)
    p.add_argument("--lr", type=float, default=FinetuneOptions.learning_rate)
    p.add_argument("--batch-size", type=int, default=FinetuneOptions.batch_size)
    p.add_argument("--missing-rate", type=float, default=FinetuneOptions.missing_rate,
                   help="share of available modalities hidden per window during fine-tuning")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")


def cmd_finetune(args) -> int:
    """Run ``imer-train finetune``."""
    from imer_core.live.models import shipped_checkpoints
    from imer_core.registry import preferred_methods
    checkpoint = args.checkpoint
    if checkpoint is None:
        shipped = shipped_checkpoints()
        if not shipped:
            raise FileNotFoundError("no shipped live checkpoint in assets/models: pass --checkpoint")
        checkpoint = shipped[preferred_methods(shipped)[0]]
    options = FinetuneOptions(args.epochs, args.lr, args.batch_size, args.missing_rate, seed=args.seed,
                              device=args.device)
    summary = finetune(checkpoint, args.sessions, args.out, options, progress=not args.no_progress)
    before, after = summary["valid_before"], summary["valid_after"]
    print(f"fine-tuned on {summary['train']} windows ({summary['valid']} held out) → {args.out}")
    if before:
        print(f"held-out accuracy {before['accuracy']:.3f} → {after['accuracy']:.3f}, "
              f"macro-F1 {before['macro_f1']:.3f} → {after['macro_f1']:.3f}")
    return 0
