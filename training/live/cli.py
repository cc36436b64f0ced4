"""``imer-train`` subcommands of the live model (registered by :mod:`training.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .corpora import CORPORA, DEFAULT_DATA_ROOT


def _corpora(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = sorted(set(names) - set(CORPORA))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(CORPORA)}")
    return names


def _paths(text: str) -> list[str]:
    paths = [x.strip() for x in text.split(",") if x.strip()]
    if not paths:
        raise argparse.ArgumentTypeError("expected a comma-separated list of checkpoints")
    return paths


def add_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``extract-live`` and ``live-eval`` to the ``imer-train`` subcommands."""
    extract = sub.add_parser("extract-live", help="extract the live-model features of FER2013, RAVDESS, EmoDB "
                                                  "and MELD with the app's extractors (cached)")
    extract.add_argument("--data", default=DEFAULT_DATA_ROOT, help=f"data root (default {DEFAULT_DATA_ROOT})")
    extract.add_argument("--cache", default="runs/live_cache", help="feature cache folder")
    extract.add_argument("--corpora", type=_corpora, default=list(CORPORA),
                         help=f"comma-separated corpora (default {','.join(CORPORA)})")
    extract.add_argument("--limit", type=int, default=None, help="at most N items per corpus (spread evenly)")
    extract.add_argument("--force", action="store_true", help="re-extract even when the cache is up to date")
    extract.add_argument("--no-asr", action="store_true",
                         help="audio corpora: voice features only, no transcripts (enough for train and distill; "
                              "live-eval's paired-transcript test needs them)")
    extract.add_argument("--face-crops", default=None, metavar="NPZ",
                         help="reuse the crop file of face-crops for FER2013 (only the face network runs)")
    extract.add_argument("--no-progress", action="store_true", help="hide progress bars")

    crops = sub.add_parser("face-crops", help="aligned FER2013 face crops for the face network (the run-time crop "
                                              "on MediaPipe landmarks; whole image where no face is found)")
    crops.add_argument("--data", default=DEFAULT_DATA_ROOT, help=f"data root (default {DEFAULT_DATA_ROOT})")
    crops.add_argument("--out", default="runs/face_net/fer2013_crops.npz", help="crop file (npz)")
    crops.add_argument("--limit", type=int, default=None, help="at most N images (spread evenly)")
    crops.add_argument("--shard", default="0/1", help="K/N: every N-th image from the K-th (N processes at once)")
    crops.add_argument("--merge", default=None, help="comma-separated shard files to join into --out instead")
    crops.add_argument("--no-progress", action="store_true", help="hide progress bars")

    net = sub.add_parser("face-net", help="train the face network on aligned FER2013 crops (face-crops)")
    net.add_argument("--crops", default="runs/face_net/fer2013_crops.npz", help="crop file of face-crops")
    net.add_argument("--out", default="runs/face_net", help="folder for face_net.pt, summary.json")
    net.add_argument("--epochs", type=int, default=12)
    net.add_argument("--batch-size", type=int, default=64)
    net.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    net.add_argument("--seed", type=int, default=0)
    net.add_argument("--threads", type=int, default=1, help="torch threads")
    net.add_argument("--init", default=None, metavar="FACE_NET_PT",
                     help="continue training from this saved network (new schedule of --epochs epochs)")
    net.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last finished epoch (train_state.pt; same settings)")
    net.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                     help="end this invocation after this many epochs (the schedule stays that of --epochs; "
                          "continue later with --resume)")
    net.add_argument("--limit", type=int, default=None, help="at most N training crops (quick runs)")
    net.add_argument("--evaluate", default=None, metavar="FACE_NET_PT",
                     help="only evaluate this saved network on --split of --crops (no training)")
    net.add_argument("--split", default="test", choices=("train", "val", "test"))

    combine = sub.add_parser("face-net-combine", help="join trained face networks into one file (concatenated "
                                                      "embeddings, mean probability, mirror-image averaging)")
    combine.add_argument("--members", required=True, help="comma-separated face_net.pt files of face-net")
    combine.add_argument("--out", required=True, help="face-network file to write")
    combine.add_argument("--no-flip", action="store_true", help="no averaging over the crop and its mirror image")
    combine.add_argument("--crops", default=None, help="crop file: report validation and test metrics")

    text = sub.add_parser("text-head", help="train MELD text-emotion heads on the frozen MiniLM embeddings "
                                            "(extract-live cache), pick on dev, report test")
    text.add_argument("--cache", default="runs/live_cache", help="feature cache of extract-live (meld)")
    text.add_argument("--out", default="runs/text_head", help="folder for text_head.pt and summary.json")
    text.add_argument("--epochs", type=int, default=40)
    text.add_argument("--seed", type=int, default=0)

    tune = sub.add_parser("text-finetune", help="fine-tune the top layers of all-MiniLM-L6-v2 on MELD (epoch "
                                                "picked on dev, test reported); writes a small weight delta")
    tune.add_argument("--data", default=DEFAULT_DATA_ROOT, help=f"data root (default {DEFAULT_DATA_ROOT})")
    tune.add_argument("--out", default="runs/text_net", help="folder for text_net.pt and summary.json")
    tune.add_argument("--trainable-layers", type=int, default=3, help="top transformer layers trained (1-6)")
    tune.add_argument("--epochs", type=int, default=4)
    tune.add_argument("--batch-size", type=int, default=32)
    tune.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of the encoder layers")
    tune.add_argument("--head-lr", type=float, default=1e-3, help="peak learning rate of the linear head")
    tune.add_argument("--power", type=float, default=0.0, help="class-weight power (0 plain, 1 balanced)")
    tune.add_argument("--label-smoothing", type=float, default=0.0)
    tune.add_argument("--max-len", type=int, default=64, help="tokens per input (context + utterance)")
    tune.add_argument("--context-turns", type=int, default=0,
                      help="previous utterances of the dialogue prepended as context (0: none)")
    tune.add_argument("--pool", choices=("all", "utterance"), default="all",
                      help="mean-pool all tokens, or only the utterance's (the context is attended to, not pooled)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--threads", type=int, default=1, help="torch threads")
    tune.add_argument("--limit", type=int, default=None, help="at most N utterances per split (quick runs)")
    tune.add_argument("--evaluate", default=None, metavar="TEXT_NET_PT",
                      help="only score this saved network on MELD dev and test (no training)")

    vnorm = sub.add_parser("voice-norm-eval", help="voice classifier with global vs per-speaker vs running "
                                                   "per-speaker normalisation (RAVDESS + EmoDB test speakers)")
    vnorm.add_argument("--data", default=DEFAULT_DATA_ROOT, help=f"data root (default {DEFAULT_DATA_ROOT})")
    vnorm.add_argument("--out", default="runs/voice_norm", help="folder for the feature cache and summary.json")
    vnorm.add_argument("--no-progress", action="store_true", help="hide progress bars")

    experts = sub.add_parser("live-experts", help="add the expert-fusion head (per-modality experts + a correction "
                                                  "kept only if it lowers the validation loss) to a live checkpoint")
    experts.add_argument("--checkpoint", required=True, help="trained live checkpoint (live_* config)")
    experts.add_argument("--cache", default="runs/live_cache", help="feature cache of extract-live")
    experts.add_argument("--out", required=True, help="checkpoint to write")
    experts.add_argument("--no-speaker-audio", action="store_true",
                         help="no per-speaker-normalised audio expert (and no speaker normalisation at run time)")
    experts.add_argument("--seed", type=int, default=0)
    experts.add_argument("--members", type=int, default=None,
                         help="MLPs per modality expert, each with its own seed (an ensemble above 1; default 3)")
    experts.add_argument("--text-expert", choices=("auto", "mlp", "text-net-head"), default="auto",
                         help="text expert: an MLP trained on the tuples, or the fine-tuned text network's own head "
                              "(auto: the head when the cache's text feature is that network's)")
    experts.add_argument("--text-net", default=None, metavar="FILE",
                         help="text network of --text-expert (default: the shipped assets/models/text_net.pt)")
    experts.add_argument("--experts-from", default=None, metavar="FILE",
                         help="reuse the trained experts of an earlier live-experts checkpoint on the same features "
                              "(same --members) instead of training new ones; the text head and the temperatures "
                              "are still rebuilt")
    experts.add_argument("--no-progress", action="store_true", help="hide progress bars")

    evaluate = sub.add_parser("live-eval", help="evaluate live checkpoints under the seven availability "
                                                "conditions against zero-fill, mean-fill and unimodal baselines")
    evaluate.add_argument("--cache", default="runs/live_cache", help="feature cache of extract-live")
    evaluate.add_argument("--checkpoints", required=True, type=_paths,
                          help="comma-separated checkpoints (trained with the live_* configs)")
    evaluate.add_argument("--out", default="runs/live_eval", help="folder for results.md / .csv / .json")
    evaluate.add_argument("--baseline-config", default="live_imder",
                          help="experiment whose training settings the fill baselines use")
    evaluate.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                          help="override of the baseline experiment, e.g. train.max_epochs=2")
    evaluate.add_argument("--ship", default=None, metavar="DIR",
                          help="also write DIR/live_<method>.pt with the results in the metadata")
    evaluate.add_argument("--seed", type=int, default=1111, help="seed of the baselines")
    evaluate.add_argument("--skip-fill-baselines", action="store_true",
                          help="no zero-fill / mean-fill baselines (two fusion-network trainings); late fusion stays")
    evaluate.add_argument("--late-fusion-seeds", type=int, default=5, metavar="N",
                          help="train the late-fusion baseline with N seeds (--seed, --seed+1, ...); the first is the "
                               "row 'unimodal (late fusion)', their mean another row (default 5; 1: one seed only)")
    evaluate.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                          help="replicates of the paired bootstrap of each checkpoint's macro-F1 minus late fusion's "
                               "(95 %% intervals in the tables; default 2000, at least 100; 0: none)")
    evaluate.add_argument("--latency-runs", type=int, default=20, help="timed windows per condition")
    evaluate.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_extract_live(args: argparse.Namespace) -> int:
    """Run :func:`training.live.extract.extract_live` and print the per-corpus stats."""
    from .extract import extract_live

    summary = extract_live(args.data, args.cache, args.corpora, args.limit, args.force,
                           progress=not args.no_progress, asr=not args.no_asr, face_crops=args.face_crops)
    print(json.dumps({c: {"stats": m["stats"], "seconds": m.get("seconds")} for c, m in summary.items()}, indent=2))
    return 0


