"""Light, dark or the system's palette for the whole app (View ▸ Theme, remembered)."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication

from .style import dark_palette

#: Theme keys and their menu titles.
THEMES = {"system": "Follow the system", "light": "Light", "dark": "Dark"}

_system_palette = None


def apply_theme(app: QCoreApplication | None, key: str) -> str:
    """Apply ``key`` ("system", "light" or "dark") to ``app``; returns the key applied ("system" if unknown).

    "system" restores the palette the platform gave at start (dark on a dark
    desktop); "light" and "dark" use the Fusion style's standard and a dark
    palette.  Widgets that draw with their own colours read the palette when
    they paint, so they follow.
    """
    global _system_palette
    if not isinstance(app, QApplication):  # none, or a QCoreApplication without widgets to paint
        return key
    key = key if key in THEMES else "system"
    if _system_palette is None:
        _system_palette = app.palette()
    if key == "system":
        app.setPalette(_system_palette)
    elif key == "dark":
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    else:
        app.setStyle("Fusion")
        app.setPalette(app.style().standardPalette())
    return key
