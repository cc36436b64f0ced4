"""FER2013 face crops for the face network, made with the run-time crop function.

Each 48×48 FER2013 image is framed and upscaled exactly as the feature
extraction does (:func:`training.live.extract.prepare_face`), MediaPipe
FaceLandmarker (still-image mode) finds its landmarks, and
:func:`imer_core.features.face_crop.aligned_face_crop` cuts the crop from the
framed image, the same function the live engine runs on webcam frames.
Images without a detected face fall back to the whole image
(:func:`~imer_core.features.face_crop.full_image_crop`); the count is kept in
the crop file's metadata.

``imer-train face-crops --data ../shared/data --out runs/face_net/fer2013_crops.npz``
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from imer_core.features.face import FACE_FEATURE_DIM
from imer_core.features.face_crop import CROP_ID, FACE_CROP_SIZE, aligned_face_crop, full_image_crop

from .corpora import load_fer2013, spread_subset
from .extract import FACE_PAD_FRACTION, FACE_UPSCALE, prepare_face

CROPS_VERSION = 1


def fer_crop(image: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
    """Training crop of one FER2013 image: aligned on its landmarks (framed image), else the whole image.

    Args:
        image: ``(48, 48)`` uint8 FER2013 face.
        landmarks: landmarks MediaPipe found in ``prepare_face(image)``, or ``None``.
    """
    if landmarks is None:
        return full_image_crop(image, FACE_CROP_SIZE)
    return aligned_face_crop(prepare_face(image), landmarks, FACE_CROP_SIZE, color="rgb")


def fer_landmarks(extractor: Any, image: np.ndarray) -> np.ndarray | None:
    """Landmarks ``(478, 3)`` of a FER2013 image as the crop needs them, or ``None`` when no face is found."""
    features = extractor.process(prepare_face(image))
    return features.landmarks if features.detected else None


def fer_face_features(extractor: Any, image: np.ndarray) -> Any:
    """:class:`~imer_core.features.face.FaceFrameFeatures` of a FER2013 image (framed and upscaled)."""
    return extractor.process(prepare_face(image))


def make_fer_crops(data_root: str | Path, out: str | Path, limit: int | None = None,
                   progress: bool = True, shard: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """Crop every FER2013 image (or ``limit`` of them, spread evenly) and save them with labels and splits.

    ``shard=(k, n)`` takes every n-th image from the k-th (to run n processes
    at once); :func:`merge_fer_crops` joins the shard files.

    Writes ``out`` (npz: ``crops (N, 48, 48) uint8``, ``detected``, ``labels``
    (source names), ``split``, ``index`` into the corpus, ``landmarks``
    ``(N, 478, 2) float16``, the blendshape + pose ``vision`` vectors ``(N, 55)``
    (zeros where no face was found) and a JSON ``meta``) and returns the meta.
    """
    from imer_core.features.face import FaceFeatureExtractor

    fer = load_fer2013(data_root)
    index = spread_subset(len(fer.images), limit)[shard[0]::shard[1]]
    crops = np.zeros((len(index), FACE_CROP_SIZE, FACE_CROP_SIZE), np.uint8)
    landmarks = np.zeros((len(index), 478, 2), np.float16)
    detected = np.zeros(len(index), bool)
    vectors = np.zeros((len(index), FACE_FEATURE_DIM), np.float32)
    start = time.perf_counter()
    with FaceFeatureExtractor(color="rgb", still_images=True) as extractor:
        for row, i in enumerate(tqdm(index, desc="fer2013 crops", unit="img", disable=not progress,
                                     mininterval=30.0)):
            features = fer_face_features(extractor, fer.images[i])
            points = features.landmarks if features.detected else None
            crops[row] = fer_crop(fer.images[i], points)
            if points is not None:
                detected[row] = True
                landmarks[row] = points[:, :2]
                vectors[row] = features.vector
    splits = fer.splits[index]
    meta = {"version": CROPS_VERSION, "crop_id": CROP_ID, "upscale": FACE_UPSCALE,
            "pad_fraction": FACE_PAD_FRACTION, "n": int(len(index)), "detected": int(detected.sum()),
            "fallback_full_image": int((~detected).sum()),
            "fallback_by_split": {s: int((~detected[splits == s]).sum()) for s in sorted(set(splits.tolist()))},
            "seconds": round(time.perf_counter() - start, 1)}
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, crops=crops, detected=detected, labels=fer.source_labels[index], split=splits,
                        index=np.asarray(index, np.int64), landmarks=landmarks, vision=vectors,
                        meta=np.asarray(json.dumps(meta)))
    os.replace(tmp, path)
    return meta


def merge_fer_crops(paths: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Join shard files of :func:`make_fer_crops` (in corpus order) into ``out``; returns the merged meta."""
    parts = [load_fer_crops(p) for p in paths]
    order = np.argsort(np.concatenate([p["index"] for p in parts]), kind="stable")
    arrays = {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0] if k != "meta"}
    meta = dict(parts[0]["meta"])
    for key in ("n", "detected", "fallback_full_image"):
        meta[key] = int(sum(p["meta"][key] for p in parts))
    meta["fallback_by_split"] = {s: int(sum(p["meta"]["fallback_by_split"].get(s, 0) for p in parts))
                                 for s in sorted({s for p in parts for s in p["meta"]["fallback_by_split"]})}
    meta["seconds"] = round(sum(p["meta"]["seconds"] for p in parts), 1)
    meta["shards"] = len(parts)
    path = Path(out)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.asarray(json.dumps(meta)), **arrays)  # type: ignore[arg-type, unused-ignore]  # numpy 2 stub: **arrays vs allow_pickle: bool
    os.replace(tmp, path)
    return meta


def load_fer_crops(path: str | Path) -> dict[str, Any]:
    """Arrays of a crop file written by :func:`make_fer_crops`, plus its ``meta`` dict."""
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {k: data[k] for k in data.files if k != "meta"}
        out["meta"] = json.loads(str(data["meta"]))
    if out["meta"].get("crop_id") != CROP_ID:
        raise ValueError(f"{path}: crops made with {out['meta'].get('crop_id')!r}, the run-time crop is {CROP_ID!r}; "
                         "make them again with `imer-train face-crops`")
    return out
