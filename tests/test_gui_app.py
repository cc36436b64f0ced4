"""The ``imer`` command's window start-up, messages and packaging rules (no pipeline running)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMainWindow  # noqa: E402

from app.cli import build_parser, main  # noqa: E402
from app.gui import settings as keys  # noqa: E402
from app.gui.main import startup_args  # noqa: E402
from app.gui.modality_panel import badge_view  # noqa: E402
from app.gui.notify import Notifier  # noqa: E402
from app.gui.performance_panel import format_stat  # noqa: E402
from app.gui.source_controls import demo_clip_path  # noqa: E402
from imer_core.live.health import ModalityState, ModalityStatus  # noqa: E402
from imer_core.live.sources.camera import CameraInfo  # noqa: E402
from imer_core.modalities import Modality  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "imer.ini"), QSettings.Format.IniFormat)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_help_documents_the_window_and_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--source", "--camera", "--mic", "--loop", "--disable", "--method", "--checkpoint",
                   "--sampler-steps", "--device", "run"):
        assert option in text
    assert "window" in text and "demo clip" in text


def test_without_a_camera_the_demo_clip_plays_and_the_window_says_so(settings):
    assert demo_clip_path().is_file(), "assets/demo/demo_clip.mp4 is tracked in git"
    args, notes = startup_args(parse(), settings, list_cameras=lambda: [])
    assert args.source == str(demo_clip_path()) and args.loop
    assert len(notes) == 1 and "No camera found" in notes[0] and "demo clip" in notes[0]


def test_with_a_camera_the_webcam_is_used_and_saved_choices_apply(settings):
    settings.setValue(keys.CAMERA, 5)
    settings.setValue(keys.METHOD, "cmarr")
    settings.setValue(keys.SAMPLER_STEPS, 4)
    settings.setValue(keys.MICROPHONE, "USB")
    cameras = [CameraInfo(2, "cam", 640, 480), CameraInfo(5, "other", 640, 480)]
    args, notes = startup_args(parse(), settings, list_cameras=lambda: cameras)
    assert (args.source, args.camera, args.mic, args.method, args.sampler_steps) == (None, 5, "USB", "cmarr", 4)
    assert notes == []
    args, _ = startup_args(parse("--camera", "2", "--method", "imder"), settings, list_cameras=lambda: cameras)
    assert (args.camera, args.method) == (2, "imder"), "the command line wins over saved settings"
    settings.setValue(keys.CAMERA, 9)  # saved camera gone: the first one found
    assert startup_args(parse(), settings, list_cameras=lambda: cameras)[0].camera == 2


def test_an_explicit_webcam_source_gets_no_demo_fallback(settings):
    args, notes = startup_args(parse("--source", "webcam"), settings, list_cameras=lambda: [])
    assert args.source == "webcam" and notes == []


def test_a_source_file_skips_the_camera_probe(settings, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")

    def probe():
        raise AssertionError("no camera probe for a file")

    args, notes = startup_args(parse("--source", str(clip)), settings, list_cameras=probe)
    assert args.source == str(clip) and notes == []


def test_errors_go_to_the_status_bar_and_at_most_one_dialog(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    notifier = Notifier(window.statusBar(), window)
    for k in range(20):
        notifier.error(f"camera failed ({k})", dialog=True)
    dialogs = [w for w in window.findChildren(object) if type(w).__name__ == "QMessageBox"]
    assert len(dialogs) == 1 and notifier.dialog_open
    assert window.statusBar().currentMessage() == "camera failed (19)"
    dialogs[0].accept()
    assert not notifier.dialog_open


def test_badges_name_the_state_the_method_and_the_reason():
    failing = ModalityStatus(Modality.TEXT, ModalityState.FAILING, "no speech transcribed in the last 15 s")
    view = badge_view(failing, ("text",), "imder")
    assert view.text == "failing · recovered by IMDer" and "no speech" in view.tooltip
    assert badge_view(failing, (), "imder").text == "failing"
    assert badge_view(ModalityStatus(Modality.AUDIO, ModalityState.OBSERVED), (), "cmarr").text == "observed"
    disabled = ModalityStatus(Modality.VISION, ModalityState.DISABLED, "switched off")
    assert badge_view(disabled, ("vision",), "cmarr").text == "disabled · recovered by CM-ARR"
    assert badge_view(None, (), None).text == "starting"


def test_performance_values_are_formatted():
    assert format_stat("device", "cuda") == "CUDA (GPU)" and format_stat("device", "cpu") == "CPU"
    assert format_stat("face_fps", 29.44) == "29.4 fps" and format_stat("end_to_end_ms", 12.34) == "12.3 ms"
    assert format_stat("asr_rtf", None) == "—"


def test_qt_is_imported_only_inside_app_gui():
    pattern = re.compile(r"^\s*(from|import)\s+(PySide6|pyqtgraph|shiboken6)\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for folder in ("app", "imer_core", "training")
                 for p in (ROOT / folder).rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8")) and "gui" not in p.relative_to(ROOT).parts]
    assert offenders == []
    assert not any("imshow" in p.read_text(encoding="utf-8") for p in (ROOT / "app").rglob("*.py"))
