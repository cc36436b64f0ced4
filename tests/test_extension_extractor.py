"""A feature extractor registered from test code alone is run by ``imer run`` and checked by the engine."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from live_fakes import LIVE_SEQ, FakeFaceExtractor, fake_rig, live_specs, train_small_checkpoint

from app.cli import main
from imer_core.features.base import ExtractorFactory, ExtractorSpec
from imer_core.features.registry import (
    available_extractors,
    default_extractor_specs,
    extractor_factories,
    parse_extractor_choice,
    register_extractor,
    unregister_extractor,
)
from imer_core.features.text import text_feature_spec
from imer_core.live.models import LiveModelError, compatibility_problems, load_live_model
from imer_core.live.parts import PipelineParts
from imer_core.live.pipeline import LivePipeline, PipelineConfig
from imer_core.modalities import FeatureSpecs, Modality

TOY_SPEC = ExtractorSpec(Modality.VISION, "toy-mean-colour", 3)
DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo" / "demo_clip.mp4"


@dataclass(frozen=True)
class _Colour:
    detected: bool
    vector: np.ndarray


class ToyColourExtractor:
    """Mean colour of the frame: 3 values in [0, 1], a 'face' in every frame."""

    spec = TOY_SPEC

    def __init__(self, device: str = "cpu", color: str = "bgr", still_images: bool = False) -> None:
        self.color = color

    def process(self, frame: np.ndarray, timestamp_ms: float | None = None) -> _Colour:
        return _Colour(True, np.asarray(frame, np.float32).reshape(-1, 3).mean(axis=0) / 255.0)

    def close(self) -> None:
        pass


@pytest.fixture
def toy_extractor():
    register_extractor(TOY_SPEC, ToyColourExtractor)
    yield TOY_SPEC
    unregister_extractor(TOY_SPEC.extractor_id)


@pytest.fixture
def toy_checkpoint(tmp_path):
    specs = FeatureSpecs(text_feature_spec(LIVE_SEQ, 10.0), live_specs().audio,
                         TOY_SPEC.feature_spec(LIVE_SEQ, 10.0))
    return train_small_checkpoint(tmp_path / "toy.pt", "cmarr", steps=1, specs=specs)


def test_a_registered_extractor_is_listed_chosen_and_built(toy_extractor):
    assert TOY_SPEC.extractor_id in available_extractors("vision")
    assert TOY_SPEC.extractor_id not in available_extractors("audio")
    factories = extractor_factories(choice={"vision": TOY_SPEC.extractor_id})
    assert factories[Modality.VISION].spec == TOY_SPEC
    built = factories[Modality.VISION](color="rgb")
    assert isinstance(built, ToyColourExtractor) and built.color == "rgb"
    defaults = default_extractor_specs()
    assert factories[Modality.AUDIO].spec == defaults[Modality.AUDIO]  # the others stay the defaults
    with pytest.raises(ValueError, match="makes vision features, not audio"):
        parse_extractor_choice(f"audio={TOY_SPEC.extractor_id}")
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'"):
        parse_extractor_choice("vision=nope")
    with pytest.raises(ValueError, match="already registered"):
        register_extractor(TOY_SPEC, ToyColourExtractor)


def test_the_compatibility_check_follows_the_pipeline_parts(toy_extractor, toy_checkpoint):
    default_parts = fake_rig().parts()
    toy_parts = PipelineParts(face_extractor=ExtractorFactory(TOY_SPEC, ToyColourExtractor))
    default_id = re.escape(default_parts.extractor_specs[Modality.VISION].extractor_id)  # the live vision feature
    with pytest.raises(LiveModelError, match=f"expects 'toy-mean-colour' \\(3-d\\), the pipeline runs '{default_id}'"):
        load_live_model(toy_checkpoint, extractors=default_parts.extractor_specs)
    model = load_live_model(toy_checkpoint, extractors=toy_parts.extractor_specs)
    assert compatibility_problems(model.config, model.metadata, toy_parts.extractor_specs) == []
    # the pipeline sizes its vision track by the extractor it runs and refuses the checkpoint on other parts
    pipeline = LivePipeline(PipelineConfig(checkpoints=(str(toy_checkpoint),)), toy_parts)
    assert pipeline.tracks[Modality.VISION].dim == 3 and pipeline.bank.get("cmarr").method == "cmarr"
    other = LivePipeline(PipelineConfig(checkpoints=(str(toy_checkpoint),)), default_parts)
    with pytest.raises(LiveModelError, match="toy-mean-colour"):
        other.bank.get("cmarr")


def test_a_bare_factory_stands_for_the_default_and_a_wrong_modality_is_refused():
    parts = PipelineParts(face_extractor=FakeFaceExtractor)
    assert parts.extractor_specs[Modality.VISION] == default_extractor_specs()[Modality.VISION]
    with pytest.raises(ValueError, match="makes vision features, not audio ones"):
        PipelineParts(voice_extractor=ExtractorFactory(TOY_SPEC, ToyColourExtractor))


def test_imer_run_refuses_the_toy_checkpoint_without_its_extractor(toy_extractor, toy_checkpoint, tmp_path, capsys):
    assert main(["run", "--source", "webcam", "--checkpoint", str(toy_checkpoint), "--out",
                 str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "expects 'toy-mean-colour' (3-d)" in err and not (tmp_path / "s").exists()
    assert main(["run", "--source", "webcam", "--extractor", "vision=nope", "--out", str(tmp_path / "s")]) == 2
    assert "--extractor: unknown feature extractor 'nope'" in capsys.readouterr().err


def test_imer_run_runs_a_registered_extractor(toy_extractor, toy_checkpoint, tmp_path, capsys):
    code = main(["run", "--source", str(DEMO), "--disable", "text", "--checkpoint", str(toy_checkpoint),
                 "--extractor", f"vision={TOY_SPEC.extractor_id}", "--duration", "3", "--hop", "0.2",
                 "--quiet", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    folder = next(tmp_path.glob("session-*"))
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    predicted = [r for r in rows if r["probabilities"]]
    assert predicted, "no prediction"
    assert any(r["modalities"]["vision"]["state"] == "observed" and "vision" not in r["recovered"]
               for r in predicted)
