"""Per-frame facial features from the MediaPipe Tasks ``FaceLandmarker``.

:class:`FaceFeatureExtractor` runs the FaceLandmarker in VIDEO mode (tracking
between frames) with blendshapes and the facial transformation matrix enabled,
and turns each frame into a :class:`FaceFrameFeatures`.  Its
:attr:`~FaceFrameFeatures.vector` (``FACE_FEATURE_DIM`` = 55 values) is what the
vision modality of a model sees:

* ``[0:52]``: the 52 blendshape scores in ``[0, 1]``, in the fixed ARKit order
  of :data:`FACE_BLENDSHAPE_NAMES` (MediaPipe's category indices; index 0 is
  ``_neutral``, which the current model always reports as ~0);
* ``[52:55]``: head yaw, pitch and roll **in radians** (see
  :func:`rotation_to_euler` for the convention).

The head translation (centimetres, camera frame) and the 478 landmarks are
returned for display but are not part of the vector: they depend on the
camera and the distance to it.  A frame without a face gives ``detected=False``
and an all-zero vector.

**The live models' vision feature** (:func:`live_face_extractor`) puts the
face network's embedding of the aligned 48×48 crop
(:mod:`imer_core.live.face_net`, ``assets/models/face_net.pt``) in front of
those 55 values: ``[embedding (128), blendshapes (52), pose (3)]``.  Its
feature id (:func:`live_vision_feature`) names the network's weights, so a
checkpoint trained on another network, or on the blendshapes alone, is
refused by the live engine's spec check.

MediaPipe is imported only when an extractor is constructed.
"""

from __future__ import annotations

import atexit
import dataclasses
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..modalities import FeatureSpec, Modality
from .base import ExtractorEntry, ExtractorSpec

FACE_EXTRACTOR_ID = "mediapipe-facelandmarker-v2-blendshapes+pose"
FACE_MODEL_FILENAME = "face_landmarker.task"
FACE_MODEL_ENV = "IMER_FACE_LANDMARKER_MODEL"
NUM_LANDMARKS = 478

FACE_BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
POSE_NAMES: tuple[str, ...] = ("head_yaw_rad", "head_pitch_rad", "head_roll_rad")
FACE_FEATURE_NAMES: tuple[str, ...] = FACE_BLENDSHAPE_NAMES + POSE_NAMES
FACE_FEATURE_DIM = len(FACE_FEATURE_NAMES)
_BLENDSHAPE_INDEX = {name: i for i, name in enumerate(FACE_BLENDSHAPE_NAMES)}
#: What :class:`FaceFeatureExtractor` produces: one 55-d vector per frame (resampled by the pipeline).
FACE_EXTRACTOR_SPEC = ExtractorSpec(Modality.VISION, FACE_EXTRACTOR_ID, FACE_FEATURE_DIM)


def face_feature_spec(seq_len: int, rate_hz: float) -> FeatureSpec:
    """Vision :class:`FeatureSpec` for models fed by :class:`FaceFeatureExtractor`."""
    return FACE_EXTRACTOR_SPEC.feature_spec(seq_len, float(rate_hz))


def default_face_model_path() -> Path:
    """Where the model bundle is expected: ``$IMER_FACE_LANDMARKER_MODEL``, else in the assets folder.

    The assets folder is ``$IMER_ASSETS`` when set, else the shipped one (see :mod:`imer_core.assets`).
    """
    env = os.environ.get(FACE_MODEL_ENV)
    if env:
        return Path(env).expanduser()
    from ..assets import asset_path

    return asset_path(FACE_MODEL_FILENAME)


#: Still faces smaller than this (pixels, longest side) are framed like the training faces (FER2013, 48x48).
STILL_FACE_SIZE = 192
#: Gray border added around a small still face, as a fraction of its side.
STILL_FACE_PAD_FRACTION = 0.25


