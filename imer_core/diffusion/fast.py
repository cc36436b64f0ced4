"""Faster inference for score networks: traced/frozen copies and CUDA-graph replay of a sampler loop.

Both are *inference only* and keyed by everything that fixes the computation
(network, input shape, presence of a condition, device, dtype), because a
trace or a CUDA graph is only valid for the shapes it was recorded with.

* :func:`trace_score_net` — ``torch.jit.trace`` + ``torch.jit.freeze`` (weights
  become constants, so the graph must be rebuilt whenever the weights change:
  :class:`InferenceCache` is emptied by the owning model on ``train()`` and
  ``load_state_dict``).  Each trace is checked against the eager network on the
  example inputs and refused when they disagree.
* :class:`CudaGraphRunner` — captures a whole sampler call (all of its score
  evaluations) in one ``torch.cuda.CUDAGraph`` per key and replays it, so a
  100-step sampler is one launch instead of 100 × hundreds.  Random numbers come
  from the default CUDA generator (graph-safe Philox offsets).  Anything that
  fails during capture falls back to the eager call with one warning.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

BACKENDS = ("eager", "traced", "cuda-graph")


def check_backend(name: str) -> str:
    """Normalised backend name; ``ValueError`` for unknown names."""
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown inference backend {name!r}; available: {', '.join(BACKENDS)}")
    return key


def trace_score_net(net: nn.Module, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None,
                    tolerance: float = 1e-4) -> "TracedScoreNet":
    """A traced and frozen copy of ``net`` for inputs shaped like ``(x, t, condition)``.

    The eager network runs once first (so cached positional tables and masks
    exist and are recorded as constants), then the trace is frozen and compared
    with that eager output; a difference above ``tolerance`` (relative to the
    output scale) raises ``RuntimeError``.
    """
    args = tuple(a for a in (x, t, condition) if a is not None)
    frozen = trace_module(net, *args, tolerance=tolerance)
    return TracedScoreNet(frozen, conditioned=condition is not None)


def trace_module(module: nn.Module, *example: torch.Tensor, tolerance: float = 1e-4) -> torch.jit.ScriptModule:
    """A traced and frozen copy of a tensor-to-tensor ``module`` for inputs shaped like ``example``.

    Checked against the eager module on ``example`` as :func:`trace_score_net`.
    """
    was_training = module.training
    module.eval()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = tuple(a.clone() for a in example)
        expected = module(*args)
        frozen = torch.jit.freeze(torch.jit.trace(module, args, check_trace=False).eval())
        got = frozen(*args)
    module.train(was_training)
    scale = float(expected.abs().max().clamp_min(1.0))
    error = float((got - expected).abs().max())
    if not error <= tolerance * scale:
        raise RuntimeError(f"traced network disagrees with the eager one (max error {error:.3g})")
    return frozen


class TracedScoreNet:
    """Callable ``(x, t, condition=None)`` around a frozen trace (the samplers' score-function interface)."""

    def __init__(self, module: torch.jit.ScriptModule, conditioned: bool) -> None:
        self.module = module
        self.conditioned = conditioned

    def __call__(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if (condition is not None) != self.conditioned:
            raise ValueError("this trace was recorded " + ("with" if self.conditioned else "without") + " a condition")
        return self.module(x, t, condition) if self.conditioned else self.module(x, t)


class InferenceCache:
    """A bounded LRU map ``key → compiled object`` that never travels with copies or pickles of its owner."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = int(capacity)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached value of ``key``, built (and the oldest entry dropped when full) on a miss."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = build()
        self._items[key] = value
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every entry (weights changed, or the model left inference)."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __deepcopy__(self, memo: dict) -> "InferenceCache":
        return InferenceCache(self.capacity)

    def __getstate__(self) -> dict:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict) -> None:
        self.capacity = int(state.get("capacity", 32))
        self._items = OrderedDict()


class CudaGraphRunner:
    """Replays ``fn(condition)`` from a CUDA graph captured once per key (see module docstring).

    ``fn`` must be a pure function of its input tensor with fixed output shape,
    must not synchronise with the host and must draw its noise from the default
    CUDA generator.  Outputs are cloned out of the graph's static buffer.
    """

    def __init__(self, capacity: int = 16) -> None:
        self._graphs = InferenceCache(capacity)
        self._failed: set[Hashable] = set()

    @staticmethod
    def available(device: torch.device) -> bool:
        """Whether CUDA graphs can be used on ``device``."""
        return device.type == "cuda" and torch.cuda.is_available()

    def run(self, key: Hashable, fn: Callable[[torch.Tensor], torch.Tensor], condition: torch.Tensor) -> torch.Tensor:
        """``fn(condition)``, from the captured graph of ``key`` when capture works, else eagerly."""
        if not self.available(condition.device) or key in self._failed:
            return fn(condition)
        try:
            graph, static_in, static_out = self._graphs.get(key, lambda: self._capture(fn, condition))
        except Exception as exc:  # noqa: BLE001 — any capture failure must leave the eager path working
            self._failed.add(key)
            log.warning("CUDA graph capture failed (%s: %s); sampling eagerly for this shape", type(exc).__name__, exc)
            return fn(condition)
        static_in.copy_(condition)
        graph.replay()
        return static_out.clone()

    @staticmethod
    def _capture(fn: Callable[[torch.Tensor], torch.Tensor],
                 condition: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor]:
        static_in = condition.detach().clone()
        side = torch.cuda.Stream(device=condition.device)
        side.wait_stream(torch.cuda.current_stream(condition.device))
        with torch.cuda.stream(side):                           # warm-up outside the graph (allocator, kernels)
            for _ in range(2):
                fn(static_in)
        torch.cuda.current_stream(condition.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = fn(static_in)
        return graph, static_in, static_out

    def clear(self) -> None:
        """Drop every captured graph (weights changed)."""
        self._graphs.clear()
        self._failed.clear()
