"""``imer run`` on a file whose models are still loading: --duration and Ctrl-C count from the source start.

A file is held until the face / speech models have loaded (so that its first seconds are not
lost); the wait is not part of the session.  Fake devices and extractors (tests/live_fakes.py)
stand in for the real ones; the face model "loads" for as long as the test holds it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from dataclasses import replace

from live_fakes import FakeFaceExtractor, fake_rig

from app.cli import main
from imer_core.live.parts import PipelineParts, SourceSpec
from imer_core.live.pipeline import LivePipeline, PipelineConfig
from imer_core.modalities import Modality


def _held_face_model(monkeypatch, release: threading.Event, asked: threading.Event, hold_s: float = 120.0) -> None:
    """Every pipeline gets the fake rig, whose face model loads until ``release`` (at most ``hold_s``)."""
    rig = fake_rig()

    def face_extractor() -> FakeFaceExtractor:
        asked.set()
        release.wait(hold_s)
        return FakeFaceExtractor()

    parts = replace(rig.parts(), face_extractor=face_extractor)
    monkeypatch.setattr(PipelineParts, "for_device", classmethod(lambda cls, device, extractors=None: parts))


def test_duration_counts_from_when_the_file_plays_not_from_the_model_load(monkeypatch, tmp_path, demo_test_clip,
                                                                         live_checkpoints):
    release, asked = threading.Event(), threading.Event()
    _held_face_model(monkeypatch, release, asked, hold_s=4.0)  # the load outlasts --duration 3
    out = tmp_path / "sessions"
    try:
        assert main(["run", "--source", str(demo_test_clip.path), "--duration", "3", "--hop", "0.1",
                     "--checkpoint", str(live_checkpoints["cmarr"]), "--out", str(out), "--quiet"]) == 0
    finally:
        release.set()
    folder = next(out.glob("session-*"))
    info = json.loads((folder / "session.json").read_text())
    assert info["end_reason"] == "duration" and info["duration_s"] >= 2.5
    assert info["predictions"] > 0  # counted from the model load, --duration 3 ended before the file played
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert rows and not any("starts playing" in row["modalities"][m]["reason"] for row in rows
                            for m in ("vision", "audio", "text"))  # no row was written during the wait


def test_ctrl_c_while_the_file_waits_for_its_models_does_not_wait_for_the_load(monkeypatch, tmp_path,
                                                                               demo_test_clip, live_checkpoints,
                                                                               capsys):
    from app import signals

    ended: list[int] = []
    monkeypatch.setattr(signals, "exit_process", ended.append)  # a stray forced exit must not end pytest
    release, asked = threading.Event(), threading.Event()
    _held_face_model(monkeypatch, release, asked)

    def interrupt() -> None:
        if asked.wait(120):  # the pipeline runs and its face model is loading
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "sessions"
    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    try:
        code = main(["run", "--source", str(demo_test_clip.path), "--checkpoint", str(live_checkpoints["cmarr"]),
                     "--out", str(out), "--quiet"])
        waited = time.monotonic() - started
    finally:
        release.set()
    assert code == 0 and ended == []
    assert "stopped before the source started: nothing recorded" in capsys.readouterr().err
    assert not out.exists()
    # A normal stop gives a loading model 20 s; after Ctrl-C each thread gets a fraction of a
    # second.  The bound only separates the two (the speed of the quick stop is in benchmarks).
    assert waited < 15.0, f"{waited:.1f} s: the stop waited for the model load"


def _wait(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_health_timers_count_from_when_a_held_file_starts_playing(live_checkpoints, tmp_path):
    """The face model loads at once, the speech model keeps the file held: that wait is not time without a face."""
    rig = fake_rig()
    release = threading.Event()

    def asr():
        release.wait(120)
        return rig.asr

    config = PipelineConfig(sources=SourceSpec(str(tmp_path / "clip.mp4")), hop_s=0.1,
                            checkpoints=(str(live_checkpoints["cmarr"]),))
    pipeline = LivePipeline(config, replace(rig.parts(), asr=asr))
    FakeFaceExtractor.no_face = True  # the file shows no face: "no face detected for X s" once it plays
    pipeline.start()
    try:
        _wait(lambda: pipeline.face_worker is not None and not pipeline.face_worker.loading, "the face model")
        time.sleep(2.0)  # the speech model still loads: the file stays held this long
        assert pipeline.waiting_for_models
        release.set()
        playing_since = time.monotonic()
        _wait(lambda: pipeline.statuses()[Modality.VISION].reason.startswith("no face detected for"), "no face")
        reason = pipeline.statuses()[Modality.VISION].reason
        shown = float(re.search(r"no face detected for ([\d.]+) s", reason).group(1))
        assert shown <= time.monotonic() - playing_since + 0.3, reason
    finally:
        release.set()
        pipeline.stop()
        FakeFaceExtractor.no_face = False