def prepare_still_face(image: np.ndarray, size: int = STILL_FACE_SIZE,
                       pad_fraction: float = STILL_FACE_PAD_FRACTION) -> np.ndarray:
    """A tight face crop framed for the detector: gray (128) border of ``pad_fraction`` of the height,
    then bicubic resize to ``size``x``size``; returns contiguous ``(size, size, 3)`` uint8 RGB.

    This is how the live model's training faces (FER2013) were prepared: MediaPipe's
    detector misses faces that fill their whole (small) image.  ``image`` is
    ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8.
    """
    import cv2  # brought by mediapipe (opencv-contrib-python)

    pad = int(round(image.shape[0] * pad_fraction))
    if image.ndim == 2:
        framed = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
        resized = cv2.resize(framed, (size, size), interpolation=cv2.INTER_CUBIC)
        return np.ascontiguousarray(np.repeat(resized[:, :, None], 3, axis=2))
    framed = cv2.copyMakeBorder(np.ascontiguousarray(image[:, :, :3]), pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=(128, 128, 128))
    return np.ascontiguousarray(cv2.resize(framed, (size, size), interpolation=cv2.INTER_CUBIC))


def rotation_to_euler(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in radians with ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``.

    Axes are MediaPipe's camera frame: x to the image right, y up, z towards
    the camera.  Positive yaw turns the nose towards the image right, positive
    pitch tilts it down, positive roll rotates the face counter-clockwise in
    the image.
    """
    r = np.asarray(rotation, dtype=np.float64)[:3, :3]
    yaw = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    pitch = math.atan2(r[2, 1], r[2, 2])
    roll = math.atan2(r[1, 0], r[0, 0])
    return yaw, pitch, roll


@dataclass(frozen=True, eq=False)
class FaceFrameFeatures:
    """Facial features of one video frame.

    Attributes:
        timestamp_ms: the caller's timestamp of the frame (milliseconds).
        detected: whether a face was found; if not, every array below is zero.
        blendshapes: ``(52,)`` float32 scores in ``[0, 1]``, order :data:`FACE_BLENDSHAPE_NAMES`.
        yaw, pitch, roll: head rotation in degrees (see :func:`rotation_to_euler`).
        translation: ``(3,)`` head position in centimetres in the camera frame (z < 0).
        landmarks: ``(478, 3)`` float32 landmarks; x, y normalised to the image
            width/height, z roughly on the x scale (for drawing).
        bbox: ``(x_min, y_min, x_max, y_max)`` of the landmarks, normalised and
            clipped to ``[0, 1]``.
        vector: ``(FACE_FEATURE_DIM,)`` float32 model input (blendshapes + pose in radians).
        crop: ``(48, 48)`` uint8 aligned grayscale face crop
            (:func:`~imer_core.features.face_crop.aligned_face_crop`) when the
            extractor was built with ``with_crop=True`` and a face was found, else ``None``.
        embedding: the face network's embedding of the crop (extractor built
            with ``face_net=...``), else ``None``.
        expression: the face network's probabilities of the live emotions
            (``imer_core.config.LIVE_EMOTIONS`` order), else ``None``.
    """

    timestamp_ms: float
    detected: bool
    blendshapes: np.ndarray
    yaw: float
    pitch: float
    roll: float
    translation: np.ndarray
    landmarks: np.ndarray
    bbox: tuple[float, float, float, float]
    vector: np.ndarray = field(repr=False)
    crop: np.ndarray | None = field(default=None, repr=False)
    embedding: np.ndarray | None = field(default=None, repr=False)
    expression: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def empty(cls, timestamp_ms: float, dim: int = FACE_FEATURE_DIM) -> "FaceFrameFeatures":
        """Features of a frame without a face: ``detected=False`` and a zero ``vector`` of ``dim`` values."""
        return cls(float(timestamp_ms), False, np.zeros(len(FACE_BLENDSHAPE_NAMES), np.float32),
                   0.0, 0.0, 0.0, np.zeros(3, np.float32), np.zeros((NUM_LANDMARKS, 3), np.float32),
                   (0.0, 0.0, 0.0, 0.0), np.zeros(int(dim), np.float32))


def _to_rgb(frame: np.ndarray, color: str) -> np.ndarray:
    """Contiguous ``(H, W, 3)`` uint8 RGB copy-or-view of a BGR/RGB/gray/BGRA frame."""
    image = np.asarray(frame)
    if image.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"frames must have shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    image = image[:, :, :3]
    if color == "bgr":
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


# MediaPipe's pip wheels report usage statistics to https://play.googleapis.com/log
# when a task is closed (TasksStatsProtoLogger::LogSessionEnd inside
# libmediapipe.so; no option of the Python or C API turns it off).  So a
# landmarker is never closed: "closing" parks it here and the next extractor
# with the same settings takes it back, which bounds the parked ones by the
# number of extractors alive at once.  The ``imer`` commands end the process
# with os._exit after their own cleanup, so the native destructors that would
# report never run either (see app.signals.exit_process).
_PARKED: dict[tuple, list[tuple[Any, int | None]]] = {}
_PARKED_LOCK = threading.Lock()
# Every landmarker made here, so that at interpreter exit their destructors find
# nothing to close (see _forget_landmarkers_at_exit).
_MADE: weakref.WeakSet[Any] = weakref.WeakSet()
_EXIT_HOOK_REGISTERED = False


def _forget_landmarkers_at_exit() -> None:
    """At interpreter exit, drop every landmarker's native handle without closing it.

    A process that ends normally (a script using the library, the test suite)
    would otherwise run ``FaceLandmarker.__del__`` → ``close()`` during the
    interpreter's teardown: either MediaPipe's usage report (a network attempt)
    or, with its modules already torn down, "Exception ignored ... TypeError"
    noise on stderr.  The operating system frees the native memory at exit.
    """
    for landmarker in list(_MADE):
        try:
            landmarker._handle = None  # FaceLandmarker.close() returns at once without a handle
        except Exception:  # noqa: BLE001 - best effort at exit, never raise there
            pass


#: Set to 1 to see MediaPipe / TFLite's own start-up lines (hidden by default:
#: they are notes, not errors, and would break into ``imer run``'s status line).
NATIVE_LOGS_ENV = "IMER_NATIVE_LOGS"
_STDERR_LOCK = threading.Lock()


def _quietly(create: Callable[[], Any]) -> Any:
    """Run ``create`` with the process's stderr (fd 2) sent to /dev/null.

    MediaPipe and TFLite print their start-up notes from native code, before
    any log level they read applies.  Python-level errors are raised, not
    printed, so nothing the user needs is lost; other threads' stderr output
    during the fraction of a second this takes is.
    """
    if os.environ.get(NATIVE_LOGS_ENV) == "1":
        return create()
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return create()
        try:
            os.dup2(null, 2)
            return create()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)


def _take_landmarker(key: tuple, create: Callable[[], Any]) -> tuple[Any, int | None]:
    """A parked landmarker with these settings (and its last timestamp), else a new one."""
    with _PARKED_LOCK:
        parked = _PARKED.get(key)
        if parked:
            return parked.pop()
    return _new_landmarker(create), None


def _new_landmarker(create: Callable[[], Any]) -> Any:
    """A new landmarker (MediaPipe's start-up notes hidden), remembered for the exit hook."""
    global _EXIT_HOOK_REGISTERED
    landmarker = _quietly(create)
    with _PARKED_LOCK:
        if not _EXIT_HOOK_REGISTERED:
            atexit.register(_forget_landmarkers_at_exit)
            _EXIT_HOOK_REGISTERED = True
        try:
            _MADE.add(landmarker)
        except TypeError:  # an object without weak references (a test double): nothing to forget
            pass
    return landmarker


def _park_landmarker(key: tuple, landmarker: Any, last_ts: int | None) -> None:
    with _PARKED_LOCK:
        _PARKED.setdefault(key, []).append((landmarker, last_ts))


class FaceFeatureExtractor:
    """Blendshapes + head pose per video frame with MediaPipe FaceLandmarker (VIDEO mode).

    Frames must come from one stream in time order; call :meth:`reset` before
    feeding a new stream.  Not thread-safe: use one extractor per thread.

    Args:
        model_path: FaceLandmarker ``.task`` bundle; defaults to
            :func:`default_face_model_path`.
        color: channel order of the frames, ``"bgr"`` (OpenCV) or ``"rgb"``.
        min_detection_confidence, min_presence_confidence, min_tracking_confidence:
            the FaceLandmarker thresholds.
        still_images: run the FaceLandmarker in IMAGE mode instead: every
            frame is detected on its own (no tracking between frames, timestamps
            are not needed).  For unrelated still images such as a face
            corpus, where VIDEO-mode tracking would carry a face from one image
            to the next.
        with_crop: also cut the aligned face crop of each detected face
            (:attr:`FaceFrameFeatures.crop`), the input of the face network.
        face_net: a face-network file (or a loaded
            :class:`~imer_core.live.face_net.FaceNetRunner`) to run on each
            crop (implies ``with_crop``): fills
            :attr:`FaceFrameFeatures.embedding` and :attr:`FaceFrameFeatures.expression`,
            and the :attr:`FaceFrameFeatures.vector` becomes ``[embedding, blendshapes, pose]``
            (:attr:`feature_id`, :attr:`feature_dim`).

    Raises:
        FileNotFoundError: if the model bundle does not exist.
        ImportError: if ``mediapipe`` is not installed.
    """

    _landmarker: Any = None

    #: What it produces (see :mod:`imer_core.features.base`).
    spec: ExtractorSpec = FACE_EXTRACTOR_SPEC  # an instance running the face network has its own

    def __init__(self, model_path: "str | os.PathLike[str] | None" = None, color: str = "bgr",
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, still_images: bool = False, with_crop: bool = False,
                 face_net: Any = None) -> None:
        if color not in ("bgr", "rgb"):
            raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
        path = Path(model_path).expanduser() if model_path is not None else default_face_model_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"FaceLandmarker model not found at {path}. Pass model_path=..., set ${FACE_MODEL_ENV}, or "
                f"put {FACE_MODEL_FILENAME} into the folder named by $IMER_ASSETS (see assets/README.md).")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("FaceFeatureExtractor needs MediaPipe: pip install mediapipe") from exc
        self.model_path = path
        self.color = color
        self.still_images = bool(still_images)
        self.face_net = None
        if face_net is not None:
            from ..live.face_net import FaceNetRunner

            self.face_net = face_net if isinstance(face_net, FaceNetRunner) else FaceNetRunner(face_net)
        self.with_crop = bool(with_crop) or self.face_net is not None
        if self.face_net is not None:  # this instance produces the face-network feature
            self.spec = ExtractorSpec(Modality.VISION, self.feature_id, self.feature_dim)
        self._mp = mp
        self._options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE if still_images else vision.RunningMode.VIDEO, num_faces=1,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        self._factory = vision.FaceLandmarker
        self._key = (str(path), self.still_images, min_detection_confidence, min_presence_confidence,
                     min_tracking_confidence)
        self._last_ts: int | None = None
        self._landmarker, self._last_ts = _take_landmarker(self._key, self._create)

    def _create(self) -> Any:
        return self._factory.create_from_options(self._options)

    @property
    def feature_dim(self) -> int:
        """Length of :attr:`FaceFrameFeatures.vector`."""
        if self.face_net is None:
            return FACE_FEATURE_DIM
        return self.face_net.embedding_dim + FACE_FEATURE_DIM

    @property
    def feature_id(self) -> str:
        """Extractor id of :attr:`FaceFrameFeatures.vector` (what a model's vision spec must name)."""
        if self.face_net is None:
            return FACE_EXTRACTOR_ID
        from ..live.face_net import face_net_feature_id

        return face_net_feature_id(self.face_net.weights_id, self.face_net.embedding_dim, FACE_EXTRACTOR_ID)

    def feature_spec(self, seq_len: int, rate_hz: float) -> FeatureSpec:
        """Vision :class:`FeatureSpec` of a model fed by this extractor."""
        return self.spec.feature_spec(seq_len, float(rate_hz))

    def process(self, frame: np.ndarray, timestamp_ms: float | None = None,
                color: str | None = None) -> FaceFrameFeatures:
        """Features of one frame.

        Args:
            frame: ``(H, W, 3)`` uint8 image (``(H, W)`` gray and 4-channel are accepted).
            timestamp_ms: monotonic capture time in milliseconds (``None``: now).
                MediaPipe needs strictly increasing integer timestamps; equal or
                earlier values are moved to 1 ms after the previous frame (the
                returned ``timestamp_ms`` is still the caller's value).
            color: override the extractor's channel order for this frame.
        """
        if self._landmarker is None:
            raise RuntimeError("FaceFeatureExtractor is closed")
        ts = time.monotonic() * 1000.0 if timestamp_ms is None else float(timestamp_ms)
        mp_ts = int(round(ts))
        if self._last_ts is not None and mp_ts <= self._last_ts:
            mp_ts = self._last_ts + 1
        self._last_ts = mp_ts
        rgb = _to_rgb(frame, color or self.color)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self.still_images:
            result = self._landmarker.detect(image)
        else:
            result = self._landmarker.detect_for_video(image, mp_ts)
        if not result.face_landmarks:
            return FaceFrameFeatures.empty(ts, self.feature_dim)
        features = self._convert(result, ts)
        if self.with_crop:
            from .face_crop import aligned_face_crop

            crop = aligned_face_crop(rgb, features.landmarks, color="rgb")
            embedding = expression = None
            if self.face_net is not None:
                embeddings, probabilities = self.face_net(crop)
                embedding, expression = embeddings[0], probabilities[0]
                vector = np.concatenate([embedding, features.vector]).astype(np.float32)
                features = dataclasses.replace(features, vector=vector)
            features = dataclasses.replace(features, crop=crop, embedding=embedding, expression=expression)
        return features

    __call__ = process

    @staticmethod
    def _convert(result: Any, ts: float) -> FaceFrameFeatures:
        landmarks = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]], dtype=np.float32)
        blendshapes = np.zeros(len(FACE_BLENDSHAPE_NAMES), np.float32)
        for category in (result.face_blendshapes[0] if result.face_blendshapes else ()):
            index = _BLENDSHAPE_INDEX.get(category.category_name)
            if index is None:
                raise RuntimeError(f"unexpected blendshape {category.category_name!r}: the model bundle "
                                   f"does not match {FACE_EXTRACTOR_ID}")
            blendshapes[index] = category.score
        np.clip(blendshapes, 0.0, 1.0, out=blendshapes)
        if result.facial_transformation_matrixes:
            matrix = np.asarray(result.facial_transformation_matrixes[0], dtype=np.float64)
            angles = rotation_to_euler(matrix)
            translation = matrix[:3, 3].astype(np.float32)
        else:
            angles, translation = (0.0, 0.0, 0.0), np.zeros(3, np.float32)
        lo = np.clip(landmarks[:, :2].min(axis=0), 0.0, 1.0)
        hi = np.clip(landmarks[:, :2].max(axis=0), 0.0, 1.0)
        vector = np.concatenate([blendshapes, np.asarray(angles, np.float32)]).astype(np.float32)
        yaw, pitch, roll = (math.degrees(a) for a in angles)
        return FaceFrameFeatures(ts, True, blendshapes, yaw, pitch, roll, translation, landmarks,
                                 (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), vector)

    def reset(self) -> None:
        """Start a new stream: drop tracking state (a fresh graph; the old one is parked)."""
        self.close()
        self._landmarker = _new_landmarker(self._create)
        self._last_ts = None

    def close(self) -> None:
        """Give the MediaPipe graph back (idempotent).

        It is parked for the next extractor rather than closed: closing a
        MediaPipe task sends a usage report over the network (see ``_PARKED``).
        """
        landmarker, self._landmarker = self._landmarker, None
        if landmarker is not None:
            _park_landmarker(self._key, landmarker, self._last_ts)

    def __enter__(self) -> "FaceFeatureExtractor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn MediaPipe down
            pass


