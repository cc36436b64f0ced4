"""Guided calibration (Session ▸ Calibrate...): act each emotion while every modality is recorded.

The dialog is a front end of :class:`~imer_core.live.calibration.CalibrationRun`
(the same run as ``imer run --calibrate``): it explains what happens, offers to
switch every modality on, then shows each step's instruction, the sentence to
read aloud and a countdown while the run collects windows in a background
thread (``imer-gui-calibration``; progress reaches the GUI through queued
signals).  A finished run leaves ``calibration.npz`` in a new session folder
under the sessions root and the dialog shows the ``imer-train finetune``
command that turns it into a personal checkpoint.  Cancel (or closing the
window) stops the run and discards what it collected.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from imer_core.live.calibration import (
    CALIBRATION_FILE,
    DEFAULT_SCRIPT,
    CalibrationProgress,
    CalibrationRun,
    CalibrationStep,
)
from imer_core.live.health import ModalityState
from imer_core.live.session import new_session_dir

from . import settings as keys
from .style import MODALITY_TITLES, PANEL_ORDER, STATE_COLORS

if TYPE_CHECKING:
    from imer_core.live.pipeline import LivePipeline

    from .window import MainWindow

log = logging.getLogger(__name__)

SECONDS = "calibration/seconds"
THREAD_NAME = "imer-gui-calibration"
#: Personal checkpoint suggested in the fine-tuning command (under the sessions root).
PERSONAL_CHECKPOINT = "personal.pt"
#: Below this share of windows with a modality, the summary warns.
LOW_SHARE = 0.5

INTRO = ("<p>For each of the {steps} emotions you get an instruction and a sentence to read aloud. Act the "
         "emotion with your face and voice while you read: camera, microphone and transcript are recorded "
         "together, which gives paired face + voice + text examples of <i>you</i>.</p>"
         "<p>Sit in good light facing the camera, in a quiet room. It takes about {minutes}. The windows are "
         "written to <code>{file}</code> in a new session folder; <code>imer-train finetune</code> turns them "
         "into a personal checkpoint. Cancel discards the run.</p>")


def quote_path(path: "str | Path") -> str:
    """``path`` quoted for the user's shell."""
    text = str(path)
    if os.name == "nt":
        return f'"{text}"' if " " in text else text
    return shlex.quote(text)


def finetune_command(root: "str | Path", out: "str | Path") -> str:
    """The command that fine-tunes the shipped model on every calibration under ``root``."""
    return f"imer-train finetune --sessions {quote_path(root)} --out {quote_path(out)}"


