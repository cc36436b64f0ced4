"""Emotion probabilities as bars and the top emotion with its confidence."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from imer_core.live.engine import LiveResult

from .style import emotion_color, method_name


class ProbabilityBars(QWidget):
    """Horizontal bars, one per class, with the probability in percent."""

    ROW = 22

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: dict[str, float] = {}
        self.setMinimumHeight(7 * self.ROW)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

    def set_values(self, labels: tuple[str, ...], probabilities: tuple[float, ...] | None) -> None:
        """Show ``probabilities`` (``None``: empty bars)."""
        values = dict(zip(labels, probabilities)) if probabilities is not None else {}
        if values != self.values:
            self.values = values
            self.setMinimumHeight(max(len(values), 1) * self.ROW)
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        label_w, value_w = 80, 48
        bar_w = max(self.width() - label_w - value_w - 8, 10)
        top = max(self.values.values(), default=None)
        for row, (label, p) in enumerate(self.values.items()):
            y = row * self.ROW
            painter.setPen(QColor("#202020") if p == top else QColor("#505050"))
            painter.drawText(QRectF(0, y, label_w, self.ROW), Qt.AlignmentFlag.AlignVCenter, label)
            painter.fillRect(QRectF(label_w, y + 4, bar_w, self.ROW - 8), QColor("#eeeeee"))
            painter.fillRect(QRectF(label_w, y + 4, bar_w * max(0.0, min(1.0, p)), self.ROW - 8),
                             emotion_color(label, row))
            painter.drawText(QRectF(label_w + bar_w + 4, y, value_w, self.ROW),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{100 * p:.0f} %")
        painter.end()


class EmotionPanel(QWidget):
    """The top emotion, its confidence, the bars — or the reason there is no prediction."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.top_label = QLabel("—")
        font = self.top_label.font()
        font.setPointSize(20)
        font.setBold(True)
        self.top_label.setFont(font)
        self.detail = QLabel("waiting for the first prediction")
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet("color: #616161;")
        self.bars = ProbabilityBars()
        layout = QVBoxLayout(self)
        for widget in (self.top_label, self.detail, self.bars):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.predictions_shown = 0

    def show_result(self, result: LiveResult | None) -> None:
        """Render one result (with probabilities, or its message)."""
        if result is None:
            return
        top = result.top
        self.bars.set_values(result.labels, result.probabilities)
        if top is None:
            self.top_label.setText("no prediction")
            self.detail.setText(result.message or "no prediction")
            return
        self.predictions_shown += 1
        self.top_label.setText(f"{top[0]}  {100 * top[1]:.0f} %")
        self.top_label.setStyleSheet(f"color: {emotion_color(top[0]).name()};")
        steps = f", {result.sampler_steps} steps" if result.sampler_steps else ""
        recovered = f" · recovered: {', '.join(result.recovered)}" if result.recovered else ""
        note = f"\n{result.message}" if result.message else ""
        self.detail.setText(f"{method_name(result.method)}{steps} on {result.device.upper()}{recovered}{note}")

    @property
    def has_prediction(self) -> bool:
        return bool(self.bars.values)
