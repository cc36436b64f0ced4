"""Single-device and torchrun (DistributedDataParallel) execution from the same command.

Under ``torchrun`` the environment variables ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` are set; :func:`setup` then initialises the process group (NCCL
on CUDA, gloo on CPU) and each process trains on its shard of the data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from imer_core.devices import resolve_device
from imer_core.methods.base import StepHelpers


@dataclass(frozen=True)
class DistContext:
    """Where this process runs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torch_device(request: str = "auto", local_rank: int = 0) -> torch.device:
    """The :class:`torch.device` of a ``--device`` request (:func:`imer_core.devices.resolve_device`);
    plain ``cuda`` is the process's own GPU (``local_rank``) under torchrun."""
    name = resolve_device(request)
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup(device_request: str = "auto") -> DistContext:
    """Initialise distributed training when launched by torchrun, else a single-device context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch_device(device_request, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown() -> None:
    """Destroy the process group if one was created."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_floats(values: list[float], ctx: DistContext) -> list[float]:
    """Send rank 0's values to every rank (used for validation results)."""
    if not ctx.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64,
                          device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank."""
    if ctx.distributed:
        dist.barrier()


class DistributedStepHelpers(StepHelpers):
    """The collectives of :class:`~imer_core.methods.base.StepHelpers` over the torchrun process group."""

    distributed = True

    def agree_max(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise maximum over the ranks (in place, returned)."""
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return values

    def average_gradients(self, grads: Sequence[torch.Tensor]) -> None:
        """Mean over the ranks, in place."""
        for g in grads:
            dist.all_reduce(g)
            g.div_(dist.get_world_size())


def step_helpers(ctx: DistContext) -> StepHelpers:
    """The train-step helpers of this process: collectives under torchrun, identities otherwise."""
    return DistributedStepHelpers() if ctx.distributed else StepHelpers()