def _label(text: str = "", size_pt: int = 0, bold: bool = False, italic: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    style = (f"font-size: {size_pt}pt;" if size_pt else "") + ("font-weight: bold;" if bold else "") + \
            ("font-style: italic;" if italic else "")
    if style:
        label.setStyleSheet(f"QLabel {{ {style} }}")
    return label


class CalibrationDialog(QDialog):
    """Non-modal dialog that runs a guided calibration on the window's pipeline.

    Args:
        window: the main window (pipeline controller, settings, modality switches, sources, checkpoints).
        script: the steps; the spin box sets every step's duration.
        settle_s, sample_every_s: passed to :class:`CalibrationRun`.
        load_timeout_s: longest wait for the models and the first data before the first step.

    Signals:
        progressed(object): a :class:`CalibrationProgress` (about 20 per second while a step runs).
        ended(object): the run ended; the ``calibration.npz`` path, or ``None`` (cancelled or failed).
    """

    progressed = Signal(object)
    ended = Signal(object)
    _waiting = Signal(str)
    _done = Signal(object, str)

    def __init__(self, window: "MainWindow", script: Sequence[CalibrationStep] = DEFAULT_SCRIPT,
                 settle_s: float = 1.5, sample_every_s: float = 0.5, load_timeout_s: float = 120.0) -> None:
        super().__init__(window)
        self.main_window = window
        self.script, self.settle_s, self.sample_every_s = tuple(script), settle_s, sample_every_s
        self.load_timeout_s = load_timeout_s
        self.setWindowTitle("Calibrate — act each emotion")
        self.setModal(False)
        self.resize(640, 480)
        self.result_path: Path | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cancel_reason = ""
        self._shown_step = -1
        self.pages = QStackedWidget()
        self.pages.addWidget(self._intro_page())
        self.pages.addWidget(self._run_page())
        self.pages.addWidget(self._done_page())
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages, 1)
        layout.addLayout(bottom)
        self.progressed.connect(self._show_progress)
        self._waiting.connect(self._show_waiting)
        self._done.connect(self._finished)
        window.controller.replaced.connect(self._pipeline_replaced)
        self.timer = QTimer(self)
        self.timer.setInterval(400)
        self.timer.timeout.connect(self.refresh)
        self.refresh()

    # -- pages -------------------------------------------------------------------------------
    def _intro_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(_label("Guided calibration", 16, bold=True))
        self.intro = _label()
        layout.addWidget(self.intro)
        self.readiness = _label()
        layout.addWidget(self.readiness)
        row = QHBoxLayout()
        self.enable_button = QPushButton("Switch all modalities on")
        self.enable_button.clicked.connect(self.enable_all)
        self.webcam_button = QPushButton("Use camera and microphone")
        self.webcam_button.clicked.connect(lambda: self.main_window.sources.use_webcam())
        row.addWidget(self.enable_button)
        row.addWidget(self.webcam_button)
        row.addStretch(1)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.seconds = QDoubleSpinBox()
        self.seconds.setRange(1.0, 60.0)
        self.seconds.setDecimals(1)
        self.seconds.setSingleStep(1.0)
        self.seconds.setSuffix(" s")
        self.seconds.setValue(keys.read(self.main_window.settings, SECONDS, 10.0, float))
        self.seconds.setToolTip("How long each emotion is recorded")
        self.seconds.valueChanged.connect(self._seconds_changed)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        row.addWidget(QLabel("Seconds per emotion:"))
        row.addWidget(self.seconds)
        row.addStretch(1)
        row.addWidget(self.start_button)
        layout.addLayout(row)
        self.message = _label()
        layout.addWidget(self.message)
        layout.addStretch(1)
        self._describe(self.seconds.value())
        return page

    def _run_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.step_title = _label("", 12, bold=True)
        self.instruction = _label("", 18, bold=True)
        self.sentence = _label("", 22, italic=True)
        self.sentence.setStyleSheet("QLabel { font-size: 22pt; font-style: italic; padding: 12px; "
                                    "border: 1px solid #bdbdbd; border-radius: 6px; }")
        self.countdown = _label("", 14)
        self.step_bar = QProgressBar()
        self.step_bar.setRange(0, 1000)
        self.step_bar.setTextVisible(False)
        self.overall_bar = QProgressBar()
        self.overall_bar.setFormat("step %v of %m")
        self.windows_label = _label()
        self.live_status = _label()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.cancel())
        for widget in (self.step_title, self.instruction, self.sentence, self.countdown, self.step_bar,
                       self.overall_bar, self.windows_label, self.live_status):
            layout.addWidget(widget)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        return page

    def _done_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(_label("Calibration recorded", 16, bold=True))
        self.summary = _label()
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)
        layout.addWidget(_label("Fine-tune the shipped model on every calibration in the sessions folder "
                                "(a few minutes on a CPU):"))
        self.command = QLineEdit()
        self.command.setReadOnly(True)
        self.copy_button = QPushButton("Copy command")
        self.copy_button.clicked.connect(self.copy_command)
        row = QHBoxLayout()
        row.addWidget(self.command, 1)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        layout.addWidget(_label("Then load the personal checkpoint with <b>Model ▸ Load checkpoints...</b> "
                                "(or start the app with <code>imer --checkpoint &lt;path&gt;</code>)."))
        row = QHBoxLayout()
        load = QPushButton("Load checkpoints...")
        load.clicked.connect(lambda: self.main_window.model.pick_checkpoints())
        again = QPushButton("Calibrate again")
        again.clicked.connect(lambda: self.pages.setCurrentIndex(0))
        row.addWidget(load)
        row.addWidget(again)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)
        return page

    # -- readiness ---------------------------------------------------------------------------
    @property
    def pipeline(self) -> "LivePipeline":
        return self.main_window.pipeline

    @property
    def running(self) -> bool:
        """A calibration thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def refresh(self) -> None:
        """Show the modality states; Start needs every modality switched on."""
        pipeline = self.pipeline
        statuses = {s.modality.value: s for s in pipeline.statuses().values()}
        parts = []
        for name in PANEL_ORDER:
            status = statuses.get(name)
            state = status.state.value if status is not None else "starting"
            text = "observed" if status is not None and status.state is ModalityState.OBSERVED else \
                (status.reason if status is not None else "starting")
            parts.append(f"<span style='color:{STATE_COLORS.get(state, '#616161')}'>■</span> "
                         f"{MODALITY_TITLES[name]}: {text}")
        line = "<br>".join(parts)
        all_on = all(pipeline.enabled.values())
        spec = pipeline.config.sources
        notes = [] if all_on else ["<b>Every modality must be on:</b> switch them on to start."]
        if spec.is_file:
            notes.append(f"The source is a media file ({spec.describe()}): calibration is meant for "
                         "<b>your</b> camera and microphone.")
        self.readiness.setText(line + "".join(f"<p>{n}</p>" for n in notes))
        self.live_status.setText(line)
        self.enable_button.setVisible(not all_on)
        self.webcam_button.setVisible(spec.is_file)
        self.start_button.setEnabled(all_on and not self.running)

    def enable_all(self) -> None:
        """Switch every modality on through the window's switches."""
        for switch in self.main_window.modalities.switches.values():
            if not switch.isChecked():
                switch.setChecked(True)  # emits toggled → the window switches the pipeline

    def _seconds_changed(self, seconds: float) -> None:
        self.main_window.settings.setValue(SECONDS, seconds)
        self._describe(seconds)

    def _describe(self, seconds: float) -> None:
        total = len(self.script) * (seconds + 0.5)
        minutes = f"{total / 60:.0f} minutes" if total >= 90 else f"{total:.0f} seconds"
        self.intro.setText(INTRO.format(steps=len(self.script), minutes=minutes, file=CALIBRATION_FILE))

    # -- running -----------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a run in a new session folder; False when it cannot start."""
        if self.running:
            return False
        seconds = self.seconds.value()
        script = [replace(step, seconds=seconds) for step in self.script]
        try:
            folder = new_session_dir(self.main_window.session.root)
            run = CalibrationRun(self.pipeline, folder, script, self.settle_s, self.sample_every_s)
        except (OSError, ValueError) as exc:
            self.message.setText(f"<span style='color:#c62828'>Cannot start: {exc}</span>")
            return False
        self.result_path, self._cancel_reason, self._shown_step = None, "", -1
        self._stop = threading.Event()
        self.overall_bar.setRange(0, len(script))
        self.overall_bar.setValue(0)
        self.step_bar.setValue(0)
        self._show_waiting("Waiting for the camera, microphone and models...")
        self.pages.setCurrentIndex(1)
        self._thread = threading.Thread(target=self._work, args=(self.pipeline, run, self._stop),
                                        name=THREAD_NAME, daemon=True)
        self._thread.start()
        self.refresh()
        self.main_window.notifier.message(f"Calibrating into {folder}")
        return True

    def _work(self, pipeline: "LivePipeline", run: CalibrationRun, stop: threading.Event) -> None:
        """The calibration thread: wait for the models and the first data, run, discard when stopped."""
        try:
            deadline = time.monotonic() + self.load_timeout_s
            while not stop.is_set() and time.monotonic() < deadline and pipeline.warming_up:
                stop.wait(0.2)
            path = None if stop.is_set() else run.run(self.progressed.emit, stop.is_set)
            error = ""
        except Exception as exc:  # reported in the dialog, never raised in this thread
            if not stop.is_set():
                log.exception("calibration failed")
            path, error = None, str(exc) or type(exc).__name__
            if run.samples == 0 and not stop.is_set():
                error = "no window was collected: check that the camera and the microphone deliver data"
        if stop.is_set():
            _discard(run.folder)
            path = None
        self._done.emit(path, error)

    def cancel(self, reason: str = "Calibration cancelled; nothing was kept.") -> None:
        """Stop a running calibration (it ends within a fraction of a second and is discarded)."""
        if self.running:
            self._cancel_reason = reason
            self._stop.set()
            self.cancel_button.setEnabled(False)
            self.countdown.setText("Stopping...")

    def _pipeline_replaced(self, _: object) -> None:
        self.cancel("Calibration cancelled because the model changed; start it again.")

    def _show_waiting(self, text: str) -> None:
        self.step_title.setText("Getting ready")
        self.instruction.setText(text)
        self.sentence.setText("")
        self.countdown.setText("")
        self.windows_label.setText("")
        self.cancel_button.setEnabled(True)

    def _show_progress(self, progress: CalibrationProgress) -> None:
        step = progress.step
        if progress.index != self._shown_step:
            self._shown_step = progress.index
            self.step_title.setText(f"{step.emotion.upper()} — emotion {progress.index + 1} of {len(self.script)}")
            self.instruction.setText(step.instruction)
            self.sentence.setText(f"“{step.sentence}”")
            self.overall_bar.setValue(progress.index + 1)
        elapsed = step.seconds - progress.remaining_s
        phase = "get ready" if elapsed < self.settle_s else "recording"
        self.countdown.setText(f"{math.ceil(progress.remaining_s)} s left ({phase})")
        self.step_bar.setValue(int(1000 * min(1.0, elapsed / step.seconds)) if step.seconds > 0 else 1000)
        self.windows_label.setText(f"{progress.samples} windows collected")

    def _finished(self, path: Path | None, error: str) -> None:
        if self._thread is not None:
            self._thread.join(1.0)  # it has emitted its last signal; ends at once
            self._thread = None
        if path is None:
            self.pages.setCurrentIndex(0)
            text = self._cancel_reason or f"Calibration failed: {error}"
            color = "#616161" if self._cancel_reason else "#c62828"
            self.message.setText(f"<span style='color:{color}'>{text}</span>")
            if not self._cancel_reason:
                self.main_window.notifier.error(f"calibration failed: {error}")
        else:
            self.result_path = Path(path)
            self._show_summary(self.result_path)
            self.pages.setCurrentIndex(2)
            self.main_window.notifier.message(f"Calibration written to {self.result_path}")
        self.refresh()
        self.ended.emit(self.result_path)

    def _show_summary(self, path: Path) -> None:
        info = json.loads((path.parent / "calibration.json").read_text())
        counts = "".join(f"<tr><td>{emotion}</td><td align='right'>{n}</td></tr>"
                         for emotion, n in info["per_emotion"].items())
        share = info["available_share"]
        shares = ", ".join(f"{MODALITY_TITLES[m]} {share.get(m, 0.0):.0%}" for m in PANEL_ORDER)
        low = [MODALITY_TITLES[m] for m in PANEL_ORDER if share.get(m, 0.0) < LOW_SHARE]
        warning = (f"<p style='color:#c62828'>Few windows have {', '.join(low)}: check that it is observed "
                   "and calibrate again for a better personal model.</p>") if low else ""
        self.summary.setText(f"<p><b>{info['samples']} windows</b> written to <code>{path}</code></p>"
                             f"<table cellspacing='6'><tr><th align='left'>emotion</th><th>windows</th></tr>"
                             f"{counts}</table><p>Windows with each modality: {shares}</p>{warning}")
        root = self.main_window.session.root
        self.command.setText(finetune_command(root, root / PERSONAL_CHECKPOINT))
        self.command.setCursorPosition(0)

    def copy_command(self) -> None:
        """Put the fine-tuning command on the clipboard."""
        QGuiApplication.clipboard().setText(self.command.text())
        self.main_window.notifier.message("Fine-tuning command copied")

    # -- closing -----------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt API)
        self.refresh()
        self.timer.start()
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 (Qt API)
        self.timer.stop()
        super().hideEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.cancel()
        super().closeEvent(event)

    def reject(self) -> None:
        """Escape: cancel a run and hide."""
        self.cancel()
        super().reject()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel a run and wait for its thread (the window is closing)."""
        self.timer.stop()
        self.cancel("Calibration cancelled because the window closed.")
        if self._thread is not None:
            self._thread.join(timeout)


def _discard(folder: Path) -> None:
    """Remove what a cancelled run wrote, and its session folder when nothing else is in it."""
    for name in (CALIBRATION_FILE, "calibration.json"):
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass
