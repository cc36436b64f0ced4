"""Persistent settings (QSettings): devices, method, sampler steps, options and window layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths

ORGANIZATION = "imer"
APPLICATION = "imer"

CAMERA = "devices/camera"
MICROPHONE = "devices/microphone"
LOOP = "source/loop"
METHOD = "model/method"
SAMPLER_STEPS = "model/sampler_steps"
DEVICE = "model/device"
SMOOTHING = "display/smoothing_s"
THEME = "display/theme"
SESSIONS_ROOT = "session/root"
RAW_AUDIO = "session/raw_audio"
RAW_VIDEO = "session/raw_video"
GEOMETRY = "window/geometry"
STATE = "window/state"


def app_settings() -> QSettings:
    """The user's settings (native format, organisation and application ``imer``)."""
    return QSettings(ORGANIZATION, APPLICATION)


def read(settings: QSettings, key: str, default: Any = None, kind: type | None = None) -> Any:
    """``settings.value(key)`` converted to ``kind`` (``default`` when missing or unreadable)."""
    value = settings.value(key, None)
    if value is None or value == "":
        return default
    if kind is bool:
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    try:
        return kind(value) if kind is not None else value
    except (TypeError, ValueError):
        return default


def default_sessions_root() -> Path:
    """Where recorded sessions go unless the user picked another folder."""
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(documents or Path.home()) / "imer-sessions"


def sessions_root(settings: QSettings) -> Path:
    """The folder recorded sessions go to: the one saved in ``settings``, else :func:`default_sessions_root`."""
    return Path(read(settings, SESSIONS_ROOT, str(default_sessions_root()), str))
