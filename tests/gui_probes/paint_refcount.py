"""Paint the window's real widgets many times and print how ``sys.getrefcount(None)`` moved.

Run in its own process by tests/test_gui_qt_binding.py: with a leaking
binding (PySide6 6.12.0 on Python < 3.12) the count falls by thousands, or
the interpreter aborts with "none_dealloc" -- either way the test fails
without taking the test session down.
Usage: python paint_refcount.py ROUNDS
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui.emotion_panel import EmotionPanel  # noqa: E402
from app.gui.modality_panel import ModalityPanel  # noqa: E402
from app.gui.timeline import TimelinePlot  # noqa: E402
from imer_core.config import LIVE_EMOTIONS  # noqa: E402
from imer_core.live.engine import LiveResult  # noqa: E402
from imer_core.live.health import ModalityState, ModalityStatus  # noqa: E402
from imer_core.modalities import MODALITIES, Modality  # noqa: E402


def result(k: int, t: float) -> LiveResult:
    probs = [1.0] * len(LIVE_EMOTIONS)
    probs[k % len(LIVE_EMOTIONS)] = 4.0
    total = sum(probs)
    statuses = tuple(ModalityStatus(m, ModalityState.FAILING if m is Modality.TEXT else ModalityState.OBSERVED,
                                    "no speech" if m is Modality.TEXT else "") for m in MODALITIES)
    return LiveResult(k, t, time.time(), "cmarr", None, "cpu", LIVE_EMOTIONS, tuple(p / total for p in probs),
                      statuses, recovered=("text",))


def main(rounds: int) -> None:
    app = QApplication.instance() or QApplication([sys.argv[0]])
    emotions, modalities, timeline = EmotionPanel(), ModalityPanel(), TimelinePlot()
    for widget in (emotions, modalities, timeline):
        widget.resize(640, 360)
        widget.show()
    image = QImage(640, 360, QImage.Format.Format_ARGB32)
    now = time.monotonic()
    timeline.add_results([result(k, now - 30 + 0.15 * k) for k in range(200)])

    def paint_all(k: int) -> None:
        r = result(k, now + 0.15 * k)
        emotions.show_result(r)
        modalities.update_statuses({s.modality: s for s in r.statuses}, r.recovered, r.method)
        for widget in (emotions, modalities):
            widget.render(image)
        if k % 10 == 0:  # the timeline redraws at 2 Hz in the window
            timeline.add_results([r])
            timeline.redraw(r.t_monotonic)
            timeline.render(image)
        app.processEvents()

    paint_all(0)  # warm caches before counting
    before = sys.getrefcount(None)
    for k in range(1, rounds + 1):
        paint_all(k)
    print(f"none_refcount_drift {sys.getrefcount(None) - before}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
