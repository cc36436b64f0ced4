"""Names and colours shared by the widgets (emotions, modalities, states, methods)."""

from __future__ import annotations

from PySide6.QtGui import QColor

#: Display names of the recovery methods.
METHOD_NAMES = {"imder": "IMDer", "rohydr": "RoHyDR", "cmarr": "CM-ARR"}
#: Methods offered in the menus, in this order.
METHODS = ("imder", "rohydr", "cmarr")

MODALITY_TITLES = {"vision": "Vision (camera)", "audio": "Audio (voice)", "text": "Text (speech)"}
#: Modalities top to bottom in the panel (the order a user thinks of them).
PANEL_ORDER = ("vision", "audio", "text")

EMOTION_COLORS = {
    "neutral": "#9e9e9e", "happy": "#f4b400", "sad": "#4285f4", "angry": "#db4437",
    "fearful": "#8e44ad", "disgusted": "#0f9d58", "surprised": "#ff6d00",
}
_FALLBACK = ("#00acc1", "#c2185b", "#7cb342", "#5d4037", "#3949ab", "#fdd835", "#6d4c41")

MODALITY_COLORS = {"vision": "#26a69a", "audio": "#7e57c2", "text": "#ef6c00"}

STATE_COLORS = {"observed": "#2e7d32", "recovered": "#1565c0", "disabled": "#616161",
                "failing": "#c62828", "starting": "#9e9e9e"}


def method_name(method: str | None) -> str:
    """``"IMDer"`` for ``"imder"``; ``"none"`` for ``None``."""
    if not method:
        return "none"
    return METHOD_NAMES.get(method, method)


def emotion_color(label: str, index: int = 0) -> QColor:
    """A stable colour per emotion label (a palette colour for unknown labels)."""
    return QColor(EMOTION_COLORS.get(label, _FALLBACK[index % len(_FALLBACK)]))
