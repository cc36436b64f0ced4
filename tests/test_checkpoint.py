"""Self-describing checkpoints: round trip, and clear errors for broken files."""

import pytest
import torch
from conftest import small_features

from imer_core.checkpoint import CheckpointError, checkpoint_info, load_checkpoint, save_checkpoint
from imer_core.methods.base import SamplingOptions
from imer_core.modalities import mask_from_available


def test_round_trip_restores_config_weights_and_outputs(tmp_path, small_imder):
    path = save_checkpoint(small_imder, tmp_path / "m.pt", {"note": "unit test", "acc": 0.5})
    loaded = load_checkpoint(path)
    assert loaded.config == small_imder.config
    assert loaded.checkpoint_metadata == {"note": "unit test", "acc": 0.5}
    for (k, a), (k2, b) in zip(small_imder.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    feats = small_features(2)
    mask = mask_from_available(["text"], 2)
    opts = SamplingOptions(steps=3, seed=7)
    assert torch.allclose(small_imder.predict(feats, mask, opts), loaded.predict(feats, mask, opts))
    info = checkpoint_info(path)
    assert info["method"] == "imder" and info["config"]["specs"]["audio"]["dim"] == 5
    # weights_only loading works on the raw file: nothing but plain types and tensors inside
    torch.load(path, weights_only=True)


def test_missing_truncated_corrupt_and_foreign_files(tmp_path, small_imder):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    good = save_checkpoint(small_imder, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError) as junk:
        load_checkpoint(tmp_path / "junk.pt")
    assert "\n" not in str(junk.value)  # one line, not torch's multi-paragraph message
    import pathlib

    torch.save({"format": "x", "object": pathlib.PurePosixPath("a")}, tmp_path / "class.pt")  # refused: weights_only
    with pytest.raises(CheckpointError, match="could not be read safely") as unsafe:
        load_checkpoint(tmp_path / "class.pt")
    assert "\n" not in str(unsafe.value) and "PurePosixPath" in str(unsafe.value) and "PyTorch 2.6" not in str(
        unsafe.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an IMER checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="expected 'rohydr'"):
        load_checkpoint(good, expected_method="rohydr")


def test_mismatched_state_dict_is_reported(tmp_path, small_imder):
    path = save_checkpoint(small_imder, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["specs"]["audio"]["dim"] = 7  # weights no longer fit the config
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "mismatch.pt")
    payload["config"]["method"] = "no-such-method"
    payload["method"] = "no-such-method"
    torch.save(payload, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="invalid configuration"):
        load_checkpoint(tmp_path / "unknown.pt")
