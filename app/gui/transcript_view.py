"""The transcript as it arrives."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from imer_core.live.speech_worker import TranscriptEvent


class TranscriptView(QPlainTextEdit):
    """Read-only text, one line per transcribed utterance (seconds since the window opened)."""

    def __init__(self, t0: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.t0 = t0
        self.setReadOnly(True)
        self.setMaximumBlockCount(500)
        self.setPlaceholderText("The transcript appears here as speech is recognised.")
        self.lines = 0

    def append_events(self, events: Iterable[TranscriptEvent]) -> None:
        """Add utterances at the end and scroll to them."""
        before = self.lines
        for event in events:
            text = event.text.strip()
            if text:
                self.appendPlainText(f"[{max(0.0, event.start - self.t0):7.1f} s]  {text}")
                self.lines += 1
        if self.lines > before:
            self.moveCursor(QTextCursor.MoveOperation.End)
