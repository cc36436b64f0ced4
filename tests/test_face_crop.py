"""The aligned face crop: geometry, and the same crop at training and at run time."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from imer_core.features.face_crop import (
    FACE_CROP_SIZE,
    LEFT_EYE_CORNERS,
    RIGHT_EYE_CORNERS,
    aligned_face_crop,
    crop_transform,
    full_image_crop,
    to_gray,
)


def _mediapipe_or_skip() -> None:
    try:
        importlib.import_module("mediapipe.tasks.python.vision")
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        pytest.skip(f"mediapipe cannot be imported ({exc!r}); pip install mediapipe to run the face tests")
    from imer_core.features.face import default_face_model_path

    if not default_face_model_path().is_file():
        pytest.skip(f"model bundle missing at {default_face_model_path()}")


def _square_landmarks(centre=(0.5, 0.5), half=0.2, angle_deg=0.0) -> np.ndarray:
    """478 synthetic landmarks: a square of points, eye corners placed on a (rotated) horizontal line."""
    rng = np.random.default_rng(0)
    unit = rng.uniform(-1, 1, (478, 2))
    unit[[0, 1]] = [[-1, -1], [1, 1]]  # the box spans the full square
    for i in LEFT_EYE_CORNERS:
        unit[i] = [-0.5, -0.3]
    for i in RIGHT_EYE_CORNERS:
        unit[i] = [0.5, -0.3]
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.asarray(centre) + half * unit @ rot.T


@pytest.fixture(scope="module")
def fer_style_face() -> np.ndarray:
    """A FER2013-style image: 48×48 grayscale, the face filling it (from matplotlib's Grace Hopper sample)."""
    import matplotlib.cbook as cbook
    import matplotlib.image as mimage

    cv2 = pytest.importorskip("cv2")
    image = mimage.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    face = image[112:334, 152:374]  # the face as FER2013 frames one (landmark box x 170-355, y 132-335)
    return cv2.resize(to_gray(face, "rgb"), (48, 48), interpolation=cv2.INTER_AREA)


def test_to_gray_matches_for_gray_bgr_and_rgb():
    gray = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48).astype(np.uint8)
    stacked = np.repeat(gray[:, :, None], 3, axis=2)
    assert np.array_equal(to_gray(stacked, "bgr"), gray) and np.array_equal(to_gray(stacked, "rgb"), gray)
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[..., 2] = 255  # red in BGR
    assert to_gray(colour, "bgr")[0, 0] == 76 and to_gray(colour, "rgb")[0, 0] == 29
    with pytest.raises(TypeError):
        to_gray(np.zeros((4, 4), np.float32))


def test_crop_levels_the_eyes_and_is_invariant_to_in_plane_rotation():
    pytest.importorskip("cv2")
    image = np.zeros((200, 200), np.uint8)
    image[60:80, 70:90] = 255  # bright blob over the image-left eye
    upright = aligned_face_crop(image, _square_landmarks(angle_deg=0.0))
    matrix, _ = crop_transform(_square_landmarks(angle_deg=25.0), 200, 200)
    assert abs(math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])) + 25.0) < 1e-6  # undoes the 25° roll
    # rotate the image and its landmarks together by 25° about the centre: the crop stays the same
    cv2 = importlib.import_module("cv2")
    turn = cv2.getRotationMatrix2D((100.0, 100.0), -25.0, 1.0)  # OpenCV: positive = counter-clockwise
    rotated = cv2.warpAffine(image, turn, (200, 200), flags=cv2.INTER_LINEAR)
    points = _square_landmarks(angle_deg=0.0) * 200
    turned = np.c_[points, np.ones(len(points))] @ turn.T / 200
    crop = aligned_face_crop(rotated, turned)
    assert crop.shape == (FACE_CROP_SIZE, FACE_CROP_SIZE) and crop.dtype == np.uint8
    assert np.abs(crop.astype(int) - upright.astype(int)).mean() < 6.0
    assert upright[:24, :24].mean() > upright[24:, 24:].mean() + 20  # the blob stays upper left


