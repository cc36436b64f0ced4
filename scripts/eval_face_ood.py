"""Out-of-domain check of the face path on a labelled face-photo folder (tuned on nothing).

    python scripts/eval_face_ood.py --images DIR --legend legend.csv [--per-class 150] \\
        [--checkpoint assets/models/live_cmarr.pt] --out docs/results/face_ood.json

``legend.csv`` has the columns ``image`` and ``emotion`` (as the public
``muxspace/facial_expressions`` repository's ``data/legend.csv``: anger,
disgust, fear, happiness, neutral, sadness, surprise; "contempt" has no live
class and is skipped).  Up to ``--per-class`` images per class are taken
(seeded, in file order of a permutation).  Each image goes through the live
still-image path (:class:`imer_core.analysis.features.Extractors.still_face`:
the live face extractor, framed when small), then

* the standalone face network (its own 7-way head on the aligned crop), and
* the live checkpoint with only the face observed (condition ``v``, its face
  vector repeated over the window, as ``imer analyze`` does for a photo).

Reported: images used, faces found, accuracy, macro-F1 and per-class recall.
Nothing here was tuned on these images.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Source label → live label (``None``: no live counterpart).
LABELS = {"anger": "angry", "disgust": "disgusted", "fear": "fearful", "happiness": "happy", "neutral": "neutral",
          "sadness": "sad", "surprise": "surprised", "contempt": None}


def metrics(true: list[int], pred: list[int], names: tuple[str, ...]) -> dict[str, object]:
    """Accuracy, macro-F1 over the classes present, per-class recall."""
    from sklearn.metrics import f1_score

    t, p = np.asarray(true), np.asarray(pred)
    present = sorted(set(t.tolist()))
    return {"n": int(len(t)), "accuracy": float((t == p).mean()) if len(t) else float("nan"),
            "macro_f1": float(f1_score(t, p, labels=present, average="macro", zero_division=0)),
            "recall": {names[c]: float((p[t == c] == c).mean()) for c in present},
            "count": {names[c]: int((t == c).sum()) for c in present}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="folder of the images")
    parser.add_argument("--legend", required=True, help="CSV with columns image, emotion")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--checkpoint", default=str(ROOT / "assets" / "models" / "live_cmarr.pt"),
                        help="live checkpoint evaluated with the face alone ('' : the face network only)")
    parser.add_argument("--save-vectors", default=None, metavar="NPZ",
                        help="also keep the face vectors and labels (to evaluate a checkpoint later)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--vectors", default=None, metavar="NPZ",
                        help="evaluate --checkpoint on the face vectors saved by --save-vectors (no extraction)")
    args = parser.parse_args(argv)
    import torch

    from imer_core.analysis.features import Extractors
    from imer_core.config import LIVE_EMOTIONS
    from imer_core.live.face_net import FaceNetRunner
    from imer_core.live.inference import predict_windows, repeat_vector
    from imer_core.live.models import load_live_model
    from imer_core.modalities import Modality

    torch.set_num_threads(1)
    if args.vectors:
        return _from_vectors(args)
    rows = list(csv.DictReader(open(args.legend, newline="")))
    by_class: dict[str, list[str]] = {}
    for row in rows:
        live = LABELS.get(row["emotion"].strip().lower())
        if live is not None and (Path(args.images) / row["image"]).is_file():
            by_class.setdefault(live, []).append(row["image"])
    rng = np.random.default_rng(args.seed)
    chosen = [(name, label) for label, names in sorted(by_class.items())
              for name in rng.permutation(names)[: args.per_class]]
    model = load_live_model(args.checkpoint) if args.checkpoint else None
    net = FaceNetRunner()
    extractors = Extractors()
    net_true, net_pred, model_true, model_pred = [], [], [], []
    vectors: list[np.ndarray] = []
    found, start = 0, time.perf_counter()
    import cv2

    for name, label in chosen:
        image = cv2.imread(os.path.join(args.images, name), cv2.IMREAD_COLOR)
        if image is None:
            continue
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        vector = extractors.still_face(rgb)
        if vector is None:
            continue
        found += 1
        target = LIVE_EMOTIONS.index(label)
        embedding_dim = net.embedding_dim
        probs = net.model.head(torch.from_numpy(vector[None, :embedding_dim])).softmax(-1).detach().numpy()[0]
        net_true.append(target)
        net_pred.append(int(np.argmax(probs)))
        vectors.append(vector)
        if model is not None:
            window = {Modality.VISION: repeat_vector(vector, model.config.specs.vision.seq_len)}
            model_true.append(target)
            model_pred.append(int(np.argmax(predict_windows(model, [window])[0])))
    extractors.close()
    report = {"images": len(chosen), "faces_found": found, "seconds": round(time.perf_counter() - start, 1),
              "load_average": os.getloadavg(), "source": {"images": args.images, "legend": args.legend},
              "per_class_cap": args.per_class, "seed": args.seed, "tuned_on": "nothing (out-of-domain check)",
              "face_network": metrics(net_true, net_pred, LIVE_EMOTIONS)}
    if model is not None:
        report["live_model_face_only"] = {"checkpoint": args.checkpoint,
                                          **metrics(model_true, model_pred, LIVE_EMOTIONS)}
    if args.save_vectors:
        np.savez(args.save_vectors, vision=np.asarray(vectors, np.float32), label=np.asarray(net_true, np.int64))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


def _from_vectors(args: argparse.Namespace) -> int:
    """The live checkpoint (face only) on face vectors saved by an earlier run."""
    from imer_core.config import LIVE_EMOTIONS
    from imer_core.live.inference import predict_windows, repeat_vector
    from imer_core.live.models import load_live_model
    from imer_core.modalities import Modality

    with np.load(args.vectors) as data:
        vision, labels = data["vision"], data["label"]
    model = load_live_model(args.checkpoint)
    dim = model.config.specs.vision.dim
    if vision.shape[1] > dim:  # a blendshape-feature checkpoint: the vectors end with blendshapes + pose
        vision = vision[:, -dim:]
    windows = [{Modality.VISION: repeat_vector(v, model.config.specs.vision.seq_len)} for v in vision]
    pred = np.argmax(predict_windows(model, windows), axis=1)
    report = {"vectors": args.vectors, "checkpoint": args.checkpoint, "tuned_on": "nothing (out-of-domain check)",
              "live_model_face_only": metrics(labels.tolist(), pred.tolist(), LIVE_EMOTIONS)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
