"""MicrophoneSource with a fake sounddevice module and fake InputStreams driven from a thread."""

from __future__ import annotations

import builtins
import re
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from clip_fixtures import StatusLog, peak_frequency, tone, wait_until
from scipy.signal import resample_poly

from imer_core.live.sources import microphone
from imer_core.live.sources.microphone import (
    AudioDeviceInfo,
    MicrophoneSource,
    MicrophoneUnavailable,
    StreamingResampler,
    list_input_devices,
    resolve_input_device,
)


class FakeSoundDevice:
    """Stands in for the sounddevice module: a device list and settings checks."""

    def __init__(self, devices: list[dict], default: int, rates=(16000,), channels=(1, 2)) -> None:
        self.devices, self.default, self.rates, self.channels = devices, default, rates, channels

    def query_devices(self, kind: str | None = None):
        if kind == "input":
            if self.default < 0:
                raise RuntimeError("Error querying device -1")
            return self.devices[self.default]
        return self.devices

    def check_input_settings(self, device=None, samplerate=None, channels=None, dtype=None):
        if samplerate not in self.rates:
            raise ValueError("Invalid sample rate")
        if channels not in self.channels:
            raise ValueError("Invalid number of channels")

    def InputStream(self, **kwargs):  # noqa: N802 - sounddevice's name
        raise AssertionError("tests pass a stream_factory")


def device(index: int, name: str, inputs: int = 2, rate: float = 48000.0) -> dict:
    return {"index": index, "name": name, "max_input_channels": inputs, "default_samplerate": rate}


DEVICES = [device(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)"), device(1, "HDMI output", 0),
           device(2, "USB Audio Mic (hw:1,0)", 1, 44100.0), device(3, "pulse"), device(4, "default")]


