"""Guided calibration: the user acts each emotion while every modality is recorded.

This is the only genuinely *paired* face + voice + text data the project can
get (no public corpus here has all three), so a short calibration session
lets ``imer-train finetune`` adapt the shipped model to one person.

A :class:`CalibrationRun` walks through :data:`DEFAULT_SCRIPT`: for each
emotion it shows an instruction and a sentence to read aloud, waits
``settle_s`` and then samples a model window of every modality each
``sample_every_s`` until the step ends.  The text features of a step only
come from what was said during that step (the transcript is cleared when a
step begins).  ``calibration.npz`` in the session folder holds the windows
(raw, un-normalised features as the live extractors produce them) with their
labels; :func:`load_calibration` reads one or more session folders back.
"""

from __future__ import annotations

import json
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import LIVE_EMOTIONS
from ..modalities import MODALITIES, Modality
from .engine import DEFAULT_HOLD_S
from .models import LIVE_WINDOW_RATE_HZ, LIVE_WINDOW_STEPS

CALIBRATION_FILE = "calibration.npz"
#: Live window: 20 steps at 10 Hz (2 s), the spec of the shipped live models.
WINDOW_STEPS, WINDOW_RATE_HZ = LIVE_WINDOW_STEPS, LIVE_WINDOW_RATE_HZ


#: Most bytes the arrays of one ``calibration.npz`` may declare (a one-hour
#: calibration at two windows a second declares about 600 MB).  Checked from
#: the array headers before any array is read.
MAX_CALIBRATION_BYTES = 1 << 30


class CalibrationError(RuntimeError):
    """A calibration run produced nothing usable."""


class CalibrationFileError(ValueError):
    """A ``calibration.npz`` is corrupt, oversized, or holds values that cannot be trained on."""


@dataclass(frozen=True)
class CalibrationStep:
    """One emotion to act: an instruction, a sentence to read aloud, and its duration."""

    emotion: str
    instruction: str
    sentence: str
    seconds: float = 10.0


DEFAULT_SCRIPT: tuple[CalibrationStep, ...] = (
    CalibrationStep("neutral", "Relax, look at the camera and read calmly:",
                    "The meeting starts at ten and ends at eleven."),
    CalibrationStep("happy", "Smile and read as if you just heard great news:",
                    "That is wonderful, I am so happy for you!"),
    CalibrationStep("sad", "Think of something sad and read slowly:", "I really miss the way things used to be."),
    CalibrationStep("angry", "Frown and read firmly, as if annoyed:", "Stop it, this is completely unacceptable!"),
    CalibrationStep("fearful", "Widen your eyes and read as if frightened:", "Did you hear that? Someone is outside."),
    CalibrationStep("disgusted", "Wrinkle your nose and read with disgust:", "Ugh, that smells absolutely horrible."),
    CalibrationStep("surprised", "Raise your eyebrows and read astonished:", "Wow, I did not expect that at all!"),
)


@dataclass(frozen=True)
class CalibrationProgress:
    """Where a calibration run is (for a prompt line or a dialog)."""

    index: int
    step: CalibrationStep
    remaining_s: float
    samples: int


