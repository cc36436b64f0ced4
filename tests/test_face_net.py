"""The face network file format, the runner, and the extractor's face-network path."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from imer_core.config import LIVE_EMOTIONS
from imer_core.live.face_net import FaceNetError, FaceNetRunner, build_face_net, save_face_net


@pytest.fixture()
def net_file(tmp_path):
    torch.manual_seed(0)
    config = {"widths": [8, 8, 16, 16], "convs_per_stage": [1, 1, 1, 1], "embedding_dim": 16}
    model = build_face_net(**config).eval()
    path = tmp_path / "face_net.pt"
    save_face_net(path, model, config, {"crop_id": "test"})
    return path, model


def test_runner_gives_embeddings_and_probabilities(net_file):
    path, model = net_file
    runner = FaceNetRunner(path)
    crops = np.random.default_rng(0).integers(0, 255, (3, 48, 48)).astype(np.uint8)
    embeddings, probs = runner(crops)
    assert embeddings.shape == (3, 16) and probs.shape == (3, len(LIVE_EMOTIONS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():  # the same network as the one saved
        expected = torch.softmax(model(torch.from_numpy(crops.astype(np.float32) / 255)[:, None]), 1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    one_embedding, one_prob = runner(crops[0])
    np.testing.assert_allclose(one_prob[0], probs[0], atol=1e-5)


def test_bad_files_give_one_clear_error(tmp_path, net_file):
    with pytest.raises(FaceNetError, match="not found"):
        FaceNetRunner(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not torch")
    with pytest.raises(FaceNetError, match="cannot read"):
        FaceNetRunner(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, str(other))
    with pytest.raises(FaceNetError, match="is not an"):
        FaceNetRunner(other)
    path, _ = net_file
    payload = torch.load(str(path), weights_only=True)
    payload["config"]["embedding_dim"] = 32
    torch.save(payload, str(tmp_path / "mismatch.pt"))
    with pytest.raises(FaceNetError, match="do not fit"):
        FaceNetRunner(tmp_path / "mismatch.pt")


def test_extractor_runs_the_face_network_on_its_crop(net_file):
    try:
        importlib.import_module("mediapipe.tasks.python.vision")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"mediapipe cannot be imported ({exc!r})")
    import matplotlib.cbook as cbook
    import matplotlib.image as mimage

    from imer_core.features.face import FaceFeatureExtractor, default_face_model_path

    if not default_face_model_path().is_file():
        pytest.skip("FaceLandmarker model bundle missing")
    image = mimage.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    path, _ = net_file
    runner = FaceNetRunner(path)
    with FaceFeatureExtractor(color="rgb", still_images=True, face_net=runner) as extractor:
        features = extractor.process(image)
    assert features.detected and features.crop.shape == (48, 48)
    embedding, probs = runner(features.crop)
    np.testing.assert_allclose(features.embedding, embedding[0], atol=1e-6)
    np.testing.assert_allclose(features.expression, probs[0], atol=1e-6)
    # the live vision vector: the embedding, then the 52 blendshapes and the pose
    assert features.vector.shape == (runner.embedding_dim + 55,) == (extractor.feature_dim,)
    np.testing.assert_allclose(features.vector[:runner.embedding_dim], embedding[0], atol=1e-6)
    np.testing.assert_allclose(features.vector[runner.embedding_dim:runner.embedding_dim + 52], features.blendshapes)
    assert extractor.feature_id.startswith("imer-face-net-v1-" + runner.weights_id)
    assert extractor.feature_spec(20, 10.0).dim == extractor.feature_dim


def test_training_command_on_a_tiny_crop_file(tmp_path):
    import json

    from imer_core.features.face_crop import CROP_ID
    from training.live.face_net_train import evaluate_face_net_file, train_face_net

    rng = np.random.default_rng(0)
    n = 84
    labels = np.array(["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"] * (n // 7))
    crops = rng.integers(0, 255, (n, 48, 48)).astype(np.uint8)
    crops[labels == "happy", 30:40, 10:38] = 255  # a learnable "smile"
    split = np.array(["train", "train", "val", "test"] * (n // 4))
    meta = {"crop_id": CROP_ID, "n": n, "fallback_full_image": 3}
    path = tmp_path / "crops.npz"
    np.savez(path, crops=crops, labels=labels, split=split, detected=np.ones(n, bool),
             meta=np.asarray(json.dumps(meta)))
    lines: list[str] = []
    summary = train_face_net(path, tmp_path / "run", epochs=2, batch_size=16,
                             net_config={"widths": [4, 4, 8, 8], "convs_per_stage": 1, "embedding_dim": 8},
                             log=lines.append)
    assert len(summary["history"]) == 2 and "3 of 84 fell back" in lines[0]
    assert summary["test"]["n"] == n // 4 and 0.0 <= summary["test"]["accuracy"] <= 1.0
    again = evaluate_face_net_file(path, tmp_path / "run" / "face_net.pt")
    assert again["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    bad = tmp_path / "old.npz"
    np.savez(bad, crops=crops, labels=labels, split=split, detected=np.ones(n, bool),
             meta=np.asarray(json.dumps({**meta, "crop_id": "another-crop"})))
    with pytest.raises(ValueError, match="the run-time crop is"):
        train_face_net(bad, tmp_path / "run2", epochs=1)


def _tiny_crop_file(tmp_path):
    import json

    from imer_core.features.face_crop import CROP_ID

    rng = np.random.default_rng(1)
    n = 56
    labels = np.array(["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"] * (n // 7))
    crops = rng.integers(0, 255, (n, 48, 48)).astype(np.uint8)
    split = np.array(["train", "train", "val", "test"] * (n // 4))
    path = tmp_path / "crops.npz"
    np.savez(path, crops=crops, labels=labels, split=split, detected=np.ones(n, bool),
             meta=np.asarray(json.dumps({"crop_id": CROP_ID, "n": n, "fallback_full_image": 0})))
    return path


def test_a_run_split_over_invocations_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, capsys):
    import torch

    from training.cli import main as train_main
    from training.live.face_net_train import train_face_net

    path = _tiny_crop_file(tmp_path)
    small = {"widths": [4, 4, 8, 8], "convs_per_stage": 1, "embedding_dim": 8}
    whole = train_face_net(path, tmp_path / "whole", epochs=3, batch_size=8, net_config=small, log=lambda _: None)
    lines: list[str] = []
    first = train_face_net(path, tmp_path / "split", epochs=3, batch_size=8, net_config=small, stop_after=1,
                           log=lines.append)
    assert not first["complete"] and len(first["history"]) == 1 and "continue with --resume" in lines[-2]
    train_face_net(path, tmp_path / "split", epochs=3, batch_size=8, net_config=small, resume=True, stop_after=1,
                   log=lambda _: None)
    last = train_face_net(path, tmp_path / "split", epochs=3, batch_size=8, net_config=small, resume=True,
                          log=lambda _: None)
    assert whole["complete"] and last["complete"] and len(last["history"]) == 3
    ends = [torch.load(tmp_path / run / "train_state.pt", weights_only=True) for run in ("whole", "split")]
    for key, value in ends[0]["model"].items():
        assert torch.equal(value, ends[1]["model"][key]), key
    assert [h["val_accuracy"] for h in whole["history"]] == [h["val_accuracy"] for h in last["history"]]
    assert last["test"] == whole["test"]
    # another setting, or nothing to resume: one clear error
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.002 -> 0.01\)"):
        train_face_net(path, tmp_path / "split", epochs=3, batch_size=8, lr=0.01, net_config=small, resume=True)
    assert train_main(["face-net", "--crops", str(path), "--out", str(tmp_path / "none"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to resume" in err[0]


def test_shipped_face_network_loads_and_matches_the_run_time_crop():
    from imer_core.features.face_crop import CROP_ID, FACE_CROP_SIZE
    from imer_core.live.face_net import default_face_net_path

    path = default_face_net_path()
    if not path.is_file():
        pytest.skip(f"no shipped face network at {path}")
    runner = FaceNetRunner(path)
    assert runner.metadata["crop_id"] == CROP_ID and runner.metadata["crop_size"] == FACE_CROP_SIZE
    assert runner.metadata["labels"] == list(LIVE_EMOTIONS)
    assert path.stat().st_size < 5_000_000
    embeddings, probs = runner(np.full((FACE_CROP_SIZE, FACE_CROP_SIZE), 128, np.uint8))
    assert embeddings.shape == (1, runner.embedding_dim) and np.isfinite(probs).all()


def test_the_face_network_feature_spec_is_known_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom imer_core.features.registry import default_extractor_specs\n"
            "from imer_core.modalities import Modality\n"
            "spec = default_extractor_specs()[Modality.VISION]\n"
            "assert 'torch' not in sys.modules, 'the vision spec imported torch'\n"
            "print(spec.extractor_id, spec.dim)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from imer_core.features.face import face_net_extractor_spec

    expected = face_net_extractor_spec()
    if expected is not None:
        assert done.stdout.split() == [expected.extractor_id, str(expected.dim)]
