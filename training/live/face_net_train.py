"""Train the face network on aligned FER2013 crops (``imer-train face-net``).

The crops come from ``imer-train face-crops`` (:mod:`training.live.face_net_data`):
the run-time :func:`~imer_core.features.face_crop.aligned_face_crop` applied
to each FER2013 image.  Training uses FER2013's own train split, picks the
epoch by validation accuracy and reports the test split once, at the end.

Augmentation, per training image: horizontal flip (p = 0.5), rotation of up
to ±10°, scale 0.9–1.1, shift of up to ±8 % of the side (one random affine
warp, edge pixels repeated), brightness ±0.15 and contrast 0.8–1.25.

The schedule is one-cycle (cosine) over the planned epochs, AdamW, label
smoothing 0.1.  After every epoch the best model so far is written, so a run
cut short still leaves a usable file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imer_core.config import LIVE_EMOTIONS
from imer_core.features.face_crop import CROP_ID, FACE_CROP_SIZE

from .face_net_data import load_fer_crops
from .labels import live_index

logger = logging.getLogger(__name__)


def live_targets(source_labels: np.ndarray) -> np.ndarray:
    """Live class indices of FER2013 source labels (every FER2013 label has a live counterpart)."""
    return np.asarray([live_index("fer2013", str(s)) for s in source_labels], np.int64)


def augment(batch: Any, generator: Any) -> Any:
    """Random flip, rotation, scale, shift, brightness and contrast of a ``(B, 1, H, W)`` batch in ``[0, 1]``."""
    import torch
    import torch.nn.functional as F

    b = batch.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731 - local shorthand
    angle = (rand(b) * 2 - 1) * math.radians(10.0)
    scale = 0.9 + rand(b) * 0.2
    flip = torch.where(rand(b) < 0.5, -1.0, 1.0)
    shift = (rand(b, 2) * 2 - 1) * 0.16  # normalised coordinates span 2: ±8 % of the side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = (0.8 + rand(b, 1, 1, 1) * 0.45)
    brightness = (rand(b, 1, 1, 1) * 2 - 1) * 0.15
    mean = out.mean(dim=(2, 3), keepdim=True)
    return ((out - mean) * contrast + mean + brightness).clamp(0.0, 1.0)


def evaluate_net(model: Any, crops: np.ndarray, targets: np.ndarray, batch_size: int = 256) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class recall and the confusion matrix of ``model`` on uint8 crops."""
    import torch
    from sklearn.metrics import confusion_matrix, f1_score

    model.eval()
    preds = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch_size):
            x = torch.from_numpy(crops[start:start + batch_size].astype(np.float32) / 255.0)[:, None]
            preds.append(model(x).argmax(1).numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    labels = list(range(len(LIVE_EMOTIONS)))
    matrix = confusion_matrix(targets, pred, labels=labels)
    recall = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return {"n": int(len(targets)), "accuracy": float((pred == targets).mean()) if len(targets) else float("nan"),
            "macro_f1": float(f1_score(targets, pred, labels=labels, average="macro", zero_division=0)),
            "recall": {name: float(r) for name, r in zip(LIVE_EMOTIONS, recall)},
            "confusion": matrix.tolist()}


def train_face_net(crops_path: str | Path, out_dir: str | Path, epochs: int = 12, batch_size: int = 64,
                   lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0, limit: int | None = None,
                   net_config: dict[str, Any] | None = None, threads: int = 1,
                   log: Callable[[str], None] = print, init: str | Path | None = None,
                   resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
    """Train, keep the best validation epoch in ``out_dir/face_net.pt`` and return the run summary.

    ``limit`` keeps at most that many training images (for tests).  ``init``
    continues from the weights (and build config) of a saved face network
    with a new schedule of ``epochs`` epochs (more epochs for a run that was
    cut short).  The
    summary (also ``out_dir/summary.json``) has the per-epoch history and the
    test metrics of the best epoch.

    A long run can be split over several invocations: after every epoch the whole
    training state (weights, optimiser, schedule, random generators, history) is
    written to ``out_dir/train_state.pt``; ``stop_after`` ends this invocation after
    that many epochs, and ``resume`` continues from the state file with the same
    settings (a run resumed at any epoch ends with the weights of an uninterrupted one).
    """
    import torch
    import torch.nn.functional as F

    from imer_core.live.face_net import FACE_NET_FILENAME, build_face_net, save_face_net

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, int(threads)))
    data = load_fer_crops(crops_path)
    targets = live_targets(data["labels"])
    split = data["split"].astype(str)
    parts = {s: (data["crops"][split == s], targets[split == s]) for s in ("train", "val", "test")}
    train_x, train_y = parts["train"]
    if limit is not None:
        train_x, train_y = train_x[:limit], train_y[:limit]
    if len(train_x) == 0 or len(parts["val"][0]) == 0:
        raise ValueError(f"{crops_path}: needs train and val crops (train {len(train_x)}, val {len(parts['val'][0])})")
    config = {"widths": [16, 32, 64, 128], "convs_per_stage": [1, 2, 2, 2], "embedding_dim": 128,
              "num_classes": len(LIVE_EMOTIONS), "dropout": 0.3, **(net_config or {})}
    model = build_face_net(**config)
    if init is not None:
        from imer_core.live.face_net import FaceNetRunner

        start_from = FaceNetRunner(init)
        if "members" in start_from.config:
            raise ValueError(f"--init {init} is an ensemble (face-net-combine); continue one of its member networks")
        config = {**start_from.config}
        model = start_from.model
        log(f"face-net: continuing from {init} (its metadata: {json.dumps(start_from.metadata)})")
    n_params = sum(p.numel() for p in model.parameters())
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                   pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensor_x = torch.from_numpy(train_x.astype(np.float32) / 255.0)[:, None]
    tensor_y = torch.from_numpy(train_y)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"val_accuracy": -1.0}
    settings = {"crops": str(Path(crops_path).resolve()), "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "weight_decay": weight_decay, "seed": seed, "limit": limit,
                "init": None if init is None else str(Path(init).resolve())}
    done_epochs, earlier_seconds = 0, 0.0
    if resume:
        state = _load_train_state(out / TRAIN_STATE_FILENAME, settings)
        config = state["config"]
        model = build_face_net(**config)
        model.load_state_dict(state["model"])
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                       pct_start=0.15)
        # after the schedule's constructor, which resets the optimiser's learning rate and momentum
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, best = list(state["history"]), dict(state["best"])
        done_epochs, earlier_seconds = int(state["epoch"]), float(state["train_seconds"])
        log(f"face-net: resuming {out} after epoch {done_epochs} of {epochs}")
    log(f"face-net: {len(train_x)} train / {len(parts['val'][0])} val / {len(parts['test'][0])} test crops "
        f"({data['meta']['fallback_full_image']} of {data['meta']['n']} fell back to the whole image), "
        f"{n_params} parameters, {epochs} epochs of {steps_per_epoch} steps, {threads} thread(s)")
    start = time.perf_counter() - earlier_seconds
    last_epoch = epochs if stop_after is None else min(epochs, done_epochs + max(1, int(stop_after)))
    for epoch in range(done_epochs + 1, last_epoch + 1):
        model.train()
        order = torch.randperm(len(tensor_x), generator=generator)
        total, correct, loss_sum, epoch_start = 0, 0, 0.0, time.perf_counter()
        for first in range(0, len(order), batch_size):
            idx = order[first:first + batch_size]
            x, y = augment(tensor_x[idx], generator), tensor_y[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=0.1)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            total += len(idx)
        val = evaluate_net(model, *parts["val"])
        row = {"epoch": epoch, "train_loss": loss_sum / total, "train_accuracy": correct / total,
               "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
               "epoch_seconds": round(time.perf_counter() - epoch_start, 1),
               "images_per_second": round(total / (time.perf_counter() - epoch_start), 1)}
        history.append(row)
        log(json.dumps(row))
        if val["accuracy"] > best["val_accuracy"]:
            best = {"epoch": epoch, "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"]}
            save_face_net(out / FACE_NET_FILENAME, model, config,
                          {"crop_id": CROP_ID, "crop_size": FACE_CROP_SIZE, "labels": list(LIVE_EMOTIONS),
                           "epoch": epoch, "val_accuracy": val["accuracy"], "trained_on": "FER2013 train split"})
        _save_train_state(out / TRAIN_STATE_FILENAME, {
            "settings": settings, "epoch": epoch, "config": config, "model": model.state_dict(),
            "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "history": history,
            "best": best, "train_seconds": time.perf_counter() - start})
    if last_epoch < epochs:
        log(f"face-net: stopped after epoch {last_epoch} of {epochs}; continue with --resume "
            f"(best so far: epoch {best.get('epoch')}, validation accuracy {best['val_accuracy']:.4f})")
    from imer_core.live.face_net import FaceNetRunner

    runner = FaceNetRunner(out / FACE_NET_FILENAME)
    test = evaluate_net(runner.model, *parts["test"])
    summary = {"crops": str(crops_path), "crop_meta": data["meta"], "config": config, "parameters": n_params,
               "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
               "threads": threads, "init": None if init is None else str(init),
               "train_seconds": round(time.perf_counter() - start, 1), "best": best,
               "history": history, "test": test, "complete": last_epoch == epochs}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"face-net test (best epoch {best['epoch']}): accuracy {test['accuracy']:.4f}, "
        f"macro-F1 {test['macro_f1']:.4f}, neutral recall {test['recall']['neutral']:.4f}")
    return summary