class FakeStream:
    """Calls ``callback`` from its own thread at real-time pace with a 440 Hz tone.

    Like PortAudio it passes the ADC time of each block's first sample, so the
    ring's timestamps follow the samples even when this thread runs late on a
    loaded machine (a late block is not taken for a gap in the audio).

    ``behaviour``: "ok", "finish" (finishes after ``after`` blocks), "stall"
    (stops calling back after ``after`` blocks), "fail_start".
    """

    def __init__(self, behaviour: str = "ok", after: int = 10, **kwargs) -> None:
        self.kwargs = kwargs
        self.behaviour, self.after = behaviour, after
        self.rate, self.block, self.channels = kwargs["samplerate"], kwargs["blocksize"], kwargs["channels"]
        self.callback, self.finished_callback = kwargs["callback"], kwargs["finished_callback"]
        self.fed = 0
        self.closed = False
        self.ended_at: float | None = None
        self.last_block_at: float | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.behaviour == "fail_start":
            raise RuntimeError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        blocks = 0
        t0 = time.monotonic()
        while not self._halt.is_set():
            if self.behaviour in ("finish", "stall") and blocks >= self.after:
                self.ended_at = time.monotonic()
                if self.behaviour == "finish":
                    self.finished_callback()
                return
            mono = tone(self.rate, self.block, self.fed)
            data = np.stack([mono, np.zeros_like(mono)][:self.channels], axis=1)
            now = self.last_block_at = time.monotonic()
            adc = t0 + (self.fed - self.block) / self.rate  # captured over the block before now
            self.callback(data, self.block, SimpleNamespace(inputBufferAdcTime=adc, currentTime=now), 0)
            self.fed += self.block
            blocks += 1
            self._halt.wait(max(t0 + self.fed / self.rate - time.monotonic(), 0.0))

    def abort(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.abort()
        self.closed = True


class StreamFactory:
    """Builds FakeStreams; ``plan`` gives the behaviour of stream 0, 1, ... (the last repeats)."""

    def __init__(self, *plan: str, after: int = 10) -> None:
        self.plan, self.after = plan or ("ok",), after
        self.streams: list[FakeStream] = []
        self.calls: list[tuple[float, dict]] = []

    def __call__(self, **kwargs) -> FakeStream:
        self.calls.append((time.monotonic(), kwargs))
        stream = FakeStream(self.plan[min(len(self.streams), len(self.plan) - 1)], self.after, **kwargs)
        self.streams.append(stream)
        return stream


@pytest.fixture
def fake_sd(monkeypatch):
    sd = FakeSoundDevice(DEVICES, default=4, rates=(16000, 48000))
    monkeypatch.setattr(microphone, "_import_sounddevice", lambda: sd)
    return sd


def make(sources, factory, **kwargs) -> MicrophoneSource:
    kwargs.setdefault("restart_backoff", (0.05, 0.2))
    source = MicrophoneSource(stream_factory=factory, **kwargs)
    sources.append(source)
    return source


def test_samples_arrive_in_the_ring(fake_sd, sources):
    factory = StreamFactory("ok")
    mic = make(sources, factory)
    mic.start()
    assert wait_until(lambda: mic.status.ok, 3.0) is not None, mic.status
    kwargs = factory.calls[0][1]
    assert kwargs["device"] == 4 and kwargs["samplerate"] == 16000 and kwargs["channels"] == 1
    assert kwargs["dtype"] == "float32" and kwargs["blocksize"] == 320
    assert mic.status.reason == "default @ 16000 Hz"
    assert wait_until(lambda: mic.ring.total_written >= 0.2 * 16000, 3.0) is not None
    lag = time.monotonic() - mic.ring.last_write_time
    mic.stop()
    stream = factory.streams[0]
    assert stream.closed and not mic.running and mic.status.reason == "stopped"
    assert mic.ring.total_written == stream.fed >= 0.2 * 16000
    np.testing.assert_allclose(mic.ring.read(0, stream.fed), tone(16000, stream.fed), atol=1e-6)
    assert -0.01 < lag < 0.5  # ring timestamps follow the monotonic clock


def test_stereo_only_device_is_mixed_to_mono(monkeypatch, sources):
    sd = FakeSoundDevice([device(0, "stereo mic", 2, 16000.0)], default=0, channels=(2,))
    monkeypatch.setattr(microphone, "_import_sounddevice", lambda: sd)
    factory = StreamFactory("ok")
    mic = make(sources, factory)
    mic.start()
    assert wait_until(lambda: mic.ring.total_written >= 1600, 3.0) is not None
    mic.stop()
    assert factory.calls[0][1]["channels"] == 2
    np.testing.assert_allclose(mic.ring.read(0, 1600), tone(16000, 1600) / 2, atol=1e-6)


def test_start_failure_is_reported_and_retried(monkeypatch, sources):
    sd = FakeSoundDevice(DEVICES, default=3, rates=(16000,), channels=(1,))
    monkeypatch.setattr(microphone, "_import_sounddevice", lambda: sd)
    factory = StreamFactory("fail_start", "fail_start", "ok")
    mic = make(sources, factory)
    log = StatusLog(mic)
    mic.start()
    failed = log.wait_for(lambda s: "could not be started" in s.reason, 3.0)
    assert failed is not None, log.snapshot()
    assert "Device unavailable" in failed[1].reason and not failed[1].ok
    assert wait_until(lambda: mic.status.ok, 3.0) is not None, mic.status
    starts = [t for t, _ in factory.calls]
    assert len(starts) == 3
    assert 0.045 <= starts[1] - starts[0] and 0.095 <= starts[2] - starts[1]  # back-off doubles


def test_stream_finishing_mid_run_fails_fast_and_restarts(fake_sd, sources):
    factory = StreamFactory("finish", "ok", after=10)
    mic = make(sources, factory)
    log = StatusLog(mic)
    mic.start()
    assert wait_until(lambda: mic.status.ok, 3.0) is not None
    assert wait_until(lambda: factory.streams[0].ended_at is not None, 3.0) is not None
    failed = log.wait_for(lambda s: not s.ok and s.reason != "starting", 3.0)
    assert failed is not None, log.snapshot()
    assert "stream stopped unexpectedly" in failed[1].reason
    assert failed[0] - factory.streams[0].ended_at < 0.5  # by the source's clock: fails fast
    assert wait_until(lambda: factory.streams[0].closed, 3.0) is not None
    assert wait_until(lambda: mic.status.ok and len(factory.streams) == 2, 3.0) is not None
    before = mic.ring.total_written
    assert wait_until(lambda: mic.ring.total_written > before + 800, 3.0) is not None


def test_no_data_watchdog(fake_sd, sources):
    factory = StreamFactory("stall", "ok", after=5)
    mic = make(sources, factory, no_data_timeout_s=0.3)
    log = StatusLog(mic)
    mic.start()
    assert wait_until(lambda: factory.streams[0].ended_at is not None, 3.0) is not None
    failed = log.wait_for(lambda s: "no samples from microphone" in s.reason, 3.0)
    assert failed is not None, log.snapshot()
    t_failed, status = failed
    # by the source's clock: not before no_data_timeout_s after the last block, soon after it
    assert t_failed - factory.streams[0].last_block_at >= 0.3
    assert t_failed - factory.streams[0].ended_at < 0.6
    silent_for = re.fullmatch(r"no samples from microphone for (\d+\.\d) s", status.reason)
    assert silent_for is not None and 0.3 <= float(silent_for.group(1)) < 0.6, status
    assert wait_until(lambda: mic.status.ok and len(factory.streams) == 2, 3.0) is not None


def test_device_without_16k_is_resampled(monkeypatch, sources):
    sd = FakeSoundDevice(DEVICES, default=0, rates=(48000,))
    monkeypatch.setattr(microphone, "_import_sounddevice", lambda: sd)
    factory = StreamFactory("stall", after=40)  # 0.8 s of audio, then the stream goes quiet
    mic = make(sources, factory, device="alc3246", no_data_timeout_s=5.0)
    mic.start()
    assert wait_until(lambda: mic.ring.total_written >= 9600, 3.0) is not None
    assert mic.status.reason == "HDA Intel PCH: ALC3246 Analog (hw:0,0) @ 48000 Hz, resampled to 16000 Hz"
    lag = time.monotonic() - mic.ring.last_write_time
    assert wait_until(lambda: factory.streams[0].ended_at is not None, 3.0) is not None
    fed = factory.streams[0].fed
    # the supervisor thread resamples every queued block (on a loaded machine it may lag a little)
    assert wait_until(lambda: abs(mic.ring.total_written - fed / 3) <= 12, 3.0) is not None, \
        (mic.ring.total_written, fed / 3)
    mic.stop()
    assert factory.calls[0][1]["samplerate"] == 48000 and factory.calls[0][1]["device"] == 0
    assert factory.calls[0][1]["blocksize"] == 960 and mic.capture_rate == 48000
    assert len(factory.calls) == 1
    got = mic.ring.read(0, mic.ring.total_written)
    assert abs(len(got) - fed / 3) <= 12  # only the filter look-ahead is held back
    assert abs(peak_frequency(got, 16000) - 440.0) < 2.0
    expected = tone(16000, len(got))
    np.testing.assert_allclose(got[200:], expected[200:], atol=0.01)  # same phase: no delay
    assert -0.01 < lag < 0.5  # ring timestamps follow the monotonic clock


def test_streaming_resampler_matches_resample_poly_and_keeps_pitch():
    rng = np.random.default_rng(1)
    for rate in (48000, 44100, 8000):
        x = tone(rate, rate, freq=440.0)  # 1 s
        resampler = StreamingResampler(rate, 16000)
        pieces, i = [], 0
        while i < len(x):
            n = int(rng.integers(1, 1500))
            pieces.append(resampler.process(x[i:i + n]))
            i += n
        y = np.concatenate(pieces)
        assert 16000 - 25 <= len(y) <= 16000
        assert abs(peak_frequency(y, 16000) - 440.0) < 1.5
        np.testing.assert_allclose(y, resample_poly(x, resampler.up, resampler.down)[:len(y)], atol=1e-5)
        assert 0 < resampler.lag_s < 0.002


def test_resolve_input_device_by_default_index_and_name(fake_sd):
    devices = list_input_devices()
    assert [d.index for d in devices] == [0, 2, 3, 4]  # the output-only HDMI device is left out
    assert [d.is_default for d in devices] == [False, False, False, True]
    assert devices[1] == AudioDeviceInfo(2, "USB Audio Mic (hw:1,0)", 1, 44100.0, False)
    assert resolve_input_device(None).index == 4
    assert resolve_input_device(2).index == 2
    assert resolve_input_device(" 3 ").name == "pulse"
    assert resolve_input_device("usb audio").index == 2
    assert resolve_input_device("PULSE").index == 3
    with pytest.raises(ValueError, match=r"no input device matches 'webcam'.*2: USB Audio Mic"):
        resolve_input_device("webcam")
    with pytest.raises(ValueError, match="no input device with index 1;"):
        resolve_input_device(1)  # HDMI has no input channels
    with pytest.raises(ValueError, match="matches several input devices"):
        resolve_input_device("hw:")
    twins = [AudioDeviceInfo(5, "Mic (Realtek)", 2, 44100.0), AudioDeviceInfo(9, "Mic (Realtek)", 2, 48000.0)]
    assert resolve_input_device("realtek", twins).index == 5
    with pytest.raises(ValueError, match="no audio input devices found"):
        resolve_input_device(None, [])


def test_unknown_device_name_is_a_status(fake_sd, sources):
    mic = make(sources, StreamFactory("ok"), device="no such mic")
    mic.start()
    assert wait_until(lambda: "no input device matches 'no such mic'" in mic.status.reason, 3.0) is not None
    assert not mic.status.ok


@pytest.mark.parametrize("error, message", [
    (OSError("PortAudio library not found"), "PortAudio library not found (install libportaudio2)"),
    (ImportError("No module named 'sounddevice'"), "sounddevice package is not installed"),
])
def test_missing_portaudio_gives_failing_status(monkeypatch, sources, error, message):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise error
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    mic = MicrophoneSource(restart_backoff=(0.05, 0.1))
    sources.append(mic)
    mic.start()  # must not raise
    assert wait_until(lambda: message in mic.status.reason, 3.0) is not None, mic.status
    assert mic.status.reason.startswith("microphone unavailable: ") and not mic.status.ok
    assert mic.running  # keeps retrying quietly
    with pytest.raises(MicrophoneUnavailable, match="install"):
        list_input_devices()
    mic.stop()
    assert not mic.running


def test_late_callbacks_after_stop_are_ignored(fake_sd, sources):
    factory = StreamFactory("ok")
    mic = make(sources, factory)
    mic.start()
    assert wait_until(lambda: mic.ring.total_written > 0, 3.0) is not None
    mic.stop()
    total = mic.ring.total_written
    stream = factory.streams[0]
    stream.callback(np.ones((320, 1), np.float32), 320, SimpleNamespace(), 0)
    assert mic.ring.total_written == total


def test_invalid_arguments():
    with pytest.raises(ValueError):
        MicrophoneSource(block_s=0)
    with pytest.raises(ValueError):
        MicrophoneSource(restart_backoff=(1.0, 0.5))


def test_stream_that_never_delivers_fails_after_the_start_timeout(fake_sd, sources):
    factory = StreamFactory("stall", "ok", after=0)
    mic = make(sources, factory, no_data_timeout_s=0.1, start_timeout_s=1.0)
    log = StatusLog(mic)
    mic.start()
    failed = log.wait_for(lambda s: s.reason.startswith("no samples from microphone"), 5.0)
    assert failed is not None, log.snapshot()
    t_failed, status = failed
    assert factory.streams[0].ended_at is not None  # the first stream never delivered
    # not after no_data_timeout_s (0.1 s) but after the start-up grace (1.0 s), by the source's clock
    assert [s.reason for t, s in log.snapshot() if t < t_failed] == ["starting"]
    assert 1.0 <= t_failed - factory.calls[0][0] < 1.5
    silent_for = re.fullmatch(r"no samples from microphone for (\d+\.\d) s", status.reason)
    assert silent_for is not None and 1.0 <= float(silent_for.group(1)) < 1.5, status
    assert wait_until(lambda: mic.status.ok, 3.0) is not None
