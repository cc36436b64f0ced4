"""``imer analyze``: files, folders and texts through the live model, as fast as the CPU allows.

Rows go to ``--out`` (or stdout) as JSON Lines, JSON or CSV while the run
goes on; a progress bar, a summary and the evaluation against ``--labels``
go to stderr (the evaluation also to ``PREFIX.md`` / ``PREFIX.json``).
Building the parser imports nothing heavy.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .signals import SignalHandler

EPILOG = """\
inputs: images (jpg, png, ...: one row each, face_found says whether a face was found), audio
(wav, flac, mp3, ...: one row per clip up to --windows-above seconds, its loudest 2 s window and the
transcript of the whole clip; longer recordings one row per window), video (one row per 2 s window
every --hop seconds, with start_s/end_s), text (--text, .txt: one row per line, .csv: one row per
--text-column cell) and folders (recursively). The modalities a file does not give, or that
--modalities leaves out, are recovered by the method. A file that cannot be read gives a row with
its reason in "error"; the run goes on.

examples:
  imer analyze photos/ --format csv --out photos.csv
  imer analyze interview.mp4 --modalities audio,vision --hop 0.5
  imer analyze --text "I can't believe you did that!"
  imer analyze faces/ --labels labels.csv --label-map joy=happy,anger=angry --out rows.jsonl
"""


def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imer analyze``."""
    parser.add_argument("paths", nargs="*", metavar="PATH", help="image, audio, video, .txt or .csv files, folders")
    parser.add_argument("--text", action="append", default=[], metavar="TEXT", help="a text to analyse (repeat)")
    parser.add_argument("--format", choices=("jsonl", "json", "csv"), default=None,
                        help="row format (default: from --out's extension, else jsonl)")
    parser.add_argument("--out", default=None, metavar="FILE", help="write the rows here (default: stdout)")
    parser.add_argument("--method", default=None,
                        help="recovery method of a loaded checkpoint, e.g. cmarr, imder, rohydr "
                             "(default: the preferred one loaded)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                        help="live checkpoint (repeat for several methods); default: the shipped models")
    parser.add_argument("--modalities", default="text,audio,vision",
                        help="modalities to use, e.g. 'audio,vision'; the others are recovered (default: all)")
    parser.add_argument("--labels", default=None, metavar="CSV",
                        help="evaluate against a CSV with the columns path,label")
    parser.add_argument("--label-map", default=None, metavar="MAP",
                        help="label names to the model's: a .json object, a source,live .csv or 'joy=happy,...'")
    parser.add_argument("--eval-out", default=None, metavar="PREFIX",
                        help="write the evaluation to PREFIX.md and PREFIX.json (default with --out: "
                             "<out without extension>.eval)")
    parser.add_argument("--text-column", default="text", help="column of .csv files holding the text")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per model call")
    parser.add_argument("--hop", type=float, default=1.0, metavar="SECONDS", help="between windows of a video")
    parser.add_argument("--windows-above", type=float, default=10.0, metavar="SECONDS",
                        help="audio longer than this gets one row per window (default %(default)s)")
    parser.add_argument("--video-fps", type=float, default=10.0, help="video frames analysed per second")
    parser.add_argument("--sampler-steps", type=int, default=None, help="diffusion sampling steps")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the models run (auto: CUDA when present)")
    parser.add_argument("--asr", default="auto", help="speech recognition backend (auto, faster-whisper, ...)")


def _quiet_libraries() -> None:
    """No download/loading progress bars or C++ log lines of the model libraries between the rows."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_analyze(args: argparse.Namespace, err: TextIO | None = None) -> int:
    """Run ``imer analyze``; returns the exit code (0 even when some files could not be read)."""
    err = sys.stderr if err is None else err
    if not args.paths and not args.text:
        print("imer analyze: give files, folders or --text (imer analyze --help)", file=err)
        return 2
    _quiet_libraries()
    from imer_core.analysis import AnalysisOptions, collect_inputs, evaluate_labels, read_label_map, read_labels
    from imer_core.analysis.core import iter_analyze
    from imer_core.analysis.output import format_for, write_rows
    from imer_core.cli_errors import is_user_error
    from imer_core.live.models import LiveModelError

    try:
        options = AnalysisOptions(
            method=args.method, checkpoints=tuple(args.checkpoint),
            modalities=tuple(m.strip() for m in args.modalities.split(",") if m.strip()),
            batch_size=args.batch_size, hop_s=args.hop, windows_above_s=args.windows_above,
            video_fps=args.video_fps, sampler_steps=args.sampler_steps, device=args.device, asr=args.asr,
            text_column=args.text_column)
        fmt = format_for(args.out, args.format)
        labels = read_labels(args.labels) if args.labels else None
        label_map = read_label_map(args.label_map)
    except ValueError as exc:
        if not is_user_error(exc):
            raise  # a bug: its traceback, not a one-line message
        print(f"imer analyze: {exc}", file=err)
        return 2
    collected = collect_inputs(args.paths, args.text, args.text_column,
                               exclude=[args.labels] if args.labels else [])
    if collected.skipped:
        kinds = ", ".join(f"{n} {ext}" for ext, n in sorted(collected.skipped.items()))
        print(f"imer analyze: skipped files of other types in folders: {kinds}", file=err)
    if not collected.inputs:
        print("imer analyze: nothing to analyse (no supported files found)", file=err)
        return 2
    started = time.perf_counter()
    rows = []
    try:
        out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    except OSError as exc:
        print(f"imer analyze: cannot write {args.out}: {exc.strerror or exc}", file=err)
        return 2
    previous = _interrupt_on_signals()
    try:
        stream = iter_analyze(collected, options, progress=err.isatty())
        for row in write_rows(stream, out, fmt):
            rows.append(row)
    except LiveModelError as exc:
        print(f"imer analyze: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print(f"\nimer analyze: interrupted; {len(rows)} rows written", file=err)
        return 130
    finally:
        if out is not sys.stdout:
            out.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _summary(rows, len(collected.inputs), time.perf_counter() - started, args.out, err)
    if labels is not None:
        evaluation = evaluate_labels(rows, labels, label_map, base=Path(args.labels).resolve().parent)
        print(evaluation.markdown(), file=err)
        prefix = args.eval_out or (str(Path(args.out).with_suffix("")) + ".eval" if args.out else None)
        if prefix:
            Path(prefix + ".md").write_text(evaluation.markdown(), encoding="utf-8")
            Path(prefix + ".json").write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n", encoding="utf-8")
            print(f"evaluation written to {prefix}.md and {prefix}.json", file=err)
    return 0


def _interrupt_on_signals() -> dict[int, SignalHandler]:
    """Ctrl-C / SIGTERM stop the analysis between rows (rows written so far are kept, a JSON array is closed).

    Replaces the early handler of :mod:`app.signals`, which ends the process at once.
    Returns the previous handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    return {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}


def _summary(rows: list, inputs: int, seconds: float, out: str | None, err: TextIO) -> None:
    failed = Counter(row.error for row in rows if row.error)
    line = f"imer analyze: {inputs} inputs, {len(rows)} rows, {sum(failed.values())} without prediction"
    if failed:
        line += " (" + "; ".join(f"{n}x {why}" for why, n in failed.most_common(3)) + ")"
    line += f", {seconds:.1f} s" + (f"; rows in {out}" if out else "")
    print(line, file=err)
