"""Command-line options of ``imer`` and ``imer run`` (light: building the parser imports no torch)."""

from __future__ import annotations

import argparse
from typing import Any

from imer_core.live.smoothing import DEFAULT_SMOOTHING_S

#: Seconds ``imer run --source webcam`` waits for a camera or a microphone to deliver.
DEFAULT_DEVICE_WAIT_S = 10.0


def add_source_arguments(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """Options shared by ``imer`` (the window) and ``imer run``.

    ``defaults=False`` (the ``run`` subcommand) leaves out the defaults, so
    ``imer --source clip.mp4 run`` keeps what was given before ``run``.
    """
    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--source", default=default(None),
                        help="'webcam' (camera + microphone) or a media/audio file; default: webcam")
    parser.add_argument("--camera", type=int, default=default(0), help="camera index (OpenCV)")
    parser.add_argument("--mic", default=default(None),
                        help="microphone: name (substring) or index; default device if omitted")
    parser.add_argument("--loop", action="store_true", default=default(False), help="replay a media file forever")
    parser.add_argument("--disable", default=default(""),
                        help="modalities switched off at start, e.g. 'vision,text'")
    parser.add_argument("--method", default=default(None),
                        help="recovery method of a loaded checkpoint, e.g. cmarr, imder, rohydr "
                             "(default: the preferred one loaded)")
    parser.add_argument("--checkpoint", action="append", default=default([]), metavar="PATH",
                        help="live checkpoint (repeat for several methods); default: the shipped assets/models")
    parser.add_argument("--sampler-steps", type=int, default=default(None), help="diffusion sampling steps")
    parser.add_argument("--device", default=default("auto"), choices=("auto", "cpu", "cuda"),
                        help="where the model runs (auto: CUDA when present)")
    parser.add_argument("--extractor", default=default(""), metavar="MODALITY=ID[,...]",
                        help="run another registered feature extractor for a modality, e.g. 'vision=<id>' "
                        "(default: the built-in ones; the checkpoints must be trained on its features)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imer run`` (the source options' defaults come from the main ``imer`` parser)."""
    add_source_arguments(parser, defaults=False)
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--out", default="sessions", help="folder that receives the session folder")
    parser.add_argument("--record-audio", action="store_true", help="also keep the raw audio (audio.wav)")
    parser.add_argument("--record-video", action="store_true", help="also keep the raw video (video.mkv)")
    parser.add_argument("--hop", type=float, default=0.15, help="seconds between predictions")
    parser.add_argument("--text-silence", type=float, default=15.0,
                        help="seconds without transcribed speech after which text counts as failing")
    parser.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING_S, metavar="SECONDS",
                        help="time constant of the smoothed probabilities shown in the status line and stored "
                             "beside the raw ones (0: raw only; default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.add_argument("--calibrate", action="store_true",
                        help="guided calibration: act each emotion while reading its sentence; writes "
                             "calibration.npz into the session folder (for imer-train finetune)")
    parser.add_argument("--calibration-seconds", type=float, default=10.0, help="seconds per emotion")
    parser.add_argument("--neutral-baseline", type=float, default=None, metavar="SECONDS",
                        help="start with a neutral baseline: SECONDS of your resting face and a calm sentence; "
                             "its means shift your face and voice features so your resting state reads as "
                             "neutral (saved as neutral_baseline.json in the session folder)")
    parser.add_argument("--baseline-file", default=None, metavar="PATH",
                        help="apply a saved neutral baseline (neutral_baseline.json or its session folder)")
    parser.add_argument("--device-wait", type=float, default=DEFAULT_DEVICE_WAIT_S, metavar="SECONDS",
                        help="webcam source: end (exit code 1) when neither the camera nor the microphone has "
                             "delivered anything after this long (default %(default)s)")
    parser.add_argument("--rotate-minutes", type=float, default=None, metavar="MINUTES",
                        help="long runs: start a new session folder every MINUTES (each one complete, with "
                             "its own session.json)")
    parser.add_argument("--keep-sessions", type=int, default=None, metavar="N",
                        help="with --rotate-minutes: keep only the newest N session folders of this run")
