"""Record a running pipeline into a session folder (results, transcript, optional raw media)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import LIVE_EMOTIONS
from .pipeline import LivePipeline
from .session import SessionRecorder, WavAppender

log = logging.getLogger(__name__)


class SessionRecording:
    """Attach to ``pipeline`` and write everything it produces to ``folder``.

    Args:
        pipeline: a started (or about to start) pipeline.
        folder: the session folder.
        info: extra entries for ``session.json``.
        raw_audio / raw_video: also keep ``audio.wav`` / ``video.mkv``.
    """

    def __init__(self, pipeline: LivePipeline, folder: "str | Path", info: Mapping[str, Any] | None = None,
                 raw_audio: bool = False, raw_video: bool = False) -> None:
        self.pipeline = pipeline
        labels = LIVE_EMOTIONS
        view = pipeline.snapshot()
        details = {"source": view.config.sources.describe(), "device": view.device,
                   "methods": list(view.methods), "method": view.method,
                   "checkpoints": {k: str(v) for k, v in view.checkpoints.items()},
                   "raw_audio": raw_audio, "raw_video": raw_video, **dict(info or {})}
        self.recorder = SessionRecorder(folder, details, labels)
        self.folder = self.recorder.folder
        self._raw_audio, self._raw_video = raw_audio, raw_video
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seen_transcripts = 0
        self.error = ""

    def start(self) -> "SessionRecording":
        self.pipeline.add_listener(self.recorder.write_result)
        self._spawn(self._poll_transcripts, "transcript")
        if self._raw_audio:
            self._spawn(self._record_audio, "audio")
        if self._raw_video:
            self._spawn(self._record_video, "video")
        return self

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=self._guard, args=(target,), name=f"imer-record-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guard(self, target) -> None:
        try:
            target()
        except Exception as exc:  # recording problems are shown, the session goes on
            log.exception("recording failed")
            self.error = f"recording failed: {type(exc).__name__}: {exc}"

    def stop(self, reason: str = "", timeout_s: float = 5.0) -> bool:
        """Write what is pending and close every file (idempotent); ``False`` if a writer did not finish.

        ``session.json`` records the end, the ``reason`` and whether the
        shutdown was clean (every writer thread finished within ``timeout_s``).
        """
        self.pipeline.remove_listener(self.recorder.write_result)
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        clean = not any(thread.is_alive() for thread in self._threads)
        self._flush_transcripts()
        self.recorder.close(clean=clean, reason=reason)
        return clean

    def _poll_transcripts(self) -> None:
        while not self._stop.wait(0.2):
            self._flush_transcripts()

    def _flush_transcripts(self) -> None:
        events, self._seen_transcripts = self.pipeline.transcripts_since(self._seen_transcripts)
        for event in events:
            self.recorder.write_transcript(event)

    def _record_audio(self) -> None:
        wav = WavAppender(self.folder / "audio.wav")
        ring, position = None, 0
        try:
            while not self._stop.wait(0.25):
                current = self.pipeline.capture_buffers()[1]
                if ring is not current:
                    ring = current
                    position = ring.total_written
                end = ring.total_written
                if end > position:
                    wav.write(ring.read(max(position, end - ring.capacity), end))
                    position = end
        finally:
            wav.close()

    def _record_video(self) -> None:
        from .sources.media_writer import MediaWriter
        writer, slot, seq, t0 = None, None, 0, 0.0
        try:
            while not self._stop.is_set():
                current = self.pipeline.capture_buffers()[0]
                if slot is not current:
                    slot, seq = current, current.sequence
                frame, seq = slot.wait_newer(seq, 0.1)
                if frame is None:
                    continue
                if writer is None:
                    h, w = (d - d % 2 for d in frame.image.shape[:2])  # H.264 needs even sizes
                    writer = MediaWriter(self.folder / "video.mkv", w, h, self.pipeline.snapshot().config.sources.fps,
                                         audio=False, live=True)
                    t0 = frame.t_capture
                image = frame.image[:writer.height, :writer.width]
                if image.shape[:2] == (writer.height, writer.width):  # frames of another size are skipped
                    writer.add_frame(image, frame.t_capture - t0)  # capture times: dropped frames keep the pace
        finally:
            if writer is not None:
                writer.close()

