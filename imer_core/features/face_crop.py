"""The aligned face crop the face network sees, the same at training and at run time.

:func:`aligned_face_crop` turns an image and its MediaPipe FaceLandmarker
landmarks (478 points, ``x``/``y`` normalised to the image) into a square
grayscale crop of :data:`FACE_CROP_SIZE` pixels:

1. the eye centres (mean of each eye's two corners) fix the in-plane
   rotation: the crop is rotated so the eyes are level;
2. in that rotated frame the crop is the square around the centre of the
   landmarks' bounding box (moved up by :data:`FACE_CROP_SHIFT_Y` of the box
   side), with a side of :data:`FACE_CROP_SCALE` times the larger side of the
   box, so its scale follows the face, not the camera.  Both constants were
   chosen so that the crop of a FER2013 image matches the image itself: on
   193 detected images of 200 spread over the corpus the landmarks' box is
   about 40 × 44 of the 48 pixels, centred 2 pixels below the image centre;
3. the crop is resampled with area averaging (supersampled bilinear warp,
   then an area resize), so a large webcam face and a small upscaled corpus
   face are filtered alike.

Training runs the very same function on FER2013 images
(:mod:`training.live.face_net_data`), on the landmarks MediaPipe finds in each
48×48 image framed and upscaled as in the feature extraction.  Images where no
face is found fall back to :func:`full_image_crop` (FER2013 images are already
face crops); training records how often.
"""

from __future__ import annotations

import math

import numpy as np

FACE_CROP_SIZE = 48
#: Side of the crop as a multiple of the larger side of the landmarks' bounding box (eyes-level frame).
FACE_CROP_SCALE = 1.1
#: Vertical shift of the crop centre from the box centre, as a fraction of the box side (negative: up).
FACE_CROP_SHIFT_Y = -0.05
#: MediaPipe face-mesh corners of the two eyes (image-left eye: 33, 133; image-right eye: 362, 263).
LEFT_EYE_CORNERS = (33, 133)
RIGHT_EYE_CORNERS = (362, 263)
CROP_ID = f"aligned-gray{FACE_CROP_SIZE}-eyes-level-bbox{FACE_CROP_SCALE:g}-up{-FACE_CROP_SHIFT_Y:g}-area"


def to_gray(image: np.ndarray, color: str = "bgr") -> np.ndarray:
    """``(H, W)`` uint8 luma (ITU-R BT.601 weights) of a gray, BGR/RGB or 4-channel image."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {array.dtype}")
    if array.ndim == 2:
        return array
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"images must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    b, g, r = (array[:, :, 0], array[:, :, 1], array[:, :, 2]) if color == "bgr" else \
        (array[:, :, 2], array[:, :, 1], array[:, :, 0])
    luma = 0.299 * r.astype(np.float32) + 0.587 * g.astype(np.float32) + 0.114 * b.astype(np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def crop_transform(landmarks: np.ndarray, width: int, height: int,
                   scale: float = FACE_CROP_SCALE) -> tuple[np.ndarray, float]:
    """Affine ``(2, 3)`` matrix from image pixels to unit crop coordinates, and the crop side in pixels.

    The unit crop spans ``[0, 1]²``; multiply the matrix by the output size to
    get output pixels.
    """
    points = np.asarray(landmarks, np.float64)
    if points.ndim != 2 or points.shape[0] <= max(RIGHT_EYE_CORNERS) or points.shape[1] < 2:
        raise ValueError(f"landmarks must be (478, 2 or 3), got {points.shape}")
    xy = points[:, :2] * np.array([width, height], np.float64)
    if not np.all(np.isfinite(xy)):
        raise ValueError("landmarks contain NaN or infinite values")
    left = xy[list(LEFT_EYE_CORNERS)].mean(axis=0)
    right = xy[list(RIGHT_EYE_CORNERS)].mean(axis=0)
    if left[0] > right[0]:
        left, right = right, left
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    cos, sin = math.cos(-angle), math.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    rotated = xy @ rotation.T
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    side = float(max(hi - lo)) * scale
    if side < 1e-6:
        raise ValueError("landmarks are degenerate (zero extent)")
    centre = (lo + hi) / 2.0
    centre[1] += FACE_CROP_SHIFT_Y * float(max(hi - lo))
    corner = centre - side / 2.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = rotation / side
    matrix[:, 2] = -corner / side
    return matrix, side


def aligned_face_crop(image: np.ndarray, landmarks: np.ndarray, size: int = FACE_CROP_SIZE,
                      color: str = "bgr", scale: float = FACE_CROP_SCALE) -> np.ndarray:
    """Eyes-level square grayscale crop ``(size, size)`` uint8 of the face given by ``landmarks``.

    Args:
        image: the frame the landmarks were found in (gray, BGR/RGB or 4-channel uint8).
        landmarks: ``(478, 2|3)`` MediaPipe landmarks, ``x``/``y`` normalised to the image.
        size: output side in pixels.
        color: channel order of a colour ``image``.
        scale: crop side over the larger side of the landmarks' box.

    Parts of the crop outside the image are filled with the nearest edge pixel.
    """
    import cv2  # brought by mediapipe (opencv-contrib-python)

    array = np.asarray(image)
    if array.ndim < 2:
        raise ValueError(f"images must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    height, width = array.shape[:2]
    matrix, side = crop_transform(landmarks, width, height, scale)
    factor = max(1, int(math.ceil(side / size)))
    inner = size * factor
    to_output = matrix * inner
    # Only the part of the image the crop samples is converted to gray (a frame is much larger than a
    # face).  The result is the same: bilinear sampling reads at most one pixel beyond a source point,
    # and where the region is clipped its edge is the image's edge, which BORDER_REPLICATE repeats.
    x0, y0, x1, y1 = _source_box(to_output, inner, width, height)
    gray = to_gray(array[y0:y1, x0:x1], color)
    to_output = to_output.copy()
    to_output[:, 2] += to_output[:, :2] @ np.array([x0, y0], np.float64)
    warped = cv2.warpAffine(gray, to_output, (inner, inner), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    if factor == 1:
        return np.ascontiguousarray(warped)
    return np.ascontiguousarray(cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA))


def _source_box(to_output: np.ndarray, inner: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` of the image that an ``inner``-pixel output of ``to_output`` samples."""
    full = np.vstack([to_output, [0.0, 0.0, 1.0]])
    back = np.linalg.inv(full)[:2]
    corners = np.array([[0, 0, 1], [inner, 0, 1], [0, inner, 1], [inner, inner, 1]], np.float64) @ back.T
    lo = np.floor(corners.min(axis=0)).astype(int) - 2
    hi = np.ceil(corners.max(axis=0)).astype(int) + 3
    x0, y0 = int(np.clip(lo[0], 0, width - 1)), int(np.clip(lo[1], 0, height - 1))
    x1, y1 = int(np.clip(hi[0], x0 + 1, width)), int(np.clip(hi[1], y0 + 1, height))
    return x0, y0, x1, y1


def full_image_crop(image: np.ndarray, size: int = FACE_CROP_SIZE, color: str = "bgr") -> np.ndarray:
    """The whole image as a ``(size, size)`` gray crop: the fallback for corpus faces without landmarks."""
    import cv2

    gray = to_gray(image, color)
    if gray.shape == (size, size):
        return gray.copy()
    interpolation = cv2.INTER_AREA if min(gray.shape) > size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(gray, (size, size), interpolation=interpolation))
