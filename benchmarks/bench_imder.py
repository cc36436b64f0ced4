"""IMDer benchmark: recovery latency per sample, recovery quality per sampler, training throughput.

Writes a markdown section with the machine's description to ``docs/benchmarks.md``
(or ``--out``).  Not a test: it takes minutes.  Quality numbers come from a
model trained here on the SYNTHETIC MOSI-schema benchmark with the settings
printed in the report; they are not paper numbers.

    python benchmarks/bench_imder.py                 # CPU, full report
    python benchmarks/bench_imder.py --device cuda   # on a GPU machine
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imer_core.methods.base import PRETRAIN, RECOVERY, SamplingOptions  # noqa: E402
from imer_core.modalities import mask_from_available  # noqa: E402
from training.distributed import DistContext, torch_device  # noqa: E402
from training.experiment import load_experiment, with_train  # noqa: E402
from training.protocol_spec import make_protocol  # noqa: E402
from training.runner import build_model, load_data  # noqa: E402
from training.runs import RunFolder, machine_info  # noqa: E402
from training.trainer import Trainer, seed_everything  # noqa: E402

SAMPLER_SETTINGS = (("euler-maruyama", 100), ("heun", 5), ("heun", 10), ("heun", 20))
PATTERNS = {"vision missing (l,a → v)": ("text", "audio"), "audio+vision missing (l → a,v)": ("text",)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_recovery(model, specs, device: torch.device, batch: int, available, sampler: str, steps: int,
                  repeats: int) -> float:
    """Median milliseconds per sample of ``model.predict`` (recovery + fusion) for one missing pattern."""
    features = {s.modality.value: torch.randn(batch, s.seq_len, s.dim, device=device) for s in specs}
    mask = mask_from_available(available, batch, device=device)
    options = SamplingOptions(sampler=sampler, steps=steps, seed=0)
    model.predict(features, mask, options)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        model.predict(features, mask, options)
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / batch


def latency_table(model, specs, device, quick: bool) -> list[str]:
    lines = ["| pattern | sampler | steps | batch 1 (ms/sample) | batch 32 (ms/sample) |", "|---|---|---|---|---|"]
    for name, available in PATTERNS.items():
        for sampler, steps in SAMPLER_SETTINGS:
            one = time_recovery(model, specs, device, 1, available, sampler, steps, 3 if quick else 5)
            many = time_recovery(model, specs, device, 32, available, sampler, steps, 1 if quick else 3)
            lines.append(f"| {name} | {sampler} | {steps} | {one:.1f} | {many:.2f} |")
    return lines


def throughput(trainer: Trainer, stage: str, batches: int) -> float:
    """Training samples per second over a few batches of ``stage``."""
    model = trainer.model
    model.prepare_stage(stage)
    optimizers = model.configure_optimizers(trainer.config.learning_rate)
    loader = trainer._loader("train", shuffle=True, epoch=1)
    protocol = make_protocol("batch:0.3")
    count, start = 0, None
    for index, batch in enumerate(loader):
        if index == 1:
            _sync(trainer.ctx.device)
            start, count = time.perf_counter(), 0  # the first batch is a warm-up
        if index > batches:
            break
        features, labels = trainer._to_device(batch)
        mask = torch.ones(labels.shape[0], 3, dtype=torch.bool) if stage == PRETRAIN else torch.as_tensor(
            protocol.train_mask(index, len(loader), batch["index"].numpy(), 1, np.random.default_rng(0)))
        model.train_step(features, labels, mask.to(trainer.ctx.device), optimizers, trainer.config.grad_clip)
        count += labels.shape[0]
    _sync(trainer.ctx.device)
    return count / (time.perf_counter() - start)


def replace_section(document: str, heading_prefix: str, section: str) -> str:
    """Replace the ``## ...`` section whose heading starts with ``heading_prefix`` (or append it)."""
    parts = document.split("\n## ")
    kept = [parts[0].rstrip()] + ["## " + p.rstrip() for p in parts[1:] if not ("## " + p).startswith(heading_prefix)]
    return "\n\n".join(kept + [section.rstrip()]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a shorter training run")
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    parser.add_argument("--recovery-epochs", type=int, default=6)
    parser.add_argument("--train-sampler", default="heun")
    parser.add_argument("--train-sampler-steps", type=int, default=5)
    parser.add_argument("--sizes", default="640,160,320", help="train,valid,test sizes of the synthetic benchmark")
    args = parser.parse_args()

    device = torch_device(args.device)
    seed_everything(0)
    ctx = DistContext(device=device)
    experiment = load_experiment("imder_synthetic_mosi", [
        f"model.options.train_sampler_steps={args.train_sampler_steps}",
        f'model.options.train_sampler="{args.train_sampler}"', f"data.synthetic_sizes=[{args.sizes}]"])
    # validation during training uses the fast sampler (the quality table below evaluates every sampler)
    experiment = with_train(experiment, pretrain_max_epochs=args.pretrain_epochs, max_epochs=args.recovery_epochs,
                            early_stop=max(args.recovery_epochs, args.pretrain_epochs), eval_sampler="heun",
                            eval_sampler_steps=10)
    data = load_data(experiment, Path(args.work) / "data")
    model = build_model(experiment, data.specs).to(device).eval()
    report = [f"## IMDer on {device.type.upper()} ({time.strftime('%Y-%m-%d')})", "",
              "Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()), "",
              f"Model: IMDer with MOSI dims (768, 5, 20), length 50, nlevels 4, "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters.", "",
              "### Recovery latency (recovery of the missing modalities + fusion + head), median", ""]
    report += latency_table(model, data.specs, device, args.quick)
    print("\n".join(report), flush=True)

    trainer = Trainer(model, data.datasets, experiment.train, make_protocol("batch:0.3"), ctx,
                      RunFolder(Path(args.work) / "run"), seed=0, progress=False)
    report += ["", "### Training throughput (samples/s, batch 32)", "",
               "| stage | train sampler, steps | samples/s |", "|---|---|---|",
               f"| pretrain (complete data) | – | {throughput(trainer, PRETRAIN, 5):.1f} |",
               f"| recovery, MR 0.3 schedule | {args.train_sampler}, {args.train_sampler_steps} | "
               f"{throughput(trainer, RECOVERY, 5):.1f} |"]
    ref_trainer = replace(experiment, method_options={**experiment.method_options, "train_sampler": "euler-maruyama",
                                                      "train_sampler_steps": 100})
    ref_model = build_model(ref_trainer, data.specs).to(device)
    ref = Trainer(ref_model, data.datasets, experiment.train, make_protocol("batch:0.3"), ctx,
                  RunFolder(Path(args.work) / "ref"), seed=0, progress=False)
    report.append(f"| recovery, MR 0.3 schedule (reference setting) | euler-maruyama, 100 | "
                  f"{throughput(ref, RECOVERY, 3):.1f} |")

    seed_everything(0)
    model = build_model(experiment, data.specs)
    trainer = Trainer(model, data.datasets, experiment.train, make_protocol("sample:0.3"), ctx,
                      RunFolder(Path(args.work) / "quality"), seed=0, progress=True)
    started = time.perf_counter()
    trainer.fit(PRETRAIN)
    trainer.fit(RECOVERY)
    train_minutes = (time.perf_counter() - started) / 60
    report += ["", "### Recovery quality per sampler (SYNTHETIC MOSI-schema benchmark, test split, "
               "per-sample protocol MR 0.3)", "",
               f"Trained here on {args.sizes} (train, valid, test) samples for at most {args.pretrain_epochs} "
               f"pre-training + {args.recovery_epochs} recovery epochs, the refiners seeing {args.train_sampler} "
               f"samples with {args.train_sampler_steps} steps ({train_minutes:.1f} min); synthetic data, not a "
               "paper reproduction.", "",
               "| sampler | steps | recovery MSE | zero-fill MSE | Non0 Acc-2 | Has0 Acc-2 | MAE | eval s |",
               "|---|---|---|---|---|---|---|---|"]
    for sampler, steps in SAMPLER_SETTINGS:
        t0 = time.perf_counter()
        res = trainer.evaluate("test", sampling=SamplingOptions(sampler=sampler, steps=steps, seed=0))
        report.append(f"| {sampler} | {steps} | {res['recovery_mse']:.4f} | {res['zero_fill_mse']:.4f} | "
                      f"{100 * res['Non0_acc_2']:.1f} | {100 * res['Has0_acc_2']:.1f} | {res['MAE']:.3f} | "
                      f"{time.perf_counter() - t0:.1f} |")
    text = "\n".join(report) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "# Benchmarks\n\nWritten by the scripts in `benchmarks/`; each section names its machine.\n\n"
    out.write_text(replace_section(out.read_text() if out.exists() else header, f"## IMDer on {device.type.upper()}",
                                   text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
