"""Neutral baseline (Session ▸ Neutral baseline...): a few seconds of the user's resting face and calm voice.

A front end of :func:`~imer_core.live.neutral_baseline.record_neutral_baseline`
(the same step as ``imer run --neutral-baseline``): it shows the instruction and
a countdown while a background thread (``imer-gui-baseline``) records the
pipeline's face and voice features; the baseline is then applied to the engine
(the person's resting state is shifted onto the model's training neutral mean)
and saved as ``neutral_baseline.json`` under the sessions root, where
``imer run --baseline-file`` can reuse it.  Cancel stops the recording and
keeps the previous baseline.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog, QDoubleSpinBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout

from imer_core.live.neutral_baseline import (
    BASELINE_FILE,
    DEFAULT_BASELINE_S,
    INSTRUCTION,
    NeutralBaseline,
    record_neutral_baseline,
)

if TYPE_CHECKING:
    from .window import MainWindow

log = logging.getLogger(__name__)
THREAD_NAME = "imer-gui-baseline"


class BaselineDialog(QDialog):
    """Non-modal dialog that records and applies a neutral baseline on the window's pipeline.

    Signals:
        ended(object): the :class:`NeutralBaseline` applied, or ``None`` (cancelled or failed).
    """

    ended = Signal(object)
    _progress = Signal(float)
    _done = Signal(object, str)

    def __init__(self, window: "MainWindow", load_timeout_s: float = 120.0) -> None:
        super().__init__(window)
        self.main_window = window
        self.load_timeout_s = load_timeout_s
        self.setWindowTitle("Neutral baseline")
        self.setModal(False)
        self.baseline: NeutralBaseline | None = None
        self.saved_path: Path | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.instruction = QLabel(INSTRUCTION + " Keep this expression until the countdown ends.")
        self.instruction.setWordWrap(True)
        self.seconds = QDoubleSpinBox()
        self.seconds.setRange(2.0, 60.0)
        self.seconds.setValue(DEFAULT_BASELINE_S)
        self.seconds.setSuffix(" s")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.result_label = QLabel("")  # not `result`: QDialog.result() is the dialog's exit code
        self.result_label.setWordWrap(True)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(QLabel("Duration"))
        row.addWidget(self.seconds)
        row.addStretch(1)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.instruction)
        layout.addLayout(row)
        layout.addWidget(self.bar)
        layout.addWidget(self.result_label)
        self._progress.connect(self._show_progress)
        self._done.connect(self._finish)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start recording (False when a recording runs already)."""
        if self.running:
            return False
        self._stop = threading.Event()
        self.bar.setValue(0)
        self.result_label.setText("Getting ready...")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        seconds = float(self.seconds.value())
        self._thread = threading.Thread(target=self._work, args=(self.main_window.pipeline, seconds, self._stop),
                                        name=THREAD_NAME, daemon=True)
        self._thread.start()
        return True

    def _work(self, pipeline: object, seconds: float, stop: threading.Event) -> None:
        """The recording thread: wait for the models, record, report (never raises)."""
        try:
            deadline = time.monotonic() + self.load_timeout_s
            while not stop.is_set() and time.monotonic() < deadline and getattr(pipeline, "warming_up", False):
                stop.wait(0.2)
            baseline = record_neutral_baseline(pipeline, seconds,
                                               lambda left: self._progress.emit(1.0 - left / seconds), stop.is_set)
            self._done.emit(baseline, "")
        except Exception as exc:  # shown in the dialog
            if not stop.is_set():
                log.warning("neutral baseline failed: %s", exc)
            self._done.emit(None, str(exc) or type(exc).__name__)

    def _show_progress(self, share: float) -> None:
        self.bar.setValue(int(1000 * max(0.0, min(1.0, share))))
        self.result_label.setText("Recording: keep a relaxed face and read the sentence calmly.")

    def _finish(self, baseline: NeutralBaseline | None, error: str) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.baseline = baseline
        if baseline is None:
            self.result_label.setText(f"<span style='color:#c62828'>No baseline: {error}</span>")
            self.ended.emit(None)
            return
        self.bar.setValue(1000)
        used = ", ".join(self.main_window.pipeline.neutral_baseline_modalities())
        counts = ", ".join(f"{m.value} {n}" for m, n in baseline.counts.items())
        try:
            self.saved_path = baseline.save(Path(self.main_window.session.root))
            where = f" Saved to {self.saved_path}."
        except OSError as exc:
            where = f" Not saved ({exc})."
        self.result_label.setText(f"Baseline applied ({counts} samples); it shifts "
                            f"{used or 'nothing: the model has no neutral reference'}.{where}")
        self.main_window.notifier.message("Neutral baseline applied")
        self.ended.emit(baseline)

    def cancel(self) -> None:
        """Stop a running recording (the previous baseline stays)."""
        if self.running:
            self._stop.set()
            self.cancel_button.setEnabled(False)

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Stop and wait for the recording thread (window closing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.cancel()
        super().closeEvent(event)


__all__ = ["BASELINE_FILE", "BaselineDialog", "THREAD_NAME"]
