"""Emotion probabilities as bars and the top emotion, and beside them what recovery changes.

The bars show the displayed probabilities (smoothed unless smoothing is off).
While a modality is missing, a second set of bars shows the same network's
prediction on the same window *without* recovery (the missing input at its
training mean), with how often the two agreed over the last minute; in
compare mode (every modality observed, one hidden on purpose) it shows the
prediction with the hidden modality recovered beside the observed one.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from imer_core.live.results import HIDDEN_RECOVERED, LiveResult

from .style import PANEL_ORDER, emotion_color, method_name, text_color, track_color


class ProbabilityBars(QWidget):
    """Horizontal bars, one per class, with the probability in percent (colours follow the palette)."""

    def __init__(self, row_height: int = 18, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row = row_height
        self.values: dict[str, float] = {}
        self.setMinimumHeight(7 * self.row)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

    def set_values(self, labels: tuple[str, ...], probabilities: tuple[float, ...] | None) -> None:
        """Show ``probabilities`` (``None``: empty bars)."""
        values = dict(zip(labels, probabilities)) if probabilities is not None else {}
        if values != self.values:
            self.values = values
            self.setMinimumHeight(max(len(values), 1) * self.row)
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        palette = self.palette()
        strong, weak, track = text_color(palette), text_color(palette, dim=True), track_color(palette)
        label_w, value_w = min(80, self.width() // 3), 44
        bar_w = max(self.width() - label_w - value_w - 8, 10)
        top = max(self.values.values(), default=None)
        for row, (label, p) in enumerate(self.values.items()):
            y = row * self.row
            painter.setPen(strong if p == top else weak)
            painter.drawText(QRectF(0, y, label_w, self.row), Qt.AlignmentFlag.AlignVCenter, label)
            painter.fillRect(QRectF(label_w, y + 4, bar_w, self.row - 8), track)
            painter.fillRect(QRectF(label_w, y + 4, bar_w * max(0.0, min(1.0, p)), self.row - 8),
                             emotion_color(label, row))
            painter.drawText(QRectF(label_w + bar_w + 4, y, value_w, self.row),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{100 * p:.0f} %")
        painter.end()


class ComparisonView(QWidget):
    """The second prediction of a result (no-recovery baseline or hidden-and-recovered) and the agreement."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.bars = ProbabilityBars(row_height=14)
        self.agreement = QLabel()
        self.agreement.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        for widget in (self.title, self.bars, self.agreement):
            layout.addWidget(widget)
        self.kind = ""

    def show_result(self, result: LiveResult) -> None:
        """Show ``result.comparison`` (hidden when the result has none)."""
        comparison = result.comparison
        self.setVisible(comparison is not None)
        if comparison is None:
            self.kind = ""
            return
        self.kind = comparison.kind
        names = " + ".join(comparison.modalities)
        method = method_name(result.method)
        if comparison.kind == HIDDEN_RECOVERED:
            self.title.setText(f"<b>Compare:</b> above, {names} observed; below, {names} hidden and "
                               f"recovered by {method}")
        else:
            self.title.setText(f"<b>Without recovery</b> ({names} left at its training mean, same network); "
                               f"above: {names} recovered by {method}")
        self.bars.set_values(result.labels, comparison.smoothed)
        shown = comparison.smoothed  # the caption names the top of the bars it sits under
        top = result.labels[max(range(len(shown)), key=shown.__getitem__)]
        self.agreement.setText(f"Top emotion the same in {100 * comparison.agreement:.0f} % of the last "
                               f"{comparison.windows} windows (last minute) · below now: {top}")


class EmotionPanel(QWidget):
    """The top emotion, its confidence, the bars, the comparison — or the reason there is no prediction.

    Signals:
        compare_requested(str): the user asked to hide a modality for the comparison ("" to stop).
    """

    compare_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.top_label = QLabel("—")
        font = self.top_label.font()
        font.setPointSize(16)
        font.setBold(True)
        self.top_label.setFont(font)
        self.detail = QLabel("waiting for the first prediction")
        self.detail.setWordWrap(True)
        self.bars = ProbabilityBars()
        self.comparison = ComparisonView()
        self.comparison.hide()
        self.compare_buttons = self._compare_buttons()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        for widget in (self.top_label, self.detail, self.bars, self.compare_buttons, self.comparison):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.predictions_shown = 0

    def _compare_buttons(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.compare_group = QButtonGroup(box)
        self.compare_group.setExclusive(False)
        self.hide_buttons: dict[str, QPushButton] = {}
        row.addWidget(QLabel("Hide to compare:"))
        for name in PANEL_ORDER:
            button = QPushButton(name)
            button.setObjectName(f"hide_{name}_compare")
            button.setCheckable(True)
            button.setToolTip(f"Keep {name} observed for the main prediction and show beside it the prediction "
                              f"with {name} hidden and recovered by the method, on the same live input")
            button.toggled.connect(lambda on, n=name: self._compare_toggled(n, on))
            self.compare_group.addButton(button)
            self.hide_buttons[name] = button
            row.addWidget(button)
        row.addStretch(1)
        return box

    def _compare_toggled(self, name: str, on: bool) -> None:
        if on:
            for other, button in self.hide_buttons.items():
                if other != name and button.isChecked():
                    button.blockSignals(True)
                    button.setChecked(False)
                    button.blockSignals(False)
        self.compare_requested.emit(name if on else "")

    @property
    def compare_hidden(self) -> str:
        """The modality hidden for the comparison ("" when compare mode is off)."""
        return next((n for n, b in self.hide_buttons.items() if b.isChecked()), "")

    def show_waiting(self, loading: list[str]) -> None:
        """Before the first result: what is loading (or just that the first prediction is awaited)."""
        text = ("waiting for the first prediction: " + "; ".join(loading)) if loading else \
            "waiting for the first prediction"
        if self.detail.text() != text:
            self.detail.setText(text)

    def show_result(self, result: LiveResult | None) -> None:
        """Render one result (with probabilities, or its message)."""
        if result is None:
            return
        self.bars.set_values(result.labels, result.shown)
        self.detail.setStyleSheet(f"color: {text_color(self.palette(), dim=True).name()};")
        top = result.shown_top
        if top is None:
            self.top_label.setText("no prediction")
            self.top_label.setStyleSheet("")
            self.detail.setText(result.message or "no prediction")
            self.comparison.hide()
            return
        self.predictions_shown += 1
        self.top_label.setText(f"{top[0]}  {100 * top[1]:.0f} %")
        self.top_label.setStyleSheet(f"color: {emotion_color(top[0]).name()};")
        steps = f", {result.sampler_steps} steps" if result.sampler_steps else ""
        recovered = f" · recovered: {', '.join(result.recovered)}" if result.recovered else " · nothing recovered"
        note = f"\n{result.message}" if result.message else ""
        self.detail.setText(f"{method_name(result.method)}{steps} on {result.device.upper()}{recovered}{note}")
        self.comparison.show_result(result)

    @property
    def has_prediction(self) -> bool:
        return bool(self.bars.values)
