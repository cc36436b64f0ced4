"""The Source menu: camera and microphone selection, media files, the demo clip.

Switching runs ``pipeline.replace_sources`` in the command thread; when the
new device delivers nothing the pipeline rolls back to the previous one, and
the status bar says so.  When no pipeline runs (its start failed, e.g. on a
media file that cannot be read), a switch starts a new pipeline on the chosen
sources instead.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu, QWidget

from imer_core.assets import demo_clip_path as shipped_demo_clip
from imer_core.live.parts import WEBCAM, SourceSpec

from . import settings as keys
from .controller import PipelineController, TaskRunner
from .notify import Notifier

MEDIA_FILTER = ("Media files (*.mp4 *.mkv *.avi *.mov *.webm *.m4v *.wav *.mp3 *.flac *.ogg *.m4a *.aac);;"
                "All files (*)")


def demo_clip_path() -> Path:
    """The shipped demo clip (``assets/demo/demo_clip.mp4``; see :mod:`imer_core.assets`)."""
    return shipped_demo_clip()


def list_devices() -> tuple[list[Any], list[Any], str]:
    """Cameras, microphones, and why microphones cannot be listed ("" if they can)."""
    from imer_core.live.sources.camera import list_cameras
    from imer_core.live.sources.microphone import MicrophoneUnavailable, list_input_devices
    try:
        microphones, problem = list_input_devices(), ""
    except MicrophoneUnavailable as exc:
        microphones, problem = [], str(exc)
    return list_cameras(), microphones, problem


class SourceControls(QObject):
    """Builds the Source menu and switches sources through the controller.

    Signals:
        switched(str): a switch finished; the argument is the rollback reason ("" on success).
    """

    switched = Signal(str)

    def __init__(self, controller: PipelineController, notifier: Notifier, settings: QSettings,
                 parent: QWidget, switch_timeout_s: float = 5.0) -> None:
        super().__init__(parent)
        self.controller, self.notifier, self.settings = controller, notifier, settings
        self._parent, self.switch_timeout_s = parent, switch_timeout_s
        self.devices = TaskRunner("devices", self)
        self.switching = False
        self.label = QLabel()
        self.menu = QMenu("&Source", parent)
        self.camera_menu = self.menu.addMenu("&Camera")
        self.mic_menu = self.menu.addMenu("&Microphone")
        self._cameras: list[Any] = []
        self._mics: list[Any] = []
        self._mic_problem = ""
        self._build_menu()
        self.sync()

    @property
    def spec(self) -> SourceSpec:
        """The sources in use (or asked for last, when they could not be opened and nothing runs)."""
        return self.controller.sources

    # -- menu --------------------------------------------------------------------------------
    def _build_menu(self) -> None:
        self.menu.addAction("&Refresh device lists", self.refresh_devices)
        self.menu.addSeparator()
        self.menu.addAction("Use camera and micro&phone", self.use_webcam)
        self.open_action = self.menu.addAction("&Open media file...", self.open_file)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        demo = self.menu.addAction("Play the &demo clip", self.play_demo)
        demo.setEnabled(demo_clip_path().is_file())
        self.loop_action = self.menu.addAction("&Loop media files")
        self.loop_action.setCheckable(True)
        self.loop_action.setChecked(keys.read(self.settings, keys.LOOP, True, bool))
        self.loop_action.setToolTip("Replay a media file forever (applies to the next file opened)")
        self.loop_action.toggled.connect(lambda on: self.settings.setValue(keys.LOOP, on))

    def refresh_devices(self) -> None:
        """List cameras and microphones in the background, then rebuild the submenus."""
        self.devices.submit(list_devices, self._devices_listed)

    def _devices_listed(self, result: Any, error: str) -> None:
        if error:
            self.notifier.error(f"could not list devices: {error}")
            return
        self._cameras, self._mics, self._mic_problem = result
        self.sync()

    def sync(self) -> None:
        """Rebuild the device submenus and the status-bar label from the sources in use."""
        spec = self.spec
        self.label.setText(f"Source: {spec.describe()}")
        self._fill(self.camera_menu, self._camera_choices(spec), spec.camera if not spec.is_file else None,
                   self.use_camera)
        mic = spec.microphone if not spec.is_file else "<file>"
        self._fill(self.mic_menu, self._mic_choices(), mic, self.use_microphone)

    def _camera_choices(self, spec: SourceSpec) -> list[tuple[Any, str]]:
        choices = [(c.index, f"{c.index}: {c.name} ({c.width}x{c.height})") for c in self._cameras]
        if not any(value == spec.camera for value, _ in choices):
            choices.insert(0, (spec.camera, f"{spec.camera}: camera {spec.camera}"))
        return choices

    def _mic_choices(self) -> list[tuple[Any, str]]:
        choices: list[tuple[Any, str]] = [(None, "Default microphone")]
        choices += [(d.index, f"{d.index}: {d.name}" + (" (default)" if d.is_default else "")) for d in self._mics]
        return choices

    def _fill(self, menu: QMenu, choices: list[tuple[Any, str]], current: Any, slot: Any) -> None:
        menu.clear()
        group = QActionGroup(menu)
        for value, text in choices:
            action = QAction(text, menu, checkable=True)
            action.setChecked(value == current)
            action.triggered.connect(lambda _=False, v=value: slot(v))
            group.addAction(action)
            menu.addAction(action)
        if menu is self.mic_menu and self._mic_problem:
            note = menu.addAction(f"No microphone list: {self._mic_problem}")
            note.setEnabled(False)

    # -- switching ---------------------------------------------------------------------------
    def use_camera(self, index: int) -> None:
        """Switch to camera ``index`` (with the microphone in use)."""
        self.switch(replace(self.spec, source=WEBCAM, camera=int(index)))

    def use_microphone(self, device: Any) -> None:
        """Switch to microphone ``device`` (name, index or ``None`` for the default; with the camera in use)."""
        self.switch(replace(self.spec, source=WEBCAM, microphone=device))

    def use_webcam(self) -> None:
        """Switch from a media file back to the selected camera and microphone."""
        self.switch(replace(self.spec, source=WEBCAM, loop=False))

    def play_demo(self) -> None:
        """Play the shipped demo clip (looping if *Loop media files* is checked)."""
        self.open_path(demo_clip_path())

    def open_file(self) -> None:
        """Ask for a media file and play it."""
        start = str(Path(self.spec.source).parent) if self.spec.is_file else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self._parent, "Open a media file", start, MEDIA_FILTER)
        if path:
            self.open_path(Path(path))

    def open_path(self, path: Path) -> None:
        """Play the media file ``path`` (looping if *Loop media files* is checked)."""
        self.switch(replace(self.spec, source=str(path), loop=self.loop_action.isChecked()))

    def switch(self, spec: SourceSpec) -> None:
        """Switch to ``spec`` in the background; a failure rolls back and says so."""
        if self.switching:
            self.notifier.message("A source switch is already in progress")
            return
        self.switching = True
        self.notifier.message(f"Switching to {spec.describe()}...", 0)
        self.controller.switch_sources(spec, self.switch_timeout_s,
                                       lambda result, error: self._switched(spec, result, error))

    def _switched(self, spec: SourceSpec, result: tuple[str, bool] | None, error: str) -> None:
        """``result``: ``(problem, started)`` from :meth:`PipelineController.switch_sources` (``None`` on error)."""
        problem, started = result if result is not None else (error, False)
        self.switching = False
        if problem:
            self.notifier.error(problem if problem.startswith("could not ")
                                else f"could not switch to {spec.describe()}: {problem}", dialog=started)
        else:
            self.notifier.message(f"Started on {spec.describe()}" if started else f"Now using {spec.describe()}")
            if not spec.is_file:
                self.settings.setValue(keys.CAMERA, spec.camera)
                self.settings.setValue(keys.MICROPHONE, "" if spec.microphone is None else str(spec.microphone))
        self.sync()
        self.switched.emit(problem)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the device-listing thread (waits up to ``timeout`` s)."""
        self.devices.shutdown(timeout)
