"""Guided calibration on a test clip (``imer run --calibrate``) and ``imer-train finetune`` on its session."""

import json

import numpy as np
import pytest
import torch
from live_fakes import live_audio_dim

from app.cli import main as imer_main
from imer_core.checkpoint import load_checkpoint, save_checkpoint
from imer_core.config import LIVE_EMOTIONS
from imer_core.features.face import live_vision_feature
from imer_core.live.calibration import CalibrationRun, CalibrationStep, load_calibration
from imer_core.live.models import load_live_model
from training.cli import main as train_main

pytestmark = pytest.mark.slow


def test_calibrate_on_a_clip_then_finetune(demo_test_clip, live_checkpoints, tmp_path, capsys):
    code = imer_main(["run", "--source", str(demo_test_clip.path), "--loop", "--calibrate",
                      "--calibration-seconds", "2.5", "--hop", "1.0", "--checkpoint", str(live_checkpoints["cmarr"]),
                      "--out", str(tmp_path / "sessions")])
    assert code == 0
    err = capsys.readouterr().err
    assert "[1/7] NEUTRAL" in err and "[7/7] SURPRISED" in err and "calibration windows written" in err
    data = load_calibration([tmp_path / "sessions"])
    assert len(data) >= 7 * 2
    assert set(data.labels.tolist()) == set(range(7))
    assert data.features["vision"].shape[1:] == (20, live_vision_feature()[1])
    assert data.features["audio"].shape[1:] == (20, live_audio_dim())
    assert data.available[:, 2].mean() > 0.8  # the face is visible throughout
    info = json.loads(next((tmp_path / "sessions").glob("session-*/calibration.json")).read_text())
    assert info["samples"] == len(data)

    # a base checkpoint as shipped: it carries the measurements of *that* model
    shipped = load_checkpoint(live_checkpoints["cmarr"])
    base_path = save_checkpoint(shipped, tmp_path / "live_cmarr.pt", {
        **shipped.checkpoint_metadata, "results": {"table": {"CM-ARR": {}}}, "test_metrics": {"accuracy": 0.5},
        "method_title": "CM-ARR"})
    out = tmp_path / "personal.pt"
    assert train_main(["finetune", "--sessions", str(tmp_path / "sessions"), "--checkpoint",
                       str(base_path), "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    personal = load_live_model(out)
    assert personal.metadata["personalized"]["samples"] == len(data)
    assert personal.metadata["personalized"]["base_checkpoint"] == str(base_path)
    base = load_live_model(base_path)
    # the base model's test results describe the base model, not the personal one
    assert "results" in base.metadata and not {"results", "test_metrics"} & set(personal.metadata)
    assert personal.metadata["feature_normalization"] == base.metadata["feature_normalization"]
    assert personal.metadata["method_title"] == "CM-ARR"
    changed = [k for k, v in personal.model.state_dict().items()
               if not torch.equal(v, base.model.state_dict()[k])]
    assert changed, "fine-tuning changed no weight"
    assert "fine-tuned on" in capsys.readouterr().out


def test_finetune_without_calibration_data_says_what_to_do(tmp_path, live_checkpoints, capsys):
    assert train_main(["finetune", "--sessions", str(tmp_path), "--checkpoint", str(live_checkpoints["cmarr"]),
                       "--out", str(tmp_path / "p.pt")]) == 2
    assert "record a calibration first" in capsys.readouterr().err


def test_calibration_text_comes_only_from_its_own_step(tmp_path):
    from imer_core.live.tracks import FeatureTrack
    from imer_core.modalities import Modality

    class Pipe:
        tracks = {Modality.TEXT: FeatureTrack(3), Modality.AUDIO: FeatureTrack(2), Modality.VISION: FeatureTrack(2)}
        transcript = None

    pipe = Pipe()
    run = CalibrationRun(pipe, tmp_path, [CalibrationStep("happy", "smile", "yay", 1.0),
                                          CalibrationStep("sad", "frown", "oh", 1.0)])
    pipe.tracks[Modality.TEXT].append(9.0, np.ones(3))
    pipe.tracks[Modality.VISION].append(9.9, np.ones(2))
    assert run.take_window(0, now=10.0)
    run.begin_step()  # step 2: the sentence of step 1 must not be reused
    pipe.tracks[Modality.VISION].append(10.4, np.ones(2))
    assert run.take_window(1, now=10.5)
    run.save()
    data = load_calibration([tmp_path])
    assert data.available.tolist() == [[True, False, True], [False, False, True]]
    assert [LIVE_EMOTIONS[k] for k in data.labels] == ["happy", "sad"]
    with pytest.raises(ValueError, match="unknown emotions"):
        CalibrationRun(pipe, tmp_path, [CalibrationStep("bored", "", "", 1.0)])


def test_a_calibration_window_with_nan_is_recorded_as_missing_and_the_file_loads(tmp_path):
    from imer_core.live.tracks import FeatureTrack
    from imer_core.modalities import Modality

    class Pipe:
        tracks = {Modality.TEXT: FeatureTrack(3), Modality.AUDIO: FeatureTrack(2), Modality.VISION: FeatureTrack(2)}
        transcript = None

    pipe = Pipe()
    run = CalibrationRun(pipe, tmp_path, [CalibrationStep("happy", "smile", "yay", 1.0)])
    pipe.tracks[Modality.AUDIO].append(9.9, np.array([0.5, np.nan]))
    pipe.tracks[Modality.VISION].append(9.9, np.ones(2))
    assert run.take_window(0, now=10.0)
    pipe.tracks[Modality.VISION].append(10.9, np.full(2, np.inf))
    assert not run.take_window(0, now=11.0)  # nothing usable: no window
    run.save()
    data = load_calibration([tmp_path])
    assert data.available.tolist() == [[False, False, True]] and np.isfinite(data.features["audio"]).all()
