"""Real-time IMDer (issue 16): faithful 100-step sampler vs Heun-5 vs the distilled generator.

One model is trained here on the SYNTHETIC MOSI-schema benchmark (not a paper
reproduction), distilled with ``training.distill`` (PF-ODE coupling distillation),
then

* latency: ``model.recover`` and ``model.predict`` at batch 1 with one and with
  two modalities missing, 1 thread, every setting timed in interleaved rounds
  (median), each figure printed with the 1-minute load average and as a ratio to
  the faithful Euler–Maruyama 100-step sampler of the same round set;
* quality: recovery MSE and Non0 Acc-2 on the test split, per-sample protocol
  MR 0.3 (the same deterministic masks for every sampler), same trained model.

    python benchmarks/bench_imder_realtime.py                  # prints the section, writes <work>/section.md
    python benchmarks/bench_imder_realtime.py --checkpoint runs/rt/model.pt   # skip training
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imer_core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from imer_core.diffusion.distill import DistillOptions  # noqa: E402
from imer_core.methods.base import PRETRAIN, RECOVERY, SamplingOptions  # noqa: E402
from imer_core.modalities import mask_from_available  # noqa: E402
from training.distill import distill_model  # noqa: E402
from training.distributed import DistContext  # noqa: E402
from training.experiment import load_experiment, with_train  # noqa: E402
from training.protocol_spec import make_protocol  # noqa: E402
from training.runner import build_model, load_data  # noqa: E402
from training.runs import RunFolder, machine_info  # noqa: E402
from training.trainer import Trainer, seed_everything  # noqa: E402

HEADING = "## Real-time IMDer: distilled generator vs the faithful sampler (CPU"
PATTERNS = {"one missing (l,a → v)": ("text", "audio"), "two missing (l → a,v)": ("text",)}
LATENCY_SETTINGS = (("euler-maruyama", 100, "eager"), ("heun", 5, "eager"), ("heun", 5, "traced"),
                    ("distilled", 1, "eager"), ("distilled", 1, "traced"), ("distilled", 2, "traced"))
QUALITY_SETTINGS = (("euler-maruyama", 100), ("heun", 5), ("distilled", 1), ("distilled", 2))


def load1() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def latency_rows(model, specs, rounds: int) -> list[str]:
    """Median ms of recover / predict per setting and pattern over interleaved rounds, with load averages."""
    features = {s.modality.value: torch.randn(1, s.seq_len, s.dim) for s in specs}
    rows = ["| pattern | sampler | steps | backend | recover ms | predict ms | × faster than EM-100 (recover) | "
            "load avg (1 min) |", "|---|---|---|---|---|---|---|---|"]
    full = mask_from_available(("text", "audio", "vision"), 1)
    for name, available in PATTERNS.items():
        mask = mask_from_available(available, 1)
        times: dict[tuple, dict[str, list[float]]] = {s: {"recover": [], "predict": []} for s in LATENCY_SETTINGS}
        loads: dict[tuple, list[float]] = {s: [] for s in LATENCY_SETTINGS}
        for setting in LATENCY_SETTINGS:                                   # warm-up (traces, caches)
            sampler, steps, backend = setting
            model.predict(features, mask, SamplingOptions(sampler=sampler, steps=steps, backend=backend))
        for _ in range(rounds):
            for setting in LATENCY_SETTINGS:
                sampler, steps, backend = setting
                options = SamplingOptions(sampler=sampler, steps=steps, backend=backend)
                loads[setting].append(load1())
                for kind, call in (("recover", model.recover), ("predict", model.predict)):
                    start = time.perf_counter()
                    call(features, mask, options)
                    times[setting][kind].append(1000 * (time.perf_counter() - start))
        base = statistics.median(times[LATENCY_SETTINGS[0]]["recover"])
        for setting in LATENCY_SETTINGS:
            rec, pred = (statistics.median(times[setting][k]) for k in ("recover", "predict"))
            sampler, steps, backend = setting
            rows.append(f"| {name} | {sampler} | {steps} | {backend} | {rec:.1f} | {pred:.1f} | {base / rec:.1f} | "
                        f"{min(loads[setting]):.1f}–{max(loads[setting]):.1f} |")
            print(rows[-1], flush=True)
    floor = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.predict(features, full)
        floor.append(1000 * (time.perf_counter() - start))
    rows.append(f"| nothing missing (projections + fusion only) | – | – | – | – | {statistics.median(floor):.1f} | – | "
                f"{load1():.1f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="", help="also write the section into this markdown file (replacing it)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench_realtime"))
    parser.add_argument("--checkpoint", default=None, help="a trained model of an earlier run (skips training)")
    parser.add_argument("--sizes", default="480,120,240", help="train,valid,test sizes of the synthetic benchmark")
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--recovery-epochs", type=int, default=4)
    parser.add_argument("--distill-epochs", type=int, default=6)
    parser.add_argument("--distill-steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seed_everything(0)
    work = Path(args.work)
    ctx = DistContext(device=torch.device("cpu"))
    experiment = load_experiment("imder_synthetic_mosi", [
        'model.options.train_sampler="heun"', "model.options.train_sampler_steps=5",
        f"data.synthetic_sizes=[{args.sizes}]"])
    experiment = with_train(experiment, pretrain_max_epochs=args.pretrain_epochs, max_epochs=args.recovery_epochs,
                            early_stop=max(args.pretrain_epochs, args.recovery_epochs), eval_sampler="heun",
                            eval_sampler_steps=5)
    data = load_data(experiment, work / "data")
    started = time.perf_counter()
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
        train_note = f"loaded from {args.checkpoint}"
    else:
        model = build_model(experiment, data.specs)
        trainer = Trainer(model, data.datasets, experiment.train, make_protocol("sample:0.3"), ctx,
                          RunFolder(work / "run"), seed=0, progress=False)
        trainer.fit(PRETRAIN)
        trainer.fit(RECOVERY)
        save_checkpoint(model, work / "model.pt")
        train_note = (f"trained here: {args.pretrain_epochs} pre-training + {args.recovery_epochs} recovery epochs at "
                      f"most, refiners on Heun-5 samples, {(time.perf_counter() - started) / 60:.1f} min")
    print(train_note, flush=True)
    options = DistillOptions(steps=args.distill_steps, teacher_steps=5, epochs=args.distill_epochs,
                             batch_size=64, learning_rate=5e-4)
    report = distill_model(model, data.datasets, options, log=lambda m: print(m, flush=True))
    save_checkpoint(model, work / "model-distilled.pt")
    model.eval()

    report_lines = [f"{HEADING}, {time.strftime('%Y-%m-%d')})", "",
                    "Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()), "",
                    f"`python benchmarks/bench_imder_realtime.py` — IMDer with MOSI dims (768, 5, 20), length 50, "
                    f"{sum(p.numel() for p in model.score_nets.parameters()) / 1e6:.2f} M score-network parameters; "
                    f"SYNTHETIC MOSI-schema benchmark ({args.sizes} train/valid/test), {train_note}; not a paper "
                    "reproduction.", "",
                    f"Distillation (`training/distill.py`, PF-ODE coupling distillation after Liu et al. 2023): "
                    f"teacher Heun-5 (the sampler the refiners were trained on), student trained for "
                    f"{options.steps} step(s) (its 1-step output is trained too), {options.epochs} epochs, "
                    f"{report.seconds / 60:.1f} min; validation MSE to the teacher {report.initial_valid_loss:.4f} → "
                    f"{report.valid_loss:.4f} (best epoch {report.best_epoch}).", "",
                    "### Latency, batch 1, 1 thread (median of interleaved rounds; this 2-core machine was shared "
                    "with other jobs, see the load column)", ""]
    report_lines += latency_rows(model, data.specs, args.rounds)
    print("\n".join(report_lines), flush=True)

    trainer = Trainer(model, data.datasets, experiment.train, make_protocol("sample:0.3"), ctx,
                      RunFolder(work / "eval", enabled=False), seed=0, progress=False)
    report_lines += ["", "### Quality, test split, per-sample protocol MR 0.3 (same model, same masks, seed 0)", "",
                     "| sampler | steps | recovery MSE | Δ MSE vs EM-100 | Non0 Acc-2 | Δ Acc-2 (points) | MAE | "
                     "eval s | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    reference = None
    for sampler, steps in QUALITY_SETTINGS:
        t0 = time.perf_counter()
        res = trainer.evaluate("test", sampling=SamplingOptions(sampler=sampler, steps=steps, seed=0))
        mse, acc = res["recovery_mse"], 100 * res["Non0_acc_2"]
        reference = reference or (mse, acc)
        report_lines.append(f"| {sampler} | {steps} | {mse:.4f} | {100 * (mse / reference[0] - 1):+.1f} % | "
                            f"{acc:.1f} | {acc - reference[1]:+.1f} | {res['MAE']:.3f} | "
                            f"{time.perf_counter() - t0:.1f} | {load1():.1f} |")
        print(report_lines[-1], flush=True)
    text = "\n".join(report_lines) + "\n"
    (work / "section.md").write_text(text)
    print(text)
    if args.out:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_imder import replace_section  # noqa: E402 — same folder

        out = Path(args.out)
        out.write_text(replace_section(out.read_text(), HEADING, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
