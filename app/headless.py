"""``imer run``: the live pipeline without a window.

Prints a one-line status (rewritten in place on a terminal, every few
seconds otherwise) and writes a session folder as it goes; Ctrl-C, SIGTERM,
the end of a media file or ``--duration`` stop every thread cleanly, and a
second Ctrl-C ends the process at once.

Exit codes: 0 the session ended normally (end of file, ``--duration``,
Ctrl-C / SIGTERM); 1 the media file or the devices cannot be used (not an
audio/video file, no camera and no microphone); 2 any other usage error (a
checkpoint that does not fit, a bad option); 128 + the signal when a signal
ended the process before it recorded anything or a second one forced it.

Nothing heavy is imported here: ``imer --help`` and argument errors stay
free of torch, MediaPipe and the models (they are imported by :func:`run`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from imer_core.live.smoothing import DEFAULT_SMOOTHING_S

from .arguments import DEFAULT_DEVICE_WAIT_S, add_run_arguments, add_source_arguments  # noqa: F401 - re-exported
from .signals import StopRequests

if TYPE_CHECKING:
    from imer_core.live.engine import LiveResult
    from imer_core.live.pipeline import PipelineConfig

WEBCAM = "webcam"  # imer_core.live.parts.WEBCAM (that module imports the capture stack)
EXIT_OK, EXIT_MEDIA, EXIT_USAGE = 0, 1, 2


def pipeline_config(args: argparse.Namespace) -> "PipelineConfig":
    """The :class:`PipelineConfig` of parsed ``imer``/``imer run`` arguments."""
    from imer_core.features.registry import parse_extractor_choice
    from imer_core.live.health import HealthConfig
    from imer_core.live.parts import SourceSpec
    from imer_core.live.pipeline import PipelineConfig, disabled_from_text

    source = args.source or WEBCAM
    problem = SourceSpec(source).kind.check(source)
    if problem:
        raise SystemExit(f"imer: {problem}")
    spec = SourceSpec(source=source, camera=args.camera, microphone=_mic(args.mic), loop=args.loop)
    health = HealthConfig(text_silence_after_s=getattr(args, "text_silence", 15.0))
    try:
        extractors = parse_extractor_choice(getattr(args, "extractor", ""))
    except ValueError as exc:
        raise SystemExit(f"imer: --extractor: {exc}") from None
    return PipelineConfig(sources=spec, disabled=disabled_from_text(args.disable),
                          checkpoints=tuple(args.checkpoint), method=args.method,
                          sampler_steps=args.sampler_steps, device=args.device,
                          hop_s=getattr(args, "hop", 0.15), health=health,
                          smoothing_s=_smoothing(getattr(args, "smoothing", DEFAULT_SMOOTHING_S)),
                          extractors=extractors)


def _smoothing(value: float) -> float:
    if not (value >= 0 and value < float("inf")):
        raise SystemExit(f"imer: --smoothing must be a number of seconds >= 0, got {value}")
    return float(value)


def _mic(value: str | None) -> "str | int | None":
    return int(value) if value is not None and value.isdigit() else value


def status_line(result: "LiveResult | None", stats: dict, elapsed: float) -> str:
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
    """Run the pipeline until Ctrl-C / SIGTERM, end of file or ``--duration``; returns an exit code."""
    out = sys.stderr if out is None else out
    problem = _check_options(args)
    if problem:
        print(f"imer: {problem}", file=out)
        return EXIT_USAGE
    source = args.source or WEBCAM
    problem = _source_problem(source)
    if problem:
        print(f"imer: {problem}", file=out)
        return EXIT_MEDIA
    stop = StopRequests(out).install()
    try:
        return _run(args, out, stop, source)
    finally:
        stop.restore()


def _check_options(args: argparse.Namespace) -> str:
    for name in ("duration", "rotate_minutes"):
        value = getattr(args, name, None)
        if value is not None and not 0 < value < float("inf"):
            return f"--{name.replace('_', '-')} must be a positive number, got {value}"
    keep = getattr(args, "keep_sessions", None)
    if keep is not None and keep < 1:
        return f"--keep-sessions must be at least 1, got {keep}"
    if keep is not None and getattr(args, "rotate_minutes", None) is None:
        return "--keep-sessions needs --rotate-minutes"
    seconds = getattr(args, "neutral_baseline", None)
    if seconds is not None and not 0 < seconds <= 120:
        return f"--neutral-baseline must be between 0 and 120 seconds, got {seconds}"
    if getattr(args, "baseline_file", None):
        from imer_core.live.neutral_baseline import NeutralBaseline, NeutralBaselineError

        try:
            args.loaded_baseline = NeutralBaseline.load(args.baseline_file)
        except NeutralBaselineError as exc:
            return str(exc)
    return ""


def _source_problem(source: str) -> str:
    """Why the ``--source`` value cannot be used (one line, from its kind), or ``""``."""
    from imer_core.live.sources.kinds import source_kind

    return source_kind(source).check(source)


def _run(args: argparse.Namespace, out: TextIO, stop: StopRequests, source: str) -> int:
    from imer_core.cli_errors import is_user_error
    from imer_core.live.models import LiveModelError
    from imer_core.live.pipeline import LivePipeline

    try:
        pipeline = LivePipeline(pipeline_config(args))
        pipeline.load_model()  # refuse a checkpoint that does not fit, before starting
    except SystemExit as exc:
        print(exc, file=out)
        return EXIT_USAGE
    except (LiveModelError, ValueError) as exc:
        if not is_user_error(exc):
            raise  # a bug: its traceback, not a one-line message
        print(f"imer: {exc}", file=out)
        return EXIT_USAGE
    if not pipeline.snapshot().methods:
        print("imer: no trained model loaded (no --checkpoint and no shipped model): modality states and "
              "features are shown, but no emotion is predicted", file=out)
    stop.starting = False  # from here a Ctrl-C stops the pipeline cleanly
    pipeline.start()
    recorded = False
    try:
        problem = _wait_for_source(pipeline, args, stop, out, source)
        if problem:
            print(f"\nimer: {problem}", file=out)
            return EXIT_MEDIA
        if stop.is_set():
            print("\nstopped before the source started: nothing recorded", file=out)
            return EXIT_OK
        recorded = True
        baseline = getattr(args, "loaded_baseline", None)
        if baseline is not None:
            pipeline.set_neutral_baseline(baseline)
            print(f"neutral baseline from {args.baseline_file} applied", file=out, flush=True)
        return _record(pipeline, args, stop, out)
    finally:
        # A normal end lets a recognition in progress finish (its words reach the transcript);
        # a signal, an error or nothing recorded: threads get a fraction of a second.
        pipeline.stop(quick=stop.is_set() or not recorded)


def _wait_for_source(pipeline, args: argparse.Namespace, stop: StopRequests, out: TextIO, source: str) -> str:
    """Wait until the source plays (a held file: its models loaded); ``""`` or why it never will."""
    started = time.monotonic()
    last_print = -10.0
    live = not pipeline.config.sources.is_file
    while not stop.wait(0.1):
        elapsed = time.monotonic() - started
        if live:
            devices = pipeline.snapshot().stream_statuses
            if any(status.ok for _, status in devices):
                return ""
            if elapsed >= args.device_wait:
                reasons = "; ".join(f"{name}: {status.reason or 'no data'}" for name, status in devices)
                return (f"no camera and no microphone delivered anything within {args.device_wait:g} s "
                        f"({reasons}); connect one, or play a file with --source FILE")
        elif not pipeline.waiting_for_models:
            return ""
        if not args.quiet and elapsed - last_print >= 5.0:
            what = "waiting for the camera / microphone" if live else \
                "loading models; the file starts playing when they are ready"
            print(f"[{elapsed:6.1f}s] {what}", file=out, flush=True)
            last_print = elapsed
    return ""


def _record(pipeline, args: argparse.Namespace, stop: StopRequests, out: TextIO) -> int:
    """Write session folders from now on (the source plays) until the run ends."""
    from imer_core.live.recording import SessionRecording
    from imer_core.live.session import new_session_dir

    rotate_s = args.rotate_minutes * 60.0 if args.rotate_minutes else None
    started = time.monotonic()
    folders: list[Path] = []  # this run's folders still on disk (oldest first)
    parts = 0
    totals = {"predictions": 0, "rows": 0}
    reason = ""
    while not reason:
        folder = new_session_dir(args.out)
        folders.append(folder)
        parts += 1
        recording = SessionRecording(pipeline, folder, {"command": " ".join(sys.argv), "part": parts},
                                     raw_audio=args.record_audio, raw_video=args.record_video).start()
        part_started = time.monotonic()
        try:
            if parts == 1 and getattr(args, "neutral_baseline", None):
                _neutral_baseline(pipeline, folder, args, stop, out)
            if args.calibrate:
                _calibrate(pipeline, folder, args, stop, out)
                reason = stop.signal_name or "calibration done"
            else:
                reason = _loop(pipeline, args, stop, started, out,
                               None if rotate_s is None else part_started + rotate_s)
        finally:
            if reason or sys.exc_info()[0] is not None:  # the run ends: threads first, so their last output is kept
                pipeline.stop(quick=stop.is_set())
            recording.stop(reason=reason or "rotated", timeout_s=1.0 if stop.is_set() else 5.0)
            totals["predictions"] += recording.recorder.predictions
            totals["rows"] += recording.recorder.rows
        if args.keep_sessions is not None:
            while len(folders) > args.keep_sessions:
                _remove_session(folders.pop(0))
    where = folders[-1] if parts == 1 else f"{parts} folders under {args.out} ({len(folders)} kept)"
    print(f"\nsession written to {where} ({totals['predictions']} predictions in {totals['rows']} rows)",
          file=out)
    return EXIT_OK


def _remove_session(folder: Path) -> None:
    """Delete an old session folder of this run (--keep-sessions); only the files a session holds."""
    import shutil

    if (folder / "session.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)


def _loop(pipeline, args: argparse.Namespace, stop: StopRequests, started: float, out: TextIO,
          rotate_at: float | None) -> str:
    """Status lines until the run (or this part of it) ends; returns why ("" when rotating)."""
    tty = out.isatty()
    last_print = 0.0
    file_s = _file_seconds(pipeline)
    while not stop.wait(0.2):
        now = time.monotonic()
        elapsed = now - started
        if args.duration is not None and elapsed >= args.duration:
            return "duration"
        if pipeline.ended or (file_s is not None and _nothing_plays(pipeline) and elapsed >= file_s):
            print("\nend of file", file=out, flush=True)
            pipeline.finish_file(cancel=stop.event)  # the last words and the prediction with them
            return "end of file"
        if rotate_at is not None and now >= rotate_at:
            return ""
        if args.quiet or (not tty and elapsed - last_print < 5.0):
            continue
        line = status_line(pipeline.latest_result, pipeline.stats(), elapsed)
        print(("\r" + line[:150].ljust(150)) if tty else line, end="" if tty else "\n", file=out, flush=True)
        last_print = elapsed
    return stop.signal_name or "stopped"


def _file_seconds(pipeline) -> float | None:
    """Play time of a media file source that does not loop (its duration), else ``None``."""
    view = pipeline.snapshot()
    if not view.config.sources.is_file or view.config.sources.loop:
        return None
    return view.file_duration_s


def _nothing_plays(pipeline) -> bool:
    """Every modality is switched off, so neither stream of the file runs (its end is never seen)."""
    return not pipeline.snapshot().playing


def _neutral_baseline(pipeline, folder: Path, args: argparse.Namespace, stop: StopRequests, out: TextIO) -> None:
    """Record the neutral baseline with a prompt; a failure is one line and the run goes on without it."""
    from imer_core.live.neutral_baseline import INSTRUCTION, NeutralBaselineError, record_neutral_baseline

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not stop.is_set() and pipeline.warming_up:
        time.sleep(0.2)
    print(f"\n{INSTRUCTION} ({args.neutral_baseline:g} s)", file=out, flush=True)
    try:
        baseline = record_neutral_baseline(pipeline, args.neutral_baseline, should_stop=stop.is_set)
    except NeutralBaselineError as exc:
        print(f"neutral baseline: {exc}; continuing without it", file=out, flush=True)
        return
    path = baseline.save(folder)
    counts = ", ".join(f"{m.value} {n}" for m, n in baseline.counts.items())
    used = ", ".join(pipeline.neutral_baseline_modalities()) or "nothing (the model has no neutral reference)"
    print(f"neutral baseline ({counts} samples) saved to {path}; shifts {used}", file=out, flush=True)


def _calibrate(pipeline, folder: Path, args: argparse.Namespace, stop: StopRequests, out: TextIO) -> None:
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

