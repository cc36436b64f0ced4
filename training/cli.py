"""``imer-train``: train, evaluate and sweep the recovery models.

Examples::

    imer-train train --config imder_mosi --data ~/data/MOSI/aligned_50.pkl --protocol batch:0.3
    imer-train sweep --config imder_mosi --data ~/data/MOSI/aligned_50.pkl --out runs/imder_mosi
    imer-train sweep --config quick_synthetic --seeds 1111 --out runs/quick
    imer-train evaluate --checkpoint runs/x/model.pt --data ~/data/MOSI/aligned_50.pkl --protocol sample:0.5
    imer-train distill --checkpoint runs/x/model.pt --data ~/data/MOSI/aligned_50.pkl --steps 1
    imer-train evaluate --checkpoint runs/x/model-distilled.pt --data ~/data/MOSI/aligned_50.pkl --sampler distilled
    imer-train cv --config cmarr_iemocap --data ~/data/IEMOCAP_features_2021 --folds 1,2
    imer-train cv --config quick_cv_cmarr --synthetic
    imer-train extract-live --data ../shared/data --cache runs/live_cache
    imer-train compare --configs imder_mosi,rohydr_mosi,cmarr_mosi --data ~/data/MOSI/aligned_50.pkl \
        --missing-rates 0.0,0.3,0.5 --seeds 1111
    imer-train compare --configs imder_iemocap,rohydr_iemocap,cmarr_iemocap --data ~/data/IEMOCAP_features_2021 \
        --protocol-kind scenario --folds 1
    torchrun --nproc_per_node 2 -m training.cli train --config imder_mosi --data ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from imer_core.cli_errors import report_error
from imer_core.registry import get_method_class

from .distill import add_parser as add_distill_parser
from .distill import cmd_distill
from .distributed import setup, teardown
from .experiment import Experiment, available_experiments, load_experiment
from .finetune import add_parser as add_finetune_parser
from .finetune import cmd_finetune
from .live.cli import HANDLERS as LIVE_HANDLERS
from .live.cli import add_parsers as add_live_parsers

REFERENCE_SEEDS = (1111, 1112, 1113, 1114, 1115)
"""The seeds of the IMDer reference's ``run.py`` (five runs per setting)."""


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of experiment configs")
    return names


TRUST_PICKLE_HELP = ("load the MMSA pickle with Python's unrestricted unpickler.  RISK: a pickle can run any "
                     "code with your permissions; only use this for a file you made yourself or fully trust "
                     "(the default refuses anything but dicts, lists, strings, numbers and numpy arrays)")
SKIP_SHA256_HELP = ("do not check aligned_50.pkl / unaligned_50.pkl against the SHA-256 published in the "
                    "MMSA README (for files you re-extracted yourself)")


def _pickle_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    p.add_argument("--skip-sha256", action="store_true", help=SKIP_SHA256_HELP)


