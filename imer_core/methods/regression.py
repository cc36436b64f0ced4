"""Conditional-regression recovery: the baseline a generative recovery method must beat.

Same backbone as :class:`~imer_core.methods.imder.IMDer` — MulT projections and
fusion, the same conditions (the available projection, or the 1×1 convolution
of the two available ones) and the same RCAN refiner — but no diffusion: the
refiner maps the condition **directly** to the missing modality's projection and
is trained with the mean squared error to the true projection (plus the task
loss, with IMDer's weighting).  Everything is inherited from IMDer's code; only
the generator is switched off (:attr:`IMDer.generative`), so the two differ in
exactly one thing: sampling from a learned score versus a deterministic regression.

The MSE-optimal deterministic recovery is the conditional mean ``E[x_m | c]``;
this model estimates it, so a diffusion recovery whose MSE does not beat it gains
nothing in MSE (it may still gain in the distribution of its samples).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import register_method
from .base import SamplingOptions
from .imder import IMDer, IMDerOptions

REGRESSION_SAMPLER = "mean"
"""The only "sampler" of the baseline: one deterministic pass."""


@dataclass(frozen=True)
class RegressionOptions(IMDerOptions):
    """IMDer's options; the sampler fields are fixed to ``"mean"`` (score-network options are unused)."""

    sampler: str = REGRESSION_SAMPLER
    train_sampler: str = REGRESSION_SAMPLER

    def _check_samplers(self) -> None:
        for name in (self.sampler, self.train_sampler):
            if name.strip().lower() != REGRESSION_SAMPLER:
                raise ValueError(f"the regression baseline has no sampler but {REGRESSION_SAMPLER!r}, got {name!r}")
        if self.distill_steps:
            raise ValueError("the regression baseline has nothing to distil (distill_steps must be 0)")


@register_method
class ConditionalRegression(IMDer):
    """Deterministic conditional regression of missing projections (see module docstring)."""

    name = "regression"
    options_class = RegressionOptions
    display_name = "Regression"
    summary = "deterministic regression of the missing projections (IMDer without diffusion); the baseline"
    fast_sampler = REGRESSION_SAMPLER
    uses_sampler_steps = False
    live_rank = None
    generative = False

    def _training_sampler(self) -> None:
        return None

    def _inference_sampler(self, sampling: SamplingOptions | None) -> None:
        if sampling is not None and sampling.sampler not in (None, REGRESSION_SAMPLER):
            raise ValueError(f"the regression baseline has no sampler {sampling.sampler!r} "
                             f"(only {REGRESSION_SAMPLER!r})")
        return None

    def enable_distillation(self, steps: int, make_default: bool = True):
        """Not available: there is no sampler to distil."""
        raise ValueError("the regression baseline has no diffusion sampler to distil")
