"""The ``imer`` command: the desktop window, or ``imer run`` without one."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .signals import EARLY_STOP, exit_process, note_early_signals

note_early_signals()  # first: a Ctrl-C while the heavy modules load (in main) is not lost

# Native libraries' own log lines (OpenCV's camera probing, MediaPipe / TFLite / absl
# start-up notes, progress bars of model loads) would break into the status line;
# errors still reach the user through the modality states.  setdefault: a user's
# own setting wins.
QUIET_NATIVE_LOGS = {"OPENCV_LOG_LEVEL": "OFF", "OPENCV_VIDEOIO_DEBUG": "0", "GLOG_minloglevel": "2",
                     "TF_CPP_MIN_LOG_LEVEL": "3", "ABSL_MIN_LOG_LEVEL": "2",
                     "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                     "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
for _name, _value in QUIET_NATIVE_LOGS.items():
    os.environ.setdefault(_name, _value)

from .analyze_cmd import EPILOG as ANALYZE_EPILOG  # noqa: E402 - light
from .analyze_cmd import add_analyze_arguments  # noqa: E402 - light
from .arguments import add_run_arguments, add_source_arguments  # noqa: E402 - light: no torch

WINDOW_HELP = """\
the window (imer without a subcommand):
  imer                      the default camera and microphone; on a machine without a camera the
                            demo clip in assets/demo plays (looping), and the status bar says so
  imer --source FILE        a media file instead (add --loop to replay it)
  In the window: Source menu (camera, microphone, media file, demo clip; a switch that fails rolls
  back to the previous device), Model menu and toolbar (recovery method IMDer / RoHyDR / CM-ARR,
  sampler steps, checkpoints, compute device), Session menu (record/stop a session folder with
  predictions as JSONL and CSV, export it), Help > About (model card and licences). One switch per
  modality; devices, method, sampler steps and the window layout are remembered (QSettings).
  An option given with a non-default value overrides the remembered choice.

imer run --help             the same pipeline without a window
imer analyze --help         images, audio, video and text files or folders, offline (no window)
"""


def _version() -> str:
    """The installed distribution's version, else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imer")
    except PackageNotFoundError:
        from imer_core import __version__
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imer", description="Live incomplete multimodal emotion recognition from a webcam and a microphone "
        "(or a media file). Without a subcommand the desktop window opens.",
        epilog=WINDOW_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser)
    parser.add_argument("--version", action="version", version=f"imer {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run_parser = sub.add_parser("run", help="run the live pipeline headless and write a session folder",
                                description="Run the live pipeline without a window: a one-line status in the "
                                "terminal and a session folder with predictions as JSONL and CSV.")
    add_run_arguments(run_parser)
    run_parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                            help="log details to stderr")
    analyze_parser = sub.add_parser(
        "analyze", help="analyse image, audio, video and text files or folders (offline, as fast as the CPU allows)",
        description="Predict emotions for files, folders and texts with the live model: one row per image, "
        "clip, text or video window.", epilog=ANALYZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_analyze_arguments(analyze_parser)
    analyze_parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                help="log details to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``imer``.

    Called as the installed command (``argv`` is ``None``) the process ends
    with :func:`~app.signals.exit_process` once the command has closed its
    files: no wait for native threads, no native destructors (MediaPipe's
    would try to reach the network).  Called with ``argv`` it returns the code.
    """
    if argv is None:
        exit_process(_main(None))
    return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if EARLY_STOP.is_set():
        print("imer: interrupted while starting", file=sys.stderr)
        return 130
    if args.command == "analyze":
        from .analyze_cmd import run_analyze
        return run_analyze(args)
    if args.command == "run":
        from .headless import run  # torch, the pipeline: imported only to run
        return run(args)
    from .gui.main import launch  # Qt is imported only for the window
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