def build_face_extractor(device: str = "cpu", color: str = "bgr", still_images: bool = False) -> "FaceFeatureExtractor":
    """The registry's builder: MediaPipe runs on the CPU whatever ``device`` says."""
    return FaceFeatureExtractor(color=color, still_images=still_images)


# ----------------------------------------------------------------------------- the live vision feature


#: Whether the live vision feature puts the face network's embedding in front of the blendshapes and
#: pose (the face-network extractor is then the registry's default for vision).  It was switched on in
#: the same commit as the shipped ``live_cmarr.pt`` trained on it: the spec check refuses checkpoints made
#: for the other feature.  ``$IMER_LIVE_FACE_NET`` (``1`` / ``0``, read when the registry is first used)
#: overrides it, e.g. ``0`` to run a checkpoint of the blendshape feature.
LIVE_FACE_NET = True
LIVE_FACE_NET_ENV = "IMER_LIVE_FACE_NET"


def live_face_net_enabled() -> bool:
    """Whether the live vision feature includes the face network (see :data:`LIVE_FACE_NET`)."""
    value = os.environ.get(LIVE_FACE_NET_ENV, "").strip()
    return value == "1" if value in ("0", "1") else LIVE_FACE_NET


def face_net_extractor_spec(path: "str | os.PathLike[str] | None" = None) -> ExtractorSpec | None:
    """Spec of the face-network vision feature of the network file ``path`` (default: the shipped one).

    ``None`` when the file is missing.  Hashes the file (its id names the weights); torch is not imported.
    """
    from ..live.face_net import FACE_NET_EMBEDDING_DIM, default_face_net_path, face_net_feature_id, weights_id

    path = Path(path) if path is not None else default_face_net_path()
    if not path.is_file():
        return None
    extractor_id = face_net_feature_id(weights_id(path), FACE_NET_EMBEDDING_DIM, FACE_EXTRACTOR_ID)
    return ExtractorSpec(Modality.VISION, extractor_id, FACE_NET_EMBEDDING_DIM + FACE_FEATURE_DIM)


