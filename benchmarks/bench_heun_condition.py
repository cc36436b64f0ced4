"""How the Heun sampler should noise IMDer's condition: ``cond + σ z_T`` (shared), fresh noise, or none.

Two measurements, each printed with the 1-minute load average:

1. **Exact minimiser, Gaussian toy** (seconds): per entry ``c ~ N(0, 1)``,
   ``x0 = μ + a c + b n``.  The IMDer training loss noises ``x0`` and the
   condition with one ``z``; its exact minimiser is the linear
   ``-E[z | x0 + σz, c + σz] / σ`` (:func:`optimal_score`).  Each sampler variant
   is run with it and its samples are compared with ``x0`` (MSE) and with
   ``p(x0 | c) = N(μ + a c, b²)`` (slope, residual std).
2. **Trained model** (``--checkpoint``, an IMDer checkpoint trained on the
   linear-Gaussian task, e.g. ``imer-train train --config quick_compare_imder
   --synthetic --set data.synthetic_kind='"linear-gaussian"'``): recovery MSE,
   Non0 Acc-2 and MAE of each variant on the test split (per-sample MR 0.5), beside
   the exact Bayes-optimal recovery MSE in the model's recovery space.

    python benchmarks/bench_heun_condition.py [--checkpoint runs/x/model.pt --steps 10]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imer_core.diffusion.samplers import EulerMaruyamaSampler, HeunSampler  # noqa: E402
from imer_core.diffusion.sde import VESDE  # noqa: E402

VARIANTS = HeunSampler.CONDITION_NOISE
TOY_CASES = ((1.0, 0.5, 0.0), (0.8, 0.3, 2.0), (0.5, 1.0, 0.0))


def optimal_score(sde: VESDE, a: float, b: float, mu: float = 0.0) -> Callable[..., torch.Tensor]:
    """The exact minimiser of the shared-noise score-matching loss for ``x0 = μ + a c + b n`` (see module doc)."""
    def score(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s = sde.marginal_std(t).view(-1, *([1] * (x.dim() - 1)))
        var_u, var_v, cov_uv = a * a + b * b + s * s, 1 + s * s, a + s * s
        det = var_u * var_v - cov_uv * cov_uv
        # E[z | u, v] = [σ, σ] Σ⁻¹ [u, v]ᵀ with u = x - μ, v = cond.
        expected_z = s * ((var_v - cov_uv) * (x - mu) + (var_u - cov_uv) * cond) / det
        return -expected_z / s
    return score


def conditional_score(sde: VESDE, a: float, b: float, mu: float = 0.0) -> Callable[..., torch.Tensor]:
    """The true conditional score ``∇ log p(x_σ | c) = -(x - μ - a c) / (b² + σ²)`` (control)."""
    def score(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s = sde.marginal_std(t).view(-1, *([1] * (x.dim() - 1)))
        return -(x - mu - a * cond) / (b * b + s * s)
    return score


def toy_results(n: int = 4000, steps: int = 10, seed: int = 0) -> list[dict[str, float | str]]:
    """Every (case, sampler) of measurement 1: slope, residual std and MSE to ``x0``."""
    sde, rows = VESDE(25.0), []
    gen = torch.Generator().manual_seed(seed)
    for a, b, mu in TOY_CASES:
        c = torch.randn(n, 1, generator=gen)
        x0 = mu + a * c + b * torch.randn(n, 1, generator=gen)
        score = optimal_score(sde, a, b, mu)
        samplers: list[tuple[str, object]] = [(f"heun-{v}", HeunSampler(steps, condition_noise=v)) for v in VARIANTS]
        samplers.append(("euler-maruyama-100 (reference)", EulerMaruyamaSampler(100)))
        samplers.append(("control: heun-none, true ∇log p(x_σ|c)", HeunSampler(steps, condition_noise="none")))
        for name, sampler in samplers:
            fn = conditional_score(sde, a, b, mu) if name.startswith("control") else score
            out = sampler.sample(fn, sde, c.shape, c, generator=torch.Generator().manual_seed(seed + 1))
            resid = out - (mu + a * c)
            rows.append({"case": f"a={a} b={b} μ={mu}", "sampler": name,
                         "slope": float((out - mu).T @ c / (c.T @ c)), "true_slope": a,
                         "resid_std": float(resid.std()), "true_std": b,
                         "mse_to_x0": float(((out - x0) ** 2).mean()), "posterior_mean_mse": b * b})
    return rows


def trained_results(checkpoint: Path, steps: int, work: Path) -> list[dict[str, float | str]]:
    """Measurement 2 on a checkpoint trained on the linear-Gaussian task."""
    from imer_core.checkpoint import load_checkpoint
    from imer_core.methods.base import SamplingOptions
    from training.distributed import DistContext
    from training.experiment import load_experiment
    from training.oracle import bayes_optimal_metrics
    from training.protocol_spec import make_protocol
    from training.runner import load_data
    from training.runs import RunFolder
    from training.trainer import Trainer

    model = load_checkpoint(checkpoint, map_location="cpu")
    meta = getattr(model, "checkpoint_metadata", {}) or {}
    experiment = load_experiment(meta.get("experiment", "quick_compare_imder"),
                                 ["data.synthetic=true", 'data.synthetic_kind="linear-gaussian"'])
    data = load_data(experiment, work)
    protocol = make_protocol("sample:0.5", seed=1111)
    trainer = Trainer(model, data.datasets, experiment.train, protocol, DistContext(), RunFolder(work, enabled=False),
                      progress=False)
    test = data.datasets["test"]
    masks = protocol.eval_masks(len(test), experiment.train.batch_size, "test")
    best = bayes_optimal_metrics(data.oracle, test, masks, model)
    rows = []
    for variant in VARIANTS:
        model._inference_sampler = lambda sampling, v=variant: HeunSampler(steps, eps=model.options.eps,  # noqa: B023
                                                                           condition_noise=v)
        metrics = trainer.evaluate("test", sampling=SamplingOptions(seed=0))
        rows.append({"sampler": f"heun-{variant} ×{steps}", "recovery_mse": metrics["recovery_mse"],
                     "zero_fill_mse": metrics["zero_fill_mse"], "bayes_recovery_mse": best["bayes_recovery_mse"],
                     "acc2": 100 * metrics["Non0_acc_2"], "bayes_acc2": 100 * best["bayes_Non0_acc_2"],
                     "mae": metrics["MAE"], "bayes_mae": best["bayes_MAE"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="IMDer checkpoint trained on the linear-Gaussian task")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_heun_condition")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"## 1. exact loss minimiser, Gaussian toy (load {os.getloadavg()[0]:.1f})")
    print("| case | sampler | slope (true) | residual std (true) | MSE to x0 (posterior mean) |")
    print("|---|---|---|---|---|")
    for r in toy_results(steps=args.steps):
        print(f"| {r['case']} | {r['sampler']} | {r['slope']:.3f} ({r['true_slope']}) | {r['resid_std']:.3f} "
              f"({r['true_std']}) | {r['mse_to_x0']:.3f} ({r['posterior_mean_mse']:.3f}) |")
    if args.checkpoint:
        rows = trained_results(args.checkpoint, args.steps, args.work)
        print(f"\n## 2. trained model {args.checkpoint} (load {os.getloadavg()[0]:.1f})")
        print("| sampler | recovery MSE | optimal | zero-fill | Acc-2 | optimal | MAE | optimal |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['sampler']} | {r['recovery_mse']:.4f} | {r['bayes_recovery_mse']:.4f} | "
                  f"{r['zero_fill_mse']:.4f} | {r['acc2']:.1f} | {r['bayes_acc2']:.1f} | {r['mae']:.3f} | "
                  f"{r['bayes_mae']:.3f} |")
        print(f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