TRAIN_STATE_FILENAME = "train_state.pt"


def _save_train_state(path: Path, state: dict[str, Any]) -> None:
    """Write the training state atomically (a kill while writing leaves the previous one)."""
    import torch

    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _load_train_state(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The saved training state of ``path``; ValueError in one line if it is missing or of other settings."""
    import torch

    if not path.is_file():
        raise ValueError(f"nothing to resume: {path} does not exist (start the run without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file: torch raises several types
        raise ValueError(f"cannot read the training state {path}: {str(exc).splitlines()[0][:200]}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("settings"), dict):
        raise ValueError(f"{path} is not a face-net training state")
    changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
    if changed:
        raise ValueError(f"{path} was trained with other settings ({', '.join(changed)}: "
                         + ", ".join(f"{state['settings'].get(k)!r} -> {settings[k]!r}" for k in changed)
                         + "); resume with the same ones")
    return state


def evaluate_face_net_file(crops_path: str | Path, net_path: str | Path, split: str = "test") -> dict[str, Any]:
    """Metrics of a saved face network on one split of a crop file (e.g. a run stopped before its end)."""
    from imer_core.live.face_net import FaceNetRunner

    data = load_fer_crops(crops_path)
    rows = data["split"].astype(str) == split
    runner = FaceNetRunner(net_path)
    result = evaluate_net(runner.model, data["crops"][rows], live_targets(data["labels"][rows]))
    result["detected_share"] = float(data["detected"][rows].mean())
    result["net_metadata"] = runner.metadata
    return result
