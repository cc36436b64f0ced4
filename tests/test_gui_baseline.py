"""The neutral-baseline dialog (pytest-qt, offscreen, fake capture + a tiny checkpoint with a neutral reference)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from live_fakes import LIVE_VISION_DIM, fake_rig, train_small_checkpoint  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from app.gui import settings as keys  # noqa: E402
from app.gui.window import MainWindow  # noqa: E402
from imer_core.live.neutral_baseline import BASELINE_FILE, NeutralBaseline  # noqa: E402
from imer_core.live.pipeline import LivePipeline, PipelineConfig  # noqa: E402
from imer_core.modalities import Modality  # noqa: E402

WAIT_MS = 30_000


def test_the_baseline_dialog_records_applies_and_saves_a_baseline(qtbot, tmp_path):
    reference = {"vision": [0.0] * LIVE_VISION_DIM, "audio": [0.0] * 44}
    checkpoint = train_small_checkpoint(tmp_path / "m.pt", "cmarr", steps=1,
                                        extra_metadata={"neutral_reference": reference})
    settings = QSettings(str(tmp_path / "imer.ini"), QSettings.Format.IniFormat)
    settings.setValue(keys.SESSIONS_ROOT, str(tmp_path / "sessions"))
    parts = fake_rig().parts()
    window = MainWindow(PipelineConfig(checkpoints=(str(checkpoint),), method="cmarr"),
                        pipeline_factory=lambda c: LivePipeline(c, parts), settings=settings, list_devices=False)
    qtbot.addWidget(window)
    window.show()
    window.start()
    try:
        window.baseline_action.trigger()
        dialog = window.baseline_dialog
        assert dialog is not None and dialog.isVisible() and not dialog.isModal()
        dialog.seconds.setValue(2.0)
        with qtbot.waitSignal(dialog.ended, timeout=WAIT_MS) as blocker:
            assert dialog.start()
        baseline = blocker.args[0]
        assert isinstance(baseline, NeutralBaseline) and Modality.VISION in baseline.means
        assert window.pipeline.engine.neutral_baseline is baseline
        assert "vision" in window.pipeline.engine.neutral_baseline_modalities()
        saved = NeutralBaseline.load(tmp_path / "sessions" / BASELINE_FILE)
        assert saved.counts[Modality.VISION] == baseline.counts[Modality.VISION]
        assert "Baseline applied" in dialog.result_label.text() and "vision" in dialog.result_label.text()
        assert isinstance(dialog.result(), int)  # QDialog.result() is not shadowed by the message label
    finally:
        window.close()
