"""The Session menu: record and stop a session folder (JSONL + CSV), export it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu, QWidget

from imer_core.live.recording import SessionRecording
from imer_core.live.session import new_session_dir

from . import settings as keys
from .controller import PipelineController
from .notify import Notifier


class SessionControls(QObject):
    """Records the running pipeline with :class:`SessionRecording` (the same files as ``imer run``)."""

    def __init__(self, controller: PipelineController, notifier: Notifier, settings: QSettings,
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.controller, self.notifier, self.settings, self._parent = controller, notifier, settings, parent
        self.recording: SessionRecording | None = None
        self.last_folder: Path | None = None
        self._started = 0.0
        self._error_shown = ""
        self.label = QLabel()
        self.menu = QMenu("S&ession", parent)
        self.record_action = self.menu.addAction("&Record", self.toggle)
        self.record_action.setCheckable(True)
        self.record_action.setShortcut(QKeySequence("Ctrl+R"))
        self.record_action.setToolTip("Record predictions and transcript to a session folder (JSONL + CSV)")
        self.raw_audio = self._option("Keep raw &audio (audio.wav)", keys.RAW_AUDIO)
        self.raw_video = self._option("Keep raw &video (video.mkv)", keys.RAW_VIDEO)
        self.menu.addSeparator()
        self.menu.addAction("Sessions &folder...", self.pick_root)
        self.menu.addAction("&Open sessions folder", self.open_root)
        self.export_action = self.menu.addAction("&Export last session...", self.export)
        self.export_action.setEnabled(False)

    def _option(self, text: str, key: str) -> QAction:
        """A checkable menu entry whose state persists under ``key``."""
        action = self.menu.addAction(text)
        action.setCheckable(True)
        action.setChecked(keys.read(self.settings, key, False, bool))
        action.toggled.connect(lambda on: self.settings.setValue(key, on))
        return action

    @property
    def root(self) -> Path:
        """The folder new session folders are created in."""
        return keys.sessions_root(self.settings)

    # -- record / stop -----------------------------------------------------------------------
    def toggle(self) -> None:
        """Start recording, or stop the recording in progress."""
        self.stop() if self.recording is not None else self.start()

    def start(self) -> Path | None:
        """Start recording into a new session folder; returns the folder (``None`` on failure)."""
        if self.recording is not None:
            return self.recording.folder
        try:
            folder = new_session_dir(self.root)
            self.recording = SessionRecording(self.controller.pipeline, folder, {"app": "imer desktop window"},
                                              raw_audio=self.raw_audio.isChecked(),
                                              raw_video=self.raw_video.isChecked()).start()
        except OSError as exc:
            self.notifier.error(f"cannot record: {exc}", dialog=True)
            self._set_recording(False)
            return None
        self._started, self._error_shown = time.monotonic(), ""
        self.notifier.message(f"Recording to {folder}")
        self._set_recording(True)
        return folder

    def stop(self, reason: str = "") -> Path | None:
        """Stop recording, close every file; returns the session folder."""
        recording, self.recording = self.recording, None
        if recording is None:
            return None
        recording.stop()
        self.last_folder = recording.folder
        rows = recording.recorder.rows
        self.notifier.message(f"Session saved: {recording.folder} ({rows} predictions){reason}")
        self.export_action.setEnabled(True)
        self._set_recording(False)
        return recording.folder

    def _set_recording(self, on: bool) -> None:
        self.record_action.blockSignals(True)
        self.record_action.setChecked(on)
        self.record_action.blockSignals(False)
        self.record_action.setText("Stop &recording" if on else "&Record")
        self.refresh()

    def refresh(self) -> None:
        """Update the status-bar indicator (call a few times a second)."""
        recording = self.recording
        if recording is None:
            self.label.setText("")
            return
        elapsed = int(time.monotonic() - self._started)
        self.label.setText(f"<span style='color:#c62828'>● REC</span> {elapsed // 60:02d}:{elapsed % 60:02d} "
                           f"({recording.recorder.rows} predictions)")
        self.label.setTextFormat(Qt.TextFormat.RichText)
        if recording.error and recording.error != self._error_shown:
            self._error_shown = recording.error
            self.notifier.error(recording.error)

    # -- folders -----------------------------------------------------------------------------
    def pick_root(self) -> None:
        """Ask for the folder sessions are recorded to (saved in the settings)."""
        folder = QFileDialog.getExistingDirectory(self._parent, "Folder for recorded sessions", str(self.root))
        if folder:
            self.settings.setValue(keys.SESSIONS_ROOT, folder)
            self.notifier.message(f"Sessions are recorded to {folder}")

    def open_root(self) -> None:
        """Show the sessions folder in the file manager (created if missing)."""
        self.root.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.root)))

    def export(self) -> None:
        """Copy the last session folder (JSONL, CSV, transcript, media) to a folder the user picks."""
        if self.last_folder is None:
            return
        target = QFileDialog.getExistingDirectory(self._parent, "Export the session to", str(Path.home()))
        if target:
            self.export_to(Path(target))

    def export_to(self, target: Path) -> Path | None:
        """Copy the last session folder into ``target``; returns the copy."""
        if self.last_folder is None:
            return None
        try:
            copy = Path(shutil.copytree(self.last_folder, Path(target) / self.last_folder.name))
        except OSError as exc:
            self.notifier.error(f"export failed: {exc}", dialog=True)
            return None
        self.notifier.message(f"Session exported to {copy}")
        return copy