def build_parser() -> argparse.ArgumentParser:
    """The ``imer-train`` argument parser."""
    parser = argparse.ArgumentParser(prog="imer-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of every error (an internal error always prints it)")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default="imder_mosi",
                       help=f"experiment name or TOML path (shipped: {', '.join(available_experiments())})")
        p.add_argument("--data", help="MMSA aligned_50.pkl / unaligned_50.pkl (overrides the config's path)")
        p.add_argument("--synthetic", action="store_true", help="use the synthetic MMSA-schema benchmark")
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a config value, e.g. train.batch_size=16 or model.options.sampler_steps=20")
        p.add_argument("--device", help="auto (default: CUDA when present), cpu or cuda")
        p.add_argument("--out", default=None, help="output folder (default: runs/<config>-<time>)")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        _pickle_options(p)

    train = sub.add_parser("train", help="train and test one model (both stages)")
    common(train)
    train.add_argument("--protocol", default=None,
                       help="missing protocol: batch:MR (IMDer schedule), sample:MR (per sample), subset:la, "
                            "scenario (MMIN random scenario); default batch:0.3, scenario for iemocap / msp, "
                            "scenario:complete for live")
    train.add_argument("--fold", type=int, default=None,
                       help="MMIN fold (iemocap / msp; default: the first of the config's folds)")
    train.add_argument("--seed", type=int, default=1111)
    train.add_argument("--init-reference", default=None, metavar="PTH",
                       help="start from weights saved by the official IMDer code (pt/pretrained-mosi.pth: "
                            "stage 1 is skipped, as in the reference; or a trained pt/imder-mosi.pth); "
                            "IMDer configs only")

    sweep = sub.add_parser("sweep", help="reproduction sweep over missing rates and seeds → table + plot")
    common(sweep)
    sweep.add_argument("--missing-rates", type=_floats, default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    sweep.add_argument("--seeds", type=_ints, default=list(REFERENCE_SEEDS),
                       help="comma-separated seeds (default: the IMDer reference run.py's five)")
    sweep.add_argument("--protocol-kind", choices=("batch", "sample"), default="batch")
    sweep.add_argument("--save-checkpoints", action="store_true", help="keep one checkpoint per run")

    evaluate = sub.add_parser("evaluate", help="evaluate a checkpoint under a missing protocol")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", default=None,
                          help="MMSA aligned_50.pkl / unaligned_50.pkl, MMIN feature root (IEMOCAP_features_2021) "
                               "or live feature cache")
    evaluate.add_argument("--dataset", default=None, choices=("mosi", "mosei", "mmsa", "iemocap", "msp", "live"),
                          help="format of --data (default: the checkpoint's; a file: mmsa, an MMSA pickle of "
                               "either corpus without the dimension check)")
    evaluate.add_argument("--synthetic", action="store_true",
                          help="the synthetic benchmark of the dataset (as configured by --config)")
    evaluate.add_argument("--config", default=None,
                          help="experiment whose [data] table to use (default: the checkpoint's training config)")
    evaluate.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                          help="override a data value, e.g. data.synthetic_sizes=[64,16,16]")
    evaluate.add_argument("--fold", type=int, default=None, help="MMIN fold (default: the config's first, else 1)")
    evaluate.add_argument("--protocol", default=None,
                          help="missing protocol (default: batch:0.3; scenario for iemocap / msp)")
    evaluate.add_argument("--split", default="test", choices=("train", "valid", "test"))
    evaluate.add_argument("--sampler", default=None,
                          help="euler-maruyama, heun or distilled (default: the model's)")
    evaluate.add_argument("--backend", default=None, help="eager, traced or cuda-graph (default: the model's)")
    evaluate.add_argument("--steps", type=int, default=None)
    evaluate.add_argument("--batch-size", type=int, default=32, help="batch size of the missing protocol's schedule")
    evaluate.add_argument("--eval-batch-size", type=int, default=256,
                          help="samples recovered per batch (batched sampling; halved on CUDA out-of-memory)")
    evaluate.add_argument("--device", default="auto")
    _pickle_options(evaluate)

    synth = sub.add_parser("synth", help="write a synthetic MMSA-schema pickle (labelled synthetic)")
    synth.add_argument("--out", required=True)
    synth.add_argument("--dataset", choices=("mosi", "mosei"), default="mosi")
    synth.add_argument("--seed", type=int, default=0)

    cv = sub.add_parser("cv", help="six-scenario cross-validation on IEMOCAP / MSP-IMPROV → table")
    common(cv)
    cv.add_argument("--folds", type=_ints, default=None, help="comma-separated folds (default: the config's, else all)")
    cv.add_argument("--seed", type=int, default=1111)
    cv.add_argument("--protocol", default="scenario", choices=("scenario", "scenario:complete"),
                    help="recovery-stage training protocol (scenario: the six missing scenarios, as MMIN)")
    cv.add_argument("--save-checkpoints", action="store_true", help="keep one checkpoint per fold")

    compare = sub.add_parser("compare", help="train and test several methods on the same data and protocol → table")
    compare.add_argument("--configs", required=True, type=_names,
                         help="comma-separated experiment names or TOML paths, one per method")
    compare.add_argument("--data", help="MMSA pickle or MMIN feature root, used by every config")
    compare.add_argument("--synthetic", action="store_true", help="use the synthetic benchmark of the first config")
    compare.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                         help="override applied to every config")
    compare.add_argument("--device", help="auto (default), cpu or cuda")
    compare.add_argument("--out", default=None, help="output folder (default: runs/compare-<time>)")
    compare.add_argument("--missing-rates", type=_floats, default=[0.0, 0.3, 0.5])
    compare.add_argument("--seeds", type=_ints, default=list(REFERENCE_SEEDS),
                         help="comma-separated seeds (default: the IMDer reference run.py's five)")
    compare.add_argument("--protocol-kind", choices=("batch", "sample", "scenario"), default="batch",
                         help="batch / sample: missing-rate protocol (MOSI / MOSEI); scenario: six-scenario CV")
    compare.add_argument("--folds", type=_ints, default=None, help="MMIN folds for --protocol-kind scenario")
    compare.add_argument("--latency-runs", type=int, default=5, help="timed runs per missing pattern")
    compare.add_argument("--fast-steps", type=int, default=10, help="sampler steps of the fast latency setting")
    compare.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _pickle_options(compare)

    sub.add_parser("configs", help="list the shipped experiment configs")
    add_live_parsers(sub)
    add_finetune_parser(sub)
    add_distill_parser(sub)
    return parser


