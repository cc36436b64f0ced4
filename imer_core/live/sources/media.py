"""A media file played as if it were a camera and a microphone.

:class:`MediaFileSource` decodes a file with PyAV in two threads: its
``.video`` source puts BGR frames into a :class:`~imer_core.live.buffers.FrameSlot`
when they are due, and its ``.audio`` source writes the audio, resampled to
16 kHz mono, into an :class:`~imer_core.live.buffers.AudioRingBuffer` in
~20 ms chunks at real-time pace.  Both follow one shared clock: media
position ``p`` (seconds from the start of the file) is due at monotonic time
``t0 + p``, so a stream restarted on its own (vision switched off and on
again) resumes at the position the other stream has reached.

Timing conventions:

* ``VideoFrame.t_capture`` is the monotonic time the frame was due (real-time
  mode) or emitted (``realtime=False``); it always increases.
* ``VideoFrame.media_time`` is the position in the file in seconds; with
  ``loop=True`` it **restarts at 0** on every pass while ``t_capture`` keeps
  increasing.  Both streams loop with the same period (the file's duration);
  an audio track shorter than that is padded with silence, so the ring
  buffer's sample count keeps matching wall-clock time.
* ``realtime=False`` decodes as fast as possible: the frame slot then keeps
  only the newest frame, and audio is written without waiting, so the ring
  buffer overwrites its oldest samples unless ``capacity_s`` holds the whole
  file or the consumer keeps up.

PyAV is imported lazily.
"""

from __future__ import annotations

import math
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..buffers import STARTING, STOPPED, SourceStatus, VideoFrame
from .base import LIVE_SAMPLE_RATE, AudioSource, CaptureSource, SourceOpenError, VideoSource

AUDIO_CHUNK = LIVE_SAMPLE_RATE // 50  # 20 ms
_MAX_BAD_PACKETS = 50
#: when decoding runs behind real time, late frames are still emitted this often (seconds), so
#: vision gets some (late, honestly timed) frames and a status instead of none at all
_LATE_FRAME_INTERVAL_S = 0.5
_END = SourceStatus(False, "end of file", ended=True)