class CalibrationRun:
    """Collects labelled windows from a running pipeline, one script step after another.

    Args:
        pipeline: a started :class:`~imer_core.live.pipeline.LivePipeline`.
        folder: where ``calibration.npz`` / ``calibration.json`` are written.
        script: the steps (labels must be in ``labels``).
        settle_s: time after a step starts before windows are taken.
        sample_every_s: time between windows.
    """

    def __init__(self, pipeline, folder: "str | Path", script: Sequence[CalibrationStep] = DEFAULT_SCRIPT,
                 settle_s: float = 1.5, sample_every_s: float = 0.5, labels: Sequence[str] = LIVE_EMOTIONS) -> None:
        unknown = [s.emotion for s in script if s.emotion not in labels]
        if unknown:
            raise ValueError(f"calibration steps with unknown emotions: {unknown}")
        self.pipeline, self.folder = pipeline, Path(folder)
        self.script, self.labels = tuple(script), tuple(labels)
        self.settle_s, self.sample_every_s = settle_s, sample_every_s
        self._windows: dict[Modality, list[np.ndarray]] = {m: [] for m in MODALITIES}
        self._available: list[list[bool]] = []
        self._label: list[int] = []
        self._step: list[int] = []

    @property
    def samples(self) -> int:
        return len(self._label)

    def run(self, on_progress: Callable[[CalibrationProgress], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> Path:
        """Go through every step (blocking) and save; returns the ``calibration.npz`` path."""
        for index, step in enumerate(self.script):
            self.begin_step()
            started = time.monotonic()
            next_sample = started + self.settle_s
            while (left := step.seconds - (time.monotonic() - started)) > 0 and not should_stop():
                if on_progress is not None:
                    on_progress(CalibrationProgress(index, step, left, self.samples))
                if time.monotonic() >= next_sample:
                    self.take_window(index)
                    next_sample += self.sample_every_s
                time.sleep(0.05)
            if should_stop():
                break
        return self.save()

    def begin_step(self) -> None:
        """Forget the transcript so a step's text comes only from what is said in it."""
        self.pipeline.tracks[Modality.TEXT].clear()
        if getattr(self.pipeline, "transcript", None) is not None:
            self.pipeline.transcript.clear()

    def take_window(self, index: int, now: float | None = None) -> bool:
        """Add the current window of every modality labelled with step ``index``; False if none is available."""
        now = time.monotonic() if now is None else now
        dims = {m: self.pipeline.tracks[m].dim for m in MODALITIES}
        windows = {m: self.pipeline.tracks[m].window(now, WINDOW_STEPS, WINDOW_RATE_HZ, DEFAULT_HOLD_S[m])
                   for m in MODALITIES}
        # A window holding NaN / inf counts as missing (as in the engine): written as it is, it would make
        # load_calibration refuse the whole file, and the session's calibration would be lost.
        windows = {m: w if w is None or np.isfinite(w.values).all() else None for m, w in windows.items()}
        if all(w is None for w in windows.values()):
            return False
        for m in MODALITIES:
            w = windows[m]
            self._windows[m].append(w.values if w is not None else np.zeros((WINDOW_STEPS, dims[m]), np.float32))
        self._available.append([windows[m] is not None for m in MODALITIES])
        self._label.append(self.labels.index(self.script[index].emotion))
        self._step.append(index)
        return True

    def save(self) -> Path:
        """Write ``calibration.npz`` and ``calibration.json``.

        Raises:
            CalibrationError: no window was collected (nothing is written).
        """
        if self.samples == 0:
            raise CalibrationError("no calibration window was collected: check that the camera and microphone "
                                   "deliver data (the modality states say why not) and let the steps run")
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {m.value: np.asarray(self._windows[m], np.float32).reshape(self.samples, WINDOW_STEPS, -1)
                  for m in MODALITIES}
        path = self.folder / CALIBRATION_FILE
        # numpy 2's stub types **arrays against allow_pickle: bool (numpy 1 does not: unused there)
        np.savez_compressed(path, **arrays, label=np.asarray(self._label, np.int64),  # type: ignore[arg-type, unused-ignore]
                            step=np.asarray(self._step, np.int64),
                            available=np.asarray(self._available, bool).reshape(self.samples, 3),
                            labels=np.asarray(self.labels))
        counts = {e: int(np.sum(np.asarray(self._label) == i)) for i, e in enumerate(self.labels)}
        info = {"samples": self.samples, "per_emotion": counts, "window_steps": WINDOW_STEPS,
                "rate_hz": WINDOW_RATE_HZ, "script": [asdict(s) for s in self.script],
                "available_share": {m.value: float(np.mean([a[i] for a in self._available])) if self._available
                                    else 0.0 for i, m in enumerate(MODALITIES)}}
        (self.folder / "calibration.json").write_text(json.dumps(info, indent=2))
        return path


@dataclass(frozen=True, eq=False)
class CalibrationData:
    """Windows of one or more calibration sessions."""

    features: dict[str, np.ndarray]
    available: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    sources: tuple[Path, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_calibration(folders: Sequence["str | Path"]) -> CalibrationData:
    """Read ``calibration.npz`` from each folder (or any folder below it).

    Every file is checked before use: a readable zip of ``.npy`` arrays whose
    declared sizes stay under :data:`MAX_CALIBRATION_BYTES` (checked from the
    headers before reading), the expected keys and shapes with one sample
    count, finite features, and labels inside the label space.

    Raises:
        FileNotFoundError: no calibration data under the folders.
        CalibrationFileError: a corrupt, oversized or invalid file (named), no
            windows at all, sessions with different label spaces or window shapes.
    """
    files = sorted({p for f in folders for p in ([Path(f)] if Path(f).is_file() else Path(f).rglob(CALIBRATION_FILE))})
    if not files:
        raise FileNotFoundError(f"no {CALIBRATION_FILE} under {', '.join(map(str, folders))}: record a calibration "
                                "first (imer run --calibrate, or Calibrate in the app)")
    parts = [_read_calibration_file(p) for p in files]
    names = {tuple(part["labels"]) for part in parts}
    if len(names) != 1:
        raise CalibrationFileError(f"calibration sessions use different label spaces: {sorted(names)}")
    shapes = {tuple(part[m.value].shape[1:] for m in MODALITIES) for part in parts}
    if len(shapes) != 1:
        raise CalibrationFileError(f"calibration sessions have different window shapes: {sorted(shapes)}")
    features = {m.value: np.concatenate([part[m.value] for part in parts]) for m in MODALITIES}
    labels = np.concatenate([p["label"] for p in parts])
    if labels.shape[0] == 0:
        raise CalibrationFileError(f"the calibration files hold no windows: {', '.join(map(str, files))}")
    return CalibrationData(features, np.concatenate([p["available"] for p in parts]), labels,
                           names.pop(), tuple(files))


_FEATURE_KEYS = tuple(m.value for m in MODALITIES)
# What a damaged npz raises: zlib.error (corrupt deflate data) is no OSError or ValueError.
_UNREADABLE = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, ValueError, EOFError, KeyError)
_REQUIRED = (*_FEATURE_KEYS, "label", "available", "labels")


def _declared_arrays(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{key: (shape, dtype)}`` from the ``.npy`` headers of an npz, without reading the data."""
    declared = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            declared[info.filename[:-4]] = (tuple(shape), dtype)
    return declared


def _read_calibration_file(path: Path) -> dict[str, np.ndarray]:
    """Validated arrays of one ``calibration.npz`` (see :func:`load_calibration`)."""
    def fail(why: str) -> CalibrationFileError:
        return CalibrationFileError(f"{path} is not a usable calibration file: {why}")

    try:
        declared = _declared_arrays(path)
    except _UNREADABLE as exc:
        raise fail(f"corrupt or truncated ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in _REQUIRED if k not in declared]
    if missing:
        raise fail(f"missing array(s) {missing}")
    total = sum(int(np.prod(shape, dtype=np.float64)) * dtype.itemsize for shape, dtype in declared.values())
    if total > MAX_CALIBRATION_BYTES:
        raise fail(f"its arrays declare {total:,} bytes ({total / 2**20:,.1f} MiB), over the limit of "
                   f"{MAX_CALIBRATION_BYTES:,} bytes")
    label_shape, label_dtype = declared["label"]
    if len(label_shape) != 1 or label_dtype.kind not in "iu":
        raise fail(f"'label' must be (N,) integers, got {label_dtype} {label_shape}")
    n = label_shape[0]
    for key in _FEATURE_KEYS:
        shape, dtype = declared[key]
        if len(shape) != 3 or shape[0] != n or dtype.kind != "f":
            raise fail(f"{key!r} must be float windows (N, steps, dim) with N={n}, got {dtype} {shape}")
    if declared["available"][0] != (n, len(MODALITIES)):
        raise fail(f"'available' must be ({n}, {len(MODALITIES)}), got {declared['available'][0]}")
    if declared["labels"][1].kind not in "U" or len(declared["labels"][0]) != 1:
        raise fail(f"'labels' must be a list of class names, got {declared['labels'][1]}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in _REQUIRED}
    except _UNREADABLE as exc:
        raise fail(f"corrupt or truncated ({type(exc).__name__}: {exc})") from exc
    arrays["labels"] = tuple(str(x) for x in arrays["labels"])
    label = arrays["label"].astype(np.int64)
    if label.size and (label.min() < 0 or label.max() >= len(arrays["labels"])):
        raise fail(f"labels outside 0..{len(arrays['labels']) - 1} (found {int(label.min())}..{int(label.max())})")
    arrays["label"] = label
    arrays["available"] = arrays["available"].astype(bool)
    for key in _FEATURE_KEYS:
        values = arrays[key].astype(np.float32, copy=False)
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            raise fail(f"{bad} NaN or infinite {key} feature values")
        arrays[key] = values
    return arrays
