"""Names, colours and the theme shared by the widgets (emotions, modalities, states, methods)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

MODALITY_TITLES = {"vision": "Vision (camera)", "audio": "Audio (voice)", "text": "Text (speech)"}
#: Modalities top to bottom in the panel (the order a user thinks of them).
PANEL_ORDER = ("vision", "audio", "text")

EMOTION_COLORS = {
    "neutral": "#9e9e9e", "happy": "#f4b400", "sad": "#4285f4", "angry": "#db4437",
    "fearful": "#8e44ad", "disgusted": "#0f9d58", "surprised": "#ff6d00",
}
_FALLBACK = ("#00acc1", "#c2185b", "#7cb342", "#5d4037", "#3949ab", "#fdd835", "#6d4c41")

#: Colours of the "recovered" strips: hues no emotion curve uses (CIE76 ΔE ≥ 30 to every emotion colour).
MODALITY_COLORS = {"vision": "#00bcd4", "audio": "#ec407a", "text": "#795548"}

STATE_COLORS = {"observed": "#2e7d32", "recovered": "#1565c0", "disabled": "#616161",
                "failing": "#c62828", "loading": "#8d6e00", "starting": "#9e9e9e"}
#: What each badge state means (Help ▸ Legend).
STATE_MEANINGS = {
    "observed": "the modality is captured and analysed; its features go into the model",
    "loading": "its model is loading or its source has just started — not a fault",
    "disabled": "you switched it off: capture and analysis stop",
    "failing": "it should be there but is not (no camera, no face, no speech, an error); the reason is shown under it",
    "recovered": "not observed in this window: the recovery method generated its features (\"recovered by X\")",
}


def method_name(method: str | None) -> str:
    """``"IMDer"`` for ``"imder"`` (the method's own display name, from the registry); ``"none"`` for ``None``."""
    if not method:
        return "none"
    from imer_core.registry import method_title

    return method_title(method)


def emotion_color(label: str, index: int = 0) -> QColor:
    """A stable colour per emotion label (a palette colour for unknown labels)."""
    return QColor(EMOTION_COLORS.get(label, _FALLBACK[index % len(_FALLBACK)]))


# -- theme ---------------------------------------------------------------------------------------
def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` draws light text on a dark background."""
    return palette.color(QPalette.ColorRole.Window).lightness() < palette.color(
        QPalette.ColorRole.WindowText).lightness()


def text_color(palette: QPalette, dim: bool = False) -> QColor:
    """Text colour of ``palette`` (``dim``: for secondary text)."""
    color = QColor(palette.color(QPalette.ColorRole.WindowText))
    if dim:
        background = palette.color(QPalette.ColorRole.Window)
        color = QColor((color.red() + background.red()) // 2 + (color.red() - background.red()) // 5,
                       (color.green() + background.green()) // 2 + (color.green() - background.green()) // 5,
                       (color.blue() + background.blue()) // 2 + (color.blue() - background.blue()) // 5)
    return color


def track_color(palette: QPalette) -> QColor:
    """Background of an empty probability bar."""
    base = palette.color(QPalette.ColorRole.Window)
    return base.lighter(135) if is_dark(palette) else base.darker(112)


def dark_palette() -> QPalette:
    """A dark palette (View ▸ Theme ▸ Dark, on systems without one)."""
    palette = QPalette()
    roles = QPalette.ColorRole
    for role, color in ((roles.Window, "#2b2b2b"), (roles.WindowText, "#e6e6e6"), (roles.Base, "#1f1f1f"),
                        (roles.AlternateBase, "#333333"), (roles.ToolTipBase, "#3a3a3a"),
                        (roles.ToolTipText, "#f0f0f0"), (roles.Text, "#e6e6e6"), (roles.Button, "#353535"),
                        (roles.ButtonText, "#e6e6e6"), (roles.BrightText, "#ff5252"), (roles.Link, "#64b5f6"),
                        (roles.Highlight, "#1e88e5"), (roles.HighlightedText, "#ffffff"),
                        (roles.PlaceholderText, "#9e9e9e"), (roles.Mid, "#404040"), (roles.Dark, "#202020"),
                        (roles.Midlight, "#4a4a4a"), (roles.Light, "#505050"), (roles.Shadow, "#101010")):
        palette.setColor(role, QColor(color))
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return palette
