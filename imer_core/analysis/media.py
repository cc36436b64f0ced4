"""Reading images, audio and video frames for offline analysis (Pillow and PyAV, imported lazily).

Every reader raises :class:`UnreadableInput` with a one-line reason; the
analysis turns it into the row's error and goes on with the next file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..live.sources.base import LIVE_SAMPLE_RATE

#: Images larger than this (pixels) are refused before decoding (a decompression bomb).
MAX_IMAGE_PIXELS = 100_000_000
#: Longer images are scaled down to this side before face detection (the detector and the landmark
#: model work on 192-256 px inputs; a 12-megapixel photo would only cost time).
MAX_IMAGE_SIDE = 1280


class UnreadableInput(ValueError):
    """A file cannot be read as what its extension says (the message is the reason)."""


def read_image(path: Path, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file, upright by its EXIF orientation, at most ``max_side`` pixels."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UnreadableInput(f"image of {image.width}x{image.height} pixels is too large")
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale when it is much larger
            upright = (ImageOps.exif_transpose(image) or image).convert("RGB")
            if max(upright.size) > max_side:
                upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return np.ascontiguousarray(np.asarray(upright, dtype=np.uint8))
    except UnidentifiedImageError:
        raise UnreadableInput("not a readable image") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        if isinstance(exc, UnreadableInput):
            raise
        raise UnreadableInput(f"cannot decode the image: {exc}") from None


def _open(path: Path):  # noqa: ANN202 - av.container.InputContainer
    try:
        import av
    except ImportError as exc:
        raise UnreadableInput("reading audio and video needs PyAV (pip install av)") from exc
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableInput(f"not a readable audio/video file: {exc}") from None


def media_streams(path: Path) -> tuple[bool, bool]:
    """``(has_video, has_audio)`` of a media file."""
    with _open(path) as container:
        return bool(container.streams.video), bool(container.streams.audio)


def read_audio(path: Path, sample_rate: int = LIVE_SAMPLE_RATE) -> np.ndarray:
    """The first audio stream decoded and resampled to float32 mono at ``sample_rate`` (16 kHz)."""
    import av

    chunks: list[np.ndarray] = []
    with _open(path) as container:
        if not container.streams.audio:
            raise UnreadableInput("no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as exc:
            if not chunks:
                raise UnreadableInput(f"cannot decode the audio: {exc}") from None
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise UnreadableInput("the audio stream holds no samples")
    if not np.isfinite(audio).all():
        audio = np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(audio, -1.0, 1.0)


def video_frames(path: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """``(media time in s, RGB uint8 frame)`` of the first video stream, at most ``fps`` frames per second."""
    import av

    with _open(path) as container:
        if not container.streams.video:
            raise UnreadableInput("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_time, count = 0.0, 0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else count / fps
                count += 1
                if t + 1e-6 < next_time:
                    continue
                next_time = t + 1.0 / fps
                yield t, frame.to_ndarray(format="rgb24")
        except (av.FFmpegError, ValueError) as exc:
            if count == 0:
                raise UnreadableInput(f"cannot decode the video: {exc}") from None
