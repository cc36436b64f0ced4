"""The live video with the face mesh and bounding box drawn over it, or a placeholder."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

#: A frame older than this (seconds) is not shown as live video.
STALE_AFTER_S = 1.0


def to_qimage(image: np.ndarray) -> QImage:
    """A deep copy of a ``(H, W, 3)`` uint8 BGR image as a QImage."""
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_BGR888).copy()


class VideoView(QWidget):
    """Paints the newest analysed frame with its face landmarks, or a placeholder text.

    Call :meth:`update_view` on every refresh; it repaints only when something changed.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self.landmarks: np.ndarray | None = None
        self.bbox: tuple[float, float, float, float] | None = None
        self._frame_key: object = None
        self.caption = ""
        self.placeholder = "Starting..."
        self.frames_shown = 0
        self.faces_drawn = 0

    # -- state -------------------------------------------------------------------------------
    def update_view(self, snapshot: Any, raw_frame: Any, enabled: bool, reason: str,
                    now: float | None = None) -> None:
        """Show ``snapshot`` (a FaceSnapshot), else ``raw_frame`` (a VideoFrame), else a placeholder.

        Args:
            snapshot: the newest analysed frame (``pipeline.latest_face()``) or ``None``.
            raw_frame: the newest captured frame, shown without overlay when
                the face analysis has nothing recent.
            enabled: the vision switch.
            reason: why vision is failing ("" when observed), shown as a caption.
        """
        now = time.monotonic() if now is None else now
        if not enabled:
            self.show_placeholder("Vision is switched off\n(the camera is released)")
        elif _fresh(getattr(snapshot, "frame", None), now):
            self._show(snapshot.frame, getattr(snapshot, "face", None), reason)
        elif _fresh(raw_frame, now):
            self._show(raw_frame, None, reason)
        else:
            self.show_placeholder(f"No video\n{reason}" if reason else "Waiting for video...")

    def show_placeholder(self, text: str) -> None:
        """Replace the video by ``text``."""
        if self._image is None and text == self.placeholder:
            return
        self._image, self._frame_key, self.placeholder = None, None, text
        self.update()

    def _show(self, frame: Any, face: Any, caption: str) -> None:
        key = (id(frame), id(face))
        if key == self._frame_key and caption == self.caption:
            return
        self._frame_key, self.caption, self.placeholder = key, caption, ""
        self._image = to_qimage(frame.image)
        self.landmarks, self.bbox = _overlay(face)
        self.frames_shown += 1
        self.faces_drawn += self.landmarks is not None or self.bbox is not None
        self.update()

    @property
    def showing_video(self) -> bool:
        return self._image is not None

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#101010"))
        if self._image is None:
            self._paint_text(painter, self.rect(), self.placeholder, 14)
        else:
            target = self._target_rect(self._image)
            painter.drawImage(target, self._image)
            self._paint_overlay(painter, target)
            if self.caption:
                band = QRectF(target.left(), target.bottom() - 28, target.width(), 28)
                painter.fillRect(band, QColor(0, 0, 0, 160))
                self._paint_text(painter, band.toRect(), self.caption, 10)
        painter.end()

    def _target_rect(self, image: QImage) -> QRectF:
        w, h = image.width(), image.height()
        scale = min(self.width() / w, self.height() / h)
        tw, th = w * scale, h * scale
        return QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)

    def _paint_overlay(self, painter: QPainter, target: QRectF) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.landmarks is not None:
            painter.setPen(QPen(QColor(80, 255, 120, 200), 2.0))
            xs = target.left() + self.landmarks[:, 0] * target.width()
            ys = target.top() + self.landmarks[:, 1] * target.height()
            painter.drawPoints(QPolygonF([QPointF(float(x), float(y)) for x, y in zip(xs, ys)]))
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            painter.setPen(QPen(QColor(255, 200, 0), 2.0))
            painter.drawRect(QRectF(target.left() + x0 * target.width(), target.top() + y0 * target.height(),
                                    (x1 - x0) * target.width(), (y1 - y0) * target.height()))

    @staticmethod
    def _paint_text(painter: QPainter, rect: Any, text: str, size: int) -> None:
        font = painter.font()
        font.setPointSize(size)
        painter.setFont(font)
        painter.setPen(QColor("#e0e0e0"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)


def _fresh(frame: Any, now: float) -> bool:
    return frame is not None and now - float(getattr(frame, "t_capture", -1e9)) <= STALE_AFTER_S


def _overlay(face: Any) -> tuple[np.ndarray | None, tuple[float, float, float, float] | None]:
    """Landmarks ``(N, 2)`` and bbox of a detected face, drawn defensively (fakes have neither)."""
    if face is None or not getattr(face, "detected", False):
        return None, None
    landmarks = getattr(face, "landmarks", None)
    points = None
    if isinstance(landmarks, np.ndarray) and landmarks.ndim == 2 and landmarks.shape[1] >= 2 and landmarks.any():
        points = landmarks[:, :2].astype(np.float64)
    bbox = getattr(face, "bbox", None)
    if bbox is None or len(bbox) != 4 or not any(bbox):
        return points, None
    x0, y0, x1, y1 = (float(v) for v in bbox)
    return points, (x0, y0, x1, y1)
