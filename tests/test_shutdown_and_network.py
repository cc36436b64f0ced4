"""Signals, shutdown, crash-safe recordings, light ``--help`` and no network attempt (subprocesses).

Nothing here asserts on wall-clock speed: the times are measured by
``benchmarks/bench_shutdown.py`` (docs/robustness.md).  Generous time-outs
only keep a hung process from hanging the suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _imer(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from app.cli import main; main()", *args]


HEAVY = ("torch", "mediapipe", "cv2", "av", "faster_whisper", "transformers", "imer_core.live.pipeline")


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["run", "--hop", "x"], ["--bogus"]])
def test_help_and_argument_errors_import_no_heavy_module(argv):
    code = (f"import sys\nfrom app.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit as exc:\n"
            f"    code = exc.code\nprint('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _sessions(root: Path) -> list[Path]:
    return sorted(root.glob("session-*")) if root.exists() else []


def _rows(folder: Path) -> int:
    path = folder / "predictions.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_run_ends_it_cleanly(tmp_path, demo_test_clip, live_checkpoints, signum):
    out = tmp_path / "sessions"
    process = subprocess.Popen(_imer("run", "--source", str(demo_test_clip.path), "--loop", "--disable",
                                     "text,audio,vision", "--checkpoint", str(live_checkpoints["cmarr"]),
                                     "--out", str(out), "--quiet"),
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: _sessions(out) and _rows(_sessions(out)[0]) >= 3, 120), "no rows written"
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    folder = _sessions(out)[0]
    info = json.loads((folder / "session.json").read_text())
    assert info["clean_shutdown"] is True and info["end_reason"] == signal.Signals(signum).name
    assert info["ended_wall"] >= info["started_wall"] and info["rows"] == _rows(folder)
    for line in (folder / "predictions.jsonl").read_text().splitlines():
        json.loads(line)
    assert re.search(r"\(\d+ predictions in \d+ rows\)", err)


@pytest.mark.slow
def test_a_killed_run_keeps_its_rows_and_says_it_was_not_clean(tmp_path, demo_test_clip, live_checkpoints):
    out = tmp_path / "sessions"
    process = subprocess.Popen(_imer("run", "--source", str(demo_test_clip.path), "--loop", "--disable",
                                     "text,audio,vision", "--checkpoint", str(live_checkpoints["cmarr"]),
                                     "--out", str(out), "--quiet"),
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: _sessions(out) and _rows(_sessions(out)[0]) >= 3, 120), "no rows written"
    finally:
        process.kill()
        process.wait(30)
    info = json.loads((_sessions(out)[0] / "session.json").read_text())
    assert info["clean_shutdown"] is False and info["ended_wall"] is None


def _maps_torch(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_ctrl_c_while_starting_ends_at_once_and_leaves_nothing(tmp_path):
    out = tmp_path / "sessions"
    process = subprocess.Popen(_imer("run", "--source", "webcam", "--out", str(out)), env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Signal once the app is importing torch (its libraries are being mapped): not a fixed sleep, which
    # on a loaded machine lands in the interpreter's own start-up (CPython then dies in site.py).
    assert _wait_for(lambda: _maps_torch(process.pid), 120), "the app never started importing torch"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err and not out.exists()


def test_a_second_ctrl_c_forces_the_exit(monkeypatch):
    from app import signals

    ended = []
    monkeypatch.setattr(signals, "exit_process", lambda code: ended.append(code))
    stop = signals.StopRequests(out=open(os.devnull, "w"))
    stop._handle(signal.SIGINT, None)
    assert ended == [130]  # while starting, the first one already ends the process
    stop.starting = False
    ended.clear()
    stop.event.clear()
    stop._handle(signal.SIGTERM, None)
    assert stop.is_set() and stop.signal_name == "SIGTERM" and ended == []
    stop._handle(signal.SIGINT, None)
    assert ended == [130] and stop.forced


_WRITER = r"""
import sys, time
import numpy as np
from imer_core.live.sources.media_writer import MediaWriter
writer = MediaWriter(sys.argv[1], 160, 120, 25.0, audio=False, live=True)
t0 = time.monotonic()
for i in range(10**6):
    image = np.full((120, 160, 3), i % 250, np.uint8)
    writer.add_frame(image, time.monotonic() - t0)
    print(round(time.monotonic() - t0, 3), flush=True)
    time.sleep(max(0.0, (i + 1) / 25 - (time.monotonic() - t0)))
