"""Real PortAudio capture: MicrophoneSource records a tone played into a private PulseAudio null sink.

The fixture starts its own PulseAudio daemon (a null sink whose monitor is the
default source) in a temporary directory and kills it by PID afterwards.
PortAudio (ALSA host API) reaches it through the ALSA ``pulse``/``default``
PCM of libasound2-plugins.  The recording runs in a subprocess because
PortAudio enumerates devices once per process, when ``sounddevice`` is
imported, so the PulseAudio environment must be set before that.

Needs apt packages: pulseaudio, pulseaudio-utils (paplay, pactl),
libasound2-plugins, libportaudio2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TONE_HZ = 660.0

PULSE_SCRIPT = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=imer_null rate=48000
set-default-sink imer_null
set-default-source imer_null.monitor
"""

# Records with two sources at once: the device at 16 kHz (direct path) and at
# 44.1 kHz (resampled path), plays the tone with paplay, prints a JSON summary.
RECORDER = """
import json, subprocess, sys, time
import numpy as np
from imer_core.live.sources.microphone import MicrophoneSource, list_input_devices

wav = sys.argv[1]
out = {"devices": [d.name for d in list_input_devices()]}
mics = {"16k": MicrophoneSource(), "44k": MicrophoneSource(sample_rate=44100)}
for mic in mics.values():
    mic.start()
t0 = time.monotonic()
while not all(m.status.ok for m in mics.values()) and time.monotonic() - t0 < 15:
    time.sleep(0.02)
out["status"] = {k: [m.status.ok, m.status.reason] for k, m in mics.items()}
time.sleep(0.3)
marks = {k: m.ring.total_written for k, m in mics.items()}
player = subprocess.Popen(["paplay", wav])
out["paplay_rc"] = player.wait(10)  # paplay exits once the tone has drained into the null sink
time.sleep(0.3)  # its last samples pass through the monitor source into the rings
for k, mic in mics.items():
    lag = time.monotonic() - mic.ring.last_write_time
    mic.stop()
    before = mic.ring.read(max(marks[k] - 3200, 0), marks[k])
    after = mic.ring.read(marks[k], mic.ring.total_written)
    spectrum = np.abs(np.fft.rfft(after)) if len(after) else np.zeros(1)
    out[k] = {"rate": mic.capture_rate, "lag_s": lag,
              "rms_before": float(np.sqrt(np.mean(before ** 2))) if len(before) else 0.0,
              "peak_hz": float(np.argmax(spectrum) * 16000 / max(len(after), 1)),
              "loud_s": float(np.sum(np.abs(after) > 0.1) / 16000)}
print(json.dumps(out))
"""


def _pulse_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("home", "run", "state"):
        (root / name).mkdir(exist_ok=True)
    env.update(HOME=str(root / "home"), XDG_RUNTIME_DIR=str(root / "run"),
               PULSE_RUNTIME_PATH=str(root / "run"), PULSE_STATE_PATH=str(root / "state"),
               PULSE_SERVER=f"unix:{root / 'native'}")
    env.pop("DISPLAY", None)
    return env


@pytest.fixture(scope="module")
def pulse_env(tmp_path_factory):
    """Environment pointing at a private PulseAudio daemon with a null sink."""
    pulseaudio = shutil.which("pulseaudio")
    if pulseaudio is None or shutil.which("paplay") is None or shutil.which("pactl") is None:
        pytest.skip("pulseaudio/pulseaudio-utils not installed: cannot start a PulseAudio daemon")
    root = tmp_path_factory.mktemp("pulse")
    env = _pulse_env(root)
    script = root / "null.pa"
    script.write_text(PULSE_SCRIPT.format(socket=root / "native"))
    log_path = root / "pulseaudio.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(
            [pulseaudio, "-n", "--daemon=no", "--exit-idle-time=-1", "--disallow-exit",
             "--use-pid-file=no", "--log-target=stderr", "-F", str(script)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not _wait_for_server(daemon, env, timeout=15.0):
            tail = log_path.read_text(errors="replace")[-800:]
            pytest.skip(f"pulseaudio could not be started (exit code {daemon.poll()}): {tail}")
        yield env
    finally:
        _kill(daemon)


def _wait_for_server(daemon: subprocess.Popen, env: dict[str, str], timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if daemon.poll() is not None:
            return False
        probe = subprocess.run(["pactl", "info"], env=env, capture_output=True, text=True)
        if probe.returncode == 0 and "imer_null.monitor" in probe.stdout:
            return True
        time.sleep(0.1)
    return False


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _write_tone(path: Path, seconds: float = 0.8, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.5 * np.sin(2 * np.pi * TONE_HZ * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def test_microphone_records_a_tone_through_portaudio(pulse_env, tmp_path):
    wav = tmp_path / "tone.wav"
    _write_tone(wav)
    run = subprocess.run([sys.executable, "-c", RECORDER, str(wav)], env=pulse_env, cwd=REPO,
                         capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"pulse", "default"} & set(result["devices"]), result["devices"]
    assert result["paplay_rc"] == 0, result
    assert result["status"]["16k"] == [True, "default @ 16000 Hz"], result
    assert result["status"]["44k"] == [True, "default @ 44100 Hz, resampled to 16000 Hz"], result
    for key, rate in (("16k", 16000), ("44k", 44100)):
        rec = result[key]
        assert rec["rate"] == rate
        assert -0.05 < rec["lag_s"] < 0.5, rec  # ring timestamps follow the monotonic clock
        assert rec["rms_before"] < 0.01, rec  # the null sink is silent before playback
        assert abs(rec["peak_hz"] - TONE_HZ) < 5.0, rec
        assert rec["loud_s"] > 0.4, rec  # most of the 0.8 s tone arrived (amplitude 0.5)
