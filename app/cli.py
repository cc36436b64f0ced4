"""The ``imer`` command: the desktop window, or ``imer run`` without one."""

from __future__ import annotations

import argparse
import logging
import sys

from .headless import add_run_arguments, add_source_arguments, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imer", description="Live incomplete multimodal emotion recognition from a webcam and a microphone "
        "(or a media file). Without a subcommand the desktop window opens.")
    add_source_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run_parser = sub.add_parser("run", help="run the live pipeline headless and write a session folder",
                                description="Run the live pipeline without a window: a one-line status in the "
                                "terminal and a session folder with predictions as JSONL and CSV.")
    add_run_arguments(run_parser)
    run_parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        return run(args)
    from .gui.main import launch  # Qt is imported only for the window
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
