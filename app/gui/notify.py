"""Messages to the user: the status bar, and at most one dialog at a time.

Errors never pile up as dialogs: while an error dialog is open, further
errors go to the status bar (and the log) only.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QMessageBox, QStatusBar, QWidget

log = logging.getLogger(__name__)

#: How long a status-bar message stays (milliseconds).
MESSAGE_MS = 10_000


class Notifier(QObject):
    """Shows messages in ``status_bar``; :meth:`error` may also open one non-modal dialog."""

    def __init__(self, status_bar: QStatusBar, parent: QWidget) -> None:
        super().__init__(parent)
        self.status_bar = status_bar
        self._parent = parent
        self._dialog: QMessageBox | None = None

    def message(self, text: str, timeout_ms: int = MESSAGE_MS) -> None:
        """A transient status-bar message (also logged)."""
        log.info("%s", text)
        self.status_bar.showMessage(text, timeout_ms)

    def error(self, text: str, dialog: bool = False, title: str = "imer") -> None:
        """An error in the status bar; with ``dialog``, also in a dialog unless one is already open."""
        log.warning("%s", text)
        self.status_bar.showMessage(text, 3 * MESSAGE_MS)
        if dialog and self._dialog is None:
            self._open_dialog(title, text)

    @property
    def dialog_open(self) -> bool:
        """An error dialog is open (further errors go to the status bar only)."""
        return self._dialog is not None

    def _open_dialog(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self._parent)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.finished.connect(self._dialog_closed)
        self._dialog = box
        box.show()

    def _dialog_closed(self) -> None:
        self._dialog = None