def _experiment(args: argparse.Namespace, config: str | None = None) -> Experiment:
    overrides = list(args.set)
    if args.data:
        overrides += [f'data.path="{args.data}"', "data.synthetic=false"]
    if args.synthetic:
        overrides.append("data.synthetic=true")
    if args.device:
        overrides.append(f'train.device="{args.device}"')
    if getattr(args, "trust_pickle", False):
        overrides.append("data.trust_pickle=true")
    if getattr(args, "skip_sha256", False):
        overrides.append("data.verify_sha256=false")
    experiment = load_experiment(config or args.config, overrides)
    get_method_class(experiment.method)  # unknown methods fail before any data is loaded
    return experiment


def _out_dir(args: argparse.Namespace, name: str) -> Path:
    return Path(args.out) if args.out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _default_protocol(experiment: Experiment) -> str:
    """The default protocol of the experiment's data source (MMSA: batch:0.3; MMIN: scenario; live:
    scenario:complete)."""
    return experiment.data.source.default_protocol


def cmd_train(args: argparse.Namespace) -> int:
    from .protocol_spec import make_protocol
    from .runner import load_data, run_experiment

    experiment = _experiment(args)
    ctx = setup(experiment.train.device)
    try:
        out = _out_dir(args, experiment.name)
        data = load_data(experiment, out / "data", args.fold)
        spec = args.protocol or _default_protocol(experiment)
        pretrained = _reference_init(experiment, data, args.init_reference) if args.init_reference else None
        result, _ = run_experiment(experiment, data, make_protocol(spec, seed=args.seed), args.seed, out, ctx,
                                   pretrained=pretrained, progress=not args.no_progress)
        if ctx.is_main:
            print(json.dumps({"run_dir": str(out), "test": result.test}, indent=2, default=str))
    finally:
        teardown()
    return 0


