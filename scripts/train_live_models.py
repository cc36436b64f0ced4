"""The whole live-model recipe in one command: extract → train → distil IMDer → experts → evaluate and ship.

    python scripts/train_live_models.py --data ../shared/data --cache runs/live_cache --out runs/live \\
        [--ship assets/models] [--from distill] [--methods cmarr] [--no-asr] [--face-crops NPZ] [--dry-run]

Steps (each an ``imer-train`` command, printed before it runs):

1. ``extract``: ``imer-train extract-live`` (reuses an up-to-date cache);
2. ``train``: ``imer-train train --config live_<method>`` for IMDer, RoHyDR and CM-ARR;
3. ``distill``: ``imer-train distill`` on the new IMDer checkpoint: its probability-flow
   ODE (the Heun sampler it was trained with) distilled into a one-evaluation generator,
   written as ``<out>/imder/model-distilled.pt`` with sampler ``"distilled"`` and the traced
   backend as defaults (settings: :data:`DISTILL_ARGS`);
4. ``experts``: ``imer-train live-experts`` on each checkpoint (the distilled IMDer's): the
   per-modality experts, the per-speaker audio expert and the correction kept only if it
   lowers the validation loss, written as ``<out>/<method>/model-experts.pt``;
5. ``eval``: ``imer-train live-eval`` of those checkpoints (with ``--ship DIR`` the
   ``live_<method>.pt`` are written there, the distilled IMDer included, so the app runs
   IMDer with its distilled generator by default).

``--methods`` restricts steps 2-5 to some methods; ``--no-asr`` and ``--face-crops`` are
passed to ``extract-live``, ``--skip-fill-baselines`` to ``live-eval``.

``--from STEP`` starts at a later step (the earlier outputs must exist).  After a
retraining of IMDer alone, ``--from distill`` distils and re-evaluates.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("extract", "train", "distill", "experts", "eval")
METHODS = ("imder", "rohydr", "cmarr")
DISTILL_EPOCHS = 8
#: Distillation settings of the shipped live IMDer (with ``--epochs DISTILL_EPOCHS``): 300 training tuples per
#: class (2,100 tuples, so 6,300 teacher couplings per missing modality), batch 128, learning rate 4e-4, and the
#: traced score networks as the checkpoint's default backend.
DISTILL_ARGS = ("--set", "data.live.train_tuples_per_class=300", "--batch-size", "128", "--learning-rate", "4e-4",
                "--score-backend", "traced")


def commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """``(step, imer-train arguments)`` of the recipe from ``args.start`` on."""
    out = Path(args.out)
    methods = [m for m in METHODS if m in args.methods]
    imder = out / "imder" / "model.pt"
    distilled = out / "imder" / "model-distilled.pt"
    extract = ["extract-live", "--data", args.data, "--cache", args.cache]
    extract += (["--no-asr"] if args.no_asr else []) + (["--face-crops", args.face_crops] if args.face_crops else [])
    steps: list[tuple[str, list[str]]] = [("extract", extract)]
    steps += [("train", ["train", "--config", f"live_{m}", "--data", args.cache, "--out", str(out / m)])
              for m in methods]
    if "imder" in methods:
        steps.append(("distill", ["distill", "--checkpoint", str(imder), "--dataset", "live", "--data", args.cache,
                                  "--out", str(distilled), "--epochs", str(args.distill_epochs), *DISTILL_ARGS]))
    trained = {m: distilled if m == "imder" else out / m / "model.pt" for m in methods}
    fused = {m: out / m / "model-experts.pt" for m in methods}
    steps += [("experts", ["live-experts", "--checkpoint", str(trained[m]), "--cache", args.cache,
                           "--out", str(fused[m])]) for m in methods]
    evaluate = ["live-eval", "--cache", args.cache, "--out", str(out / "eval"), "--checkpoints",
                ",".join(str(fused[m]) for m in methods)]
    evaluate += ["--skip-fill-baselines"] if args.skip_fill_baselines else []
    steps.append(("eval", evaluate + (["--ship", args.ship] if args.ship else [])))
    first = STEPS.index(args.start)
    return [(step, argv) for step, argv in steps if STEPS.index(step) >= first]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data", help="data root of the four corpora")
    parser.add_argument("--cache", default="runs/live_cache", help="feature cache folder")
    parser.add_argument("--out", default="runs/live", help="folder of the trained checkpoints and the evaluation")
    parser.add_argument("--ship", default=None, metavar="DIR", help="write live_<method>.pt to DIR (assets/models)")
    parser.add_argument("--from", dest="start", choices=STEPS, default="extract", help="first step to run")
    parser.add_argument("--distill-epochs", type=int, default=DISTILL_EPOCHS)
    parser.add_argument("--methods", type=lambda t: [m.strip() for m in t.split(",") if m.strip()],
                        default=list(METHODS), help="comma-separated methods to train and ship (default all three)")
    parser.add_argument("--no-asr", action="store_true", help="extract-live --no-asr")
    parser.add_argument("--face-crops", default=None, metavar="NPZ", help="extract-live --face-crops NPZ")
    parser.add_argument("--skip-fill-baselines", action="store_true", help="live-eval --skip-fill-baselines")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    from training.cli import main as imer_train

    for step, command in commands(args):
        print(f"[{step}] imer-train {shlex.join(command)}", flush=True)
        if args.dry_run:
            continue
        code = imer_train(command)
        if code:
            print(f"[{step}] failed with exit code {code}; fix it and re-run with --from {step}", flush=True)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
