"""The guided calibration dialog (pytest-qt, offscreen, fake capture + tiny checkpoints).

The dialog drives the same CalibrationRun as ``imer run --calibrate``; these
tests check that a shortened script runs to a ``calibration.npz`` with the
script's labels, that Cancel and closing the window stop the run cleanly, and
that the dialog offers the fine-tuning command.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from live_fakes import fake_rig  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402

from app.gui import settings as keys  # noqa: E402
from app.gui.calibration_dialog import THREAD_NAME, CalibrationDialog, finetune_command  # noqa: E402
from app.gui.window import MainWindow  # noqa: E402
from imer_core.config import LIVE_EMOTIONS  # noqa: E402
from imer_core.live.calibration import CALIBRATION_FILE, DEFAULT_SCRIPT  # noqa: E402
from imer_core.live.pipeline import LivePipeline, PipelineConfig  # noqa: E402
from imer_core.modalities import Modality  # noqa: E402

#: Generous: the test machine's cores are shared with other jobs.
WAIT_MS = 20_000


@pytest.fixture
def rig():
    return fake_rig()


@pytest.fixture
def window(qtbot, rig, tmp_path, live_checkpoints):
    """A started window on the fake rig with a tiny CM-ARR checkpoint (closed after the test)."""
    settings = QSettings(str(tmp_path / "imer.ini"), QSettings.Format.IniFormat)
    settings.setValue(keys.SESSIONS_ROOT, str(tmp_path / "sessions"))
    parts = rig.parts()
    window = MainWindow(PipelineConfig(checkpoints=(str(live_checkpoints["cmarr"]),), method="cmarr"),
                        pipeline_factory=lambda c: LivePipeline(c, parts), settings=settings, list_devices=False)
    qtbot.addWidget(window)
    window.show()
    window.start()
    yield window
    window.close()


def open_dialog(window: MainWindow, seconds: float, steps: int = len(DEFAULT_SCRIPT)) -> CalibrationDialog:
    """The dialog from Session ▸ Calibrate..., shortened for tests."""
    window.calibrate_action.trigger()
    dialog = window.calibration
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    dialog.script, dialog.settle_s, dialog.sample_every_s = DEFAULT_SCRIPT[:steps], 0.3, 0.2
    dialog.seconds.setValue(seconds)
    return dialog


def calibration_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_a_shortened_calibration_runs_to_a_labelled_npz_and_offers_finetuning(qtbot, window, tmp_path):
    dialog = open_dialog(window, seconds=1.0)
    assert window.show_calibration() is dialog, "the menu raises the open dialog"

    window.modalities.switches["text"].click()  # a modality off: Start waits until it is back on
    qtbot.waitUntil(lambda: not window.pipeline.enabled[Modality.TEXT], timeout=WAIT_MS)
    dialog.refresh()
    assert not dialog.start_button.isEnabled() and not dialog.enable_button.isHidden()
    assert "must be on" in dialog.readiness.text()
    dialog.enable_button.click()
    qtbot.waitUntil(lambda: window.pipeline.enabled[Modality.TEXT] and dialog.start_button.isEnabled(),
                    timeout=WAIT_MS)
    assert window.modalities.switches["text"].isChecked()

    emotions: list[str] = []
    dialog.progressed.connect(lambda p: emotions.append(p.step.emotion) if p.step.emotion not in emotions else None)
    with qtbot.waitSignal(dialog.ended, timeout=WAIT_MS + 20_000) as blocker:
        dialog.start_button.click()
        assert dialog.running and not dialog.start_button.isEnabled()
    path = blocker.args[0]
    assert path is not None and path.name == CALIBRATION_FILE
    assert path.parent.parent == tmp_path / "sessions"
    assert emotions == [step.emotion for step in DEFAULT_SCRIPT]

    with np.load(path) as data:
        labels = data["label"]
        assert [str(x) for x in data["labels"]] == list(LIVE_EMOTIONS)
        assert data["vision"].shape[0] == data["audio"].shape[0] == data["text"].shape[0] == len(labels)
    assert set(labels.tolist()) == {LIVE_EMOTIONS.index(s.emotion) for s in DEFAULT_SCRIPT}

    assert dialog.pages.currentIndex() == 2 and not calibration_threads()
    summary = dialog.summary.text()
    assert str(path) in summary and "surprised" in summary
    expected = finetune_command(tmp_path / "sessions", tmp_path / "sessions" / "personal.pt")
    assert dialog.command.text() == expected and expected.startswith("imer-train finetune --sessions ")
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == expected


def test_cancel_stops_the_run_discards_it_and_the_window_goes_on(qtbot, window, tmp_path, live_checkpoints):
    dialog = open_dialog(window, seconds=5.0)
    first = threading.Event()
    dialog.progressed.connect(lambda p: first.set() if p.samples > 0 else None)
    dialog.start_button.click()
    qtbot.waitUntil(first.is_set, timeout=WAIT_MS)
    assert dialog.pages.currentIndex() == 1 and dialog.instruction.text() == DEFAULT_SCRIPT[0].instruction
    with qtbot.waitSignal(dialog.ended, timeout=5_000) as blocker:
        dialog.cancel_button.click()
    assert blocker.args == [None] and not dialog.running and not calibration_threads()
    assert "cancelled" in dialog.message.text() and dialog.pages.currentIndex() == 0
    assert not list((tmp_path / "sessions").rglob(CALIBRATION_FILE)), "a cancelled run is discarded"
    qtbot.waitUntil(lambda: window.pipeline.latest_result is not None, timeout=WAIT_MS)
    seq = window.pipeline.latest_result.sequence
    qtbot.waitUntil(lambda: window.pipeline.latest_result.sequence > seq + 2, timeout=WAIT_MS)

    dialog.start_button.click()  # a model change mid-run cancels it (the run held the old pipeline)
    with qtbot.waitSignal(dialog.ended, timeout=WAIT_MS) as blocker:
        window.model.load_checkpoints([str(live_checkpoints["imder"])])
    assert blocker.args == [None] and "model changed" in dialog.message.text() and not calibration_threads()

    dialog.start_button.click()  # closing the window mid-run stops it too
    assert dialog.running
    window.close()
    assert window.closed and not calibration_threads()
    qtbot.waitUntil(lambda: not [t for t in threading.enumerate() if t.name.startswith("imer-")], timeout=5_000)
    assert not list((tmp_path / "sessions").rglob(CALIBRATION_FILE))