def _reference_init(experiment: Experiment, data, path: str) -> dict:
    """Full state dict of the experiment's model initialised from an official IMDer ``.pth`` file."""
    from imer_core.methods.imder_reference import load_reference_weights

    from .runner import build_model

    if experiment.method != "imder":
        raise ValueError(f"--init-reference reads the official IMDer code's files; {experiment.name} is "
                         f"{experiment.method!r}")
    if not Path(path).expanduser().is_file():
        raise FileNotFoundError(f"reference weights not found: {path}")
    model = build_model(experiment, data.specs, data.labels)
    report = load_reference_weights(model, Path(path).expanduser())
    print(f"loaded {len(report.loaded)} tensors from {path}; {len(report.not_in_file)} left at initialisation "
          f"(trained by the recovery stage)", file=sys.stderr)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import run_sweep

    experiment = _experiment(args)
    ctx = setup(experiment.train.device)
    try:
        out = _out_dir(args, f"sweep-{experiment.name}")
        result = run_sweep(experiment, args.missing_rates, args.seeds, out, ctx, args.protocol_kind,
                           progress=not args.no_progress, save_checkpoints=args.save_checkpoints)
        if result is not None:
            print(result.markdown_path.read_text())
            print(f"wrote {result.csv_path}, {result.markdown_path}" +
                  (f", {result.plot_path}" if result.plot_path else ""))
    finally:
        teardown()
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    from .cv import run_cv

    experiment = _experiment(args)
    ctx = setup(experiment.train.device)
    try:
        out = _out_dir(args, f"cv-{experiment.name}")
        result = run_cv(experiment, out, ctx, args.folds, args.seed, args.protocol, progress=not args.no_progress,
                        save_checkpoints=args.save_checkpoints)
        if result is not None:
            print(result.markdown_path.read_text())
            print(f"wrote {result.markdown_path}, {result.csv_path}, {result.json_path}")
    finally:
        teardown()
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import run_compare

    args.config = None
    experiments = [_experiment(args, name) for name in args.configs]
    ctx = setup(experiments[0].train.device)
    try:
        out = _out_dir(args, "compare")
        result = run_compare(experiments, out, ctx, args.protocol_kind, args.missing_rates, args.seeds, args.folds,
                             progress=not args.no_progress, latency_runs=args.latency_runs,
                             fast_steps=args.fast_steps)
        if result is not None:
            print(result.markdown_path.read_text())
            print(f"wrote {result.markdown_path}, {result.csv_path}")
    finally:
        teardown()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import tempfile

    from imer_core.checkpoint import load_checkpoint
    from imer_core.methods.base import SamplingOptions

    from .distributed import torch_device
    from .evaluate_data import evaluation_experiment, load_evaluation_data
    from .experiment import TrainConfig
    from .protocol_spec import make_protocol
    from .runs import RunFolder
    from .trainer import Trainer

    device = torch_device(args.device)
    model = load_checkpoint(args.checkpoint, map_location=device)
    experiment = evaluation_experiment(args, model)
    protocol = make_protocol(args.protocol or _default_protocol(experiment))
    with tempfile.TemporaryDirectory(prefix="imer-eval-") as cache:      # synthetic data is generated here
        data = load_evaluation_data(experiment, model, Path(cache), args.fold)
        ctx = setup(args.device)
        trainer = Trainer(model, data.datasets, replace(TrainConfig(), batch_size=args.batch_size,
                                                          eval_batch_size=args.eval_batch_size), protocol,
                          ctx, RunFolder(Path("."), enabled=False))
        sampling = SamplingOptions(sampler=args.sampler, steps=args.steps, seed=0, backend=args.backend)
        results = trainer.evaluate(args.split, sampling=sampling)
    report: dict[str, Any] = {**results, "dataset": experiment.data.dataset, "data_source": data.source,
                              "synthetic": data.synthetic, "protocol": protocol.name}
    if data.fold is not None:
        report["fold"] = data.fold
    print(json.dumps(report, indent=2))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .data import write_synthetic_mmsa

    path = write_synthetic_mmsa(Path(args.out), dataset=args.dataset, seed=args.seed)
    print(f"wrote SYNTHETIC {args.dataset.upper()}-schema benchmark to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``imer-train``."""
    args = build_parser().parse_args(argv)
    if args.command == "configs":
        print("\n".join(available_experiments()))
        return 0
    handlers = {"train": cmd_train, "sweep": cmd_sweep, "evaluate": cmd_evaluate, "synth": cmd_synth,
                "cv": cmd_cv, "compare": cmd_compare, "finetune": cmd_finetune, "distill": cmd_distill, **LIVE_HANDLERS}
    try:
        return handlers[args.command](args)
    except Exception as exc:  # one line for a user error, the traceback for a bug (imer_core.cli_errors)
        return report_error(exc, "imer-train", debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
