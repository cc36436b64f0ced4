"""FaceFeatureExtractor on a real face image (MediaPipe FaceLandmarker, VIDEO mode)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

from imer_core.features.face import (
    FACE_BLENDSHAPE_NAMES,
    FACE_EXTRACTOR_ID,
    FACE_FEATURE_DIM,
    FACE_FEATURE_NAMES,
    FaceFeatureExtractor,
    default_face_model_path,
    face_feature_spec,
)
from imer_core.modalities import Modality


def _mediapipe_or_skip() -> None:
    try:
        importlib.import_module("mediapipe.tasks.python.vision")
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        pytest.skip(f"mediapipe cannot be imported ({exc!r}); pip install mediapipe to run the face tests")


@pytest.fixture(scope="module")
def extractor():
    _mediapipe_or_skip()
    if not default_face_model_path().is_file():
        pytest.skip(f"model bundle missing at {default_face_model_path()}")
    ex = FaceFeatureExtractor(color="rgb")
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def face_rgb() -> np.ndarray:
    import matplotlib.cbook as cbook
    import matplotlib.image as mimage

    image = mimage.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    assert image.dtype == np.uint8 and image.shape[2] == 3
    return image


def test_spec_and_names():
    assert len(FACE_BLENDSHAPE_NAMES) == 52 and FACE_BLENDSHAPE_NAMES[0] == "_neutral"
    assert FACE_BLENDSHAPE_NAMES[25] == "jawOpen" and FACE_BLENDSHAPE_NAMES[-1] == "noseSneerRight"
    assert FACE_FEATURE_DIM == len(FACE_FEATURE_NAMES) == 55
    spec = face_feature_spec(seq_len=50, rate_hz=15)
    assert spec.modality is Modality.VISION and spec.dim == 55 and spec.seq_len == 50 and spec.rate_hz == 15.0
    assert spec.extractor == FACE_EXTRACTOR_ID == "mediapipe-facelandmarker-v2-blendshapes+pose"


def test_import_is_light():
    code = ("import sys, imer_core.features as f; f.FaceFeatureExtractor; f.VoiceFeatureExtractor; "
            "heavy = [m for m in ('mediapipe', 'cv2', 'librosa', 'opensmile') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_model_gives_clear_error(tmp_path):
    missing = tmp_path / "nope.task"
    with pytest.raises(FileNotFoundError, match="FaceLandmarker model not found.*nope.task"):
        FaceFeatureExtractor(model_path=missing)


def test_default_model_is_the_shipped_asset(monkeypatch):
    monkeypatch.delenv("IMER_FACE_LANDMARKER_MODEL", raising=False)
    path = default_face_model_path()
    assert path.parts[-2:] == ("assets", "face_landmarker.task") and path.is_file()
    monkeypatch.setenv("IMER_FACE_LANDMARKER_MODEL", "/somewhere/else.task")
    assert str(default_face_model_path()) == "/somewhere/else.task"


def test_real_face(extractor, face_rgb):
    extractor.reset()
    features = extractor.process(face_rgb, timestamp_ms=1000.0)
    assert features.detected and features.timestamp_ms == 1000.0
    assert features.blendshapes.shape == (52,) and features.blendshapes.dtype == np.float32
    assert np.all((features.blendshapes >= 0) & (features.blendshapes <= 1))
    assert features.blendshapes.max() > 0.05
    # A near-frontal portrait: small angles, head in front of the camera.
    assert abs(features.yaw) < 25 and abs(features.pitch) < 25 and abs(features.roll) < 25
    assert features.translation[2] < 0
    x0, y0, x1, y1 = features.bbox
    assert 0 <= x0 < 0.5 < x1 <= 1 and 0 <= y0 < 0.5 < y1 <= 1
    assert features.landmarks.shape == (478, 3)
    vector = features.vector
    assert vector.shape == (FACE_FEATURE_DIM,) and vector.dtype == np.float32 and np.isfinite(vector).all()
    np.testing.assert_allclose(vector[:52], features.blendshapes)
    np.testing.assert_allclose(np.degrees(vector[52:]), [features.yaw, features.pitch, features.roll], atol=1e-3)


def test_bgr_input_and_roll_sign(extractor, face_rgb):
    import cv2

    extractor.reset()
    upright = extractor.process(face_rgb, 0)
    extractor.reset()
    bgr = extractor.process(np.ascontiguousarray(face_rgb[:, :, ::-1]), 0, color="bgr")
    assert bgr.detected and abs(bgr.roll - upright.roll) < 1.0
    height, width = face_rgb.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), 20, 1.0)  # counter-clockwise
    extractor.reset()
    tilted = extractor.process(cv2.warpAffine(face_rgb, rotation, (width, height)), 0)
    assert tilted.detected and 12 < tilted.roll - upright.roll < 28


def test_blank_frame_is_not_detected(extractor):
    extractor.reset()
    blank = extractor.process(np.zeros((480, 640, 3), np.uint8), 0)
    assert not blank.detected
    assert blank.vector.shape == (FACE_FEATURE_DIM,) and not blank.vector.any()
    assert not blank.blendshapes.any() and blank.bbox == (0.0, 0.0, 0.0, 0.0)


def test_equal_and_decreasing_timestamps(extractor, face_rgb):
    extractor.reset()
    stamps = [0.0, 33.3, 33.3, 33.4, 20.0, 66.7]
    results = [extractor.process(face_rgb, ts) for ts in stamps]
    assert [r.timestamp_ms for r in results] == stamps
    assert all(r.detected for r in results)


def test_closed_extractor_refuses_frames(face_rgb):
    _mediapipe_or_skip()
    with FaceFeatureExtractor() as ex:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        ex.process(face_rgb, 0)


def test_at_exit_no_landmarker_is_closed_by_the_interpreter_teardown():
    # the teardown's FaceLandmarker.__del__ -> close() would send MediaPipe's usage report, or (modules already
    # torn down) print "Exception ignored ... TypeError" blocks, as it did at the end of the test suite
    _mediapipe_or_skip()
    code = ("import atexit, numpy as np\n"
            "from imer_core.features import face\n"
            "made = []\n"  # this hook is registered first, so it runs after the module's own exit hook
            "atexit.register(lambda: print('closable at exit:', [lm._handle is not None for lm in made]))\n"
            "frame = np.zeros((120, 160, 3), np.uint8)\n"
            "kept = face.FaceFeatureExtractor(); kept.process(frame, 0.0)\n"
            "kept.reset(); kept.process(frame, 0.0)\n"  # a new stream (a looping file): a fresh graph
            "parked = face.FaceFeatureExtractor(); parked.process(frame, 0.0); parked.close()\n"
            "made += [kept._landmarker] + [lm for group in face._PARKED.values() for lm, _ in group]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "closable at exit: [False, False]" in done.stdout
    assert "Exception ignored" not in done.stderr
