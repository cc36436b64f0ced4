"""scripts/eval_voice_encoder.py: the Whisper voice extractor's two parts against each other (its left-context rule is
tested in test_voice_whisper.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

pytest.importorskip("ctranslate2")
pytest.importorskip("faster_whisper")


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


def test_the_check_runs_on_a_tiny_corpus_and_reports_every_feature_set(tmp_path):
    _tiny_corpora(tmp_path / "data")
    out = tmp_path / "check.json"
    script = load_script("eval_voice_encoder")
    assert script.main(["--data", str(tmp_path / "data"), "--seeds", "0,1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["clips"] == {"train": 3, "val": 2, "test": 2}
    assert report["dims"] == {"live": 44, "whisper": 384, "live+whisper": 428}
    assert report["encoder_call_ms_median"] > 0 and report["context_s"] == 2.0
    for scores in report["features"].values():
        for split in ("val", "test"):
            assert len(scores[split]["macro_f1"]) == 2 and 0 <= scores[split]["first3_accuracy"] <= 100


def test_bad_arguments_and_a_missing_corpus_are_one_line(tmp_path, capsys):
    script = load_script("eval_voice_encoder")
    assert script.main(["--seeds", "a,b"]) == 2
    assert script.main(["--data", str(tmp_path), "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("eval_voice_encoder: error:") for line in err)
