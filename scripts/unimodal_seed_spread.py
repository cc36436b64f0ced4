"""How much the late-fusion baseline's unimodal classifiers move with the seed alone.

    python scripts/unimodal_seed_spread.py --checkpoint runs/live12/cmarr/model.pt --cache CACHE \\
        --modality text --seeds 0,1,2,3,4,5 [--learning-rate 1e-3] [--dropout 0.2] [--out spread.json]
    python scripts/unimodal_seed_spread.py --checkpoint ... --cache CACHE --modality all --seeds 0,1,2,3,4,5

With ``--modality all`` the three classifiers are trained per seed and the
late-fusion baseline itself (their summed log-probabilities, as ``live-eval``
combines them) is scored under the seven availability conditions per seed.

Trains the classifier of ``imer-train live-eval``'s late-fusion baseline
(:func:`training.live.baselines.train_unimodal`, best epoch by validation
macro-F1) once per seed on the checkpoint's training tuples, and prints the
validation and test macro-F1 and test accuracy of each seed and of the mean
probability of the first three and of all seeds.  ``live-eval`` trains one such
classifier per modality with one seed, so a fused model's margin over it is
only meaningful beyond this spread.  Nothing is tuned on the test split here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="live checkpoint whose data options are used")
    parser.add_argument("--cache", required=True, help="feature cache of extract-live")
    parser.add_argument("--modality", choices=("text", "audio", "vision", "all"), required=True)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"unimodal_seed_spread: error: --seeds must be integers, got {args.seeds!r}", file=sys.stderr)
        return 2
    if not seeds or not Path(args.checkpoint).is_file() or not Path(args.cache).is_dir():
        print("unimodal_seed_spread: error: need --seeds, an existing --checkpoint and --cache folder", file=sys.stderr)
        return 2
    import torch

    import training.live.baselines as baselines
    from imer_core.modalities import Modality
    from training.live.dataset import build_live_data
    from training.live.evaluate import data_options_of
    from training.live.labels import LIVE_LABELS
    from training.metrics import classification_metrics

    torch.set_num_threads(1)
    data = build_live_data(args.cache, data_options_of([Path(args.checkpoint)]))
    labels = tuple(LIVE_LABELS)
    splits = {name: (data.datasets[name], baselines.dataset_labels(data.datasets[name])) for name in ("valid", "test")}
    modalities = ("text", "audio", "vision") if args.modality == "all" else (args.modality,)
    summary: dict[str, object] = {"checkpoint": str(args.checkpoint), "cache": str(args.cache),
                                  "learning_rate": args.learning_rate, "dropout": args.dropout}
    log_probs: dict[str, dict[str, list[np.ndarray]]] = {}
    for modality in modalities:
        dim = data.specs[Modality(modality)].dim
        summary[modality], log_probs[modality] = _spread(baselines, classification_metrics, data, splits, modality,
                                                         dim, labels, seeds, args)
    if args.modality == "all":
        summary["late_fusion"] = _late_fusion(classification_metrics, log_probs, splits, labels, seeds)
    else:
        summary = {"modality": args.modality, **summary, **summary.pop(args.modality)}  # type: ignore[dict-item]
    summary["load_average"] = list(os.getloadavg())
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def _spread(baselines, classification_metrics, data, splits, modality: str, dim: int, labels: tuple[str, ...],
            seeds: list[int], args: argparse.Namespace) -> tuple[dict[str, object], dict[str, list[np.ndarray]]]:
    """Per-seed metrics of one modality's classifier and of the mean probability of the first 3 / all seeds."""
    probabilities: dict[str, list[np.ndarray]] = {"valid": [], "test": []}
    log_probs: dict[str, list[np.ndarray]] = {"valid": [], "test": []}
    rows = []
    for seed in seeds:
        classifier, info = baselines.train_unimodal(data.datasets, modality, dim, labels, seed=seed,
                                                    learning_rate=args.learning_rate, progress=False,
                                                    dropout=args.dropout)
        row: dict[str, float | int] = {"seed": seed, "best_epoch": int(info["best_epoch"])}
        for name, (dataset, truth) in splits.items():
            scores = baselines.predict_unimodal(classifier, dataset, modality, 256)
            probabilities[name].append(np.exp(scores))
            log_probs[name].append(scores)
            metrics = classification_metrics(scores, truth, labels)
            row[f"{name}_macro_f1"] = round(100 * metrics["macro_f1"], 1)
            if name == "test":
                row["test_accuracy"] = round(100 * metrics["accuracy"], 1)
        rows.append(row)
        print(modality, json.dumps(row), flush=True)
    ensembles = {}
    for k in sorted({min(3, len(seeds)), len(seeds)}):
        scores_k = {}
        for name, (_, truth) in splits.items():
            metrics = classification_metrics(np.log(np.mean(probabilities[name][:k], axis=0)), truth, labels)
            scores_k[f"{name}_macro_f1"] = round(100 * metrics["macro_f1"], 1)
            scores_k[f"{name}_accuracy"] = round(100 * metrics["accuracy"], 1)
        ensembles[f"mean of the first {k}"] = scores_k
        print(f"{modality}: mean probability of the first {k} seeds: {json.dumps(scores_k)}")
    test = [float(r["test_macro_f1"]) for r in rows]
    print(f"{modality}: test macro-F1 over {len(seeds)} seeds: {min(test):.1f} to {max(test):.1f}")
    return {"seeds": rows, "ensembles": ensembles, "test_macro_f1_range": [min(test), max(test)]}, log_probs


def _late_fusion(classification_metrics, log_probs: dict[str, dict[str, list[np.ndarray]]], splits,
                 labels: tuple[str, ...], seeds: list[int]) -> dict[str, object]:
    """Test macro-F1 of the late fusion of each seed's three classifiers under the seven conditions."""
    conditions = ("l", "a", "v", "la", "lv", "av", "lav")
    names = {"l": "text", "a": "audio", "v": "vision"}
    truth = splits["test"][1]
    per_seed = []
    for i, seed in enumerate(seeds):
        row = {"seed": seed}
        for condition in conditions:
            summed = sum(log_probs[names[c]]["test"][i] for c in condition)
            row[condition] = round(100 * classification_metrics(summed, truth, labels)["macro_f1"], 1)
        per_seed.append(row)
        print("late fusion", json.dumps(row), flush=True)
    spread = {c: {"min": min(float(r[c]) for r in per_seed), "max": max(float(r[c]) for r in per_seed),
                  "mean": round(float(np.mean([float(r[c]) for r in per_seed])), 2)} for c in conditions}
    print("late fusion test macro-F1 over seeds:", json.dumps(spread))
    return {"split": "test", "per_seed": per_seed, "spread": spread}

if __name__ == "__main__":
    raise SystemExit(main())
