"""The Model menu and toolbar: recovery method, sampler steps, checkpoints, compute device."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFileDialog, QLabel, QMenu, QSpinBox, QToolBar, QWidget

from imer_core.live.pipeline import LivePipeline

from . import settings as keys
from .controller import PipelineController
from .notify import Notifier, checkpoint_problem, short_reason
from .style import method_name

DEVICES = (("auto", "Auto (CUDA when present)"), ("cpu", "CPU"), ("cuda", "CUDA"))
METHOD_SHORTCUT = "Ctrl+M"


def uses_sampler_steps(method: str | None) -> bool:
    """Whether sampler steps mean anything to ``method`` (its class says so; unknown or none: yes)."""
    from imer_core.registry import get_method_class

    try:
        return get_method_class(method).uses_sampler_steps if method else True
    except KeyError:
        return True


def menu_methods(loaded: list[str]) -> list[str]:
    """Methods the menus offer: the registry's live methods by preference, then any other loaded one."""
    from imer_core.registry import live_methods, preferred_methods

    return preferred_methods([*live_methods(), *loaded])


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA device (the *CUDA* device choice is greyed out otherwise)."""
    import torch
    return torch.cuda.is_available()


class ModelControls(QObject):
    """Method and sampler-step switches (applied live) and checkpoint/device choices (rebuild the pipeline).

    Signals:
        rebuilt(str): a checkpoint or device change finished ("" on success, else the error).
    """

    rebuilt = Signal(str)

    def __init__(self, controller: PipelineController, notifier: Notifier, settings: QSettings,
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.controller, self.notifier, self.settings, self._parent = controller, notifier, settings, parent
        self.menu = QMenu("&Model", parent)
        self.toolbar = QToolBar("Model", parent)
        self.toolbar.setObjectName("model_toolbar")
        self.method_box = QComboBox()
        self.steps_box = QSpinBox()
        self.smoothing_box = QDoubleSpinBox()
        self.label = QLabel()
        self._method_actions: dict[str, QAction] = {}
        self._device_actions: dict[str, QAction] = {}
        self.methods: list[str] = []
        """The methods in the menu and the box, in their order (:func:`menu_methods`)."""
        self._build_menu()
        self._build_toolbar()
        self.sync()

    @property
    def pipeline(self) -> LivePipeline:
        """The controller's current pipeline."""
        return self.controller.pipeline

    # -- widgets -----------------------------------------------------------------------------
    def _build_menu(self) -> None:
        self.method_menu = self.menu.addMenu("Recovery &method")
        self._method_group = QActionGroup(self.method_menu)
        self.next_method_action = self.menu.addAction("&Next method", self.next_method)
        self.next_method_action.setShortcut(METHOD_SHORTCUT)
        self.menu.addAction("Load &checkpoints...", self.pick_checkpoints)
        self.menu.addAction("Use the &shipped models", self.use_shipped)
        devices = self.menu.addMenu("Compute &device")
        group = QActionGroup(devices)
        for key, text in DEVICES:
            action = QAction(text, devices, checkable=True)
            action.setEnabled(key != "cuda" or cuda_available())
            action.triggered.connect(lambda _=False, d=key: self.set_device(d))
            group.addAction(action)
            devices.addAction(action)
            self._device_actions[key] = action

    def _set_methods(self, methods: list[str]) -> None:
        """(Re)fill the method menu and box with ``methods`` (their names and summaries from the registry)."""
        from imer_core.registry import method_summary

        if methods == self.methods:
            return
        self.methods = list(methods)
        for action in self._method_actions.values():
            self._method_group.removeAction(action)
            self.method_menu.removeAction(action)
        self._method_actions.clear()
        for method in methods:
            action = QAction(method_name(method), self.method_menu, checkable=True)
            action.triggered.connect(lambda _=False, m=method: self.set_method(m))
            self._method_group.addAction(action)
            self.method_menu.addAction(action)
            self._method_actions[method] = action
        self.method_box.blockSignals(True)
        self.method_box.clear()
        for row, method in enumerate(methods):
            self.method_box.addItem(method_name(method), method)
            self.method_box.setItemData(row, f"{method_name(method)}: {method_summary(method)}",
                                        Qt.ItemDataRole.ToolTipRole)
        self.method_box.blockSignals(False)
        self.method_box.setToolTip(
            "<b>Recovery method</b>: generates the features of every modality that is switched off, loading "
            "or failing, so the prediction keeps using all three.<br>" + "<br>".join(
                f"<b>{method_name(m)}</b>: {method_summary(m)}" for m in methods)
            + f"<br>Greyed out: no checkpoint loaded. {METHOD_SHORTCUT} switches to the next method.")

    def _build_toolbar(self) -> None:
        self.method_box.activated.connect(lambda i: self.set_method(self.method_box.itemData(i)))
        self.method_box.setPlaceholderText("no model")
        self.steps_box.setRange(0, 200)
        self.steps_box.setSpecialValueText("default")
        self.steps_box.setToolTip("Sampling steps of diffusion methods (default: the checkpoint's); greyed out for a "
                                  "method that samples in one pass")
        self.steps_box.setKeyboardTracking(False)  # typing "25" applies 25 once, not 2 then 25
        self.steps_box.valueChanged.connect(self.set_sampler_steps)
        self.toolbar.addWidget(QLabel(" Method: "))
        self.toolbar.addWidget(self.method_box)
        self.toolbar.addWidget(QLabel("  Sampler steps: "))
        self.toolbar.addWidget(self.steps_box)
        self.smoothing_box.setRange(0.0, 10.0)
        self.smoothing_box.setSingleStep(0.25)
        self.smoothing_box.setDecimals(2)
        self.smoothing_box.setSuffix(" s")
        self.smoothing_box.setSpecialValueText("off (raw)")
        self.smoothing_box.setKeyboardTracking(False)
        self.smoothing_box.setToolTip("Time constant of the displayed probabilities (exponential moving average): "
                                      "the bars, top emotion and timeline follow a change within about this "
                                      "long. Off shows every raw prediction. Session files keep both.")
        self.smoothing_box.setValue(keys.read(self.settings, keys.SMOOTHING, self.pipeline.config.smoothing_s,
                                              float))
        self.smoothing_box.valueChanged.connect(self.set_smoothing)
        self.pipeline.set_smoothing(self.smoothing_box.value())  # the saved value (not started yet: no thread)
        self.toolbar.addWidget(QLabel("  Smoothing: "))
        self.toolbar.addWidget(self.smoothing_box)

    def sync(self) -> None:
        """Show the pipeline's methods (greyed out without a checkpoint), method, steps and device."""
        view = self.pipeline.snapshot()
        have = set(view.methods)
        self._set_methods(menu_methods(list(view.methods)))
        model = self.method_box.model()
        for row, method in enumerate(self.methods):
            action = self._method_actions[method]
            usable = method in have and method not in view.refused
            action.setEnabled(usable)
            action.setText(method_name(method) + ("" if usable else " (cannot run here)" if method in have
                                                  else " (no checkpoint)"))
            action.setToolTip(view.refused.get(method, ""))
            item = model.item(row) if isinstance(model, QStandardItemModel) else None   # QComboBox's own model
            if item is not None:
                item.setEnabled(usable)
                if method in view.refused:
                    self.method_box.setItemData(row, f"{method_name(method)} cannot run here: {view.refused[method]}",
                                                Qt.ItemDataRole.ToolTipRole)
        self.show_method(view.method)
        self.steps_box.blockSignals(True)
        self.steps_box.setValue(view.sampler_steps or 0)
        self.steps_box.blockSignals(False)
        for key, action in self._device_actions.items():
            action.setChecked(key == view.config.device)

    def set_smoothing(self, seconds: float) -> None:
        """Apply and remember the display smoothing (0: raw probabilities)."""
        self.settings.setValue(keys.SMOOTHING, float(seconds))
        self.controller.submit(lambda p: p.set_smoothing(float(seconds)))

    def next_method(self) -> None:
        """Switch to the next method that has a checkpoint (wraps around)."""
        view = self.pipeline.snapshot()
        have = [m for m in self.methods if m in view.methods and m not in view.refused]
        if not have:
            self.notifier.error("no trained model loaded (Model ▸ Load checkpoints...)")
            return
        current = view.method
        self.set_method(have[(have.index(current) + 1) % len(have)] if current in have else have[0])

    def show_method(self, method: str | None) -> None:
        """Check ``method`` in the menu and the toolbar and name it in the status bar."""
        for name, action in self._method_actions.items():
            action.setChecked(name == method)
        self.method_box.setCurrentIndex(self.method_box.findData(method) if method else -1)
        view = self.pipeline.snapshot()
        self.method_box.setEnabled(bool(view.methods))
        self.steps_box.setEnabled(uses_sampler_steps(method))
        self.label.setText(f"Model: {method_name(method)} on {view.device.upper()}" if view.methods
                           else "No trained model loaded")

    # -- live switches -----------------------------------------------------------------------
    def set_method(self, method: str) -> None:
        """Switch the recovery method (takes effect at the next prediction)."""
        view = self.pipeline.snapshot()
        if method not in view.methods:
            self.notifier.error(f"no checkpoint for {method_name(method)} is loaded (Model ▸ Load checkpoints...)")
            self.show_method(view.method)
            return
        self.controller.submit(lambda p: p.set_method(method), lambda _, error: self._method_set(method, error))

    def set_sampler_steps(self, steps: int) -> None:
        """Sampler steps (0 = the checkpoint's default)."""
        value = int(steps) or None
        self.controller.submit(lambda p: p.set_sampler_steps(value), lambda _, error: self._steps_set(value, error))

    def _method_set(self, method: str, error: str) -> None:
        if error:  # e.g. the checkpoint was made for other features: the current method keeps running
            self.notifier.error(f"{method_name(method)} cannot run: {checkpoint_problem(error)}", details=error)
            self.sync()
            return
        self.settings.setValue(keys.METHOD, method)
        self.notifier.message(f"Recovery method: {method_name(method)}")
        self.show_method(method)

    def _steps_set(self, steps: int | None, error: str) -> None:
        if error:
            self.notifier.error(error)
        else:
            self.settings.setValue(keys.SAMPLER_STEPS, steps or 0)
            self.notifier.message(f"Sampler steps: {steps or 'checkpoint default'}")

    # -- rebuilding --------------------------------------------------------------------------
    def pick_checkpoints(self) -> None:
        """Ask for checkpoint files (one per method) and load them."""
        paths, _ = QFileDialog.getOpenFileNames(self._parent, "Load live checkpoints", "",
                                                "Checkpoints (*.pt *.pth);;All files (*)")
        if paths:
            self.load_checkpoints(paths)

    def load_checkpoints(self, paths: list[str]) -> None:
        """Add ``paths`` to the checkpoints in use (a method's new file replaces its old one)."""
        current = tuple(str(p) for p in self.pipeline.snapshot().checkpoints.values())
        self._rebuild(checkpoints=current + tuple(str(p) for p in paths), use_shipped=False)

    def use_shipped(self) -> None:
        """Replace the loaded checkpoints by the models shipped in ``assets/`` (rebuilds the pipeline)."""
        self._rebuild(checkpoints=(), use_shipped=True)

    def set_device(self, device: str) -> None:
        """Run the models on ``device`` ("auto", "cpu" or "cuda"; rebuilds the pipeline)."""
        self._rebuild(device=device)

    def _rebuild(self, **changes: Any) -> None:
        view = self.pipeline.snapshot()
        config = replace(view.config, method=view.method, sampler_steps=view.sampler_steps, **changes)
        self.notifier.message("Loading the model...", 0)
        self.controller.rebuild(config, self._rebuilt)

    def _rebuilt(self, pipeline: object, error: str) -> None:
        if error:
            self.notifier.error(f"Could not load the model ({short_reason(error)}). Kept the previous one.",
                                dialog=True, details=error)
        else:
            view = self.pipeline.snapshot()
            self.settings.setValue(keys.DEVICE, view.config.device)
            self.notifier.message(f"Loaded {', '.join(map(method_name, view.methods)) or 'no model'}"
                                  f" on {view.device.upper()}")
        self.sync()
        self.rebuilt.emit(error)
