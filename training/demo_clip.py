"""Synthetic demo clip: an animated public-domain portrait with espeak-ng speech.

The clip is a stand-in source for machines without a camera or microphone
(and a test fixture): the US Navy portrait of Grace Hopper shipped with
matplotlib (public domain) moves slowly (pan, zoom, a small rotation) so that
every frame differs while the face stays fully in view, and espeak-ng speaks a
few short sentences with silent gaps between them.  It is *not* a recording of
a person expressing emotions: the face does not react to the words.

Everything is deterministic (no randomness): the same sentences and options
give the same frames and samples.

Command line (``python -m training.demo_clip --help``)::

    python -m training.demo_clip assets/demo/demo_clip.mp4 --duration 20

Heavy modules (OpenCV, PyAV, SciPy, matplotlib) are imported lazily.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000

#: The sentences of the shipped clip, each with a different emotional content.
DEMO_SENTENCES: tuple[str, ...] = (
    "I am so happy to see you today.",
    "I feel sad that the summer is over.",
    "Stop it! This makes me really angry.",
    "Oh no, what was that noise?",
    "Wow, what a lovely surprise!",
)

#: Centre of the face in ``grace_hopper.jpg`` as (x, y) fractions of the image
#: width/height (MediaPipe face landmarks: x 0.33-0.69, y 0.22-0.56), moved a
#: little down so that the chin and collar stay in the frame.
PORTRAIT_FACE_CENTER: tuple[float, float] = (0.51, 0.42)

_SILENCE_LEVEL = 1e-3  # |sample| below which espeak-ng output counts as silence
_MOTION_MARGIN = 1.15  # head-room of the base zoom for the pan/zoom/rotation


class EspeakNotFoundError(RuntimeError):
    """espeak-ng is not installed (or not on ``PATH``)."""


@dataclass(frozen=True)
class SentenceTiming:
    """Where one sentence is spoken in a clip (seconds from the clip's start)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class DemoClip:
    """What :func:`make_clip` wrote.

    Attributes:
        path: the media file.
        duration_s: length of the clip (video and audio) in seconds.
        fps: frame rate.
        size: ``(width, height)`` of the frames.
        n_frames: number of video frames.
        sample_rate: audio rate (mono).
        lead_in_s: silence before the first sentence.
        sentences: where each sentence is spoken (sound onset to offset).
    """

    path: Path
    duration_s: float
    fps: float
    size: tuple[int, int]
    n_frames: int
    sample_rate: int
    lead_in_s: float
    sentences: tuple[SentenceTiming, ...]


# -- speech ----------------------------------------------------------------

def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program can be run."""
    return shutil.which("espeak-ng") is not None


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit mono PCM WAV → float32 samples in ``[-1, 1]`` and the sample rate."""
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM from espeak-ng")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32768.0, wav.getframerate()


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase (anti-aliased) resampling of mono ``audio`` from ``rate`` to ``target`` Hz."""
    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    return resample_poly(audio, target // g, rate // g).astype(np.float32)


def speak(text: str, path: str | Path | None = None, voice: str = "en-us", speed: int = 150,
          sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesize ``text`` with espeak-ng; float32 mono samples at ``sample_rate``.

    Args:
        text: what to say.
        path: where espeak-ng writes its WAV (kept, at espeak-ng's own rate);
            ``None`` uses a temporary file.
        voice: espeak-ng voice (``espeak-ng --voices`` lists them).
        speed: words per minute.
        sample_rate: rate of the returned samples.

    Raises:
        EspeakNotFoundError: espeak-ng is not installed.
        RuntimeError: espeak-ng failed (its message is included).
    """
    if not espeak_available():
        raise EspeakNotFoundError("espeak-ng is not installed; install it with `apt-get install espeak-ng` "
                                  "(or `brew install espeak-ng`) to synthesize speech")
    if path is None:
        with tempfile.TemporaryDirectory(prefix="imer-espeak-") as tmp:
            return speak(text, Path(tmp) / "speech.wav", voice, speed, sample_rate)
    path = Path(path)
    cmd = ["espeak-ng", "-v", voice, "-s", str(int(speed)), "-w", str(path), "--", text]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not path.is_file():
        raise RuntimeError(f"espeak-ng failed ({done.returncode}): {done.stderr.strip()}")
    audio, rate = _read_wav(path)
    return resample(audio, rate, sample_rate)


def _trim(audio: np.ndarray, level: float = _SILENCE_LEVEL) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``level``."""
    loud = np.flatnonzero(np.abs(audio) > level)
    if loud.size == 0:
        return audio[:0]
    return audio[loud[0]:loud[-1] + 1]


def speech_track(sentences: Sequence[str], gap_s: float = 1.5, sample_rate: int = SAMPLE_RATE, *,
                 lead_in_s: float = 0.0, voice: str = "en-us",
                 speed: int = 150) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Speak ``sentences`` one after another with ``gap_s`` of silence between them.

    Each utterance is trimmed to its sound, so the returned times are the
    onset and offset of the speech itself.  The track starts with
    ``lead_in_s`` of silence and ends at the last sentence's offset.

    Returns:
        ``(audio, [(start_s, end_s, sentence), ...])``: float32 mono samples and
        the times of each sentence in seconds from the track's first sample.
    """
    if not sentences:
        raise ValueError("speech_track needs at least one sentence")
    if gap_s < 0 or lead_in_s < 0:
        raise ValueError("gap_s and lead_in_s must not be negative")
    gap = np.zeros(int(round(gap_s * sample_rate)), np.float32)
    parts = [np.zeros(int(round(lead_in_s * sample_rate)), np.float32)]
    timings: list[tuple[float, float, str]] = []
    position = parts[0].size
    for i, sentence in enumerate(sentences):
        voiced = _trim(speak(sentence, None, voice, speed, sample_rate))
        if voiced.size == 0:
            raise RuntimeError(f"espeak-ng produced no sound for {sentence!r}")
        if i:
            parts.append(gap)
            position += gap.size
        timings.append((position / sample_rate, (position + voiced.size) / sample_rate, sentence))
        parts.append(voiced)
        position += voiced.size
    return np.concatenate(parts), timings


# -- video -----------------------------------------------------------------

def load_portrait() -> np.ndarray:
    """The public-domain Grace Hopper portrait shipped with matplotlib, as BGR uint8."""
    import cv2
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read the sample portrait {path}")
    return image


def _base_scale(image_shape: tuple[int, ...], size: tuple[int, int], center: tuple[float, float]) -> float:
    """Zoom at which a ``size`` window around ``center`` fits in the image with head-room."""
    height, width = image_shape[:2]
    cx, cy = center[0] * width, center[1] * height
    half_w = min(cx, width - cx)
    half_h = min(cy, height - cy)
    if half_w <= 0 or half_h <= 0:
        raise ValueError(f"center {center} must lie inside the image")
    return _MOTION_MARGIN * max(size[0] / 2 / half_w, size[1] / 2 / half_h)


def motion(t: float) -> tuple[float, float, float, float]:
    """Smooth camera motion at time ``t`` s: (dx px, dy px, zoom factor, rotation deg).

    Sums of slow sines with incommensurate periods, so the motion never stops
    for long and never repeats exactly within a minute.
    """
    tau = 2.0 * math.pi
    dx = 14.0 * math.sin(tau * t / 7.3) + 4.0 * math.sin(tau * t / 2.9 + 1.0)
    dy = 8.0 * math.sin(tau * t / 5.1 + 0.5) + 3.0 * math.sin(tau * t / 3.7 + 2.0)
    zoom = 1.0 + 0.04 * math.sin(tau * t / 9.7 + 0.3)
    angle = 2.0 * math.sin(tau * t / 6.1 + 1.3) + 0.6 * math.sin(tau * t / 2.3)
    return dx, dy, zoom, angle


def animate_portrait(image_bgr: np.ndarray, n_frames: int, size: tuple[int, int] = (640, 480),
                     fps: float = 30.0,
                     center: tuple[float, float] = PORTRAIT_FACE_CENTER) -> Iterator[np.ndarray]:
    """Yield ``n_frames`` BGR frames of ``image_bgr`` under a slow pan/zoom/rotation.

    Args:
        image_bgr: the still image (uint8 BGR).
        n_frames: how many frames to yield.
        size: ``(width, height)`` of the frames.
        fps: frame rate (sets the speed of the motion).
        center: the point of the image kept near the frame centre, as (x, y)
            fractions of its width/height (the face, for a portrait).
    """
    import cv2

    width, height = size
    base = _base_scale(image_bgr.shape, size, center)
    src_x, src_y = center[0] * image_bgr.shape[1], center[1] * image_bgr.shape[0]
    for i in range(n_frames):
        dx, dy, zoom, angle = motion(i / fps)
        matrix = cv2.getRotationMatrix2D((src_x, src_y), angle, base * zoom)
        matrix[0, 2] += width / 2 + dx - src_x
        matrix[1, 2] += height / 2 + dy - src_y
        yield cv2.warpAffine(image_bgr, matrix, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)


# -- the clip --------------------------------------------------------------

def make_clip(path: str | Path, sentences: Sequence[str] = DEMO_SENTENCES, duration_s: float | None = None,
              fps: float = 30.0, size: tuple[int, int] = (640, 480), lead_in_s: float = 1.0, *,
              gap_s: float = 1.5, tail_s: float = 1.0, voice: str = "en-us", speed: int = 150,
              sample_rate: int = SAMPLE_RATE) -> DemoClip:
    """Write the animated portrait with the spoken ``sentences`` to ``path`` (e.g. ``.mp4``).

    Args:
        path: output media file (H.264 + AAC for ``.mp4``).
        sentences: spoken one after another, ``gap_s`` apart.
        duration_s: clip length; ``None`` ends it ``tail_s`` after the last
            sentence.  Must leave room for the speech.
        fps: frame rate.
        size: ``(width, height)``; both even.
        lead_in_s: silence before the first sentence.
        gap_s, tail_s, voice, speed: see :func:`speech_track` and above.
        sample_rate: audio rate of the file (mono).

    Returns:
        A :class:`DemoClip` with the clip's duration and sentence times.
    """
    from imer_core.live.sources.media_writer import write_media

    audio, timings = speech_track(sentences, gap_s, sample_rate, lead_in_s=lead_in_s, voice=voice, speed=speed)
    speech_end = audio.size / sample_rate
    if duration_s is None:
        duration_s = speech_end + tail_s
    elif duration_s < speech_end:
        raise ValueError(f"duration_s={duration_s} is shorter than the speech ({speech_end:.2f} s)")
    n_frames = math.ceil(duration_s * fps - 1e-6)  # never cut the speech short
    duration_s = n_frames / fps
    n_samples = int(round(duration_s * sample_rate))
    audio = np.concatenate([audio, np.zeros(max(0, n_samples - audio.size), np.float32)])[:n_samples]
    frames = animate_portrait(load_portrait(), n_frames, size, fps)
    write_media(path, frames, fps, audio, sample_rate=sample_rate)
    return DemoClip(Path(path), duration_s, float(fps), (int(size[0]), int(size[1])), n_frames, sample_rate,
                    float(lead_in_s), tuple(SentenceTiming(s, e, t) for s, e, t in timings))


# -- command line ----------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.demo_clip",
        description="Write the synthetic demo clip: the public-domain Grace Hopper portrait, slowly "
                    "animated, with espeak-ng speech (needs espeak-ng and PyAV).")
    parser.add_argument("output", type=Path, help="media file to write (.mp4, .mkv, ...)")
    parser.add_argument("--sentence", action="append", dest="sentences", metavar="TEXT",
                        help="a sentence to speak (repeatable; default: the five demo sentences)")
    parser.add_argument("--duration", type=float, default=None,
                        help="clip length in s (default: end --tail s after the last sentence)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--lead-in", type=float, default=1.0, help="silence before the first sentence, s")
    parser.add_argument("--gap", type=float, default=1.5, help="silence between sentences, s")
    parser.add_argument("--tail", type=float, default=1.0, help="silence after the last sentence, s")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice (default en-us)")
    parser.add_argument("--speed", type=int, default=150, help="espeak-ng words per minute (default 150)")
    return parser


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 640x480, got {text!r}") from None
    return width, height


def describe(clip: DemoClip) -> str:
    """Human-readable summary: file, duration, size and a table of the sentence times."""
    lines = [f"{clip.path}: {clip.duration_s:.2f} s, {clip.size[0]}x{clip.size[1]} @ {clip.fps:g} fps, "
             f"{clip.n_frames} frames, audio {clip.sample_rate} Hz mono",
             "| # | start (s) | end (s) | sentence |", "|---|---|---|---|"]
    lines += [f"| {i} | {s.start:.2f} | {s.end:.2f} | {s.text} |" for i, s in enumerate(clip.sentences, 1)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        size = _parse_size(args.size)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        clip = make_clip(args.output, tuple(args.sentences or DEMO_SENTENCES), args.duration, args.fps, size,
                         args.lead_in, gap_s=args.gap, tail_s=args.tail, voice=args.voice, speed=args.speed)
    except (EspeakNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(describe(clip))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
