"""Face-network ensembles (face-net-combine): concatenated embeddings, mean probability, mirror averaging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imer_core.config import LIVE_EMOTIONS
from imer_core.live.face_net import FaceNetError, FaceNetRunner, build_face_net, save_face_net
from training.cli import main

CONFIGS = ({"widths": [8, 8, 16, 16], "convs_per_stage": 1, "embedding_dim": 16},
           {"widths": [4, 8, 8, 16], "convs_per_stage": 1, "embedding_dim": 8})


def _member_files(tmp_path):
    paths, models = [], []
    for i, config in enumerate(CONFIGS):
        torch.manual_seed(i)
        model = build_face_net(**config).eval()
        path = tmp_path / f"member{i}.pt"
        save_face_net(path, model, config, {"crop_id": "test", "crop_size": 48, "labels": list(LIVE_EMOTIONS)})
        paths.append(path)
        models.append(model)
    return paths, models


def _probs(model, crops):
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(crops.astype(np.float32) / 255)[:, None]), 1).numpy()


def test_combined_file_gives_the_members_mean_probability_and_their_embeddings_side_by_side(tmp_path):
    paths, models = _member_files(tmp_path)
    out = tmp_path / "ensemble.pt"
    assert main(["face-net-combine", "--members", ",".join(map(str, paths)), "--out", str(out), "--no-flip"]) == 0
    runner = FaceNetRunner(out)
    assert runner.embedding_dim == 16 + 8 and runner.config["flip_average"] is False
    crops = np.random.default_rng(0).integers(0, 255, (5, 48, 48)).astype(np.uint8)
    embeddings, probs = runner(crops)
    members = [FaceNetRunner(p)(crops) for p in paths]
    np.testing.assert_allclose(embeddings, np.concatenate([e for e, _ in members], axis=1), atol=1e-5)
    np.testing.assert_allclose(probs, np.mean([p for _, p in members], axis=0), atol=1e-5)
    np.testing.assert_allclose(probs, np.mean([_probs(m, crops) for m in models], axis=0), atol=1e-5)
    ids = [m["weights_id"] for m in runner.metadata["members"]]
    assert len(set(ids)) == 2 and runner.metadata["labels"] == list(LIVE_EMOTIONS)


def test_mirror_averaging_makes_the_output_the_same_for_a_mirrored_face(tmp_path):
    paths, _ = _member_files(tmp_path)
    out = tmp_path / "ensemble.pt"
    assert main(["face-net-combine", "--members", ",".join(map(str, paths)), "--out", str(out)]) == 0
    runner = FaceNetRunner(out)
    crops = np.random.default_rng(1).integers(0, 255, (4, 48, 48)).astype(np.uint8)
    embeddings, probs = runner(crops)
    mirrored_embeddings, mirrored_probs = runner(crops[:, :, ::-1].copy())
    np.testing.assert_allclose(embeddings, mirrored_embeddings, atol=1e-5)
    np.testing.assert_allclose(probs, mirrored_probs, atol=1e-5)
    plain = FaceNetRunner(paths[0])  # a single network is not mirror-invariant (so the check above can fail)
    assert not np.allclose(plain(crops)[1], plain(crops[:, :, ::-1].copy())[1], atol=1e-5)
    # each member's embedding is the mean of its embeddings of the crop and of the mirror image
    first, _ = plain(crops)
    first_mirrored, _ = plain(crops[:, :, ::-1].copy())
    np.testing.assert_allclose(embeddings[:, :16], (first + first_mirrored) / 2, atol=1e-5)


def test_combining_refuses_ensembles_and_other_class_lists_and_bad_configs(tmp_path, capsys):
    paths, _ = _member_files(tmp_path)
    out = tmp_path / "ensemble.pt"
    assert main(["face-net-combine", "--members", ",".join(map(str, paths)), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["face-net-combine", "--members", f"{out},{paths[0]}", "--out", str(tmp_path / "x.pt")]) != 0
    assert "already an ensemble" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    save_face_net(other, build_face_net(**CONFIGS[0]), CONFIGS[0], {"labels": ["a", "b"]})
    assert main(["face-net-combine", "--members", f"{paths[0]},{other}", "--out", str(tmp_path / "y.pt")]) != 0
    assert "different class lists" in capsys.readouterr().err
    broken = tmp_path / "broken.pt"
    torch.save({"format": "imer-face-net-v1", "config": {"members": [CONFIGS[0]], "colour": 1}, "state_dict": {},
                "metadata": {}}, broken)
    with pytest.raises(FaceNetError, match="not a face-network configuration"):
        FaceNetRunner(broken)


def test_training_does_not_continue_from_an_ensemble(tmp_path, capsys):
    from tests.test_face_net import _tiny_crop_file

    paths, _ = _member_files(tmp_path)
    out = tmp_path / "ensemble.pt"
    assert main(["face-net-combine", "--members", ",".join(map(str, paths)), "--out", str(out)]) == 0
    capsys.readouterr()
    crops = _tiny_crop_file(tmp_path)
    assert main(["face-net", "--crops", str(crops), "--out", str(tmp_path / "run"), "--init", str(out),
                 "--epochs", "1"]) != 0
    assert "is an ensemble" in capsys.readouterr().err