def cmd_face_crops(args: argparse.Namespace) -> int:
    """Run :func:`training.live.face_net_data.make_fer_crops` and print its metadata."""
    from .face_net_data import make_fer_crops, merge_fer_crops

    if args.merge:
        print(json.dumps(merge_fer_crops(_paths(args.merge), args.out), indent=2))
        return 0
    k, n = (int(x) for x in args.shard.split("/"))
    if not 0 <= k < n:
        raise SystemExit(f"--shard {args.shard}: expected K/N with 0 <= K < N")
    meta = make_fer_crops(args.data, args.out, args.limit, progress=not args.no_progress, shard=(k, n))
    print(json.dumps(meta, indent=2))
    return 0


def cmd_face_net_combine(args: argparse.Namespace) -> int:
    """Run :func:`training.live.face_net_combine.combine_face_nets` and print the file's metadata."""
    from .face_net_combine import combine_face_nets

    members = [m.strip() for m in args.members.split(",") if m.strip()]
    meta = combine_face_nets(members, args.out, flip_average=not args.no_flip, crops=args.crops)
    print(json.dumps(meta, indent=2, default=float))
    return 0


def cmd_face_net(args: argparse.Namespace) -> int:
    """Run :func:`training.live.face_net_train.train_face_net` (the log goes to stdout)."""
    from .face_net_train import evaluate_face_net_file, train_face_net

    if args.evaluate:
        print(json.dumps(evaluate_face_net_file(args.crops, args.evaluate, args.split), indent=2))
        return 0
    train_face_net(args.crops, args.out, args.epochs, args.batch_size, args.lr, seed=args.seed, limit=args.limit,
                   threads=args.threads, log=lambda line: print(line, flush=True), init=args.init,
                   resume=args.resume, stop_after=args.stop_after)
    return 0


