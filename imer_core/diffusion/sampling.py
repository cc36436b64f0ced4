"""One sampler contract for both diffusion families, and one registry of samplers.

A *process* defines the forward noising and its family:

* ``"score"`` — the VE-SDE of IMDer (:class:`~imer_core.diffusion.sde.VESDE`); the
  network returns the score ``∇ log p_t(x | c)`` at continuous times ``t ∈ (0, 1]``;
* ``"ddpm"`` — the discrete Gaussian diffusion of RoHyDR
  (:class:`~imer_core.diffusion.ddpm.GaussianDiffusion`); the network returns the
  noise ``ε`` at integer steps.

Every sampler of either family has the same call::

    sampler.sample(model_fn, process, shape, condition=None, generator=None, device=None, noise=None)

where ``model_fn(x, t, condition)`` is the family's network, ``noise`` (of
``shape``, standard normal) replaces the sampler's initial draw, and the step
count is a constructor argument (``sampler.steps``), so one trained network can
be sampled with different budgets.  :func:`make_sampler` builds a registered
sampler by family and name; :func:`available_samplers` lists a family's names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch

SCORE = "score"
DDPM = "ddpm"
FAMILIES = (SCORE, DDPM)

ModelFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""A family's network ``(x, t, condition) -> score or ε``."""


@runtime_checkable
class Sampler(Protocol):
    """What a method asks of a sampler (see module docstring)."""

    name: str
    family: str

    @property
    def steps(self) -> int:
        """Number of sampler steps."""
        ...

    def sample(self, model_fn: ModelFn, process: Any, shape: Sequence[int], condition: torch.Tensor | None = None,
               generator: torch.Generator | None = None, device: torch.device | str | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Samples of ``shape`` from the reverse process of ``process`` driven by ``model_fn``."""
        ...


SamplerT = TypeVar("SamplerT", bound=type)
_SAMPLERS: dict[str, dict[str, type]] = {family: {} for family in FAMILIES}


def register_sampler(cls: SamplerT) -> SamplerT:
    """Class decorator registering a sampler under its ``family`` and ``name``.

    The class is built as ``cls(steps, **options)`` (``cls(**options)`` for its default step count).
    """
    family, name = getattr(cls, "family", ""), getattr(cls, "name", "")
    if family not in _SAMPLERS:
        raise ValueError(f"{cls.__name__}: family must be one of {FAMILIES}, got {family!r}")
    if not name or name != name.strip().lower():
        raise ValueError(f"{cls.__name__}: name must be non-empty lower case, got {name!r}")
    existing = _SAMPLERS[family].get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"{family} sampler {name!r} is already registered by {existing.__name__}")
    _SAMPLERS[family][name] = cls
    return cls


def _family(family: str) -> dict[str, type]:
    _load_builtins()
    if family not in _SAMPLERS:
        raise ValueError(f"unknown diffusion family {family!r}; expected one of {FAMILIES}")
    return _SAMPLERS[family]


def _load_builtins() -> None:
    from . import ddpm, samplers  # noqa: F401 - registers the built-in samplers


def available_samplers(family: str) -> list[str]:
    """Names accepted by :func:`make_sampler` for ``family`` (``"score"`` or ``"ddpm"``)."""
    return sorted(_family(family))


def make_sampler(family: str, name: str, steps: int | None = None, **options: Any) -> Sampler:
    """Build the ``family`` sampler called ``name`` with ``steps`` steps (``None``: its default).

    ``options`` go to the sampler's constructor (score samplers: ``eps``; DDPM samplers:
    ``clip_denoised``).

    Raises:
        ValueError: unknown family or name, or ``steps < 1``.
    """
    registered = _family(family)
    key = str(name).strip().lower()
    if key not in registered:
        raise ValueError(f"unknown sampler {name!r}; available: {', '.join(sorted(registered))}")
    if steps is None:
        return registered[key](**options)
    if int(steps) < 1:
        raise ValueError(f"sampler steps must be >= 1, got {steps}")
    return registered[key](int(steps), **options)