def test_crop_scale_follows_the_face_not_the_image():
    pytest.importorskip("cv2")
    cv2 = importlib.import_module("cv2")
    pattern = (np.indices((64, 64)).sum(axis=0) % 16 < 8).astype(np.uint8) * 255
    small = np.full((200, 200), 90, np.uint8)
    small[68:132, 68:132] = pattern
    large = cv2.resize(small, (800, 800), interpolation=cv2.INTER_CUBIC)
    lm = _square_landmarks(half=32 / 200 / 1.0)
    a, b = aligned_face_crop(small, lm), aligned_face_crop(large, lm)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 8.0


def test_bad_landmarks_are_refused():
    with pytest.raises(ValueError):
        crop_transform(np.zeros((10, 3)), 100, 100)
    with pytest.raises(ValueError):
        crop_transform(np.full((478, 3), np.nan), 100, 100)
    with pytest.raises(ValueError):
        crop_transform(np.full((478, 3), 0.5), 100, 100)


def test_full_image_crop_keeps_a_48_pixel_face():
    pytest.importorskip("cv2")
    face = np.random.default_rng(1).integers(0, 255, (48, 48)).astype(np.uint8)
    assert np.array_equal(full_image_crop(face), face)
    assert full_image_crop(np.zeros((96, 120, 3), np.uint8)).shape == (48, 48)


def test_training_and_run_time_crops_are_identical(fer_style_face):
    """A FER2013-style image through the training path and through the run-time extractor gives one crop."""
    _mediapipe_or_skip()
    from imer_core.features.face import FaceFeatureExtractor
    from training.live.extract import prepare_face
    from training.live.face_net_data import fer_crop, fer_landmarks

    with FaceFeatureExtractor(color="rgb", still_images=True) as extractor:
        landmarks = fer_landmarks(extractor, fer_style_face)
    assert landmarks is not None, "MediaPipe found no face in the FER2013-style test image"
    training_crop = fer_crop(fer_style_face, landmarks)
    # run time: the framed image arrives as a BGR camera frame; the extractor cuts the crop itself
    frame_bgr = np.ascontiguousarray(prepare_face(fer_style_face)[:, :, ::-1])
    with FaceFeatureExtractor(color="bgr", still_images=True, with_crop=True) as extractor:
        features = extractor.process(frame_bgr)
    assert features.detected and features.crop is not None
    assert features.crop.shape == training_crop.shape == (FACE_CROP_SIZE, FACE_CROP_SIZE)
    assert np.array_equal(features.crop, training_crop)
    # and the crop is the face, not the gray frame: it resembles the original 48x48 image
    assert np.abs(training_crop.astype(int) - fer_style_face.astype(int)).mean() < 40
    assert fer_crop(fer_style_face, None).tolist() == fer_style_face.tolist()  # no face: the whole image


def _whole_frame_crop(image: np.ndarray, landmarks: np.ndarray, color: str = "bgr") -> np.ndarray:
    """The first version of the crop: the whole frame to gray, then the warp (what the training crops used)."""
    cv2 = importlib.import_module("cv2")
    gray = to_gray(image, color)
    height, width = gray.shape
    matrix, side = crop_transform(landmarks, width, height)
    factor = max(1, int(math.ceil(side / FACE_CROP_SIZE)))
    inner = FACE_CROP_SIZE * factor
    warped = cv2.warpAffine(gray, matrix * inner, (inner, inner), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return warped if factor == 1 else cv2.resize(warped, (FACE_CROP_SIZE, FACE_CROP_SIZE),
                                                 interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("centre, half, angle", [((0.5, 0.5), 0.2, 10.0),    # inside the frame
                                                 ((0.05, 0.9), 0.2, -30.0),  # clipped at two edges
                                                 ((0.5, 0.5), 0.6, 0.0),     # larger than the frame
                                                 ((0.7, 0.4), 0.02, 45.0)])  # a few pixels (no supersampling)
def test_cropping_only_the_sampled_region_gives_the_whole_frame_crop(centre, half, angle):
    pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    landmarks = _square_landmarks(centre, half, angle)
    fast, reference = aligned_face_crop(frame, landmarks), _whole_frame_crop(frame, landmarks)
    assert np.abs(fast.astype(int) - reference.astype(int)).max() <= 1  # bilinear rounding only
