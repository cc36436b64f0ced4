"""Messages to the user: the status bar, and at most one dialog at a time.

Errors never pile up as dialogs: while an error dialog is open, further
errors go to the status bar (and the log) only.  What the user reads is one
readable sentence: library codes such as ``[Errno 1094995529]`` are dropped,
a long message is cut at a word with "…", and the full text (and any
technical details, behind a *Details* button in dialogs) is a hover or a
click away.
"""

from __future__ import annotations

import logging
import re

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QMessageBox, QStatusBar, QWidget

log = logging.getLogger(__name__)

#: How long a status-bar message stays (milliseconds).
MESSAGE_MS = 10_000
#: Longest status-bar text before it is cut at a word.
STATUS_CHARS = 110
_ERRNO = re.compile(r"\s*\[Errno -?\d+\]\s*")
_EXCEPTION_NAME = re.compile(r"^[A-Z][A-Za-z]*(Error|Exception|Warning)\b")


def readable(text: str) -> str:
    """``text`` on one line, without library error numbers."""
    return " ".join(_ERRNO.sub(" ", str(text)).split())


def elide(text: str, limit: int = STATUS_CHARS) -> str:
    """``text`` cut at the last word boundary before ``limit`` characters, with "…" (unchanged if short)."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:—-") + "…"


def short_reason(text: str) -> str:
    """The first clauses of an error chain, up to the first raw exception name (``a: b: ValueError: …`` → ``a: b``)."""
    kept: list[str] = []
    for clause in readable(text).split(": "):
        if _EXCEPTION_NAME.match(clause) or len(kept) == 2:
            break
        kept.append(clause)
    return ": ".join(kept) or readable(text)


def checkpoint_problem(text: str) -> str:
    """What is wrong with a checkpoint, in words a user can act on (the raw text goes behind *Details*)."""
    lowered = text.lower()
    for needles, words in ((("not found", "no such file"), "the file does not exist"),
                           (("does not fit",), "it was made for other feature extractors than this app runs"),
                           (("not mark it as trained", "not marked as trained"), "it is not marked as trained"),
                           (("nan", "non-finite", "not finite"), "it holds invalid (non-finite) weights"),
                           (("could not be read", "corrupt", "truncated", "unpickl", "not a checkpoint",
                             "not an imer"), "it is not an IMER checkpoint file, or it is damaged"),
                           (("cuda",), "CUDA is not available on this machine")):
        if any(n in lowered for n in needles):
            return words
    return short_reason(text)


class Notifier(QObject):
    """Shows messages in ``status_bar``; :meth:`error` may also open one non-modal dialog.

    The status bar's tooltip holds the whole current message, and a click on
    the status bar opens it (with its details) in a dialog.
    """

    def __init__(self, status_bar: QStatusBar, parent: QWidget) -> None:
        super().__init__(parent)
        self.status_bar = status_bar
        self._parent = parent
        self._dialog: QMessageBox | None = None
        self.full_text = ""
        self.details = ""
        status_bar.installEventFilter(self)
        status_bar.messageChanged.connect(self._message_changed)

    def message(self, text: str, timeout_ms: int = MESSAGE_MS, details: str = "") -> None:
        """A transient status-bar message (also logged)."""
        log.info("%s", text)
        self._show(text, details, timeout_ms)

    def error(self, text: str, dialog: bool = False, title: str = "imer", details: str = "") -> None:
        """An error in the status bar; with ``dialog``, also in a dialog unless one is already open.

        ``text`` is what the user reads (one sentence); ``details`` is the
        technical text, behind the dialog's *Details* button.
        """
        log.warning("%s%s", text, f" ({details})" if details else "")
        self._show(text, details, 3 * MESSAGE_MS)
        if dialog and self._dialog is None:
            self._open_dialog(title, readable(text), details)

    @property
    def dialog_open(self) -> bool:
        """An error dialog is open (further errors go to the status bar only)."""
        return self._dialog is not None

    @property
    def dialog(self) -> QMessageBox | None:
        return self._dialog

    def _show(self, text: str, details: str, timeout_ms: int) -> None:
        self.full_text, self.details = readable(text), details
        self.status_bar.showMessage(elide(self.full_text), timeout_ms)
        self.status_bar.setToolTip(self.full_text + ("\n\nClick for details" if details else ""))

    def _message_changed(self, text: str) -> None:
        if not text:  # the message timed out
            self.status_bar.setToolTip("")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if watched is self.status_bar and event.type() == QEvent.Type.MouseButtonRelease \
                and self.status_bar.currentMessage() and self._dialog is None:
            self._open_dialog("imer", self.full_text, self.details, icon=QMessageBox.Icon.Information)
        return False

    def _open_dialog(self, title: str, text: str, details: str = "",
                     icon: QMessageBox.Icon = QMessageBox.Icon.Warning) -> None:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self._parent)
        if details and readable(details) != text:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.finished.connect(self._dialog_closed)
        self._dialog = box
        box.show()

    def _dialog_closed(self) -> None:
        self._dialog = None