def cmd_text_head(args: argparse.Namespace) -> int:
    """Run :func:`training.live.text_head.run_text_head` (the log goes to stdout)."""
    from .text_head import run_text_head

    run_text_head(args.cache, args.out, epochs=args.epochs, seed=args.seed, log=lambda line: print(line, flush=True))
    return 0


def cmd_text_finetune(args: argparse.Namespace) -> int:
    """Run :func:`training.live.text_finetune.run_text_finetune` (the log goes to stdout)."""
    import torch

    from .text_finetune import FinetuneSettings, evaluate_text_net_file, run_text_finetune

    torch.set_num_threads(max(1, args.threads))
    if args.evaluate:
        print(json.dumps(evaluate_text_net_file(args.data, args.evaluate), indent=2))
        return 0
    settings = FinetuneSettings(trainable_layers=args.trainable_layers, epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, head_lr=args.head_lr, power=args.power,
                                label_smoothing=args.label_smoothing, max_len=args.max_len,
                                context_turns=args.context_turns, pool=args.pool, seed=args.seed,
                                limit=args.limit)
    run_text_finetune(args.data, args.out, settings, log=lambda line: print(line, flush=True))
    return 0


def cmd_voice_norm_eval(args: argparse.Namespace) -> int:
    """Run :func:`training.live.voice_norm_eval.run_voice_norm_eval` (the log goes to stdout)."""
    from .voice_norm_eval import run_voice_norm_eval

    run_voice_norm_eval(args.data, args.out, progress=not args.no_progress, log=lambda line: print(line, flush=True))
    return 0


