"""Fixtures of the desktop-window tests: a started window on fake capture with tiny checkpoints.

Registered in conftest.py when Qt, pytest-qt and pyqtgraph are installed.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from live_fakes import fake_rig, train_small_checkpoint  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from app.gui import settings as keys  # noqa: E402
from app.gui.window import MainWindow  # noqa: E402
from imer_core.live.pipeline import LivePipeline, PipelineConfig  # noqa: E402

#: Generous: the test machine's cores are shared with other jobs.
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("gui_checkpoints")
    return {m: str(train_small_checkpoint(folder / f"live_{m}.pt", m)) for m in ("cmarr", "imder")}


@pytest.fixture
def settings(tmp_path) -> QSettings:
    store = QSettings(str(tmp_path / "imer.ini"), QSettings.Format.IniFormat)
    store.setValue(keys.SESSIONS_ROOT, str(tmp_path / "sessions"))
    return store


@pytest.fixture
def rig():
    return fake_rig()


@pytest.fixture
def make_window(qtbot, rig, settings):
    """``make(parts=None, factory=None, **PipelineConfig fields)`` → a started window (closed after the test)."""
    windows: list[MainWindow] = []

    def make(parts=None, notes=(), factory=None, **config) -> MainWindow:
        parts = parts or rig.parts()
        window = MainWindow(PipelineConfig(**config), pipeline_factory=factory or (lambda c: LivePipeline(c, parts)),
                            settings=settings, notes=notes, list_devices=False)
        qtbot.addWidget(window)
        window.show()
        window.start()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def predicting(window: MainWindow, count: int = 3) -> bool:
    return window.emotions.predictions_shown >= count and window.timeline.point_count() >= count
