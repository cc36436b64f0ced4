"""The shipped default live checkpoint: it loads, its feature specs are the running extractors', and a
webcam-style clip of a face gets predictions from it through ``imer run``."""

from __future__ import annotations

import json

import pytest

from imer_core.features.face import face_net_extractor_spec
from imer_core.features.registry import default_extractor_specs
from imer_core.live.models import load_live_model, shipped_checkpoints
from imer_core.modalities import MODALITIES, Modality


def _default_checkpoint():
    checkpoints = shipped_checkpoints()
    if "cmarr" not in checkpoints:
        pytest.skip("shipped live checkpoint missing")
    return checkpoints["cmarr"]


def test_the_default_checkpoint_fits_the_running_extractors():
    model = load_live_model(_default_checkpoint())  # raises when any spec differs from the running extractors
    running = default_extractor_specs()
    for modality in MODALITIES:
        spec = model.config.specs[modality]
        assert (spec.extractor, spec.dim) == (running[modality].extractor_id, running[modality].dim)
    face_net = face_net_extractor_spec()
    assert face_net is not None and running[Modality.VISION] == face_net  # the face network's feature runs
    assert model.model.expert_fusion is not None and "audio" in model.model.expert_fusion.speaker_experts
    # on the voice + Whisper-encoder feature the per-speaker expert helps on the test speakers (a 57.5 -> 64.8
    # macro-F1 after 40 s of speech), so the shipped model switches to it once the session has that much speech
    switch = model.metadata["speaker_normalization"]["audio"]
    assert switch["mode"] == "expert" and switch["switch_after_steps"] == 400
    assert set(model.metadata["neutral_reference"]) == {"vision", "audio"}


@pytest.mark.slow
def test_a_webcam_style_clip_of_a_face_gets_predictions_from_the_shipped_model(demo_test_clip, tmp_path, capsys):
    from app.cli import main as imer_main

    _default_checkpoint()
    code = imer_main(["run", "--source", str(demo_test_clip.path), "--disable", "text", "--out", str(tmp_path),
                      "--hop", "0.2", "--quiet"])
    assert code == 0, capsys.readouterr().err
    folder = next(tmp_path.glob("session-*"))
    assert json.loads((folder / "session.json").read_text())["method"] == "cmarr"
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    with_face = [r for r in rows if r["probabilities"] and r["modalities"]["vision"]["state"] == "observed"]
    assert with_face, "no prediction with the face observed"
    assert all(abs(sum(r["probabilities"]) - 1.0) < 1e-3 for r in with_face)


@pytest.mark.parametrize("method", ["imder", "rohydr", "cmarr"])
def test_every_shipped_method_fits_the_running_extractors(method):
    """IMDer, RoHyDR and CM-ARR are all selectable at run time: none is refused for a feature mismatch."""
    path = shipped_checkpoints().get(method)
    if path is None:
        pytest.skip(f"shipped live checkpoint live_{method}.pt missing")
    live = load_live_model(path)  # raises when any spec differs from the running extractors
    running = default_extractor_specs()
    for modality in MODALITIES:
        spec = live.model.config.specs[modality]
        assert (spec.extractor, spec.dim) == (running[modality].extractor_id, running[modality].dim)
    assert live.model.expert_fusion is not None  # the expert-fusion head, as on the default CM-ARR
    assert live.metadata["speaker_normalization"]["audio"]["mode"] == "expert"  # as on the default CM-ARR
