"""A start-up check of the Qt binding for the reference-count bug that crashed the window.

PySide6-Essentials / shiboken6 6.12.0 drops one reference to ``None`` on
every ``QPainter.setPen(QColor)`` and ``fillRect(QRectF, QColor)``.  On
Python < 3.12, where ``None`` is an ordinary object, the count reaches zero
after some minutes of painting and the interpreter aborts ("Fatal Python
error: none_dealloc").  ``pyproject.toml`` keeps those Pythons below 6.12; this
probe catches a binding installed some other way, so the user is told why the
window will not last instead of seeing it vanish.
"""

from __future__ import annotations

import sys

#: Calls made by :func:`none_refcount_drift` (a leaking binding loses about one reference per call).
PROBE_CALLS = 400


def none_refcount_drift(calls: int = PROBE_CALLS) -> int:
    """Change of ``sys.getrefcount(None)`` over ``calls`` pen and fill calls on an offscreen image.

    About 0 for a sound binding; about ``-2 * calls`` for PySide6 6.12.0.
    Needs a ``QGuiApplication``.
    """
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QImage, QPainter

    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    color, rect = QColor(10, 20, 30), QRectF(0, 0, 4, 4)
    try:
        painter.setPen(color)  # warm the binding's caches before counting
        painter.fillRect(rect, color)
        before = sys.getrefcount(None)
        for _ in range(calls):
            painter.setPen(color)
            painter.fillRect(rect, color)
        return sys.getrefcount(None) - before
    finally:
        painter.end()


def binding_problem(calls: int = PROBE_CALLS) -> str:
    """One sentence for the user when the installed binding would crash the window, else ""."""
    if sys.version_info >= (3, 12):  # None is immortal: the lost references cannot free it
        return ""
    drift = none_refcount_drift(calls)
    if drift > -calls // 2:
        return ""
    import PySide6

    return (f"PySide6 {PySide6.__version__} has a bug that will crash this window after some minutes of drawing "
            f"on Python {sys.version_info.major}.{sys.version_info.minor}: "
            "install a fixed version with  pip install 'PySide6-Essentials>=6.6,<6.12'")
