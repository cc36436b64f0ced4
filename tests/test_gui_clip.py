"""The window on a real media file: PyAV decoding, MediaPipe face mesh drawn over the video.

Speech recognition and the sentence embedder are faked (loading Whisper
would dominate the run); everything else is the real pipeline.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")
pytest.importorskip("av")
pytest.importorskip("mediapipe")

from live_fakes import FakeASR, FakeEmbedder  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from app.gui.source_controls import demo_clip_path  # noqa: E402
from app.gui.window import MainWindow  # noqa: E402
from imer_core.live.parts import PipelineParts, SourceSpec  # noqa: E402
from imer_core.live.pipeline import LivePipeline, PipelineConfig  # noqa: E402

WAIT_MS = 30_000


@pytest.fixture
def clip():
    path = demo_clip_path()
    assert path.is_file(), "assets/demo/demo_clip.mp4 is tracked in git"
    return path


def started_window(qtbot, tmp_path, source: SourceSpec) -> MainWindow:
    """The window on ``source`` with the real pipeline (speech faked), shown and started."""
    parts = replace(PipelineParts(), asr=FakeASR, embedder=FakeEmbedder)
    config = PipelineConfig(sources=source, use_shipped=False)
    window = MainWindow(config, pipeline_factory=lambda c: LivePipeline(c, parts),
                        settings=QSettings(str(tmp_path / "imer.ini"), QSettings.Format.IniFormat),
                        list_devices=False)
    qtbot.addWidget(window)
    window.show()
    window.start()
    return window


def test_window_on_the_demo_clip_shows_frames_with_the_face_mesh(qtbot, tmp_path, clip):
    window = started_window(qtbot, tmp_path, SourceSpec(str(clip), loop=True))
    try:
        qtbot.waitUntil(lambda: window.video.faces_drawn >= 3, timeout=WAIT_MS)
        assert window.video.showing_video and window.video.landmarks.shape[0] == 478
        x0, y0, x1, y1 = window.video.bbox
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        qtbot.waitUntil(lambda: window.modalities.badge_text("vision") == "observed", timeout=WAIT_MS)
        qtbot.waitUntil(lambda: window.modalities.badge_text("audio") == "observed", timeout=WAIT_MS)
        assert "demo_clip.mp4" in window.sources.label.text()
        qtbot.waitUntil(lambda: window.transcript.lines >= 1, timeout=WAIT_MS)  # the first sentence, heard
        assert "i am very happy today" in window.transcript.toPlainText()
        image = window.grab().toImage()
        assert image.width() > 0 and not image.isNull()
    finally:
        window.close()
    assert not window.pipeline.video.running and not window.pipeline.audio.running


def test_after_a_failed_start_on_a_broken_file_the_demo_clip_plays(qtbot, tmp_path, clip):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    window = started_window(qtbot, tmp_path, SourceSpec(str(broken)))
    try:
        qtbot.waitUntil(lambda: "cannot read broken.mp4" in window.statusBar().currentMessage(), timeout=WAIT_MS)
        assert not window.running
        with qtbot.waitSignal(window.sources.switched, timeout=WAIT_MS) as blocker:
            window.sources.play_demo()
        assert blocker.args == [""] and window.running and "demo_clip.mp4" in window.sources.label.text()
        qtbot.waitUntil(lambda: window.video.frames_shown >= 3, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: window.modalities.badge_text("vision") == "observed", timeout=WAIT_MS)
    finally:
        window.close()
    assert not window.pipeline.video.running and not window.pipeline.audio.running
