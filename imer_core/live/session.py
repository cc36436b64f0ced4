"""Session folders: predictions as JSONL and CSV, written and flushed as they come.

A session folder holds ``session.json`` (what ran: source, method,
checkpoints, labels, start time), ``predictions.jsonl`` and
``predictions.csv`` (one row per result, flushed at once, so an interrupted
run loses at most the row being written), ``transcript.jsonl``, and on
request the raw ``audio.wav`` (16 kHz, 16-bit, header kept valid after every
write) and ``video.mkv`` (Matroska stays readable when a run is cut off).
:func:`read_session` reads a folder back.
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import numpy as np

from ..config import LIVE_EMOTIONS
from ..modalities import MODALITIES
from .engine import LATENCY_STAGES, LiveResult
from .speech_worker import TranscriptEvent

SESSION_FORMAT = "imer-session-v1"
LATENCY_COLUMNS = LATENCY_STAGES


def strict_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes the non-JSON tokens ``NaN`` / ``Infinity`` (they become ``null``)."""
    return json.dumps(_finite(value), allow_nan=False, **kwargs)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def new_session_dir(root: "str | Path") -> Path:
    """A fresh ``session-YYYYmmdd-HHMMSS[-n]`` folder under ``root``."""
    root = Path(root)
    stamp = datetime.now().strftime("session-%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


class SessionRecorder:
    """Writes the results (and optionally raw media) of a running pipeline to a folder.

    Args:
        folder: the session folder (created if missing).
        info: what ran, stored in ``session.json``.
        labels: class names of the probability columns.
    """

    def __init__(self, folder: "str | Path", info: Mapping[str, Any], labels: tuple[str, ...] = LIVE_EMOTIONS) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.labels = tuple(labels)
        self.t0_monotonic, self.t0_wall = time.monotonic(), time.time()
        self._lock = threading.Lock()
        self.rows = 0
        #: rows that carry a prediction (rows without one say why: loading, nothing available, ...)
        self.predictions = 0
        self._meta = {"format": SESSION_FORMAT, "started_wall": self.t0_wall,
                      "started_iso": datetime.fromtimestamp(self.t0_wall).isoformat(timespec="seconds"),
                      "started_monotonic": self.t0_monotonic, "labels": list(self.labels), **dict(info),
                      # rewritten by close(): a session.json still saying false was cut off (killed)
                      "ended_wall": None, "ended_iso": None, "duration_s": None, "clean_shutdown": False}
        self._write_meta()
        self._jsonl: TextIO = open(self.folder / "predictions.jsonl", "a", encoding="utf-8")
        self._csv_file: TextIO = open(self.folder / "predictions.csv", "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(self.columns())
        self._csv_file.flush()
        self._transcript: TextIO = open(self.folder / "transcript.jsonl", "a", encoding="utf-8")
        self._closed = False

    def columns(self) -> list[str]:
        """Header of ``predictions.csv``."""
        cols = ["t_session", "t_monotonic", "t_wall", "sequence", "method", "sampler_steps", "top", "top_p"]
        cols += [f"p_{label}" for label in self.labels]
        cols += ["smoothed_top"] + [f"smoothed_p_{label}" for label in self.labels]
        cols += ["comparison", "comparison_modalities", "comparison_top", "comparison_agreement_last_minute"]
        for m in MODALITIES:
            cols += [f"{m.value}_state", f"{m.value}_recovered", f"{m.value}_reason"]
        return cols + [f"latency_{k}_ms" for k in LATENCY_COLUMNS] + ["message"]

    def write_result(self, result: LiveResult) -> None:
        """Append one result to both files and flush them."""
        record = result.to_dict()
        record["t_session"] = round(result.t_monotonic - self.t0_monotonic, 4)
        with self._lock:
            if self._closed:
                return
            self._jsonl.write(strict_json(record) + "\n")
            self._jsonl.flush()
            self._csv.writerow(self._row(result, record["t_session"]))
            self._csv_file.flush()
            self.rows += 1
            self.predictions += result.probabilities is not None

    __call__ = write_result

    def _row(self, result: LiveResult, t_session: float) -> list[Any]:
        probs = dict(zip(result.labels, result.probabilities or ()))
        top = result.top
        row: list[Any] = [t_session, f"{result.t_monotonic:.4f}", f"{result.t_wall:.4f}", result.sequence,
                          result.method or "", result.sampler_steps or "", top[0] if top else "",
                          f"{top[1]:.5f}" if top else ""]
        row += [f"{probs[label]:.5f}" if label in probs else "" for label in self.labels]
        smoothed = dict(zip(result.labels, result.smoothed or ()))
        shown_top = result.shown_top if result.smoothed is not None else None
        row += [shown_top[0] if shown_top else ""]
        row += [f"{smoothed[label]:.5f}" if label in smoothed else "" for label in self.labels]
        c = result.comparison
        row += ["", "", "", ""] if c is None else [
            c.kind, "+".join(c.modalities), result.labels[max(range(len(c.probabilities)),
                                                              key=c.probabilities.__getitem__)],
            f"{c.agreement:.4f}"]
        for status in result.statuses:
            row += [status.state.value, int(status.modality.value in result.recovered), status.reason]
        latency = result.latency
        row += [f"{latency[k]:.2f}" if k in latency else "" for k in LATENCY_COLUMNS]
        return row + [result.message]

    def write_transcript(self, event: TranscriptEvent) -> None:
        """Append one transcribed utterance (times relative to the session start)."""
        record = {"text": event.text, "start": round(event.start - self.t0_monotonic, 3),
                  "end": round(event.end - self.t0_monotonic, 3), "asr_seconds": round(event.asr_seconds, 3)}
        with self._lock:
            if not self._closed:
                self._transcript.write(strict_json(record) + "\n")
                self._transcript.flush()

    def _write_meta(self) -> None:
        """Write ``session.json`` atomically (a kill leaves the old or the new one, never half of one)."""
        path = self.folder / "session.json"
        tmp = path.with_name(f".session.json.{os.getpid()}.tmp")
        tmp.write_text(strict_json(self._meta, indent=2, default=str))
        os.replace(tmp, path)

    def close(self, clean: bool = True, reason: str = "") -> None:
        """Close every file and record the end in ``session.json`` (idempotent).

        Args:
            clean: every thread stopped and every file was flushed (``False``:
                the shutdown was forced, e.g. a second Ctrl-C).
            reason: why the session ended (``"end of file"``, ``"SIGTERM"``, ...).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for f in (self._jsonl, self._csv_file, self._transcript):
                f.close()
            ended = time.time()
            self._meta.update(ended_wall=ended, ended_iso=datetime.fromtimestamp(ended).isoformat(timespec="seconds"),
                              duration_s=round(time.monotonic() - self.t0_monotonic, 3), clean_shutdown=bool(clean),
                              end_reason=reason, rows=self.rows, predictions=self.predictions)
            self._write_meta()


#: Largest WAV part written (2 GiB, half the format's 4 GiB limit, which many
#: readers already fail at 2 GiB): 18.6 hours of 16 kHz 16-bit mono.
WAV_PART_BYTES = 2 << 30


class WavAppender:
    """16-bit mono WAV written incrementally; the header is valid after every write.

    WAV cannot hold more than 4 GiB, so a long recording is split: after
    ``part_bytes`` of samples, ``audio.wav`` is followed by ``audio-002.wav``,
    ``audio-003.wav``, ... (no sample lost or repeated between parts);
    :attr:`paths` lists them.
    """

    def __init__(self, path: "str | Path", sample_rate: int = 16000, part_bytes: int = WAV_PART_BYTES) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.part_frames = max(1, int(part_bytes) // 2)
        self.paths: list[Path] = []
        self._frames = 0
        self._file, self._wav = self._open_part()

    def _open_part(self) -> tuple[BinaryIO, wave.Wave_write]:
        n = len(self.paths) + 1
        path = self.path if n == 1 else self.path.with_name(f"{self.path.stem}-{n:03d}{self.path.suffix}")
        file = open(path, "wb")
        wav = wave.open(file, "wb")
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(self.sample_rate)
        self._frames = 0
        self.paths.append(path)
        return file, wav

    def write(self, samples: np.ndarray) -> None:
        """Append float samples in ``[-1, 1]`` and flush (the wave module patches the header each write)."""
        pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767.0).astype("<i2")
        while len(pcm):
            if self._frames >= self.part_frames:
                self._close_part()
                self._file, self._wav = self._open_part()
            take = pcm[:self.part_frames - self._frames]
            self._wav.writeframes(take.tobytes())
            self._file.flush()
            self._frames += len(take)
            pcm = pcm[len(take):]

    def _close_part(self) -> None:
        self._wav.close()
        self._file.close()

    def close(self) -> None:
        """Finish the header and close the file (idempotent)."""
        if not self._file.closed:
            self._close_part()


@dataclass(frozen=True, eq=False)
class SessionData:
    """A session folder read back (see :func:`read_session`)."""

    folder: Path
    info: dict[str, Any]
    predictions: list[dict[str, Any]]
    transcript: list[dict[str, Any]]
    audio_path: Path | None
    video_path: Path | None


def read_session(folder: "str | Path") -> SessionData:
    """Read a session folder; a truncated last line (an interrupted run) is skipped."""
    folder = Path(folder)
    meta_path = folder / "session.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder} is not a session folder (no session.json)")
    info = json.loads(meta_path.read_text())
    if info.get("format") != SESSION_FORMAT:
        raise ValueError(f"{folder}: unknown session format {info.get('format')!r}")
    audio, video = folder / "audio.wav", folder / "video.mkv"
    return SessionData(folder, info, _read_jsonl(folder / "predictions.jsonl"),
                       _read_jsonl(folder / "transcript.jsonl"),
                       audio if audio.is_file() else None, video if video.is_file() else None)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only the last line of an interrupted run can be cut
    return rows
