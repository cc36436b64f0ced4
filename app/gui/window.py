"""The main window: live video, modality panel, emotions, timeline, transcript and performance.

A QTimer polls the pipeline (``refresh_ms``, 15 Hz by default) and renders
what it finds; every call that may block runs in the controller's command
thread.  Closing the window stops every thread and releases the devices.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Sequence

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QToolBar, QWidget

from imer_core.live.health import ModalityState
from imer_core.live.models import LiveModelError
from imer_core.live.pipeline import LivePipeline, PipelineConfig
from imer_core.modalities import Modality

from . import settings as keys
from .calibration_dialog import CalibrationDialog
from .controller import PipelineController, PipelineFactory, build_pipeline
from .dialogs import AboutDialog
from .emotion_panel import EmotionPanel
from .model_controls import ModelControls
from .modality_panel import ModalityPanel
from .notify import Notifier
from .performance_panel import PerformancePanel
from .session_controls import SessionControls
from .source_controls import SourceControls
from .style import method_name
from .timeline import TimelinePlot
from .transcript_view import TranscriptView
from .video_view import VideoView

log = logging.getLogger(__name__)

LAYOUT_VERSION = 1
#: Seconds between refreshes of the slower parts (timeline, performance, status bar).
SLOW_REFRESH_S = 0.5


class MainWindow(QMainWindow):
    """The desktop app on one :class:`LivePipeline`.

    Args:
        config: what to run (sources, switches, checkpoints, method, device).
        pipeline_factory: builds the pipeline from a config (tests pass fake parts).
        settings: where devices, method and layout persist (default: the user's).
        notes: messages for the status bar once the window runs (e.g. "no camera").
        refresh_ms: period of the render timer.
        list_devices: list cameras and microphones in the background at start.
    """

    def __init__(self, config: PipelineConfig, pipeline_factory: PipelineFactory = LivePipeline,
                 settings: QSettings | None = None, notes: Sequence[str] = (), refresh_ms: int = 66,
                 list_devices: bool = True) -> None:
        super().__init__()
        self.settings = settings if settings is not None else keys.app_settings()
        self.setWindowTitle("IMER — live multimodal emotion recognition")
        self.resize(1280, 820)
        self.notifier = Notifier(self.statusBar(), self)
        pipeline, problem = _first_pipeline(config, pipeline_factory)
        if config.method and pipeline.engine.method != config.method and not problem:
            used = pipeline.engine.method
            notes = [f"No checkpoint for {method_name(config.method)} is loaded"
                     + (f": using {method_name(used)}" if used else ""), *notes]
        self.controller = PipelineController(pipeline, pipeline_factory, self)
        self.controller.replaced.connect(self._on_replaced)
        self._t0 = time.monotonic()
        self._build_views()
        self.sources = SourceControls(self.controller, self.notifier, self.settings, self)
        self.model = ModelControls(self.controller, self.notifier, self.settings, self)
        self.session = SessionControls(self.controller, self.notifier, self.settings, self)
        self.calibration: CalibrationDialog | None = None
        self._build_menus()
        self._build_status_bar()
        self._default_layout = self.saveState(LAYOUT_VERSION)
        self._layout_restored = self._restore_layout()
        self._notes = [n for n in notes if n]
        self._problem = problem
        self._list_devices = list_devices
        self._transcripts = 0
        self._model_error = ""
        self._ended = False
        self._last_slow = 0.0
        self._render_error = ""
        self.running = False
        self.closed = False
        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self._tick)

    @property
    def pipeline(self) -> LivePipeline:
        """The pipeline in use (replaced when checkpoints or the device change)."""
        return self.controller.pipeline

    # -- construction ------------------------------------------------------------------------
    def _build_views(self) -> None:
        self.video = VideoView()
        self.setCentralWidget(self.video)
        self.modalities = ModalityPanel()
        for modality, on in self.pipeline.enabled.items():
            self.modalities.set_switch(modality.value, on)
        self.modalities.toggled.connect(self.set_modality)
        self.emotions = EmotionPanel()
        self.timeline = TimelinePlot()
        self.transcript = TranscriptView(self._t0)
        self.performance = PerformancePanel()
        right, bottom = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea
        self.docks = {name: self._dock(title, widget, area) for name, title, widget, area in (
            ("modalities", "Modalities", self.modalities, right), ("emotion", "Emotion", self.emotions, right),
            ("timeline", "Timeline", self.timeline, bottom), ("transcript", "Transcript", self.transcript, bottom),
            ("performance", "Performance", self.performance, bottom))}
        self.splitDockWidget(self.docks["timeline"], self.docks["transcript"], Qt.Orientation.Horizontal)
        self.splitDockWidget(self.docks["transcript"], self.docks["performance"], Qt.Orientation.Horizontal)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.sources.open_action)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.session.menu.addSeparator()
        self.calibrate_action = self.session.menu.addAction("&Calibrate...", self.show_calibration)
        self.calibrate_action.setToolTip("Act each emotion while every modality is recorded (for a personal model)")
        for menu in (self.sources.menu, self.model.menu, self.session.menu):
            bar.addMenu(menu)
        view = bar.addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("main_toolbar")
        toolbar.addAction(self.session.record_action)
        toolbar.addAction(self.sources.open_action)
        self.addToolBar(toolbar)
        self.addToolBar(self.model.toolbar)
        view.addSeparator()
        view.addAction(toolbar.toggleViewAction())
        view.addAction(self.model.toolbar.toggleViewAction())
        view.addAction("&Reset layout", self.reset_layout)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("&About IMER, model card and licences...", self.show_about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        for label in (self.session.label, self.sources.label, self.model.label):
            bar.addPermanentWidget(label)

    def _restore_layout(self) -> bool:
        """Restore the saved geometry and dock layout; False when there is none."""
        geometry, state = self.settings.value(keys.GEOMETRY), self.settings.value(keys.STATE)
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        return isinstance(state, QByteArray) and self.restoreState(state, LAYOUT_VERSION)

    def _default_sizes(self) -> None:
        """Give the timeline room (docks can only be sized once the window is shown)."""
        bottom = [self.docks[name] for name in ("timeline", "transcript", "performance")]
        self.resizeDocks(bottom, [600, 320, 360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["timeline"]], [290], Qt.Orientation.Vertical)

    # -- running -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the pipeline (in the background) and the render timer."""
        self.controller.start(self._started)
        self.timer.start()
        if not self._layout_restored:
            self._default_sizes()
        if self._list_devices:
            self.sources.refresh_devices()
        if self._problem:
            self.notifier.error(self._problem, dialog=True)
        for note in self._notes:
            self.notifier.message(note, 60_000)

    def _started(self, _: object, error: str) -> None:
        if error:
            self.notifier.error(f"could not start the pipeline: {error} — choose another source in the Source menu "
                                "(a media file, the demo clip or the camera) to start again", dialog=True)
            self.video.show_placeholder(f"Could not start\n{error}\n\nChoose another source in the Source menu")
        self.running = not error

    def set_modality(self, name: str, on: bool) -> None:
        """Switch a modality on or off (the badge follows within a few hundred ms)."""
        self.controller.submit(lambda p: p.set_enabled(name, on), lambda _, error: self._switched(name, on, error))

    def _switched(self, name: str, on: bool, error: str) -> None:
        if error:
            self.notifier.error(f"could not switch {name} {'on' if on else 'off'}: {error}")
            self.modalities.set_switch(name, self.pipeline.enabled[Modality(name)])
        else:
            self.notifier.message(f"{name.capitalize()} switched {'on' if on else 'off'}")

    def _on_replaced(self, pipeline: LivePipeline) -> None:
        self.session.stop(reason=" — recording stopped because the pipeline was replaced")
        self._transcripts = 0
        self._model_error = ""
        self.timeline.clear()
        for modality, on in pipeline.enabled.items():
            self.modalities.set_switch(modality.value, on)
        self.sources.sync()
        self.model.sync()
        self.running = not self.closed  # the controller replaces the pipeline only by a started one

    def reset_layout(self) -> None:
        """Put the docks and toolbars back where they are on first start."""
        self.restoreState(self._default_layout, LAYOUT_VERSION)
        self._default_sizes()

    def show_about(self) -> AboutDialog:
        """Open the about box (model card and licences); it is deleted when closed."""
        dialog = AboutDialog(self.pipeline.bank.checkpoints, self.pipeline.device, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_calibration(self) -> CalibrationDialog:
        """Open (or raise) the non-modal guided calibration dialog."""
        if self.calibration is None:
            self.calibration = CalibrationDialog(self)
        self.calibration.show()
        self.calibration.raise_()
        self.calibration.activateWindow()
        return self.calibration

    # -- rendering ---------------------------------------------------------------------------
    def _tick(self) -> None:
        if not self.running:  # the pipeline is read only once it has started
            return
        try:
            self._render()
        except Exception as exc:  # a display problem must never take the window down
            log.exception("render failed")
            message = f"display error: {type(exc).__name__}: {exc}"
            if message != self._render_error:
                self._render_error = message
                self.notifier.error(message)

    def _render(self) -> None:
        pipeline, now = self.pipeline, time.monotonic()
        results = pipeline.poll_results()
        latest = results[-1] if results else pipeline.latest_result
        if results:
            self.timeline.add_results(results)
            self.emotions.show_result(latest)
        statuses = pipeline.statuses()
        predicted = latest is not None and latest.probabilities is not None
        self.modalities.update_statuses(statuses, latest.recovered if predicted else (),
                                        latest.method if predicted else None)
        vision = statuses.get(Modality.VISION)
        reason = vision.reason if vision is not None and vision.state is ModalityState.FAILING else ""
        raw = pipeline.video.frames.latest() if pipeline.video is not None else None
        self.video.update_view(pipeline.latest_face(), raw, pipeline.enabled[Modality.VISION], reason, now)
        events, self._transcripts = pipeline.transcripts_since(self._transcripts)
        self.transcript.append_events(events)
        if now - self._last_slow >= SLOW_REFRESH_S:
            self._last_slow = now
            self._render_slow(pipeline, now)

    def _render_slow(self, pipeline: LivePipeline, now: float) -> None:
        self.timeline.redraw(now)
        engine = pipeline.engine
        self.performance.show_stats(pipeline.stats(), engine.method, engine.sampler_steps)
        self.session.refresh()
        if engine.model_error != self._model_error:
            self._model_error = engine.model_error
            if engine.model_error and pipeline.bank.methods:
                self.notifier.error(engine.model_error)
            self.model.sync()
        if pipeline.ended != self._ended:
            self._ended = pipeline.ended
            if self._ended:
                self.notifier.message("End of the media file (Source ▸ Open media file... to play another)", 0)

    # -- closing -----------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.settings.setValue(keys.GEOMETRY, self.saveGeometry())
        self.settings.setValue(keys.STATE, self.saveState(LAYOUT_VERSION))
        self.hide()  # stopping the threads may take seconds: do not leave a frozen window on screen
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop recording, every pipeline thread and the devices (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.timer.stop()
        if self.calibration is not None:
            self.calibration.shutdown()
        self.session.stop()
        self.sources.shutdown()
        self.controller.shutdown()
        self.settings.sync()


def _first_pipeline(config: PipelineConfig, factory: PipelineFactory) -> tuple[LivePipeline, str]:
    """The pipeline of ``config``; if its checkpoints or device cannot be used, the shipped models on auto.

    A method no loaded checkpoint holds (e.g. saved while other checkpoints
    were loaded) is dropped: the engine's preferred method runs instead.
    """
    try:
        return build_pipeline(factory, config), ""
    except LiveModelError as exc:
        fallback = replace(config, checkpoints=(), method=None, device="auto")
        return factory(fallback), f"{exc} — started with the shipped models instead"