"""


def test_a_live_recording_survives_sigkill_with_about_a_second_lost(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "video.mkv"
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=_env(), stdout=subprocess.PIPE,
                               text=True)
    encoded = []
    try:
        for line in process.stdout:
            encoded.append(float(line))
            if encoded[-1] >= 4.0:
                break
    finally:
        process.kill()
        process.wait(30)
    with av.open(str(path)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    lost = encoded[-1] - max(times)
    assert lost <= 1.2, f"{lost:.2f} s of {encoded[-1]:.2f} s lost"


@pytest.mark.slow
def test_imer_run_makes_no_network_attempt(tmp_path, demo_test_clip, live_checkpoints):
    """The main job under ``strace``: no IPv4/IPv6 connect, no DNS (MediaPipe's usage report included)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (apt-get install strace) - the network trace cannot run")
    trace = tmp_path / "trace.txt"
    done = subprocess.run([strace, "-f", "-qq", "-e", "trace=network", "-o", str(trace),
                           *_imer("run", "--source", str(demo_test_clip.path), "--duration", "1", "--checkpoint",
                                  str(live_checkpoints["cmarr"]), "--out", str(tmp_path / "s"), "--quiet")],
                          env=_env(), capture_output=True, text=True, timeout=300)
    text = trace.read_text()
    if "PTRACE" in done.stderr or ("Operation not permitted" in done.stderr and not text):
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    attempts = [line for line in text.splitlines()
                if ("connect(" in line or "sendto(" in line or "sendmsg(" in line)
                and ("AF_INET" in line or "htons(53)" in line)]
    assert not attempts, "\n".join(attempts[:10])


def test_rotation_writes_complete_session_folders_and_keeps_the_newest(tmp_path, demo_test_clip, live_checkpoints,
                                                                        capsys):
    from app.cli import main

    out = tmp_path / "sessions"
    assert main(["run", "--source", str(demo_test_clip.path), "--loop", "--disable", "text,audio,vision",
                 "--checkpoint", str(live_checkpoints["cmarr"]), "--out", str(out), "--quiet",
                 "--duration", "5", "--rotate-minutes", "0.025", "--keep-sessions", "2"]) == 0
    folders = _sessions(out)
    assert len(folders) == 2
    infos = [json.loads((f / "session.json").read_text()) for f in folders]
    folders, infos = zip(*sorted(zip(folders, infos), key=lambda pair: pair[1]["part"]))
    assert all(i["clean_shutdown"] for i in infos)
    assert infos[0]["end_reason"] == "rotated" and infos[1]["end_reason"] == "duration"
    assert infos[0]["part"] + 1 == infos[1]["part"] >= 3  # older parts were removed
    assert all(_rows(f) == i["rows"] > 0 for f, i in zip(folders, infos))
    assert "folders under" in capsys.readouterr().err
    assert main(["run", "--source", str(demo_test_clip.path), "--keep-sessions", "2"]) == 2


def test_a_file_ends_at_its_end_with_every_modality_switched_off(tmp_path, demo_test_clip, live_checkpoints, capsys):
    from app.cli import main

    out = tmp_path / "sessions"
    assert main(["run", "--source", str(demo_test_clip.path), "--disable", "text,audio,vision", "--checkpoint",
                 str(live_checkpoints["cmarr"]), "--out", str(out), "--quiet", "--duration", "120"]) == 0
    info = json.loads((_sessions(out)[0] / "session.json").read_text())
    assert info["end_reason"] == "end of file" and "end of file" in capsys.readouterr().err
    assert info["duration_s"] < 60  # the clip lasts a few seconds; --duration 120 only guards against a hang


def test_webcam_without_any_device_says_so_and_exits(monkeypatch, tmp_path, live_checkpoints, capsys):
    from live_fakes import fake_rig

    from app.cli import main
    from imer_core.live.parts import PipelineParts

    rig = fake_rig()
    rig.video.fail = rig.audio.fail = True
    monkeypatch.setattr(PipelineParts, "for_device", classmethod(lambda cls, device, extractors=None: rig.parts()))
    out = tmp_path / "sessions"
    assert main(["run", "--source", "webcam", "--device-wait", "1", "--checkpoint", str(live_checkpoints["cmarr"]),
                 "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no camera and no microphone delivered anything within 1 s" in err and "device vanished" in err
    assert not out.exists()


_NATIVE_LOG_LINE = re.compile(r"^(\[ ?(WARN|ERROR|INFO)\b|[WIEF]\d{4} |INFO: |WARNING: Logging|OpenCV\()")
_NATIVE_PROBE = r"""
import sys
import app.cli  # noqa: F401 - what every imer command imports first
import cv2
import numpy as np
from imer_core.features.face import FaceFeatureExtractor
camera = cv2.VideoCapture(97)  # no such camera: OpenCV's probing would print WARN / ERROR blocks
camera.release()
extractor = FaceFeatureExtractor()  # MediaPipe / TFLite would print their start-up notes
extractor.process(np.zeros((120, 160, 3), np.uint8), 0.0)
print("probed", flush=True)
"""


def test_opencv_and_mediapipe_print_nothing_of_their_own():
    """Their native log lines would break into ``imer run``'s status line (five did, before)."""
    pytest.importorskip("cv2")
    pytest.importorskip("mediapipe")
    env = {k: v for k, v in _env().items() if k not in ("OPENCV_LOG_LEVEL", "GLOG_minloglevel",
                                                          "TF_CPP_MIN_LOG_LEVEL", "IMER_NATIVE_LOGS")}
    done = subprocess.run([sys.executable, "-c", _NATIVE_PROBE], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "probed" in done.stdout, done.stderr
    native = [line for line in done.stderr.splitlines() if _NATIVE_LOG_LINE.match(line)]
    assert not native, "\n".join(native)


_LINGERING = r"""
import atexit, sys, threading
atexit.register(lambda: print("interpreter shutdown ran", flush=True))
threading.Thread(target=threading.Event().wait, name="native-like", daemon=False).start()
sys.argv = ["imer", "run", "--source", sys.argv[1]]
from app.cli import main
main()
"""


def test_the_imer_command_ends_without_the_interpreter_shutdown(tmp_path):
    """After its own cleanup ``imer`` ends with os._exit: no wait for lingering threads or destructors.

    A thread that never ends stands for the native threads whose wait took ~4.7 s; with Python's
    normal exit the process would wait for it forever (the time-out here only catches that hang).
    """
    done = subprocess.run([sys.executable, "-c", _LINGERING, str(tmp_path / "missing.mp4")], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "source file not found" in done.stderr, done.stderr
    assert "interpreter shutdown ran" not in done.stdout
