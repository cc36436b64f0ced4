"""What the window shows (issue: the app runs for hours, says what it is doing, shows what recovery changes).

pytest-qt offscreen, fake capture, tiny checkpoints; each test names the fix it guards.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from gui_fixtures import WAIT_MS, predicting  # noqa: E402
from live_fakes import FakeFaceExtractor  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui import settings as keys  # noqa: E402
from app.gui.notify import STATUS_CHARS, elide, readable  # noqa: E402
from app.gui.style import EMOTION_COLORS, MODALITY_COLORS, is_dark  # noqa: E402
from app.gui.timeline import TimelinePlot, break_lines, recovered_spans  # noqa: E402
from app.gui.window import checkpoint_problem  # noqa: E402
from imer_core.config import LIVE_EMOTIONS  # noqa: E402
from imer_core.live.engine import HIDDEN_RECOVERED, WITHOUT_RECOVERY, LiveResult  # noqa: E402
from imer_core.live.health import ModalityState, ModalityStatus  # noqa: E402
from imer_core.modalities import MODALITIES, Modality  # noqa: E402


def _result(t: float, k: int = 0, recovered: tuple[str, ...] = (), predicted: bool = True) -> LiveResult:
    probs = np.full(len(LIVE_EMOTIONS), 0.1)
    probs[k % len(LIVE_EMOTIONS)] = 0.4
    probs = tuple(float(p) for p in probs / probs.sum())
    statuses = tuple(ModalityStatus(m, ModalityState.DISABLED if m.value in recovered else ModalityState.OBSERVED)
                     for m in MODALITIES)
    return LiveResult(k, t, time.time(), "cmarr", None, "cpu", LIVE_EMOTIONS, probs if predicted else None,
                      statuses, recovered if predicted else (), smoothed=probs if predicted else None)


# -- loading is not failure -------------------------------------------------------------------------
def test_while_the_face_model_loads_the_badge_says_loading_and_what(qtbot, make_window, checkpoints, rig):
    release = __import__("threading").Event()
    parts = replace(rig.parts(), face_extractor=lambda: release.wait(30) and FakeFaceExtractor())
    window = make_window(parts=parts, checkpoints=(checkpoints["cmarr"],), method="cmarr")
    try:
        qtbot.waitUntil(lambda: window.modalities.badge_text("vision").startswith("loading"), timeout=WAIT_MS)
        view = window.modalities.views["vision"]
        assert view.state == "loading" and "face model" in view.caption
        assert "failing" not in window.modalities.badge_text("vision")
        assert "every modality is disabled or failing" not in window.emotions.detail.text()
    finally:
        release.set()
    qtbot.waitUntil(lambda: window.modalities.badge_text("vision") == "observed", timeout=WAIT_MS)


# -- timeline honesty ------------------------------------------------------------------------------------
def test_lines_break_where_there_was_no_prediction():
    times = np.array([0.0, 0.15, 0.3, 5.0, 5.15])
    x, y = break_lines(times, np.ones((5, 2)))
    assert len(x) == 6 and np.isnan(y[3]).all()  # a NaN row between 0.3 and 5.0 ends the line

    timeline = TimelinePlot()
    now = 100.0
    results = [_result(now - 30 + 0.15 * k, k) for k in range(20)]
    results.append(_result(now - 26.9, predicted=False))  # every modality off: a result without prediction
    results += [_result(now - 26.8 + 0.15 * k, k) for k in range(20)]  # ... resumes right after
    results += [_result(now - 10 + 0.15 * k, k) for k in range(20)]  # after a 13 s source switch
    timeline.add_results(results)
    timeline.redraw(now)
    _, ys = timeline.curve_data("happy")
    assert np.isnan(ys).sum() == 2, "one break for the result without prediction, one for the time gap"
    assert timeline.point_count() == 60


def test_a_strip_is_one_continuous_span_while_a_modality_stays_recovered():
    times = np.array([0.0, 0.12, 0.31, 0.45, 0.62, 0.77, 0.9])  # irregular hops under load
    flags = np.ones(7, bool)
    assert recovered_spans(times, flags, np.ones(7, bool), hop_s=0.15) == [(0.0, pytest.approx(1.05))]
    flags[3] = False  # observed for one window
    spans = recovered_spans(times, flags, np.ones(7, bool), hop_s=0.15)
    assert len(spans) == 2 and spans[0] == (0.0, pytest.approx(0.45)) and spans[1][0] == pytest.approx(0.62)

    timeline = TimelinePlot()
    now = 50.0
    ts = now - 20 + np.cumsum(np.random.default_rng(0).uniform(0.1, 0.3, 60))
    timeline.add_results([_result(float(t), k, recovered=("vision",)) for k, t in enumerate(ts)])
    timeline.redraw(now)
    assert len(timeline.spans["vision"]) == 1 and timeline.spans["audio"] == []
    start, end = timeline.spans["vision"][0]
    assert start == pytest.approx(ts[0] - now) and end >= ts[-1] - now


def _delta_e(a: str, b: str) -> float:
    def lab(code: str) -> tuple[float, float, float]:
        rgb = [int(code[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92 for c in rgb]
        x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
        y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
        z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883
        f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
        return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])
    return math.dist(lab(a), lab(b))


def test_strip_colours_are_not_emotion_colours():
    for strip in MODALITY_COLORS.values():
        assert min(_delta_e(strip, emotion) for emotion in EMOTION_COLORS.values()) >= 25
    strips = list(MODALITY_COLORS.values())
    assert min(_delta_e(a, b) for i, a in enumerate(strips) for b in strips[i + 1:]) >= 25


def test_a_narrow_timeline_still_shows_now_and_the_whole_legend(qtbot):
    timeline = TimelinePlot()
    qtbot.addWidget(timeline)
    timeline.resize(1000, 260)
    timeline.show()
    timeline.add_results([_result(100 - 30 + 0.15 * k, k) for k in range(100)])
    timeline.redraw(100.0)
    timeline.resize(340, 260)  # a dock made narrow
    qtbot.wait(50)
    QApplication.processEvents()
    assert timeline.view.width() <= timeline.width()
    plot_right = timeline.plot.sceneBoundingRect().right()
    assert plot_right <= timeline.view.width() + 1, "the newest seconds are drawn inside the visible view"
    assert timeline.plot.vb.viewRange()[0][1] == pytest.approx(0.0, abs=0.5)
    assert timeline.legend.wordWrap() and "surprised" in timeline.legend.text()
    assert timeline.legend.heightForWidth(timeline.width()) <= timeline.legend.height() + 1


# -- one source of truth per window ----------------------------------------------------------------
def test_badges_caption_and_strips_come_from_the_same_window(qtbot, make_window, checkpoints):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    window.modalities.switches["vision"].click()
    qtbot.waitUntil(lambda: "vision" in (window.pipeline.latest_result.recovered or ()), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "recovered" in window.modalities.badge_text("vision"), timeout=WAIT_MS)
    latest = window.pipeline.latest_result
    statuses, recovered, _ = window.window_states(latest, latest.t_monotonic)
    for name in ("vision", "audio", "text"):
        shown = window.modalities.views[name]
        assert ("recovered" in shown.text) == (name in recovered)
    assert "recovered: vision" in window.emotions.detail.text() or "vision" in window.emotions.detail.text()
    stale = window.window_states(latest, latest.t_monotonic + 5.0)
    assert stale[1] == ()  # an old result no longer speaks for the modalities


# -- errors in words -----------------------------------------------------------------------------------
def test_a_bad_checkpoint_is_explained_in_one_sentence_with_details(qtbot, make_window, tmp_path):
    bad = tmp_path / "hostname"
    bad.write_text("my-machine\n")
    window = make_window(checkpoints=(str(bad),))
    qtbot.waitUntil(lambda: window.notifier.dialog_open, timeout=WAIT_MS)
    text = window.notifier.dialog.text()
    assert "not an IMER checkpoint" in text and "shipped models" in text
    assert "weights_only" not in text and "arbitrary code" not in text
    assert str(bad) in window.notifier.dialog.detailedText()
    assert checkpoint_problem("checkpoint not found: x.pt") == "the file does not exist"


def test_long_status_messages_are_cut_at_a_word_with_the_full_text_on_hover(qtbot, make_window):
    window = make_window()
    long = "cannot read clip.mp4 as an audio/video file: [Errno 1094995529] Invalid data found when " \
           "processing input: '/a/very/long/path/that/goes/on/and/on/clip.mp4' while switching sources"
    window.notifier.error(long)
    shown = window.statusBar().currentMessage()
    assert len(shown) <= STATUS_CHARS and shown.endswith("…") and "Errno" not in shown
    full, cut = readable(long), shown[:-1]
    assert full.startswith(cut) and full[len(cut)] in " :,;"  # cut between words
    assert window.statusBar().toolTip().startswith(readable(long))
    assert elide("short") == "short"


def test_a_missing_source_file_is_shown_in_the_window(settings, tmp_path):
    import argparse

    from app.cli import build_parser
    from app.gui.main import _startup_config
    from app.headless import pipeline_config

    args = build_parser().parse_args(["--source", str(tmp_path / "gone.mp4")])
    config, _, errors = _startup_config(args, settings, pipeline_config)
    assert errors and "gone.mp4" in errors[0][0] and "instead" in errors[0][0]
    assert config.sources.source != str(tmp_path / "gone.mp4")
    assert isinstance(args, argparse.Namespace)


# -- what recovery changes ---------------------------------------------------------------------------------
def test_the_comparison_appears_when_a_modality_is_off_and_on_hide_to_compare(qtbot, make_window, checkpoints):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.pipeline.latest_result.comparison is None or
                    window.pipeline.latest_result.comparison.kind == WITHOUT_RECOVERY, timeout=WAIT_MS)

    window.modalities.switches["vision"].click()
    qtbot.waitUntil(lambda: window.emotions.comparison.kind == WITHOUT_RECOVERY
                    and "vision" in window.emotions.comparison.title.text(), timeout=WAIT_MS)
    assert window.emotions.comparison.isVisible() and window.emotions.comparison.bars.values
    assert "last" in window.emotions.comparison.agreement.text()
    bars = window.emotions.comparison.bars.values  # the caption names the top of the bars above it
    assert window.emotions.comparison.agreement.text().endswith(f"below now: {max(bars, key=bars.get)}")

    window.modalities.switches["vision"].click()
    window.emotions.hide_buttons["vision"].click()
    qtbot.waitUntil(lambda: window.emotions.comparison.kind == HIDDEN_RECOVERED, timeout=WAIT_MS)
    assert window.pipeline.engine.compare_hidden == {Modality.VISION}
    assert "hidden" in window.emotions.comparison.title.text()
    window.emotions.hide_buttons["vision"].click()
    qtbot.waitUntil(lambda: not window.pipeline.engine.compare_hidden, timeout=WAIT_MS)


# -- smoothing -----------------------------------------------------------------------------------------------
def test_the_smoothing_box_sets_the_time_constant_and_is_remembered(qtbot, make_window, checkpoints, settings):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="cmarr")
    assert window.pipeline.engine.smoothing_s == pytest.approx(1.0)  # the default: about one second
    window.model.smoothing_box.setValue(0.0)
    qtbot.waitUntil(lambda: window.pipeline.engine.smoothing_s == 0.0, timeout=WAIT_MS)
    assert keys.read(settings, keys.SMOOTHING, None, float) == 0.0
    seq = window.pipeline.latest_result.sequence if window.pipeline.latest_result else 0
    qtbot.waitUntil(lambda: window.pipeline.latest_result is not None
                    and window.pipeline.latest_result.sequence > seq + 1
                    and window.pipeline.latest_result.probabilities is not None, timeout=WAIT_MS)
    latest = window.pipeline.latest_result
    assert latest.smoothed == pytest.approx(latest.probabilities)


# -- keyboard, help, theme, size -----------------------------------------------------------------------------
def test_shortcuts_switch_modalities_and_methods_and_help_lists_them(qtbot, make_window, checkpoints):
    window = make_window(checkpoints=(checkpoints["cmarr"], checkpoints["imder"]), method="cmarr")
    assert window.modality_actions["vision"].shortcut().toString() == "Ctrl+1"
    window.modality_actions["vision"].trigger()
    qtbot.waitUntil(lambda: not window.pipeline.enabled[Modality.VISION], timeout=WAIT_MS)
    window.model.next_method_action.trigger()
    qtbot.waitUntil(lambda: window.pipeline.engine.method == "imder", timeout=WAIT_MS)
    text = window.show_shortcuts().browser.toPlainText()
    for entry in ("Ctrl+1", "Ctrl+Shift+1", "Ctrl+M", "Ctrl+R"):
        assert entry in text
    legend = window.show_legend().browser.toPlainText()
    for state in ("observed", "loading", "disabled", "failing", "recovered by IMDer"):
        assert state in legend
    assert "CM-ARR" in window.model.method_box.toolTip()


def test_the_dark_theme_reaches_the_panels_and_the_timeline(qtbot, make_window):
    window = make_window()
    app = QApplication.instance()
    try:
        window.set_theme("dark")
        QApplication.processEvents()
        assert is_dark(app.palette()) and is_dark(window.emotions.palette())
        background = window.timeline.view.backgroundBrush().color()
        assert background.lightness() < 100
    finally:
        window.set_theme("system")
    assert not is_dark(app.palette()) or is_dark(window.emotions.palette())


def test_the_window_fits_a_1280x720_screen(qtbot, make_window):
    window = make_window()
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 690, hint
    window.resize(1280, 690)
    qtbot.wait(100)
    QApplication.processEvents()
    assert window.height() <= 720
    assert window.timeline.height() >= 150 and window.timeline.plot.height() >= 60


def test_ctrl_c_closes_the_window_even_before_the_event_loop_runs(qtbot, make_window):
    import signal

    from app.gui.main import _close_on_sigint

    window = make_window()
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        _close_on_sigint(window)
        os.kill(os.getpid(), signal.SIGINT)  # the Python handler runs at the next bytecode
        time.sleep(0.01)
        assert window.closed and not window.isVisible()  # launch() then skips the event loop
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