def build_face_net_extractor(device: str = "cpu", color: str = "bgr",
                             still_images: bool = False) -> "FaceFeatureExtractor":
    """The registry's builder of the face-network feature (MediaPipe and the network on the CPU).

    Raises:
        FaceNetError: the shipped network is missing, unreadable or not of the registered embedding size.
    """
    from ..live.face_net import FACE_NET_EMBEDDING_DIM, FaceNetError, FaceNetRunner

    runner = FaceNetRunner()
    if runner.embedding_dim != FACE_NET_EMBEDDING_DIM:
        raise FaceNetError(f"{runner.path}: {runner.embedding_dim}-d embedding, the live feature has "
                           f"{FACE_NET_EMBEDDING_DIM}")
    return FaceFeatureExtractor(color=color, still_images=still_images, face_net=runner)


def _registered() -> tuple[ExtractorEntry, ...]:
    face_net = face_net_extractor_spec()
    use_net = face_net is not None and live_face_net_enabled()
    entries = [ExtractorEntry(FACE_EXTRACTOR_SPEC, build_face_extractor, default=not use_net)]
    if face_net is not None:
        entries.append(ExtractorEntry(face_net, build_face_net_extractor, default=use_net))
    return tuple(entries)


#: Discovered by :mod:`imer_core.features.registry`: the blendshape feature, and the face-network
#: feature when ``assets/models/face_net.pt`` is present; the default is set by :func:`live_face_net_enabled`.
EXTRACTORS = _registered()


def live_vision_feature() -> tuple[str, int]:
    """``(extractor id, dim)`` of the live engine's default vision feature (see :data:`LIVE_FACE_NET`)."""
    from .registry import default_extractor_specs

    spec = default_extractor_specs()[Modality.VISION]
    return spec.extractor_id, spec.dim


def live_face_feature_spec(seq_len: int, rate_hz: float) -> FeatureSpec:
    """Vision :class:`FeatureSpec` of the live models (the default vision extractor's)."""
    from .registry import default_extractor_specs

    return default_extractor_specs()[Modality.VISION].feature_spec(seq_len, float(rate_hz))


def live_face_extractor(**options: Any) -> Any:
    """The default vision extractor (the one the live engine and ``imer analyze`` run), built now.

    ``options``: ``color`` and ``still_images``.
    """
    from .registry import extractor_factories

    return extractor_factories()[Modality.VISION](**options)
