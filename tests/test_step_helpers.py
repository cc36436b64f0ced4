"""Trainer-side train-step helpers: RoHyDR's discriminator step and stage agreement across processes.

torch.distributed lives in training/ (DistributedStepHelpers); the model package only sees the
StepHelpers interface, whose default serves one process.
"""

from __future__ import annotations

import ast
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from imer_core.methods.base import StepHelpers

ROOT = Path(__file__).resolve().parents[1]


def test_the_model_package_never_imports_torch_distributed():
    offenders = []
    for path in (ROOT / "imer_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom)
                     and node.module else [])
            if any(n.startswith(("torch.distributed", "torch.nn.parallel")) for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_default_helpers_step_on_the_given_loss_or_zero_gradients():
    layer = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    before = layer.weight.detach().clone()
    StepHelpers().step_detached(optimizer, list(layer.parameters()), None)
    torch.testing.assert_close(layer.weight, before)
    loss = layer(torch.ones(1, 3)).sum()
    StepHelpers().step_detached(optimizer, list(layer.parameters()), loss)
    torch.testing.assert_close(layer.weight, before - 0.5)
    flags = torch.tensor([0.0, 1.0])
    assert StepHelpers().agree_max(flags) is flags


HANG_BOUND_S = 180.0   # the two ranks take ~10 s; only a hung collective or rendezvous gets near this


def _rank(rank: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    # rendezvous through a file (no port to pick, none to lose to another process); a peer that never
    # arrives fails the collective after the timeout, instead of gloo's 30 min default
    dist.init_process_group("gloo", init_method=f"file://{Path(out_dir) / 'rendezvous'}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=HANG_BOUND_S / 2))
    try:
        from small_model_data import small_features, small_specs  # not conftest: it imports Qt and media
        from torch.nn.parallel import DistributedDataParallel

        from imer_core.config import FusionConfig, ModelConfig
        from imer_core.registry import create_model
        from training.distributed import DistributedStepHelpers

        torch.manual_seed(0)                                           # identical initial weights
        options = {"dit_hidden": 16, "dit_depth": 1, "dit_heads": 2, "refiner_blocks": 1, "sampler_steps": 2,
                   "train_sampler_steps": 2}
        fusion = FusionConfig(d_model=32, num_heads=4, nlevels=1, mem_layers=1)
        model = create_model(ModelConfig(method="rohydr", specs=small_specs(),
                                         method_options={**options, "fusion": fusion}))
        model.prepare_stage("recovery")
        model.train()
        optimizers = model.configure_optimizers(1e-2)
        forward = DistributedDataParallel(model, find_unused_parameters=True)
        # rank 0 misses modalities in three rows (stages 1-3 run), rank 1 in none: without agreement
        # rank 1 would skip stages 1-2 and the collectives would hang or the replicas diverge.
        mask = (torch.tensor([[1, 0, 1], [0, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=torch.bool) if rank == 0
                else torch.ones(4, 3, dtype=torch.bool))
        initial = {name: p.detach().clone() for name, p in model.named_parameters()}
        torch.manual_seed(10 + rank)                                   # different data and noise per rank
        model.train_step(small_features(4, seed=rank), torch.randn(4, 1), mask, optimizers, 0.6, forward=forward,
                         helpers=DistributedStepHelpers())
        final = {name: p.detach().clone() for name, p in model.named_parameters()}
        torch.save({"final": final, "initial": initial}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _join_or_kill(context: mp.ProcessContext, bound_s: float) -> None:
    """Join the spawned ranks; kill them and fail if they are still running after ``bound_s``."""
    deadline = time.monotonic() + bound_s
    while not context.join(timeout=1.0):                 # raises if a rank failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the two ranks were still running after {bound_s:.0f} s (a hung collective)")


@pytest.mark.distributed
def test_two_processes_keep_rohydrs_discriminator_and_weights_identical(tmp_path):
    # Results come back through files, not an mp.Manager: a Manager's server process is forked from this
    # process, whose other threads (Qt, BLAS, CTranslate2 from earlier tests) may hold a lock at the fork:
    # CI once hung here for the rest of its 90 minutes.
    _join_or_kill(mp.spawn(_rank, args=(str(tmp_path),), nprocs=2, join=False), HANG_BOUND_S)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    first, second, initial = ranks[0]["final"], ranks[1]["final"], ranks[0]["initial"]
    discriminator = [n for n in first if n.startswith("discriminator.")]
    assert discriminator, "the discriminator has parameters"
    # the step ran (identical replicas alone would also hold if neither rank stepped the discriminator)
    assert any(not torch.equal(first[n], initial[n]) for n in discriminator), "the discriminator was not stepped"
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, msg=name)


def _sleep_on_rank_1(rank: int) -> None:
    time.sleep(600 if rank == 1 else 0)


def test_a_rank_that_never_finishes_is_killed_and_fails_the_test():
    context = mp.spawn(_sleep_on_rank_1, nprocs=2, join=False)
    with pytest.raises(pytest.fail.Exception, match="still running after 3 s"):
        _join_or_kill(context, 3.0)
    for process in context.processes:
        process.join(timeout=30)
    assert not any(process.is_alive() for process in context.processes)
