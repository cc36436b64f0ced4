"""Shared test helpers for synthetic speech and media clips, and for capture-source timing.

Imported by ``conftest.py`` (so the fixtures below are available to every test
module) and directly by test modules for the plain helpers::

    from clip_fixtures import espeak_16k, decode_audio_16k

* :func:`espeak_16k` — espeak-ng speech as float32 16 kHz mono (skips the test
  when espeak-ng is missing);
* :func:`decode_audio_16k`, :func:`decode_video_frames` — read a media file
  back with PyAV;
* :func:`words`, :func:`word_overlap` — normalised word comparison for ASR;
* :func:`tone`, :func:`peak_frequency` — a 0.5-amplitude sine and the
  strongest frequency of a signal;
* :func:`wait_until` — poll a condition (returns early, ``None`` on time-out);
* :class:`StatusLog` — every status a capture source sets, with the time the
  source set it (source-side timestamps: robust on a loaded machine, and
  short-lived states are never missed by polling);
* fixture ``demo_test_clip`` (session scope) — a short demo clip (animated
  portrait + one spoken sentence, 640x480 @ 30 fps, AAC 16 kHz) written once
  per test session, as an :class:`training.demo_clip.DemoClip`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.demo_clip import DemoClip, espeak_available, make_clip, speak

SR = 16000
#: The one sentence of the ``demo_test_clip`` fixture.
TEST_CLIP_SENTENCE = "I am so happy to see you today."
#: Silence before and after the sentence in ``demo_test_clip``.
TEST_CLIP_LEAD_IN_S = 1.5
TEST_CLIP_TAIL_S = 1.0


def require_espeak() -> None:
    """Skip the calling test when espeak-ng is not installed."""
    if not espeak_available():
        pytest.skip("espeak-ng not installed (apt-get install -y espeak-ng)")


def require_pyav() -> None:
    """Skip the calling test when PyAV cannot be imported."""
    pytest.importorskip("av", reason="PyAV not installed (pip install av)")


def espeak_16k(text: str, tmp_dir: Path | None = None, speed: int = 140, voice: str = "en-us") -> np.ndarray:
    """``text`` spoken by espeak-ng as float32 16 kHz mono; skips the test without espeak-ng.

    ``tmp_dir``, when given, keeps espeak-ng's own WAV there (``speech.wav``).
    """
    require_espeak()
    return speak(text, None if tmp_dir is None else Path(tmp_dir) / "speech.wav", voice=voice, speed=speed,
                 sample_rate=SR)


def decode_audio_16k(path: str | Path) -> np.ndarray:
    """The first audio stream of a media file, decoded and resampled to float32 16 kHz mono."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def decode_video_frames(path: str | Path, step: int = 1) -> list[tuple[int, np.ndarray]]:
    """Every ``step``-th frame of the first video stream as ``(index, BGR uint8 image)``."""
    import av

    frames: list[tuple[int, np.ndarray]] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                frames.append((i, frame.to_ndarray(format="bgr24")))
    return frames


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` without punctuation."""
    return re.findall(r"[a-z']+", text.lower())


def word_overlap(expected: str, got: str) -> float:
    """Share of the words of ``expected`` that occur in ``got`` (normalised)."""
    want, have = words(expected), set(words(got))
    return sum(w in have for w in want) / max(1, len(want))


def tone(rate: int, n: int, start: int = 0, freq: float = 440.0) -> np.ndarray:
    """Samples ``start .. start + n`` of a 0.5-amplitude sine at ``rate`` Hz (float32)."""
    return (0.5 * np.sin(2 * np.pi * freq * (np.arange(start, start + n) / rate))).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int = SR) -> float:
    """The strongest frequency of ``x`` (Hann window, FFT bin resolution)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.005) -> float | None:
    """Seconds until ``predicate()`` held, or ``None`` on time-out.

    Returns as soon as the predicate holds, so generous time-outs cost nothing
    when the code is right.  Compare the result with ``is not None`` (it can be
    ``0.0``).
    """
    t0 = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - t0
        if time.monotonic() - t0 >= timeout:
            return None
        time.sleep(step)


class StatusLog:
    """Records every status a capture source sets, with the monotonic time it set it.

    Hooks the source's ``_set_status`` (instance attribute), so latencies are
    measured by the source's own clock reading rather than by when a polling
    test thread happened to look, and a failure status that lasts only until
    the next automatic reopen is still seen.  A status the ``status`` property
    computes on read (a camera's stall check) is not recorded.
    """

    def __init__(self, source: Any) -> None:
        self.entries: list[tuple[float, Any]] = []
        self._lock = threading.Lock()
        original = source._set_status

        def record(status: Any) -> None:
            with self._lock:
                self.entries.append((time.monotonic(), status))
            original(status)

        source._set_status = record

    def snapshot(self) -> list[tuple[float, Any]]:
        """``(time, status)`` pairs set so far, oldest first."""
        with self._lock:
            return list(self.entries)

    def first(self, predicate: Callable[[Any], bool]) -> tuple[float, Any] | None:
        """The first ``(time, status)`` whose status satisfies ``predicate`` (``None`` if none yet)."""
        return next(((t, s) for t, s in self.snapshot() if predicate(s)), None)

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> tuple[float, Any] | None:
        """Wait up to ``timeout`` s for a status satisfying ``predicate``; its ``(time, status)``."""
        if wait_until(lambda: self.first(predicate) is not None, timeout) is None:
            return None
        return self.first(predicate)


TEST_CLIP_FPS = 15.0


@pytest.fixture(scope="session")
def demo_test_clip(tmp_path_factory) -> DemoClip:
    """A ~4.5 s demo clip (one sentence, 1.5 s lead-in) at 15 frames/s, written once per session.

    15 frames/s (the shipped demo clip has 30) halves the face path's work in every test that plays it.
    """
    require_espeak()
    require_pyav()
    path = tmp_path_factory.mktemp("demo_clip") / "demo_test.mp4"
    return make_clip(path, [TEST_CLIP_SENTENCE], lead_in_s=TEST_CLIP_LEAD_IN_S, tail_s=TEST_CLIP_TAIL_S,
                     fps=TEST_CLIP_FPS)
