"""One training loop for every recovery method.

The loop owns data loading, missing-modality masks, validation, the learning
rate schedule, early stopping, checkpoints and logs.  What differs between
methods lives in the method's hooks (:meth:`RecoveryModel.prepare_stage`,
:meth:`RecoveryModel.configure_optimizers`, :meth:`RecoveryModel.train_step`).

Two stages, as IMDer: ``pretrain`` trains encoders and fusion on complete data
(missing rate 0); ``recovery`` trains the recovery modules (projections frozen)
under the experiment's missing-modality protocol.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from imer_core.config import CLASSIFICATION
from imer_core.methods.base import PRETRAIN, RECOVERY, RecoveryModel, SamplingOptions
from imer_core.modalities import MODALITIES

from .distributed import DistContext, barrier, broadcast_floats, step_helpers
from .experiment import TrainConfig
from .metrics import classification_metrics, regression_metrics
from .protocols import MissingProtocol, realised_missing_rate
from .runs import RunFolder
from .schedule import build_stage_optimizers


@dataclass
class StageResult:
    """Outcome of one training stage."""

    stage: str
    best_epoch: int
    best_valid: float
    epochs: int
    seconds: float


def dataset_size(dataset: Dataset) -> int:
    """Number of items of a map-style dataset (every dataset of the project defines ``__len__``)."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"{type(dataset).__name__} does not define its length")
    return len(dataset)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
    """Trains and evaluates one :class:`RecoveryModel` on MMSA-style splits.

    Args:
        model: the model (moved to ``ctx.device``).
        datasets: ``{"train", "valid", "test"}`` datasets yielding dicts with
            ``index``, ``text``, ``audio``, ``vision`` and ``label``.
        config: optimisation settings.
        protocol: missing-modality protocol of the recovery stage.
        ctx: device / distributed context.
        run: run folder for logs and checkpoints.
        seed: seed of this run (masks and sampling derive from it).
        progress: show progress bars.
    """

    def __init__(self, model: RecoveryModel, datasets: dict[str, Dataset], config: TrainConfig,
                 protocol: MissingProtocol, ctx: DistContext, run: RunFolder, seed: int = 0,
                 progress: bool = True) -> None:
        self.model = model.to(ctx.device)
        self.datasets = datasets
        self.config = config
        self.protocol = protocol
        self.ctx = ctx
        self.helpers = step_helpers(ctx)
        self.run = run
        self.seed = seed
        self.progress = progress and ctx.is_main
        self.sampling = SamplingOptions(sampler=config.eval_sampler or None,
                                        steps=config.eval_sampler_steps or None, seed=seed)

    # ------------------------------------------------------------------ training
    def fit(self, stage: str) -> StageResult:
        """Train one stage with early stopping on the validation key metric; keeps the best weights."""
        model, cfg = self.model, self.config
        model.prepare_stage(stage)
        optimizers, scheduler = build_stage_optimizers(model, cfg, stage)
        forward = self._wrap(model)
        max_epochs = cfg.pretrain_max_epochs if stage == PRETRAIN else cfg.max_epochs
        minimize = cfg.key_eval == "Loss"
        best_value, best_epoch, best_state = math.inf if minimize else -math.inf, 0, None
        started = time.perf_counter()
        epoch = 0
        for epoch in range(1, max_epochs + 1):
            t0 = time.perf_counter()
            epoch_lr = optimizers["main"].param_groups[0]["lr"]        # the rate this epoch trains at
            train_loss, train_mr = self._train_epoch(stage, epoch, optimizers, forward)
            valid = self.evaluate("valid", stage=stage) if self.ctx.is_main else {}
            valid_loss, key = broadcast_floats([valid.get("Loss", 0.0), valid.get(cfg.key_eval, 0.0)], self.ctx)
            scheduler.step(valid_loss)
            improved = key < best_value - 1e-6 if minimize else key > best_value + 1e-6
            if improved:
                best_value, best_epoch = key, epoch
                best_state = copy.deepcopy(model.state_dict())
            self.run.log_epoch({"stage": stage, "epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
                                "valid_key": key, "learning_rate": epoch_lr,
                                "seconds": time.perf_counter() - t0, "realised_missing_rate": train_mr})
            if epoch - best_epoch >= cfg.early_stop:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        barrier(self.ctx)
        self._check_replicas_in_sync()
        return StageResult(stage, best_epoch, best_value, epoch, time.perf_counter() - started)

    def _check_replicas_in_sync(self) -> None:
        """Under DDP every rank must hold identical weights after a stage; fail loudly if not."""
        if not self.ctx.distributed:
            return
        checksum = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).sum().view(1)
        checksum = checksum.to(self.ctx.device)
        gathered = [torch.zeros_like(checksum) for _ in range(self.ctx.world_size)]
        torch.distributed.all_gather(gathered, checksum)
        values = [float(g) for g in gathered]
        if max(values) - min(values) > 1e-6 * max(1.0, abs(values[0])):
            raise RuntimeError(f"DDP replicas diverged after training (parameter checksums {values})")

    def _wrap(self, model: RecoveryModel) -> Any:
        if not self.ctx.distributed:
            return model
        ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def _train_epoch(self, stage: str, epoch: int, optimizers: dict, forward: Any) -> tuple[float, float]:
        self.model.train()
        batch_size = self.config.pretrain_batch_size if stage == PRETRAIN else 0
        loader = self._loader("train", shuffle=True, epoch=epoch, batch_size=batch_size or None)
        rng = np.random.default_rng([self.seed, epoch, self.ctx.rank])
        n_batches, total, count, masks = len(loader), 0.0, 0, []
        bar = tqdm(loader, desc=f"{stage} epoch {epoch}", leave=False, disable=not self.progress)
        for batch_index, batch in enumerate(bar):
            features, labels = self._to_device(batch)
            if stage == PRETRAIN:
                mask = torch.ones(labels.shape[0], 3, dtype=torch.bool)
            else:
                mask = torch.as_tensor(self.protocol.train_mask(batch_index, n_batches, batch["index"].numpy(),
                                                                epoch, rng))
            masks.append(mask)
            out = self.model.train_step(features, labels, mask.to(self.ctx.device), optimizers,
                                        self.config.grad_clip, forward=forward, helpers=self.helpers)
            loss = float(out.total.detach())
            if not math.isfinite(loss):
                raise FloatingPointError(f"{stage} epoch {epoch} batch {batch_index}: loss is {loss}; "
                                         "lower the learning rate or check the input features")
            total += loss * labels.shape[0]
            count += labels.shape[0]
            bar.set_postfix(loss=f"{loss:.4f}")
        return total / max(count, 1), realised_missing_rate(torch.cat(masks).numpy())

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, split: str, stage: str = RECOVERY, protocol: MissingProtocol | None = None,
                 sampling: SamplingOptions | None = None) -> dict[str, float]:
        """Metrics on ``split`` with the protocol's deterministic evaluation masks.

        Besides the task metrics this reports ``recovery_mse`` (recovered vs.
        true projected features, over missing entries only) and
        ``zero_fill_mse`` (the same error for zero-filling), plus the realised
        missing rate.  Samples are recovered in batches of ``eval_batch_size``
        (the samplers run batched over every sample of an availability pattern
        in a batch), halved until it fits when CUDA runs out of memory; the
        masks still follow the protocol with the training ``batch_size``.
        """
        model, protocol = self.model, protocol or self.protocol
        model.eval()
        size = dataset_size(self.datasets[split])
        if stage == PRETRAIN:
            passes = [np.ones((size, 3), dtype=np.bool_)]
        else:
            passes = protocol.eval_passes(size, self.config.batch_size, split)
        sampling = sampling or self.sampling
        batch_size = max(1, self.config.eval_batch_size or self.config.batch_size)
        while True:                           # the largest batch that fits: halve on CUDA out-of-memory
            try:
                return self._evaluate_batched(split, passes, sampling, batch_size)
            except torch.cuda.OutOfMemoryError:
                if batch_size == 1:
                    raise
                batch_size //= 2
                if self.ctx.device.type == "cuda":
                    torch.cuda.empty_cache()

    def _evaluate_batched(self, split: str, passes: list[np.ndarray], sampling: SamplingOptions,
                          batch_size: int) -> dict[str, float]:
        model = self.model
        preds, labels_all, rec_err, zero_err, n_missing = [], [], 0.0, 0.0, 0
        loader = self._loader(split, shuffle=False, batch_size=batch_size)
        for all_masks in passes:                      # metrics pool the predictions of every pass
            for batch in tqdm(loader, desc=f"eval {split}", leave=False, disable=not self.progress):
                features, labels = self._to_device(batch)
                mask = torch.as_tensor(all_masks[batch["index"].numpy()]).to(self.ctx.device)
                recovered = model.recover(features, mask, sampling)
                preds.append(model.predict_from_recovered(recovered).float().cpu())
                labels_all.append(labels.cpu())
                if not bool(mask.all()):
                    truth = model.project(features)
                    err, zero, n = _recovery_errors(recovered, truth, mask)
                    rec_err, zero_err, n_missing = rec_err + err, zero_err + zero, n_missing + n
        pred, true = torch.cat(preds), torch.cat(labels_all)
        results = self._task_metrics(pred, true)
        results["Loss"] = float(model.task_loss(pred, true))
        results["realised_missing_rate"] = realised_missing_rate(np.concatenate(passes))
        if n_missing:
            results["recovery_mse"] = rec_err / n_missing
            results["zero_fill_mse"] = zero_err / n_missing
        return results

    def _task_metrics(self, pred: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
        if self.model.config.task == CLASSIFICATION:
            return classification_metrics(pred.numpy(), true.numpy().astype(int), self.model.config.labels)
        return regression_metrics(pred.view(-1).numpy(), true.view(-1).numpy())

    # ------------------------------------------------------------------- helpers
    def _loader(self, split: str, shuffle: bool, epoch: int = 0, batch_size: int | None = None) -> DataLoader:
        dataset = self.datasets[split]
        sampler: DistributedSampler | None = None
        if shuffle and self.ctx.distributed:
            sampler = DistributedSampler(dataset, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
                                         shuffle=True, seed=self.seed)
            sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        return DataLoader(dataset, batch_size=batch_size or self.config.batch_size, shuffle=shuffle and sampler is None,
                          sampler=sampler, num_workers=self.config.num_workers, generator=generator)

    def _to_device(self, batch: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        device = self.ctx.device
        features = {m.value: batch[m.value].to(device, non_blocking=True) for m in MODALITIES}
        return features, batch["label"].to(device)


def _recovery_errors(recovered: dict[str, torch.Tensor], truth: dict[str, torch.Tensor],
                     mask: torch.Tensor) -> tuple[float, float, int]:
    """Summed squared error of recovery and of zero-filling over missing modality entries, and their count."""
    err = zero = 0.0
    count = 0
    for i, modality in enumerate(MODALITIES):
        missing = ~mask[:, i]
        if not bool(missing.any()):
            continue
        rec, gt = recovered[modality.value][missing], truth[modality.value][missing]
        err += float(((rec - gt) ** 2).sum())
        zero += float((gt ** 2).sum())
        count += gt.numel()
    return err, zero, count