class MediaOpenError(SourceOpenError):
    """The file is missing, unreadable, or not an audio/video file."""


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe_media` found in a file (``None`` for what is absent or unknown)."""

    path: Path
    has_video: bool
    has_audio: bool
    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    sample_rate: int | None = None


def _open_container(path: Path) -> Any:
    import av

    if not path.exists():
        raise MediaOpenError(f"media file not found: {path}")
    if not path.is_file():
        raise MediaOpenError(f"not a file: {path}")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise MediaOpenError(f"cannot read {path.name} as an audio/video file: {exc}") from exc


def _first_frame(container: Any, stream: Any) -> Any:
    for packet in container.demux(stream):
        for frame in packet.decode():
            return frame
    return None


def probe_media(path: str | Path) -> MediaInfo:
    """Open ``path``, check that its streams decode, and describe them.

    Raises:
        MediaOpenError: missing file, a directory, a file FFmpeg cannot read,
            or one without a decodable audio or video stream.
    """
    import av

    path = Path(path)
    container = _open_container(path)
    try:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise MediaOpenError(f"{path.name} has neither an audio nor a video stream")
        for stream in (video, audio):
            if stream is not None:
                container.seek(0)
                if _first_frame(container, stream) is None:
                    raise MediaOpenError(f"{path.name}: the {stream.type} stream holds no decodable data")
        rate = (video.average_rate or video.guessed_rate) if video is not None else None
        return MediaInfo(path, video is not None, audio is not None, _duration(container, video, audio),
                         float(rate) if rate else None,
                         video.codec_context.width if video is not None else None,
                         video.codec_context.height if video is not None else None,
                         audio.codec_context.sample_rate if audio is not None else None)
    except av.FFmpegError as exc:
        raise MediaOpenError(f"cannot decode {path.name}: {exc}") from exc
    finally:
        container.close()


def _duration(container: Any, *streams: Any) -> float | None:
    """The container's duration, else the longest stream's, else the end of the last packet."""
    if container.duration:
        return container.duration / 1_000_000
    spans = [float(s.duration * s.time_base) for s in streams if s is not None and s.duration]
    if spans:
        return max(spans)
    container.seek(0)
    end = 0.0
    for packet in container.demux(*[s for s in streams if s is not None]):
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end or None


class _MediaClock:
    """The start time shared by the streams of one file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t0: float | None = None
        self._users = 0

    def join(self, realtime: bool) -> tuple[float, float]:
        """Register a starting stream; returns ``(t0, position_s)`` where it starts."""
        with self._lock:
            now = time.monotonic()
            if self._users == 0 or self._t0 is None:
                self._t0 = now
            self._users += 1
            return self._t0, (now - self._t0 if realtime else 0.0)

    def leave(self) -> None:
        with self._lock:
            self._users = max(self._users - 1, 0)


class _StreamWorker(CaptureSource):
    """Thread handling shared by the video and audio halves of a media file."""

    kind = ""

    def _init_worker(self, owner: MediaFileSource, present: bool) -> None:
        self._owner = owner
        self._present = present
        self.description = f"{owner.path.name} ({self.kind})"
        if not present:
            self._set_status(SourceStatus(False, f"file has no {self.kind} track", absent=True))

    def start(self) -> None:
        """Start decoding (a stream the file does not have stays ``absent``)."""
        if not self._present or self.running:
            return
        self._set_status(STARTING)
        t0, position = self._owner._clock.join(self._owner.realtime)
        self._launch(self._guarded, f"media-{self.kind}", t0, position)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop decoding (idempotent)."""
        self._join(timeout)
        if self._present:
            self._set_status(STOPPED)

    def _guarded(self, t0: float, position: float) -> None:
        try:
            self._play(t0, position)
        except Exception as exc:  # never raise out of the thread: report instead
            if not self._stop.is_set():
                self._set_status(SourceStatus(False, f"{self.kind} decoding failed: {exc}"))
        finally:
            self._owner._clock.leave()

    def _wait_until(self, due: float) -> bool:
        """Sleep until ``due`` (real-time mode); returns ``False`` when stopped."""
        if self._owner.realtime:
            delay = due - time.monotonic()
            if delay > 0:
                return not self._stop.wait(delay)
        return not self._stop.is_set()

    def _passes(self, position: float) -> Iterator[tuple[int, float, float]]:
        """``(pass, pass_start_offset_s, start_position_in_pass)`` for each pass over the file."""
        period = self._owner.info.duration_s
        k = int(position // period) if self._owner.loop and period else 0
        offset = position - k * period if period else position
        while not self._stop.is_set():
            yield k, k * (period or 0.0), offset
            if not self._owner.loop:
                return
            k, offset = k + 1, 0.0

    def _frames(self, container: Any, stream: Any, start: float) -> Iterator[Any]:
        """Decoded frames of ``stream`` from ``start`` seconds, skipping undecodable packets."""
        import av

        container.seek(int(start * 1_000_000) if start > 0 else 0)
        bad = 0
        for packet in container.demux(stream):
            if self._stop.is_set():
                return
            try:
                frames = packet.decode()
                bad = 0
            except av.FFmpegError:
                bad += 1
                if bad > _MAX_BAD_PACKETS:
                    raise
                continue
            yield from frames

    @abstractmethod
    def _play(self, t0: float, position: float) -> None:
        """Decode from media ``position`` (seconds) on the clock started at ``t0``."""


class MediaVideoSource(_StreamWorker, VideoSource):
    """The video half of a :class:`MediaFileSource`."""

    kind = "video"

    def __init__(self, owner: MediaFileSource) -> None:
        VideoSource.__init__(self)
        self._init_worker(owner, owner.info.has_video)
        self._index = 0
        #: frames skipped because decoding fell behind real time.
        self.late_dropped = 0
        self._last_put = -math.inf  # when the newest frame was emitted (monotonic)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop decoding and clear the frame slot (idempotent)."""
        _StreamWorker.stop(self, timeout)
        self.frames.clear()

    def _play(self, t0: float, position: float) -> None:
        import av

        container = av.open(str(self._owner.path))
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            origin = (container.start_time or 0) / 1_000_000
            fps = self._owner.info.fps or 25.0
            for _, pass_offset, start in self._passes(position):
                for frame in self._frames(container, stream, start):
                    media_time = (frame.time if frame.time is not None else 0.0) - origin
                    if media_time < start - 0.5 / fps:
                        continue  # before the start position (seeking lands on a key frame)
                    if not self._emit(frame, media_time, t0 + pass_offset + media_time, fps):
                        return
        finally:
            container.close()
        if not self._stop.is_set():
            self._set_status(_END)

    def _emit(self, frame: Any, media_time: float, due: float, fps: float) -> bool:
        realtime = self._owner.realtime
        now = time.monotonic()
        if realtime and now - due > 2.0 / fps and now - self._last_put < _LATE_FRAME_INTERVAL_S:
            self.late_dropped += 1  # behind schedule: skip the colour conversion
            return not self._stop.is_set()
        if not self._wait_until(due):
            return False
        image = frame.to_ndarray(format="bgr24")
        self.frames.put(VideoFrame(image, due if realtime else time.monotonic(), self._index, media_time))
        self._last_put = time.monotonic()
        self._index += 1
        if not self._status.ok:
            self._set_status(SourceStatus(True, self.description))
        return True


class MediaAudioSource(_StreamWorker, AudioSource):
    """The audio half of a :class:`MediaFileSource` (16 kHz mono, ~20 ms chunks)."""

    kind = "audio"

    def __init__(self, owner: MediaFileSource, capacity_s: float) -> None:
        AudioSource.__init__(self, capacity_s)
        self._init_worker(owner, owner.info.has_audio)

    def _play(self, t0: float, position: float) -> None:
        import av

        container = av.open(str(self._owner.path))
        try:
            stream = container.streams.audio[0]
            origin = (container.start_time or 0) / 1_000_000
            period = self._owner.info.duration_s
            limit = int(round(period * LIVE_SAMPLE_RATE)) if period else None
            for _, pass_offset, start in self._passes(position):
                writer = _ChunkWriter(self, t0 + pass_offset, int(round(start * LIVE_SAMPLE_RATE)), limit)
                if not self._play_pass(container, stream, origin, start, writer):
                    return
                # pad to the common period (streams stay in sync), chunk by chunk: a header
                # declaring hours costs time, never memory
                if self._owner.loop and limit and not writer.pad_to(limit):
                    return
                if not writer.flush():
                    return
        finally:
            container.close()
        if not self._stop.is_set():
            self._set_status(_END)

    def _play_pass(self, container: Any, stream: Any, origin: float, start: float,
                   writer: _ChunkWriter) -> bool:
        import av

        resampler = av.AudioResampler(format="flt", layout="mono", rate=LIVE_SAMPLE_RATE)
        for frame in self._frames(container, stream, start):
            if frame.time is not None and not writer.aligned:
                writer.align(frame.time - origin)
            for out in resampler.resample(frame):
                if not writer.add(out.to_ndarray().reshape(-1)):
                    return False
        if self._stop.is_set():
            return False
        for out in resampler.resample(None):
            if not writer.add(out.to_ndarray().reshape(-1)):
                return False
        return True


class _ChunkWriter:
    """Cuts decoded audio into 20 ms chunks and writes each when its last sample is due.

    Samples past ``limit`` (the file's duration, in samples) are dropped: AAC
    decoders return the encoder's padding of the last frame.
    """

    def __init__(self, source: MediaAudioSource, pass_t0: float, start_sample: int,
                 limit: int | None) -> None:
        self.source, self.pass_t0, self.limit = source, pass_t0, limit
        self.position = start_sample  # sample index (in this pass) of the next sample written
        self._pending = np.zeros(0, np.float32)
        self._drop = 0
        #: whether the decoded audio has been placed on the timeline (see :meth:`align`).
        self.aligned = False

    def align(self, first_time: float) -> bool:
        """Place the first decoded sample at ``first_time`` (silence before it, or drop samples).

        ``False`` when the source was stopped while the silence was written.
        """
        self.aligned = True
        gap = int(round(first_time * LIVE_SAMPLE_RATE)) - self.position
        self._drop = max(-gap, 0)
        if self.limit is not None:
            gap = min(gap, self.limit - self.position)
        return self.silence(gap)

    def silence(self, count: int) -> bool:
        """Write ``count`` zero samples one chunk at a time (memory does not grow with ``count``)."""
        while count > 0:
            fill = min(count, max(AUDIO_CHUNK - len(self._pending), 0))
            if fill:
                self._pending = np.concatenate([self._pending, np.zeros(fill, np.float32)])
                count -= fill
            while len(self._pending) >= AUDIO_CHUNK:
                if not self._write(self._pending[:AUDIO_CHUNK]):
                    return False
                self._pending = self._pending[AUDIO_CHUNK:]
        return True

    def add(self, samples: np.ndarray) -> bool:
        """Queue decoded samples; writes every complete chunk (``False`` when stopped)."""
        if self._drop:
            samples, self._drop = samples[self._drop:], max(self._drop - len(samples), 0)
        self.aligned = True
        if self.limit is not None:
            samples = samples[:max(self.limit - self.position - len(self._pending), 0)]
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        while len(self._pending) >= AUDIO_CHUNK:
            if not self._write(self._pending[:AUDIO_CHUNK]):
                return False
            self._pending = self._pending[AUDIO_CHUNK:]
        return True

    def pad_to(self, total: int) -> bool:
        """Append silence up to ``total`` samples in this pass (``False`` when stopped meanwhile)."""
        return self.silence(total - self.position - len(self._pending))

    def flush(self) -> bool:
        """Write what is left (a last partial chunk included)."""
        pending, self._pending = self._pending, np.zeros(0, np.float32)
        for lo in range(0, len(pending), AUDIO_CHUNK):
            if not self._write(pending[lo:lo + AUDIO_CHUNK]):
                return False
        return True

    def _write(self, chunk: np.ndarray) -> bool:
        source = self.source
        due = self.pass_t0 + (self.position + len(chunk)) / LIVE_SAMPLE_RATE
        if not source._wait_until(due):
            return False
        source.ring.write(chunk, due if source._owner.realtime else time.monotonic())
        self.position += len(chunk)
        if not source._status.ok:
            source._set_status(SourceStatus(True, source.description))
        return True


class MediaFileSource:
    """An audio/video file as a pair of capture sources sharing one clock.

    Args:
        path: any file FFmpeg reads (mp4, mkv, webm, avi, wav, flac, mp3, ...).
        loop: start again at the end (see the module docstring for timing).
        realtime: pace output at real time (``False``: as fast as possible).
        capacity_s: seconds kept in the audio ring buffer.

    Raises:
        MediaOpenError: at construction, for missing, corrupt or non-media files.
    """

    def __init__(self, path: str | Path, loop: bool = False, realtime: bool = True,
                 capacity_s: float = 30.0) -> None:
        self.path = Path(path)
        self.info = probe_media(self.path)
        if loop and not self.info.duration_s:
            raise MediaOpenError(f"cannot loop {self.path.name}: its duration is unknown")
        self.loop = bool(loop)
        self.realtime = bool(realtime)
        self.description = self.path.name
        self._clock = _MediaClock()
        self.video = MediaVideoSource(self)
        self.audio = MediaAudioSource(self, capacity_s)

    @property
    def running(self) -> bool:
        """Whether either stream is decoding."""
        return self.video.running or self.audio.running

    def start(self) -> None:
        """Start both streams (the ones the file has) on a common clock."""
        self.audio.start()
        self.video.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop both streams (idempotent)."""
        self.video.stop(timeout)
        self.audio.stop(timeout)
