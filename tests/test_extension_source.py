"""A capture source kind registered from test code alone is opened by the pipeline and checked by ``imer run``;
the pipeline's read-only snapshot."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from live_fakes import FakeAudio, FakeVideo, fake_rig

from app.cli import main
from imer_core.live.parts import SourceSpec, open_sources
from imer_core.live.pipeline import LivePipeline, PipelineConfig, PipelineView
from imer_core.live.sources.kinds import SourceKind, register_source_kind, source_kinds, unregister_source_kind
from imer_core.modalities import Modality


@pytest.fixture
def toy_kind():
    opened: list[SourceSpec] = []

    def open_toy(spec: SourceSpec):
        opened.append(spec)
        return FakeVideo(), FakeAudio()

    def problem(source: str) -> str:
        return "toy stream 'bad' is offline" if source.endswith("bad") else ""

    kind = register_source_kind(SourceKind("toy", lambda s: s.startswith("toy://"), open_toy,
                                           lambda spec: f"toy stream {spec.source[6:]}", live=True, problem=problem))
    yield kind, opened
    unregister_source_kind("toy")


def test_a_registered_kind_is_picked_by_its_value_and_opened_by_the_pipeline(toy_kind):
    kind, opened = toy_kind
    assert "toy" in source_kinds() and source_kinds()[-1] == "file"  # the media file stays the fallback
    spec = SourceSpec("toy://desk")
    assert spec.kind is kind and not spec.is_file and spec.describe() == "toy stream desk"
    assert SourceSpec("clip.mp4").kind.name == "file" and SourceSpec().kind.name == "webcam"
    video, audio = open_sources(spec)
    assert isinstance(video, FakeVideo) and isinstance(audio, FakeAudio) and opened == [spec]
    rig_parts = fake_rig().parts()
    parts = replace(rig_parts, sources=open_sources)  # the default: the kind opens the sources
    pipeline = LivePipeline(PipelineConfig(sources=spec, use_shipped=False, file_model_wait_s=0), parts)
    pipeline.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not pipeline.snapshot().stream_statuses[0][1].ok:
            time.sleep(0.05)
        view = pipeline.snapshot()
        assert view.started and view.playing and view.stream_statuses[0][1].ok
        assert view.config.sources.describe() == "toy stream desk" and view.file_duration_s is None
    finally:
        pipeline.stop()
    assert len(opened) == 2


def test_imer_run_refuses_a_source_its_kind_rejects_in_one_line(toy_kind, tmp_path, capsys):
    assert main(["run", "--source", "toy://bad", "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["imer: toy stream 'bad' is offline"] and not (tmp_path / "s").exists()


def test_the_snapshot_is_a_value_that_does_not_follow_the_pipeline(live_checkpoints):
    rig = fake_rig()
    pipeline = LivePipeline(PipelineConfig(checkpoints=(str(live_checkpoints["cmarr"]),)), rig.parts())
    before = pipeline.snapshot()
    assert isinstance(before, PipelineView) and not before.started and not before.playing
    assert before.methods == ("cmarr",) and before.method == "cmarr" and before.device == "cpu"
    pipeline.set_enabled("vision", False)  # a new snapshot sees the switch, the old one does not
    assert before.enabled[Modality.VISION] is True and pipeline.snapshot().enabled[Modality.VISION] is False
    with pytest.raises(AttributeError):
        before.method = "imder"  # type: ignore[misc]
    pipeline.load_model()  # the current method's checkpoint loads (and fits)
    frames, ring = pipeline.capture_buffers()  # built with the pipeline, but not started: nothing captured
    assert pipeline.latest_frame() is None and frames.latest() is None and ring.total_written == 0
