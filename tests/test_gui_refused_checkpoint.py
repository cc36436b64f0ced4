"""A checkpoint the running features refuse (e.g. a shipped IMDer made for the old blendshape
vision feature) is a visible state in the window: never a crash, never a silent loss of prediction."""

from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from gui_fixtures import WAIT_MS, predicting  # noqa: E402
from live_fakes import LIVE_VISION_DIM, live_specs, train_small_checkpoint  # noqa: E402

from app.gui import settings as keys  # noqa: E402
from imer_core.assets import ASSETS_ENV  # noqa: E402
from imer_core.modalities import FeatureSpec, FeatureSpecs, Modality  # noqa: E402


@pytest.fixture(scope="module")
def refused_imder(tmp_path_factory) -> str:
    """A trained IMDer made for a vision feature the pipeline does not run."""
    specs = live_specs()
    other = FeatureSpecs(specs.text, specs.audio, FeatureSpec(Modality.VISION, LIVE_VISION_DIM, 20, 10.0, "openface2"))
    folder = tmp_path_factory.mktemp("refused")
    return str(train_small_checkpoint(folder / "live_imder.pt", "imder", steps=1, specs=other))


def test_choosing_a_refused_method_says_why_keeps_predicting_and_is_not_remembered(
        qtbot, make_window, checkpoints, refused_imder, settings):
    window = make_window(checkpoints=(checkpoints["cmarr"], refused_imder), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    window.model._method_actions["imder"].trigger()
    qtbot.waitUntil(lambda: "IMDer cannot run" in window.notifier.full_text, timeout=WAIT_MS)
    assert "other feature extractors" in window.notifier.full_text and "openface2" in window.notifier.details
    action = window.model._method_actions["imder"]
    assert not action.isEnabled() and "cannot run here" in action.text() and "openface2" in action.toolTip()
    assert window.model.method_box.currentData() == "cmarr" and window.pipeline.snapshot().method == "cmarr"
    assert settings.value(keys.METHOD) != "imder"
    shown = window.emotions.predictions_shown
    qtbot.waitUntil(lambda: window.emotions.predictions_shown > shown + 2, timeout=WAIT_MS)
    window.model.next_method()  # Ctrl+M skips the refused method instead of trying it again
    assert window.pipeline.snapshot().method == "cmarr"


def test_a_remembered_method_that_is_refused_falls_back_visibly(qtbot, make_window, checkpoints, refused_imder):
    window = make_window(checkpoints=(checkpoints["cmarr"], refused_imder), method="imder")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    assert window.pipeline.latest_result.method == "cmarr"
    qtbot.waitUntil(lambda: "'imder' cannot run here, using 'cmarr' instead" in window.notifier.full_text,
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "cannot run here" in window.model._method_actions["imder"].text(), timeout=WAIT_MS)
    assert window.model.label.text().startswith("Model: CM-ARR")


def test_switching_device_with_one_shipped_checkpoint_refused_still_loads_the_others(
        qtbot, make_window, checkpoints, refused_imder, tmp_path, monkeypatch):
    models = tmp_path / "assets" / "models"
    models.mkdir(parents=True)
    shutil.copy(checkpoints["cmarr"], models / "live_cmarr.pt")
    shutil.copy(refused_imder, models / "live_imder.pt")
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path / "assets"))
    window = make_window()
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    errors: list[str] = []
    window.model.rebuilt.connect(errors.append)
    window.model.set_device("cpu")
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert errors == [""] and "Loaded" in window.notifier.full_text
    assert set(window.pipeline.snapshot().refused) == {"imder"}
    assert "cannot run here" in window.model._method_actions["imder"].text()
    shown = window.emotions.predictions_shown
    qtbot.waitUntil(lambda: window.emotions.predictions_shown > shown + 2, timeout=WAIT_MS)
