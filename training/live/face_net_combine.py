"""Join trained face networks into one face-network file (``imer-train face-net-combine``).

The file's network (:func:`imer_core.live.face_net.build_face_net_ensemble`)
runs every member on the crop and, with ``flip_average``, on its mirror image;
the live vision feature is the members' embeddings side by side and the class
probability their mean.  Two networks trained from different starts make
different errors, so their mean probability is more accurate than either
(measured in ``docs/perception.md``).  Each member must be a single network
written by ``imer-train face-net``; the combined file records their weights ids
and metadata, and (given a crop file) its validation and test metrics.

``imer-train face-net-combine --members runs/a/face_net.pt,runs/b/face_net.pt --out face_net.pt \\
    --crops runs/face_net/fer2013_crops.npz``
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def combine_face_nets(members: Sequence[str | Path], out: str | Path, flip_average: bool = True,
                      crops: str | Path | None = None) -> dict[str, Any]:
    """Write the ensemble of ``members`` to ``out``; return its metadata (with metrics when ``crops`` is given).

    Raises:
        ValueError: no member, a member that is itself an ensemble, or members with other class lists.
    """
    from imer_core.live.face_net import FaceNetRunner, build_face_net_ensemble, save_face_net, weights_id

    if not members:
        raise ValueError("face-net-combine needs at least one member network")
    runners = [FaceNetRunner(path) for path in members]
    for runner in runners:
        if "members" in runner.config:
            raise ValueError(f"{runner.path} is already an ensemble; combine the single networks it was made of")
    classes = {json.dumps(runner.metadata.get("labels")) for runner in runners}
    if len(classes) != 1:
        raise ValueError(f"the member networks predict different class lists: {sorted(classes)}")
    configs = [dict(runner.config) for runner in runners]
    model = build_face_net_ensemble(configs, flip_average)
    for slot, runner in zip(model.members, runners):
        slot.load_state_dict(runner.model.state_dict())
    first = runners[0].metadata
    metadata: dict[str, Any] = {
        "crop_id": first.get("crop_id"), "crop_size": first.get("crop_size"), "labels": first.get("labels"),
        "flip_average": bool(flip_average), "trained_on": "FER2013 train split (every member)",
        "members": [{"weights_id": weights_id(r.path), "file": Path(r.path).name, "metadata": r.metadata}
                    for r in runners]}
    if crops is not None:
        from .face_net_data import load_fer_crops
        from .face_net_train import evaluate_net, live_targets

        data = load_fer_crops(crops)
        split = data["split"].astype(str)
        targets = live_targets(data["labels"])
        metadata["metrics"] = {name: {k: v for k, v in evaluate_net(model, data["crops"][split == name],
                                                                    targets[split == name]).items()
                                      if k != "confusion"}
                               for name in ("val", "test")}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_face_net(out, model.eval(), {"members": configs, "flip_average": bool(flip_average)}, metadata)
    return metadata
