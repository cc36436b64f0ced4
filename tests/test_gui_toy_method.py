"""The window's method menu and box offer a method registered from test code alone, and select it."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from gui_fixtures import WAIT_MS  # noqa: E402
from live_fakes import train_small_checkpoint  # noqa: E402
from toy_method import TOY, registered_toy  # noqa: E402


def test_the_method_menu_offers_and_selects_a_method_registered_by_a_test(qtbot, make_window, tmp_path):
    with registered_toy():
        path = train_small_checkpoint(tmp_path / "live_toy.pt", TOY, steps=1, options={"width": 4})
        window = make_window(checkpoints=(str(path),))
        qtbot.waitUntil(lambda: window.pipeline.latest_result is not None
                        and window.pipeline.latest_result.method == TOY
                        and window.pipeline.latest_result.probabilities is not None, timeout=WAIT_MS)
        controls = window.model
        box = controls.method_box
        row = box.findData(TOY)
        assert [box.itemData(i) for i in range(box.count())] == ["cmarr", "imder", "rohydr", TOY]
        assert row == 3 and box.currentIndex() == row and box.currentText() == "Toy method"
        assert box.model().item(row).isEnabled() and not box.model().item(box.findData("imder")).isEnabled()
        action = controls._method_actions[TOY]
        assert action.isChecked() and action.isEnabled() and action.text() == "Toy method"
        assert "Toy method</b>: mean of the available" in box.toolTip()
        assert controls.label.text().startswith("Model: Toy method on ")
        assert not controls.steps_box.isEnabled(), "the toy says sampler steps mean nothing to it"
