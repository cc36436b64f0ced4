"""The main window: live video, modality panel, emotions, timeline, transcript and performance.

A QTimer polls the pipeline (``refresh_ms``, 15 Hz by default) and renders
what it finds; every call that may block runs in the controller's command
thread.  Closing the window stops every thread and releases the devices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QScrollArea, QToolBar, QWidget

from imer_core.cli_errors import is_user_error
from imer_core.live.health import ModalityState
from imer_core.live.models import LiveModelError
from imer_core.live.parts import WEBCAM
from imer_core.live.pipeline import LivePipeline, PipelineConfig
from imer_core.modalities import Modality

from . import settings as keys
from .baseline_dialog import BaselineDialog
from .calibration_dialog import CalibrationDialog
from .controller import PipelineController, PipelineFactory, build_pipeline
from .dialogs import AboutDialog, HelpDialog, legend_html, shortcuts_html
from .emotion_panel import EmotionPanel
from .modality_panel import ModalityPanel
from .model_controls import ModelControls
from .notify import Notifier, checkpoint_problem, short_reason
from .performance_panel import PerformancePanel
from .session_controls import SessionControls
from .source_controls import SourceControls
from .style import PANEL_ORDER, method_name
from .theme import THEMES, apply_theme
from .timeline import TimelinePlot
from .transcript_view import TranscriptView
from .video_view import VideoView

log = logging.getLogger(__name__)

LAYOUT_VERSION = 2
#: Seconds between refreshes of the slower parts (timeline, performance, status bar).
SLOW_REFRESH_S = 0.5
#: A result older than this no longer describes the modalities: badges then show the pipeline's states.
FRESH_RESULT_S = 1.0
#: Keyboard shortcuts of the modality switches and the comparison (Help ▸ Keyboard shortcuts lists all).
MODALITY_SHORTCUTS = {"vision": "Ctrl+1", "audio": "Ctrl+2", "text": "Ctrl+3"}
COMPARE_SHORTCUTS = {"vision": "Ctrl+Shift+1", "audio": "Ctrl+Shift+2", "text": "Ctrl+Shift+3"}
#: The longest closing may take before the process ends anyway (the window is hidden at once).
CLOSE_BUDGET_S = 1.0


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
        self.resize(1280, 700)
        self.notifier = Notifier(self.statusBar(), self)
        first = _first_pipeline(config, pipeline_factory)
        used = first.pipeline.snapshot().method
        if config.method and used != config.method and not first.problem:
            notes = [f"No checkpoint for {method_name(config.method)} is loaded"
                     + (f": using {method_name(used)}" if used else ""), *notes]
        self.controller = PipelineController(first.pipeline, pipeline_factory, self,
                                             failed_sources=config.sources if first.source_problem else None)
        self.controller.replaced.connect(self._on_replaced)
        self._t0 = time.monotonic()
        self._build_views()
        self.sources = SourceControls(self.controller, self.notifier, self.settings, self)
        self.model = ModelControls(self.controller, self.notifier, self.settings, self)
        self.session = SessionControls(self.controller, self.notifier, self.settings, self)
        self.calibration: CalibrationDialog | None = None
        self.baseline_dialog: BaselineDialog | None = None
        self._build_menus()
        self._build_status_bar()
        self._default_layout = self.saveState(LAYOUT_VERSION)
        self._layout_restored = self._restore_layout()
        self._notes = [n for n in notes if n]
        self._problem, self._problem_details = first.problem, first.details
        self._source_problem = first.source_problem
        self.startup_errors: list[tuple[str, str]] = []
        self._list_devices = list_devices
        self._transcripts = 0
        self._model_error = ""
        self._ended = False
        self._last_slow = 0.0
        self._render_error = ""
        self.running = False
        self.closed = False
        self.stopped_cleanly = True
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
        self.emotions.compare_requested.connect(self.set_compare)
        self.timeline = TimelinePlot()
        self.transcript = TranscriptView(self._t0)
        self.performance = PerformancePanel()
        right, bottom = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea
        self.docks = {name: self._dock(title, widget, area) for name, title, widget, area in (
            ("modalities", "Modalities", self.modalities, right), ("emotion", "Emotion", self.emotions, right),
            ("timeline", "Timeline", self.timeline, bottom), ("transcript", "Transcript", self.transcript, bottom),
            ("performance", "Performance", self.performance, bottom))}
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)  # full-height panels
        self.splitDockWidget(self.docks["timeline"], self.docks["transcript"], Qt.Orientation.Horizontal)
        self.tabifyDockWidget(self.docks["transcript"], self.docks["performance"])  # secondary: one tab each
        self.docks["transcript"].raise_()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        if area == Qt.DockWidgetArea.RightDockWidgetArea:  # on a small screen the panels scroll, not the window
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setWidget(widget)
            dock.setWidget(scroll)
        else:
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
        self.baseline_action = self.session.menu.addAction("Neutral &baseline...", self.show_baseline)
        self.baseline_action.setToolTip("A few seconds of your resting face and calm voice, so that your resting "
                                        "state reads as neutral")
        for menu in (self.sources.menu, self.model.menu, self.session.menu):
            bar.addMenu(menu)
        self._build_modality_menu(bar.addMenu("M&odalities"))
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
        themes = view.addMenu("&Theme")
        group = QActionGroup(themes)
        saved = keys.read(self.settings, keys.THEME, "system", str)
        self.theme_actions: dict[str, QAction] = {}
        for key, title in THEMES.items():
            action = QAction(title, themes, checkable=True)
            action.setChecked(key == saved)
            action.triggered.connect(lambda _=False, k=key: self.set_theme(k))
            group.addAction(action)
            themes.addAction(action)
            self.theme_actions[key] = action
        help_menu = bar.addMenu("&Help")
        shortcuts = help_menu.addAction("&Keyboard shortcuts", self.show_shortcuts)
        shortcuts.setShortcut(QKeySequence.StandardKey.HelpContents)
        help_menu.addAction("&Legend: states and colours", self.show_legend)
        help_menu.addSeparator()
        help_menu.addAction("&About IMER, model card and licences...", self.show_about)

    def _build_modality_menu(self, menu) -> None:
        """Shortcuts that flip the modality switches and the comparison buttons."""
        self.modality_actions: dict[str, QAction] = {}
        for name in PANEL_ORDER:
            action = menu.addAction(f"Switch {name} on/off")
            action.setShortcut(MODALITY_SHORTCUTS[name])
            action.triggered.connect(lambda _=False, n=name: self.modalities.switches[n].toggle())
            self.modality_actions[name] = action
        menu.addSeparator()
        for name in PANEL_ORDER:
            action = menu.addAction(f"Hide {name} (compare)")
            action.setShortcut(COMPARE_SHORTCUTS[name])
            action.triggered.connect(lambda _=False, n=name: self.emotions.hide_buttons[n].toggle())
            self.modality_actions[f"compare_{name}"] = action
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
        bottom = [self.docks[name] for name in ("timeline", "transcript")]
        width = max(self.width() - 380, 600)
        self.resizeDocks(bottom, [width * 2 // 3, width // 3], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["timeline"]], [max(180, self.height() * 2 // 5)], Qt.Orientation.Vertical)
        right = [self.docks["modalities"], self.docks["emotion"]]
        self.resizeDocks(right, [150, max(300, self.height() - 220)], Qt.Orientation.Vertical)
        self.resizeDocks(right, [380, 380], Qt.Orientation.Horizontal)

    # -- running -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the pipeline (in the background) and the render timer.

        Sources that could not be opened start nothing: the window says why and
        waits for another source (Source menu).
        """
        if self._source_problem:
            self._started(None, self._source_problem)
        else:
            self.controller.start(self._started)
        self.timer.start()
        if not self._layout_restored:
            self._default_sizes()
        if self._list_devices:
            self.sources.refresh_devices()
        if self._problem:
            self.notifier.error(self._problem, dialog=True, details=self._problem_details)
        for text, details in self.startup_errors:
            self.notifier.error(text, dialog=True, details=details)
        for note in self._notes:
            self.notifier.message(note, 60_000)

    def _started(self, _: object, error: str) -> None:
        if error:
            self.notifier.error(f"Could not start ({short_reason(error)}). Choose another source in the Source "
                                "menu (a media file, the demo clip or the camera) to start again.", dialog=True,
                                details=error)
            self.video.show_placeholder(f"Could not start\n{short_reason(error)}\n\n"
                                        "Choose another source in the Source menu")
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

    def set_compare(self, name: str) -> None:
        """Compare mode: hide ``name`` (observed) for the second prediction; "" turns it off."""
        hidden = [name] if name else []
        self.controller.submit(lambda p: p.set_compare_hidden(hidden))
        self.notifier.message(f"Comparing: {name} observed vs {name} hidden and recovered" if name
                              else "Comparison of a hidden modality off")

    def set_theme(self, key: str) -> None:
        """Follow the system palette, or force light or dark (remembered)."""
        self.settings.setValue(keys.THEME, key)
        apply_theme(QApplication.instance(), key)
        for name, action in self.theme_actions.items():
            action.setChecked(name == key)

    def show_shortcuts(self) -> HelpDialog:
        """Help ▸ Keyboard shortcuts."""
        rows = [(MODALITY_SHORTCUTS[n], f"switch {n} on/off") for n in PANEL_ORDER]
        rows += [(COMPARE_SHORTCUTS[n], f"hide {n} (compare: recovered vs observed)") for n in PANEL_ORDER]
        rows += [(a.shortcut().toString(), a.text().replace("&", "")) for a in self._shortcut_actions()]
        return self._help("Keyboard shortcuts", shortcuts_html(rows))

    def _shortcut_actions(self) -> list[QAction]:
        seen = set(MODALITY_SHORTCUTS.values()) | set(COMPARE_SHORTCUTS.values())
        out = []
        for action in self.findChildren(QAction):
            key = action.shortcut().toString()
            if key and key not in seen:
                seen.add(key)
                out.append(action)
        return out

    def show_legend(self) -> HelpDialog:
        """Help ▸ Legend: what the badge states and the strip colours mean."""
        return self._help("Legend", legend_html(self.pipeline.snapshot().method))

    def _help(self, title: str, html: str) -> HelpDialog:
        dialog = HelpDialog(title, html, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _on_replaced(self, pipeline: LivePipeline) -> None:
        self.session.stop(reason=" — recording stopped because the pipeline was replaced")
        self._transcripts = 0
        self._model_error = ""
        self.timeline.clear()
        for modality, on in pipeline.enabled.items():
            self.modalities.set_switch(modality.value, on)
        self.sources.sync()
        self.model.sync()
        pipeline.set_compare_hidden([self.emotions.compare_hidden] if self.emotions.compare_hidden else [])
        self.running = not self.closed  # the controller replaces the pipeline only by a started one

    def reset_layout(self) -> None:
        """Put the docks and toolbars back where they are on first start."""
        self.restoreState(self._default_layout, LAYOUT_VERSION)
        self._default_sizes()

    def show_about(self) -> AboutDialog:
        """Open the about box (model card and licences); it is deleted when closed."""
        view = self.pipeline.snapshot()
        dialog = AboutDialog(view.checkpoints, view.device, self)
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

    def show_baseline(self) -> BaselineDialog:
        """Open (or raise) the non-modal neutral-baseline dialog."""
        if self.baseline_dialog is None:
            self.baseline_dialog = BaselineDialog(self)
        self.baseline_dialog.show()
        self.baseline_dialog.raise_()
        self.baseline_dialog.activateWindow()
        return self.baseline_dialog

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
        statuses, recovered, method = self.window_states(latest, now)
        self.modalities.update_statuses(statuses, recovered, method)
        if latest is None:  # before the engine's first result: say what the wait is for
            self.emotions.show_waiting(sorted({s.reason for s in statuses.values()
                                               if s.state is ModalityState.LOADING}))
        vision = statuses.get(Modality.VISION)
        reason = vision.reason if vision is not None and vision.state is ModalityState.FAILING else ""
        raw = pipeline.latest_frame()
        self.video.update_view(pipeline.latest_face(), raw, pipeline.enabled[Modality.VISION], reason, now)
        events, self._transcripts = pipeline.transcripts_since(self._transcripts)
        self.transcript.append_events(events)
        if now - self._last_slow >= SLOW_REFRESH_S:
            self._last_slow = now
            self._render_slow(pipeline, now)

    def window_states(self, latest, now: float) -> tuple[dict, tuple[str, ...], str | None]:
        """Statuses, recovered modalities and method of one window: the badges, caption and strips agree.

        The newest result's own statuses while it is fresh (the window the
        bars and the timeline show); otherwise the pipeline's current ones.
        """
        if latest is not None and now - latest.t_monotonic <= FRESH_RESULT_S:
            return {s.modality: s for s in latest.statuses}, latest.recovered, latest.method
        return self.pipeline.statuses(), (), None

    def _render_slow(self, pipeline: LivePipeline, now: float) -> None:
        self.timeline.redraw(now)
        view = pipeline.snapshot()
        self.performance.show_stats(pipeline.stats(), view.method, view.sampler_steps)
        self.session.refresh()
        if view.model_error != self._model_error:
            self._model_error = view.model_error
            if view.model_error and view.methods:
                self.notifier.error(view.model_error)
            self.model.sync()
        if view.ended != self._ended:
            self._ended = view.ended
            if self._ended:
                self.notifier.message("End of the media file (Source ▸ Open media file... to play another)", 0)

    # -- closing -----------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.settings.setValue(keys.GEOMETRY, self.saveGeometry())
        self.settings.setValue(keys.STATE, self.saveState(LAYOUT_VERSION))
        self.hide()  # stopping the threads may take seconds: do not leave a frozen window on screen
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self, budget_s: float = CLOSE_BUDGET_S) -> bool:
        """Stop recording, every pipeline thread and the devices (idempotent).

        Files are closed first (the recording, the settings).  The threads
        get ``budget_s`` seconds in all; a model load or speech recognition
        still running then cannot be interrupted, and the caller ends the
        process (:func:`app.gui.main.launch`), which releases the devices.
        Returns whether everything stopped within the budget.
        """
        if self.closed:
            return self.stopped_cleanly
        self.closed = True
        deadline = time.monotonic() + budget_s
        self.timer.stop()
        if self.calibration is not None:
            self.calibration.shutdown()
        if self.baseline_dialog is not None:
            self.baseline_dialog.shutdown()
        self.session.stop()
        self.settings.sync()
        self.sources.shutdown(max(0.05, deadline - time.monotonic()))
        self.stopped_cleanly = self.controller.shutdown(max(0.1, deadline - time.monotonic()))
        return self.stopped_cleanly


