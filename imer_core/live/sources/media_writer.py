"""Incremental audio/video file writer (PyAV / FFmpeg).

:class:`MediaWriter` encodes BGR frames and mono float32 audio as they come
(H.264 ``yuv420p`` through libx264 when FFmpeg has it, MPEG-4 part 2
otherwise; AAC audio) and muxes every packet at once, so a recording that is
cut short still holds everything encoded so far up to the last flushed
packet.  The container follows the file name: ``.mp4`` (default), ``.mkv``,
``.mov``, ``.avi``; audio-only ``.wav`` files get 16-bit PCM and ``.flac``
files FLAC.  An ``.mp4`` is only readable once :meth:`MediaWriter.close` has
written its index; prefer ``.mkv`` for recordings that must survive a crash.
:func:`write_media` writes a whole clip in one call.

PyAV is imported lazily, when a writer is created.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.video.stream import VideoStream

_AUDIO_CODEC_BY_SUFFIX = {".wav": ("pcm_s16le", "s16"), ".flac": ("flac", "s16")}
_AAC_FRAME = 1024
#: Longest Matroska cluster of a ``live`` writer (what a kill can lose, at most).
LIVE_CLUSTER_MS = 1000


def _video_codec_name() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _rate_fraction(fps: float) -> Fraction:
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


class MediaWriter:
    """Write a media file frame by frame and chunk by chunk.

    Args:
        path: output file; its suffix chooses the container.
        width, height: frame size in pixels (even numbers: ``yuv420p``).
        fps: constant frame rate; frame ``i`` is stamped ``i / fps`` seconds.
        sample_rate: rate of the audio passed to :meth:`add_audio`.
        video, audio: which streams the file has (at least one).
        live: the file must survive the process being killed with at most
            about a second lost: the H.264 encoder runs without look-ahead or
            B-frames (``tune=zerolatency``, each frame is muxed as it is
            encoded) and a Matroska file is cut into clusters of at most one
            second, each written through to the file at once.

    Thread-safe: a camera thread may call :meth:`add_frame` while an audio
    thread calls :meth:`add_audio`.  Use as a context manager or call
    :meth:`close` (idempotent) to finish the file.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float,
                 sample_rate: int = 16000, video: bool = True, audio: bool = True, live: bool = False) -> None:
        if not (video or audio):
            raise ValueError("MediaWriter needs a video or an audio stream")
        if video and (width <= 0 or height <= 0 or width % 2 or height % 2):
            raise ValueError(f"frame size must be positive and even (yuv420p), got {width}x{height}")
        if audio and sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
        import av

        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = float(fps)
        self.sample_rate = int(sample_rate)
        self.frames_written = 0
        self._next_pts = 0
        self.samples_written = 0
        self._lock = threading.Lock()
        self._closed = False
        self._pending = np.zeros(0, np.float32)
        self.live = bool(live)
        container_options = {}
        if self.live:
            container_options["flush_packets"] = "1"
            if self.path.suffix.lower() in (".mkv", ".webm"):
                container_options["cluster_time_limit"] = str(LIVE_CLUSTER_MS)
        self._container = av.open(str(self.path), mode="w", container_options=container_options)
        try:
            self._video = self._add_video_stream(fps) if video else None
            self._audio = self._add_audio_stream() if audio else None
        except Exception:
            self._container.close()
            raise

    # -- stream set-up -------------------------------------------------
    def _add_video_stream(self, fps: float) -> VideoStream:
        from av.video.stream import VideoStream

        rate = _rate_fraction(fps)
        codec = _video_codec_name()
        options = {"preset": "veryfast", "crf": "20"} if codec == "libx264" else {}
        if self.live and codec == "libx264":
            options["tune"] = "zerolatency"
        stream = self._container.add_stream(codec, rate=rate, options=options)
        if not isinstance(stream, VideoStream):
            raise RuntimeError(f"FFmpeg codec {codec} did not open a video stream")
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        self._video_tb = 1 / rate  # the stream's own time base changes when the header is written
        stream.time_base = self._video_tb
        if codec == "mpeg4":
            stream.bit_rate = 2_000_000
        return stream

    def _add_audio_stream(self) -> AudioStream:
        from av.audio.stream import AudioStream

        codec, fmt = _AUDIO_CODEC_BY_SUFFIX.get(self.path.suffix.lower(), ("aac", "fltp"))
        stream = self._container.add_stream(codec, rate=self.sample_rate)
        if not isinstance(stream, AudioStream):
            raise RuntimeError(f"FFmpeg codec {codec} did not open an audio stream")
        stream.layout = "mono"
        stream.format = fmt
        self._audio_tb = Fraction(1, self.sample_rate)
        stream.time_base = self._audio_tb
        if codec == "aac":
            stream.bit_rate = 64000
        self._audio_format = fmt
        return stream

    # -- writing ---------------------------------------------------------
    def add_frame(self, bgr: np.ndarray, time_s: float | None = None) -> None:
        """Encode one ``(height, width, 3)`` uint8 BGR frame.

        ``time_s``: its presentation time in seconds from the start (frames
        of a live camera come at an uneven rate or get dropped); ``None``
        places it one frame period after the previous one.  A frame whose
        time falls on the previous frame's slot is moved one slot later.
        """
        if self._video is None:
            raise RuntimeError("this MediaWriter has no video stream")
        image = np.asarray(bgr)
        if image.shape != (self.height, self.width, 3):
            raise ValueError(f"frame must have shape {(self.height, self.width, 3)}, got {image.shape}")
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, dtype=np.uint8), format="bgr24")
        frame = frame.reformat(format="yuv420p")  # outside the lock: audio is not held up by it
        with self._lock:
            self._check_open()
            pts = self._next_pts if time_s is None else max(int(round(time_s / self._video_tb)), self._next_pts)
            frame.pts = pts
            frame.time_base = self._video_tb
            self._mux(self._video.encode(frame))
            self._next_pts = pts + 1
            self.frames_written += 1

    def add_audio(self, samples: np.ndarray) -> None:
        """Encode mono float32 samples in ``[-1, 1]`` (``(n, ch)`` input is averaged)."""
        if self._audio is None:
            raise RuntimeError("this MediaWriter has no audio stream")
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if x.ndim != 1:
            raise ValueError(f"audio must be 1-D (or (n, channels)), got shape {x.shape}")
        x = np.clip(np.nan_to_num(x), -1.0, 1.0)
        with self._lock:
            self._check_open()
            self._pending = np.concatenate([self._pending, x])
            self._encode_audio(final=False)

    def _encode_audio(self, final: bool) -> None:
        n_full = len(self._pending) // _AAC_FRAME * _AAC_FRAME
        n = len(self._pending) if final else n_full
        for lo in range(0, n, _AAC_FRAME):
            self._encode_audio_chunk(self._pending[lo:min(lo + _AAC_FRAME, n)])
        self._pending = self._pending[n:]

    def _encode_audio_chunk(self, chunk: np.ndarray) -> None:
        import av

        if self._audio_format == "s16":
            data = (chunk * 32767.0).round().astype(np.int16)
        else:
            data = chunk.astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format=self._audio_format, layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.samples_written
        frame.time_base = self._audio_tb
        if self._audio is None:
            raise RuntimeError("this MediaWriter has no audio stream")
        self._mux(self._audio.encode(frame))
        self.samples_written += len(chunk)

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            self._container.mux(packet)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"MediaWriter for {self.path} is closed")

    # -- finishing -------------------------------------------------------
    def close(self) -> None:
        """Flush the encoders and finish the file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._audio is not None:
                    self._encode_audio(final=True)
                    self._mux(self._audio.encode(None))
                if self._video is not None:
                    self._mux(self._video.encode(None))
            finally:
                self._container.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def write_media(path: str | Path, frames: Iterable[np.ndarray], fps: float,
                audio: np.ndarray | None, sample_rate: int = 16000) -> Path:
    """Write ``frames`` (BGR, all the same even size) and optional mono ``audio`` to ``path``.

    ``frames`` may be empty for an audio-only file (then ``audio`` is required).
    Returns the path written.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None and audio is None:
        raise ValueError("write_media needs frames or audio")
    height, width = (first.shape[:2] if first is not None else (2, 2))
    samples = None if audio is None else np.asarray(audio, dtype=np.float32)
    with MediaWriter(path, width, height, fps, sample_rate=sample_rate,
                     video=first is not None, audio=samples is not None) as writer:
        done = 0
        for i, frame in enumerate(_chain(first, iterator)):
            writer.add_frame(frame)
            if samples is not None:  # interleave: audio up to the end of this frame
                upto = min(len(samples), int(round((i + 1) * sample_rate / fps)))
                writer.add_audio(samples[done:upto])
                done = max(done, upto)
        if samples is not None and done < len(samples):
            writer.add_audio(samples[done:])
    return Path(path)


def _chain(first: np.ndarray | None, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    if first is None:
        return
    yield first
    yield from rest