def cmd_live_experts(args: argparse.Namespace) -> int:
    """Run :func:`training.live.experts.add_expert_fusion` and print its summary."""
    from .experts import DEFAULT_MEMBERS, add_expert_fusion

    members = DEFAULT_MEMBERS if args.members is None else args.members
    if members < 1:
        print(f"imer-train: error: --members must be at least 1, got {members}", file=sys.stderr)
        return 2
    summary = add_expert_fusion(args.checkpoint, args.cache, args.out, speaker_audio=not args.no_speaker_audio,
                                seed=args.seed, progress=not args.no_progress, members=members,
                                text_expert=args.text_expert, text_net_path=args.text_net,
                                experts_from=args.experts_from)
    print(json.dumps(summary, indent=2, default=float))
    return 0


def cmd_live_eval(args: argparse.Namespace) -> int:
    """Run :func:`training.live.evaluate.run_live_eval` and print the tables."""
    from .evaluate import run_live_eval

    if args.late_fusion_seeds < 1:
        print(f"imer-train: error: --late-fusion-seeds must be at least 1, got {args.late_fusion_seeds}",
              file=sys.stderr)
        return 2
    if args.bootstrap != 0 and args.bootstrap < 100:
        print(f"imer-train: error: --bootstrap must be 0 or at least 100, got {args.bootstrap}", file=sys.stderr)
        return 2
    report = run_live_eval(args.cache, args.checkpoints, args.out, args.baseline_config, args.set, args.ship,
                           args.seed, args.latency_runs, progress=not args.no_progress,
                           fill_baselines=not args.skip_fill_baselines, late_fusion_seeds=args.late_fusion_seeds,
                           bootstrap=args.bootstrap)
    print((Path(args.out) / "results.md").read_text())
    for title, info in report.get("shipped", {}).items():
        print(f"shipped {title}: {info['path']} ({info['bytes'] / 2**20:.2f} MiB, {info['parameters']} parameters)")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"extract-live": cmd_extract_live,
                                                            "live-eval": cmd_live_eval,
                                                            "live-experts": cmd_live_experts,
                                                            "face-crops": cmd_face_crops, "face-net": cmd_face_net,
                                                            "face-net-combine": cmd_face_net_combine,
                                                            "text-head": cmd_text_head,
                                                            "text-finetune": cmd_text_finetune,
                                                            "voice-norm-eval": cmd_voice_norm_eval}
