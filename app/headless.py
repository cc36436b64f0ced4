"""``imer run``: the live pipeline without a window.

Prints a one-line status (rewritten in place on a terminal, every few
seconds otherwise) and writes a session folder as it goes; Ctrl-C, the end of
a media file or ``--duration`` stop every thread cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from imer_core.live.engine import LiveResult
from imer_core.live.health import HealthConfig
from imer_core.live.models import LiveModelError
from imer_core.live.parts import WEBCAM, SourceSpec
from imer_core.live.pipeline import LivePipeline, PipelineConfig, disabled_from_text
from imer_core.live.recording import SessionRecording
from imer_core.live.session import new_session_dir
from imer_core.live.smoothing import DEFAULT_SMOOTHING_S

from .arguments import add_run_arguments, add_source_arguments  # noqa: F401 - re-exported


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The :class:`PipelineConfig` of parsed ``imer``/``imer run`` arguments."""
    source = args.source or WEBCAM
    if source != WEBCAM and not Path(source).is_file():
        raise SystemExit(f"imer: source file not found: {source}")
    spec = SourceSpec(source=source, camera=args.camera, microphone=_mic(args.mic), loop=args.loop)
    health = HealthConfig(text_silence_after_s=getattr(args, "text_silence", 15.0))
    return PipelineConfig(sources=spec, disabled=disabled_from_text(args.disable),
                          checkpoints=tuple(args.checkpoint), method=args.method,
                          sampler_steps=args.sampler_steps, device=args.device,
                          hop_s=getattr(args, "hop", 0.15), health=health,
                          smoothing_s=_smoothing(getattr(args, "smoothing", DEFAULT_SMOOTHING_S)))


def _smoothing(value: float) -> float:
    if not (value >= 0 and value < float("inf")):
        raise SystemExit(f"imer: --smoothing must be a number of seconds >= 0, got {value}")
    return float(value)


def _mic(value: str | None) -> "str | int | None":
    return int(value) if value is not None and value.isdigit() else value


def status_line(result: LiveResult | None, stats: dict, elapsed: float) -> str:
    """One line: time, top emotion, modality states, rates and latency."""
    if result is None:
        return f"[{elapsed:6.1f}s] starting..."
    top = result.shown_top  # smoothed unless --smoothing 0
    head = f"{top[0]} {top[1]:.2f}" if top else (result.message or "no prediction")[:60]
    marks = []
    for status in result.statuses:
        state = "recovered" if status.modality.value in result.recovered else status.state.value
        marks.append(f"{status.modality.short.upper()}:{state}")
    e2e = result.latency.get("end_to_end")
    tail = f"{stats['predictions_per_s']:.1f} pred/s, face {stats['face_fps']:.0f} fps"
    tail += f", e2e {e2e:.0f} ms" if e2e is not None else ""
    return f"[{elapsed:6.1f}s] {head} | {' '.join(marks)} | {tail}"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the pipeline until Ctrl-C, end of file or ``--duration``; returns an exit code."""
    out = sys.stderr if out is None else out
    try:
        pipeline = LivePipeline(pipeline_config(args))
        if pipeline.engine.method is not None:
            pipeline.bank.get(pipeline.engine.method)  # refuse a checkpoint that does not fit, before starting
    except (LiveModelError, ValueError) as exc:
        print(f"imer: {exc}", file=out)
        return 2
    if not pipeline.bank.methods:
        print("imer: no trained model loaded (no --checkpoint and no shipped model): modality states and "
              "features are shown, but no emotion is predicted", file=out)
    folder = new_session_dir(args.out)
    recording = SessionRecording(pipeline, folder, {"command": " ".join(sys.argv)},
                                 raw_audio=args.record_audio, raw_video=args.record_video)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set()) if _main_thread() else None
    started = time.monotonic()
    try:
        recording.start()
        pipeline.start()
        if args.calibrate:
            _calibrate(pipeline, folder, args, stop, out)
        else:
            _loop(pipeline, args, stop, started, out)
    finally:
        pipeline.stop()
        recording.stop()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    print(f"\nsession written to {folder} ({recording.recorder.rows} predictions)", file=out)
    return 0


def _loop(pipeline: LivePipeline, args: argparse.Namespace, stop: threading.Event, started: float,
          out: TextIO) -> None:
    tty = out.isatty()
    last_print = 0.0
    while not stop.wait(0.2):
        elapsed = time.monotonic() - started
        if args.duration is not None and elapsed >= args.duration:
            break
        if pipeline.ended:
            print("\nend of file", file=out, flush=True)
            pipeline.finish_file(cancel=stop)  # the last words and the prediction with them
            break
        if args.quiet or (not tty and elapsed - last_print < 5.0):
            continue
        line = (f"[{elapsed:6.1f}s] loading models; the file starts playing when they are ready"
                if pipeline.waiting_for_models else status_line(pipeline.latest_result, pipeline.stats(), elapsed))
        print(("\r" + line[:150].ljust(150)) if tty else line, end="" if tty else "\n", file=out, flush=True)
        last_print = elapsed


def _calibrate(pipeline: LivePipeline, folder: Path, args: argparse.Namespace, stop: threading.Event,
               out: TextIO) -> None:
    """Walk the user through the calibration script with prompts in the terminal."""
    from dataclasses import replace as replace_step

    from imer_core.live.calibration import DEFAULT_SCRIPT, CalibrationError, CalibrationRun
    print("calibration: loading models...", file=out, flush=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not stop.is_set() and pipeline.warming_up:
        time.sleep(0.2)
    script = [replace_step(step, seconds=args.calibration_seconds) for step in DEFAULT_SCRIPT]
    shown = [-1]

    def prompt(progress) -> None:
        if progress.index != shown[0]:
            shown[0] = progress.index
            step = progress.step
            print(f"\n[{progress.index + 1}/{len(script)}] {step.emotion.upper()}: {step.instruction}\n"
                  f"    \"{step.sentence}\"", file=out, flush=True)

    try:
        path = CalibrationRun(pipeline, folder, script).run(prompt, stop.is_set)
    except CalibrationError as exc:
        print(f"\ncalibration: {exc}", file=out)
        return
    print(f"\ncalibration windows written to {path}", file=out)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
