"""scripts/eval_voice_encoder.py: Whisper tiny.en encoder steps (left context only) against the live voice features."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ctranslate2")
pytest.importorskip("faster_whisper")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "eval_voice_encoder.py"


def _script():
    spec = importlib.util.spec_from_file_location("eval_voice_encoder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_corpora(root: Path) -> None:
    """RAVDESS actors 01 / 19 / 21 (train / val / test), happy and sad, and one EmoDB clip: espeak-ng speech."""
    import soundfile as sf
    from clip_fixtures import espeak_16k

    speech = {t: espeak_16k(t) for t in ("Kids are talking by the door", "Dogs are sitting by the door")}
    for actor in ("01", "19", "21"):
        for emotion, statement, text in (("03", "01", "Kids are talking by the door"),
                                         ("04", "02", "Dogs are sitting by the door")):
            path = root / "ravdess_speech" / f"Actor_{actor}" / f"03-01-{emotion}-01-{statement}-01-{actor}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.concatenate([np.zeros(3200, np.float32), speech[text]]), 16000, format="FLAC",
                     subtype="PCM_16")
    (root / "emodb").mkdir()
    sf.write(root / "emodb" / "03a01Fa.flac", speech["Kids are talking by the door"], 16000, format="FLAC",
             subtype="PCM_16")


def test_each_encoder_step_sees_only_the_audio_before_its_end():
    script = _script()
    encoder = script.WhisperStepEncoder(context_s=1.0)
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)
    steps = encoder.steps(clip, offset=8000, steps=5, rate=16000)
    changed = clip.copy()
    changed[8000 + 5 * 1600:] = 0.0  # everything after the fifth step
    assert steps.shape == (5, 384) and np.isfinite(steps).all()
    np.testing.assert_array_equal(encoder.steps(changed, offset=8000, steps=5, rate=16000), steps)
    earlier = clip.copy()
    earlier[8000 + 3 * 1600: 8000 + 4 * 1600] = 0.0  # inside the fourth step: it and the fifth change
    moved = encoder.steps(earlier, offset=8000, steps=5, rate=16000)
    np.testing.assert_array_equal(moved[:3], steps[:3])
    assert not np.allclose(moved[3], steps[3])
    assert len(encoder.call_s) == 15 and min(encoder.call_s) > 0


def test_the_check_runs_on_a_tiny_corpus_and_reports_every_feature_set(tmp_path):
    _tiny_corpora(tmp_path / "data")
    out = tmp_path / "check.json"
    assert _script().main(["--data", str(tmp_path / "data"), "--seeds", "0,1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["clips"] == {"train": 3, "val": 2, "test": 2}
    assert report["dims"] == {"live": 44, "whisper": 384, "live+whisper": 428}
    assert report["encoder_call_ms_median"] > 0 and report["context_s"] == 2.0
    for scores in report["features"].values():
        for split in ("val", "test"):
            assert len(scores[split]["macro_f1"]) == 2 and 0 <= scores[split]["first3_accuracy"] <= 100


def test_bad_arguments_and_a_missing_corpus_are_one_line(tmp_path, capsys):
    script = _script()
    assert script.main(["--seeds", "a,b"]) == 2
    assert script.main(["--data", str(tmp_path), "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("eval_voice_encoder: error:") for line in err)
