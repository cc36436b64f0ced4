"""The desktop window on the live pipeline (pytest-qt, offscreen, fake capture + tiny checkpoints).

The window drives the same LivePipeline as ``imer run``; these tests check
that what the pipeline produces reaches the widgets and that the window's
controls reach the pipeline.
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from dataclasses import replace

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from gui_fixtures import WAIT_MS, predicting  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from app.gui import settings as keys  # noqa: E402
from imer_core.config import LIVE_EMOTIONS  # noqa: E402
from imer_core.live.health import ModalityState  # noqa: E402
from imer_core.live.parts import SourceSpec, open_sources  # noqa: E402
from imer_core.live.pipeline import LivePipeline  # noqa: E402
from imer_core.modalities import Modality  # noqa: E402


def imer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("imer-")]


def test_predictions_update_bars_timeline_video_and_performance(qtbot, make_window, checkpoints):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    values = window.emotions.bars.values
    assert tuple(values) == LIVE_EMOTIONS and sum(values.values()) == pytest.approx(1.0, abs=1e-3)
    top = window.pipeline.latest_result.top
    assert top is not None and window.emotions.top_label.text().split()[0] in LIVE_EMOTIONS
    qtbot.waitUntil(lambda: len(window.timeline.curve_data("happy")[0]) >= 3, timeout=WAIT_MS)
    xs, ys = window.timeline.curve_data("happy")
    assert (xs <= 0.5).all() and ((ys >= 0) & (ys <= 1)).all()
    assert window.video.frames_shown > 0 and window.video.showing_video
    qtbot.waitUntil(lambda: window.performance.value_text("face_fps").endswith("fps"), timeout=WAIT_MS)
    assert window.performance.value_text("device") == "CPU"
    assert "CM-ARR" in window.performance.value_text("method")
    assert window.modalities.badge_text("vision") == "observed"


def test_toggling_a_modality_changes_badge_and_mask_and_prediction_goes_on(qtbot, make_window, checkpoints, rig):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    pipeline = window.pipeline

    window.modalities.switches["vision"].click()
    qtbot.waitUntil(lambda: window.modalities.badge_text("vision").startswith("disabled")
                    and pipeline.statuses()[Modality.VISION].state is ModalityState.DISABLED
                    and "vision" in pipeline.latest_result.recovered, timeout=WAIT_MS)
    seq = pipeline.latest_result.sequence
    qtbot.waitUntil(lambda: pipeline.latest_result.sequence >= seq + 3, timeout=WAIT_MS)
    result = pipeline.latest_result
    assert result.probabilities is not None and "vision" in result.recovered
    qtbot.waitUntil(lambda: "recovered by CM-ARR" in window.modalities.badge_text("vision"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.timeline.recovered_count("vision") > 0, timeout=WAIT_MS)
    assert not rig.video.running, "switching vision off releases the camera"
    assert "switched off" in window.video.placeholder

    window.modalities.switches["vision"].click()
    qtbot.waitUntil(lambda: window.modalities.badge_text("vision") == "observed", timeout=WAIT_MS)
    assert rig.video.running and window.pipeline.enabled[Modality.VISION]


def test_method_and_sampler_steps_switch_while_running(qtbot, make_window, checkpoints, settings):
    window = make_window(checkpoints=(checkpoints["cmarr"], checkpoints["imder"]), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    box = window.model.method_box
    assert not box.model().item(box.findData("rohydr")).isEnabled()  # no RoHyDR checkpoint

    box.setCurrentIndex(box.findData("imder"))
    box.activated.emit(box.findData("imder"))
    qtbot.waitUntil(lambda: window.pipeline.latest_result.method == "imder"
                    and window.pipeline.latest_result.probabilities is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.emotions.detail.text().startswith("IMDer"), timeout=WAIT_MS)

    window.model.steps_box.setValue(3)
    qtbot.waitUntil(lambda: window.pipeline.latest_result.sampler_steps == 3
                    and window.pipeline.latest_result.probabilities is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "3 sampler steps" in window.performance.value_text("method"), timeout=WAIT_MS)
    # the choice is saved by the task's callback, which may arrive after the engine already uses it
    qtbot.waitUntil(lambda: str(settings.value(keys.SAMPLER_STEPS)) == "3", timeout=WAIT_MS)
    assert settings.value(keys.METHOD) == "imder"


def test_loading_a_checkpoint_rebuilds_the_pipeline(qtbot, make_window, checkpoints):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    window.modalities.switches["text"].click()
    old = window.pipeline
    with qtbot.waitSignal(window.model.rebuilt, timeout=WAIT_MS) as blocker:
        window.model.load_checkpoints([checkpoints["imder"]])
    assert blocker.args == [""]
    assert window.pipeline is not old and window.pipeline.bank.methods == ["cmarr", "imder"]
    assert not window.pipeline.enabled[Modality.TEXT], "the switches survive the rebuild"
    assert window.model.method_box.model().item(window.model.method_box.findData("imder")).isEnabled()
    qtbot.waitUntil(lambda: window.pipeline.latest_result is not None
                    and window.pipeline.latest_result.probabilities is not None, timeout=WAIT_MS)

    with qtbot.waitSignal(window.model.rebuilt, timeout=WAIT_MS) as blocker:
        window.model.load_checkpoints([__file__])  # not a checkpoint: rolls back
    assert blocker.args[0] and window.pipeline.bank.methods == ["cmarr", "imder"]
    assert "Could not load the model" in window.statusBar().currentMessage()
    assert "weights_only" not in window.statusBar().currentMessage()  # technical text behind Details
    seq = window.pipeline.latest_result.sequence
    qtbot.waitUntil(lambda: window.pipeline.latest_result.sequence > seq + 2, timeout=WAIT_MS)


def test_recording_writes_a_session_folder_and_exports_it(qtbot, make_window, checkpoints, tmp_path):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    window.session.record_action.trigger()
    assert window.session.recording is not None and "REC" in window.session.label.text()
    qtbot.waitUntil(lambda: window.session.recording.recorder.rows >= 5, timeout=WAIT_MS)
    window.session.record_action.trigger()
    folder = window.session.last_folder
    assert window.session.recording is None and folder.parent == tmp_path / "sessions"
    assert json.loads((folder / "session.json").read_text())["app"] == "imer desktop window"
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) >= 5 and all(r["method"] == "cmarr" for r in rows)
    assert any(r["probabilities"] is not None for r in rows)
    with open(folder / "predictions.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0][:2] == ["t_session", "t_monotonic"] and len(table) == len(rows) + 1
    assert (folder / "transcript.jsonl").is_file()
    copy = window.session.export_to(tmp_path / "export")
    assert (copy / "predictions.csv").read_text() == (folder / "predictions.csv").read_text()


def test_a_failed_source_switch_rolls_back_and_says_so(qtbot, make_window, checkpoints, rig, settings):
    def sources(spec):
        if spec.camera == 7:
            raise OSError("camera 7 is not there")
        return rig.video, rig.audio

    window = make_window(parts=replace(rig.parts(), sources=sources), checkpoints=(checkpoints["cmarr"],))
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    with qtbot.waitSignal(window.sources.switched, timeout=WAIT_MS) as blocker:
        window.sources.use_camera(7)
    assert "camera 7 is not there" in blocker.args[0] and "kept camera 0" in blocker.args[0]
    assert "could not switch to camera 7" in window.statusBar().currentMessage()
    assert window.pipeline.config.sources.camera == 0 and rig.video.running
    assert rig.video.starts == 1  # built before the old camera stops: a source that cannot be built interrupts nothing
    seq = window.pipeline.latest_result.sequence
    qtbot.waitUntil(lambda: window.pipeline.latest_result.sequence > seq + 2, timeout=WAIT_MS)

    with qtbot.waitSignal(window.sources.switched, timeout=WAIT_MS) as blocker:
        window.sources.use_camera(2)
    assert blocker.args == [""] and window.pipeline.config.sources.camera == 2
    assert "Now using camera 2" in window.statusBar().currentMessage()
    assert int(settings.value(keys.CAMERA)) == 2


def test_without_a_trained_model_the_window_says_so(qtbot, make_window):
    window = make_window(use_shipped=False, notes=["No camera found: playing the demo clip"])
    assert window.statusBar().currentMessage() == "No camera found: playing the demo clip"
    qtbot.waitUntil(lambda: "no trained model" in window.emotions.detail.text(), timeout=WAIT_MS)
    assert window.emotions.top_label.text() == "no prediction" and not window.emotions.has_prediction
    assert window.model.label.text() == "No trained model loaded" and not window.model.method_box.isEnabled()
    qtbot.waitUntil(lambda: window.video.frames_shown > 0, timeout=WAIT_MS)  # the rest still runs
    assert window.timeline.point_count() == 0


def test_device_menus_list_cameras_and_say_why_microphones_are_missing(qtbot, make_window):
    from imer_core.live.sources.camera import CameraInfo

    window = make_window(use_shipped=False)
    window.sources._devices_listed(([CameraInfo(0, "Integrated", 640, 480), CameraInfo(2, "USB", 1280, 720)],
                                    [], "PortAudio library not found (install libportaudio2)"), "")
    cameras = [a.text() for a in window.sources.camera_menu.actions()]
    assert cameras == ["0: Integrated (640x480)", "2: USB (1280x720)"]
    assert window.sources.camera_menu.actions()[0].isChecked()
    mics = window.sources.mic_menu.actions()
    assert mics[0].text() == "Default microphone" and mics[0].isChecked()
    assert "PortAudio library not found" in mics[-1].text() and not mics[-1].isEnabled()


def test_about_box_shows_model_card_and_licences(qtbot, make_window):
    window = make_window(use_shipped=False)
    dialog = window.show_about()
    qtbot.addWidget(dialog)
    assert dialog.testAttribute(Qt.WidgetAttribute.WA_DeleteOnClose), "closed about boxes do not pile up"
    licences = dialog.tab_text("Licences")
    assert "MIT License" in licences and "Apache" in licences
    card = dialog.tab_text("Model card")
    assert card.strip()
    assert "none loaded" in dialog.tab_text("About")


def test_closing_stops_every_thread_and_releases_the_devices(qtbot, make_window, checkpoints, rig, settings):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    window.session.start()
    window.close()
    assert window.closed and window.session.recording is None
    qtbot.waitUntil(lambda: not imer_threads(), timeout=5_000)
    assert not rig.video.running and not rig.audio.running
    assert not window.pipeline.engine.running
    assert settings.value(keys.GEOMETRY) is not None and settings.value(keys.STATE) is not None
    time.sleep(0.3)
    assert not rig.video.running, "nothing restarts the camera after closing"


def test_a_failed_start_on_a_bad_file_recovers_when_another_file_is_opened(qtbot, make_window, checkpoints, rig,
                                                                            tmp_path):
    broken, good = tmp_path / "broken.mp4", tmp_path / "good.mp4"
    broken.write_bytes(b"this is not a video")

    def sources(spec):  # the real media source fails on the broken file; the "good" one plays the fakes
        return open_sources(spec) if spec.source == str(broken) else (rig.video, rig.audio)

    window = make_window(parts=replace(rig.parts(), sources=sources), sources=SourceSpec(str(broken)),
                         checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: "Could not start" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    message = window.statusBar().currentMessage()
    assert "broken.mp4" in message and window.notifier.dialog_open
    assert "Errno" not in message and "Errno" not in window.notifier.dialog.text()  # readable, codes dropped
    assert "Errno" in window.notifier.dialog.detailedText()  # the technical text behind Details
    assert not window.running and not window.controller.running and "Could not start" in window.video.placeholder

    with qtbot.waitSignal(window.sources.switched, timeout=WAIT_MS) as blocker:
        window.sources.open_path(broken)  # still broken: says so, nothing runs
    assert blocker.args[0].startswith("could not start on file broken.mp4") and "NoneType" not in blocker.args[0]
    assert not window.running and not window.pipeline.snapshot().started

    old = window.pipeline
    with qtbot.waitSignal(window.sources.switched, timeout=WAIT_MS) as blocker:
        window.sources.open_path(good)
    assert blocker.args == [""] and "Started on file good.mp4" in window.statusBar().currentMessage()
    assert window.pipeline is not old and window.pipeline.config.sources.source == str(good)
    assert window.running and "good.mp4" in window.sources.label.text()
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    assert window.pipeline.engine.method == "cmarr" and rig.video.running
    assert window.video.frames_shown > 0

    with qtbot.waitSignal(window.sources.switched, timeout=WAIT_MS) as blocker:
        window.sources.use_camera(3)  # now running: an ordinary switch
    assert blocker.args == [""] and "Now using camera 3" in window.statusBar().currentMessage()


def test_a_missing_file_at_startup_is_shown_and_nothing_opens_the_camera(qtbot, make_window, checkpoints, rig,
                                                                        tmp_path):
    missing = tmp_path / "gone.mp4"

    def sources(spec):  # the real media source for files (raises on a missing one); the fakes for the camera
        return open_sources(spec) if spec.is_file else (rig.video, rig.audio)

    window = make_window(parts=replace(rig.parts(), sources=sources), sources=SourceSpec(str(missing)),
                         checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: "Could not start" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert "media file not found" in window.statusBar().currentMessage() and window.notifier.dialog_open
    assert "gone.mp4" in window.notifier.dialog.text()
    assert "Could not start" in window.video.placeholder and "gone.mp4" in window.sources.label.text()
    assert not window.running and not window.controller.running and not window.pipeline.snapshot().started
    with qtbot.waitSignal(window.model.rebuilt, timeout=WAIT_MS) as blocker:
        window.model.load_checkpoints([checkpoints["imder"]])  # retries the file asked for, not the camera
    assert "gone.mp4" in blocker.args[0] and not window.running and "gone.mp4" in window.sources.label.text()
    time.sleep(0.3)
    assert rig.video.starts == 0 and rig.audio.starts == 0  # no camera, no microphone
    assert [t.name for t in imer_threads() if not t.name.startswith("imer-gui-")] == []  # no pipeline thread
    with qtbot.waitSignal(window.sources.switched, timeout=WAIT_MS) as blocker:
        window.sources.use_webcam()  # the user's choice: now the camera starts
    assert blocker.args == [""] and window.running and rig.video.starts == 1
    assert "camera 0" in window.sources.label.text()


def test_a_missing_checkpoint_and_a_missing_file_at_startup_are_both_shown(qtbot, make_window, rig, tmp_path):
    def sources(spec):
        return open_sources(spec) if spec.is_file else (rig.video, rig.audio)

    window = make_window(parts=replace(rig.parts(), sources=sources), sources=SourceSpec(str(tmp_path / "gone.mp4")),
                         checkpoints=(str(tmp_path / "gone.pt"),), use_shipped=False)
    assert "gone.mp4" in window.notifier.dialog.text() and "Could not start" in window.video.placeholder
    assert "Could not use the checkpoint" in window.notifier.full_text and "gone.pt" in window.notifier.full_text
    assert not window.running and not window.controller.running and rig.video.starts == 0


def test_a_model_reload_after_a_failed_start_shows_the_new_pipeline(qtbot, make_window, checkpoints, rig):
    attempts = []

    def sources(spec):  # the camera is busy at the first try only
        attempts.append(spec)
        if len(attempts) == 1:
            raise OSError("camera 0 is busy")
        return rig.video, rig.audio

    window = make_window(parts=replace(rig.parts(), sources=sources), checkpoints=(checkpoints["cmarr"],),
                         method="cmarr")
    qtbot.waitUntil(lambda: "camera 0 is busy" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert not window.running
    with qtbot.waitSignal(window.model.rebuilt, timeout=WAIT_MS) as blocker:
        window.model.load_checkpoints([checkpoints["imder"]])
    assert blocker.args == [""] and window.running and window.pipeline.bank.methods == ["cmarr", "imder"]
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)


def test_an_unavailable_saved_method_falls_back_to_a_loaded_one(qtbot, make_window, checkpoints):
    window = make_window(checkpoints=(checkpoints["cmarr"],), method="imder")  # e.g. saved with IMDer loaded
    assert "No checkpoint for IMDer is loaded: using CM-ARR" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    assert window.pipeline.engine.method == "cmarr" and window.pipeline.latest_result.method == "cmarr"


def test_closing_during_a_model_reload_opens_no_device_afterwards(qtbot, make_window, checkpoints, rig):
    gate, builds, parts = threading.Event(), [], rig.parts()

    def factory(config):  # the reload's pipeline is built only once the gate opens
        builds.append(config)
        if len(builds) > 1:
            gate.wait(10)
        return LivePipeline(config, parts)

    window = make_window(factory=factory, checkpoints=(checkpoints["cmarr"],), method="cmarr")
    qtbot.waitUntil(lambda: predicting(window), timeout=WAIT_MS)
    old = window.pipeline
    window.model.load_checkpoints([checkpoints["imder"]])
    qtbot.waitUntil(lambda: len(builds) == 2, timeout=WAIT_MS)  # the reload runs: old stopped, new being built
    window.set_modality("vision", True)  # queued behind the reload (would reopen the camera): dropped on closing
    window.controller.shutdown(timeout=0.2)  # as if the models took longer to load than closing waits
    window.close()
    assert window.closed and not window.isVisible()
    gate.set()
    qtbot.waitUntil(lambda: not imer_threads(), timeout=10_000)
    assert window.pipeline is old and not old.engine.running and not window.controller.running
    assert not rig.video.running and not rig.audio.running
    time.sleep(0.3)
    assert not rig.video.running and not rig.audio.running, "nothing opens the devices after closing"
