"""Device in use, face fps, prediction rate and per-stage latency."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from .style import method_name

#: Rows of the panel: key → title.
ROWS = {
    "device": "Device", "method": "Method", "face_fps": "Face analysis", "predictions_per_s": "Predictions",
    "asr_rtf": "Speech recognition", "skipped_ticks": "Skipped ticks",
    "capture_to_features_ms": "Capture → features", "window_ms": "Window", "recovery_ms": "Recovery",
    "prediction_ms": "Prediction", "end_to_end_ms": "End to end",
}


def format_stat(key: str, value: Any) -> str:
    """A stats value as the panel shows it."""
    if value is None or value == "":
        return "—"
    if key == "device":
        text = str(value)
        return "CUDA (GPU)" if text.startswith("cuda") else text.upper()
    if key == "face_fps":
        return f"{float(value):.1f} fps"
    if key == "predictions_per_s":
        return f"{float(value):.1f} /s"
    if key == "asr_rtf":
        return f"{float(value):.2f} × real time"
    if key.endswith("_ms"):
        return f"{float(value):.1f} ms"
    if key == "skipped_ticks":
        return f"{int(float(value))}"
    return str(value)


class PerformancePanel(QWidget):
    """:meth:`LivePipeline.stats` values in two columns of title/value pairs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QGridLayout(self)
        layout.setVerticalSpacing(2)
        self.values: dict[str, QLabel] = {}
        half = (len(ROWS) + 1) // 2
        for k, (key, title) in enumerate(ROWS.items()):
            row, column = k % half, 2 * (k // half)
            self.values[key] = QLabel("—")
            layout.addWidget(QLabel(f"{title}:"), row, column)
            layout.addWidget(self.values[key], row, column + 1)
        layout.setColumnStretch(1, 1)
        layout.setColumnStretch(3, 1)
        layout.setRowStretch(half, 1)

    def show_stats(self, stats: Mapping[str, Any], method: str | None, steps: int | None) -> None:
        """Show ``pipeline.stats()`` and the method in use."""
        shown = dict(stats)
        shown["method"] = method_name(method) + (f", {steps} sampler steps" if steps else "")
        for key, label in self.values.items():
            label.setText(format_stat(key, shown.get(key)))

    def value_text(self, key: str) -> str:
        return self.values[key].text()
