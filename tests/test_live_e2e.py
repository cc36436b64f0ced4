"""End to end with the real extractors on a generated clip (face + espeak-ng speech).

MediaPipe blendshapes, voice features, faster-whisper tiny.en and MiniLM all
run; the spoken sentence must be transcribed, and predictions must come out
with every modality observed.  The model is a tiny checkpoint trained by the
tests (its predictions are not meaningful; the plumbing is what is tested).
"""

import json
import re
import time

import pytest
from clip_fixtures import TEST_CLIP_SENTENCE, word_overlap

from app.cli import main
from imer_core.live.parts import SourceSpec
from imer_core.live.pipeline import LivePipeline, PipelineConfig
from imer_core.live.recording import SessionRecording
from imer_core.live.session import read_session
from imer_core.modalities import Modality

pytestmark = pytest.mark.slow


def test_pipeline_on_a_clip_transcribes_and_predicts_with_everything_observed(demo_test_clip, live_checkpoints,
                                                                              tmp_path):
    config = PipelineConfig(sources=SourceSpec(str(demo_test_clip.path), loop=True),
                            checkpoints=(str(live_checkpoints["cmarr"]),), hop_s=0.2)
    pipeline = LivePipeline(config)
    recording = SessionRecording(pipeline, tmp_path / "session").start()
    complete = []
    pipeline.add_listener(lambda r: complete.append(r) if r.probabilities and not r.recovered else None)
    pipeline.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (complete and pipeline.transcripts()):
            time.sleep(0.2)
        face = pipeline.latest_face()
        stats = pipeline.stats()
    finally:
        pipeline.stop()
        recording.stop()
    events = pipeline.transcripts()
    assert events, "nothing was transcribed"
    assert word_overlap(TEST_CLIP_SENTENCE, events[0].text) >= 0.6
    assert complete, "no prediction with all three modalities observed"
    assert face is not None and face.face.detected and face.face.blendshapes.shape == (52,)
    assert len(pipeline.tracks[Modality.AUDIO]) > 10
    assert stats["face_fps"] > 0
    session = read_session(tmp_path / "session")
    assert any(not row["recovered"] and row["probabilities"] for row in session.predictions)
    assert session.transcript and word_overlap(TEST_CLIP_SENTENCE, session.transcript[0]["text"]) >= 0.6


def test_imer_run_writes_a_session_folder(demo_test_clip, live_checkpoints, tmp_path, capsys):
    # the ~4.5 s test clip: it plays only once the models have loaded, so it gets predictions however long the
    # load takes (the shipped 20 s clip made this test wait 20 s on the clock)
    demo = demo_test_clip.path
    code = main(["run", "--source", str(demo), "--disable", "text", "--checkpoint",
                 str(live_checkpoints["cmarr"]), "--out", str(tmp_path), "--hop", "0.2"])
    assert code == 0
    err = capsys.readouterr().err
    assert "end of file" in err and "session written to" in err
    folder = next(tmp_path.glob("session-*"))
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert rows and all(r["modalities"]["text"]["state"] == "disabled" for r in rows)
    predicted = [r for r in rows if r["probabilities"]]
    assert predicted and all("text" in r["recovered"] for r in predicted)
    # a loaded CI machine may briefly starve a worker (its modality is then failing and recovered too), but
    # every recovered modality is one that was not observed, and most windows recover text alone
    assert all(r["modalities"][m]["state"] != "observed" for r in predicted for m in r["recovered"])
    assert sum(r["recovered"] == ["text"] for r in predicted) > len(predicted) / 2
    csv_lines = (folder / "predictions.csv").read_text().splitlines()
    assert len(csv_lines) == len(rows) + 1
    info = json.loads((folder / "session.json").read_text())
    assert info["method"] == "cmarr" and info["format"] == "imer-session-v1"
    # rows start when the file plays: none says "loading ... the file starts playing", and the health
    # timers do not count the model load (at most the clip's length without a face, never more)
    assert not any("starts playing" in r["modalities"][m]["reason"] for r in rows for m in ("vision", "audio"))
    for r in rows:  # "no face detected for X s" never exceeds the time since the file started playing
        for x in re.findall(r"no face detected for ([\d.]+) s", r["modalities"]["vision"]["reason"]):
            assert float(x) <= r["t_session"] + 0.5, r["modalities"]["vision"]["reason"]
    assert info["clean_shutdown"] is True and info["end_reason"] == "end of file"
    assert info["predictions"] == len(predicted) and f"({len(predicted)} predictions in {len(rows)} rows)" in err


def test_imer_run_refuses_a_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert main(["run", "--source", "webcam", "--checkpoint", str(bad), "--duration", "1",
                 "--out", str(tmp_path)]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_imer_run_rejects_a_missing_file(tmp_path, capsys):
    assert main(["run", "--source", str(tmp_path / "missing.mp4"), "--duration", "1",
                 "--out", str(tmp_path / "sessions")]) == 1
    assert "source file not found" in capsys.readouterr().err
    assert not (tmp_path / "sessions").exists()


@pytest.mark.parametrize("content", [b"", b"# README\n" * 50, None])
def test_imer_run_on_a_file_that_is_not_media_says_so_in_one_line(tmp_path, capsys, demo_test_clip, content):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content if content is not None else demo_test_clip.path.read_bytes()[:10_000])
    assert main(["run", "--source", str(path), "--out", str(tmp_path / "sessions")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("imer: not an audio or video file: clip.mp4")
    assert not (tmp_path / "sessions").exists()