@dataclass(frozen=True)
class FirstPipeline:
    """The window's first pipeline and what went wrong building it.

    Attributes:
        pipeline: the pipeline to show.
        problem: one sentence for the user when its checkpoints or device could not be
            used and the shipped models on the automatic device run instead ("" otherwise);
            ``details``: the technical text behind it.
        source_problem: why the sources asked for could not be opened ("" when they
            could); the pipeline is then built on the camera and microphone but must
            not be started: the user chooses another source.
    """

    pipeline: LivePipeline
    problem: str = ""
    details: str = ""
    source_problem: str = ""


def _first_pipeline(config: PipelineConfig, factory: PipelineFactory) -> FirstPipeline:
    """The pipeline of ``config``, with a fallback for each part that cannot be used.

    Checkpoints or a device that cannot be used: the shipped models on auto.
    Sources that cannot be built (a file that is not a media file, or is gone):
    a pipeline on the camera and microphone, not to be started (building one
    opens no device).  A method no loaded checkpoint holds (e.g. saved while
    other checkpoints were loaded) is dropped: the engine's preferred method
    runs instead.
    """
    problem = details = source_problem = ""
    while True:
        try:
            return FirstPipeline(build_pipeline(factory, config), problem, details, source_problem)
        except LiveModelError as exc:
            if problem:
                raise
            what = ("the checkpoint " + ", ".join(config.checkpoints)) if config.checkpoints else \
                f"the device {config.device!r}"
            problem, details = (f"Could not use {what}: {checkpoint_problem(str(exc))}. "
                                "Started with the shipped models on the automatic device instead."), str(exc)
            config = replace(config, checkpoints=(), method=None, device="auto")
        except Exception as exc:  # the sources (a media file that cannot be read): shown, never a crash
            if source_problem:
                raise
            if not is_user_error(exc):
                log.exception("could not build the sources of %s", config.sources.describe())
            source_problem = str(exc) or type(exc).__name__
            config = replace(config, sources=replace(config.sources, source=WEBCAM, loop=False))
