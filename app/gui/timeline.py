"""Rolling timeline of the emotion probabilities, with strips where a modality was recovered.

Honest by construction: a line is broken wherever there was no prediction
(every modality off, a source switch, a pause longer than :data:`GAP_S`), and
a modality's strip is one continuous span over each stretch of predictions
in which it was recovered.  The legend is a wrapping Qt label above the
plot, so a narrow dock never pushes the newest seconds out of view.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable

import numpy as np

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent  # noqa: E402
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget  # noqa: E402

from imer_core.live.results import LiveResult  # noqa: E402

from .style import MODALITY_COLORS, PANEL_ORDER, emotion_color, text_color  # noqa: E402

#: Row of each modality's "recovered" strip in the lower plot (top to bottom).
STRIP_ROW = {name: len(PANEL_ORDER) - 1 - k for k, name in enumerate(PANEL_ORDER)}
STRIP_H = 0.7
#: Two predictions further apart than this (seconds) are not joined by a line or a strip (a result
#: without prediction always breaks them; this catches stretches with no result at all).
GAP_S = 2.5

#: One point: time, displayed probabilities (``None``: a result without prediction), recovered modalities.
Point = tuple[float, "tuple[float, ...] | None", frozenset]


def break_lines(times: np.ndarray, values: np.ndarray, gap_s: float = GAP_S) -> tuple[np.ndarray, np.ndarray]:
    """``times``/``values`` with a NaN row inserted wherever consecutive times are more than ``gap_s`` apart.

    ``values`` may already hold NaN rows (results without a prediction); the
    curves are drawn with ``connect="finite"``, so a NaN ends a line.
    """
    if len(times) < 2:
        return times, values
    cut = np.flatnonzero(np.diff(times) > gap_s) + 1
    if len(cut) == 0:
        return times, values
    times = np.insert(times, cut, (times[cut - 1] + times[cut]) / 2)
    values = np.insert(values, cut, np.nan, axis=0)
    return times, values


def recovered_spans(times: np.ndarray, flags: np.ndarray, predicted: np.ndarray, hop_s: float,
                    gap_s: float = GAP_S) -> list[tuple[float, float]]:
    """``(start, end)`` of each stretch of predictions in which a modality was recovered.

    A stretch ends at a prediction where it was observed, a result without
    prediction, or a gap over ``gap_s``; it extends one hop past its last point.
    """
    spans: list[tuple[float, float]] = []
    stretch: tuple[float, float] | None = None  # (start, last point) of the open stretch
    for t, recovered, ok in zip(times, flags, predicted):
        joined = stretch is not None and t - stretch[1] <= gap_s
        if recovered and ok:
            if stretch is None or not joined:
                if stretch is not None:
                    spans.append((stretch[0], stretch[1] + hop_s))
                stretch = (t, t)
            else:
                stretch = (stretch[0], t)
        else:
            if stretch is not None:
                start, last = stretch
                spans.append((start, min(t, last + hop_s) if joined else last + hop_s))
            stretch = None
    if stretch is not None:
        spans.append((stretch[0], stretch[1] + hop_s))
    return spans


class TimelinePlot(QWidget):
    """The last ``span_s`` seconds of displayed probabilities (one curve per emotion) and recovered strips."""

    def __init__(self, span_s: float = 60.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.span_s = span_s
        self._points: deque[Point] = deque()
        self._labels: tuple[str, ...] = ()
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._dirty = False
        self.spans: dict[str, list[tuple[float, float]]] = {name: [] for name in PANEL_ORDER}
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.plot = self._probability_plot()
        self.strips_plot = self._strip_plot()
        self._strips = {name: pg.BarGraphItem(x0=[], height=[], width=[], y0=[], brush=MODALITY_COLORS[name],
                                              pen=None) for name in PANEL_ORDER}
        for strip in self._strips.values():
            self.strips_plot.addItem(strip)
        self.setMinimumHeight(150)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.legend)
        layout.addWidget(self.view, 1)
        self.apply_palette()

    def _probability_plot(self) -> pg.PlotItem:
        plot = self.view.addPlot(row=0, col=0)
        _fixed(plot)
        plot.setXRange(-self.span_s, 0.0, padding=0.0)
        plot.setYRange(0.0, 1.0, padding=0.02)
        plot.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")]])
        plot.getAxis("left").setWidth(64)
        plot.getAxis("left").setStyle(hideOverlappingLabels=False)  # keep "0" and "1" at the edges
        plot.getAxis("bottom").setStyle(showValues=False)
        plot.showGrid(x=True, y=True, alpha=0.15)
        return plot

    def _strip_plot(self) -> pg.PlotItem:
        strips = self.view.addPlot(row=1, col=0)
        _fixed(strips)
        strips.setXLink(self.plot)
        strips.setYRange(-0.5, len(PANEL_ORDER) - 0.5, padding=0.0)
        strips.getAxis("left").setTicks([[(row, name) for name, row in STRIP_ROW.items()]])
        strips.getAxis("left").setWidth(64)
        strips.getAxis("bottom").setHeight(22)
        strips.setLabel("bottom", "seconds (0 = now) · strips: recovered")
        strips.setMinimumHeight(70)
        strips.setMaximumHeight(80)
        grid = self.view.ci.layout
        grid.setRowStretchFactor(0, 4)
        grid.setRowStretchFactor(1, 1)
        return strips

    # -- theme -------------------------------------------------------------------------------
    def apply_palette(self) -> None:
        """Background, axes and legend in the widget's palette (light or dark)."""
        palette = self.palette()
        foreground = text_color(palette)
        self.view.setBackground(palette.color(palette.ColorRole.Base))
        for plot in (self.plot, self.strips_plot):
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setPen(pg.mkPen(text_color(palette, dim=True)))
                axis.setTextPen(pg.mkPen(foreground))
        self._update_legend()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.PaletteChange:
            self.apply_palette()
        super().changeEvent(event)

    def _update_legend(self) -> None:
        emotions = " ".join(f"<span style='color:{emotion_color(label, k).name()}'>━</span>&nbsp;{label}"
                            for k, label in enumerate(self._labels))
        strips = " ".join(f"<span style='color:{MODALITY_COLORS[name]}'>■</span>&nbsp;{name}"
                          for name in PANEL_ORDER)
        color = text_color(self.palette()).name()
        head = f"{emotions} &nbsp;·&nbsp; " if emotions else ""
        self.legend.setText(f"<span style='color:{color}; font-size:8pt'>{head}recovered: {strips}</span>")

    # -- data --------------------------------------------------------------------------------
    def add_results(self, results: Iterable[LiveResult]) -> int:
        """Append the results; a result without prediction breaks the lines. Returns how many were predictions."""
        added = 0
        for result in results:
            shown = result.shown
            if shown is None:
                if self._points and self._points[-1][1] is not None:
                    self._points.append((result.t_monotonic, None, frozenset()))
                    self._dirty = True
                continue
            if result.labels != self._labels:
                self._set_labels(result.labels)
            self._points.append((result.t_monotonic, tuple(shown), frozenset(result.recovered)))
            added += 1
        self._dirty |= added > 0
        return added

    def clear(self) -> None:
        self._points.clear()
        self._dirty = True

    def point_count(self) -> int:
        """Points with a prediction."""
        return sum(p is not None for _, p, _ in self._points)

    def recovered_count(self, modality: str) -> int:
        """Points at which ``modality`` was recovered."""
        return sum(modality in rec for _, p, rec in self._points if p is not None)

    def curve_data(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """The x (seconds before now) and y (probability) values drawn for ``label`` (NaN: a break)."""
        x, y = self._curves[label].getData()
        return (np.zeros(0) if x is None else x), (np.zeros(0) if y is None else y)

    def _set_labels(self, labels: tuple[str, ...]) -> None:
        for curve in self._curves.values():
            self.plot.removeItem(curve)
        self._points.clear()
        self._labels = tuple(labels)
        self._curves = {}
        for k, label in enumerate(labels):
            curve = self.plot.plot([], [], pen=pg.mkPen(emotion_color(label, k), width=2), connect="finite")
            self._curves[label] = curve
        self._update_legend()

    # -- drawing -----------------------------------------------------------------------------
    def redraw(self, now: float | None = None) -> None:
        """Redraw the curves and strips (cheap; call a few times a second)."""
        now = time.monotonic() if now is None else now
        while self._points and self._points[0][0] < now - self.span_s - 1.0:
            self._points.popleft()
            self._dirty = True
        if not self._dirty:
            return
        n, k = len(self._points), len(self._labels)
        times = np.array([t for t, _, _ in self._points], float) - now
        probs = np.full((n, k), np.nan)
        for row, (_, p, _) in enumerate(self._points):
            if p is not None:
                probs[row] = p
        x, y = break_lines(times, probs)
        for col, label in enumerate(self._labels):
            self._curves[label].setData(x, y[:, col], connect="finite")
        predicted = ~np.isnan(probs[:, 0]) if k else np.zeros(n, bool)
        gaps = np.diff(times[predicted])
        hop = float(np.median(gaps[gaps <= GAP_S])) if np.any(gaps <= GAP_S) else 0.15
        for name, strip in self._strips.items():
            flags = np.array([name in rec for _, _, rec in self._points], bool)
            spans = recovered_spans(times, flags, predicted, hop)
            self.spans[name] = spans
            starts = np.array([a for a, _ in spans], float)
            widths = np.array([b - a for a, b in spans], float)
            strip.setOpts(x0=starts, width=widths, y0=np.full(len(spans), STRIP_ROW[name] - STRIP_H / 2),
                          height=np.full(len(spans), STRIP_H))
        self._dirty = False


def _fixed(plot: pg.PlotItem) -> None:
    """No mouse zoom, context menu or auto-range button."""
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
