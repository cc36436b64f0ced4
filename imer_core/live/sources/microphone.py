"""Microphone capture through PortAudio (``sounddevice``).

:class:`MicrophoneSource` records mono float32 audio into its 16 kHz
:class:`~imer_core.live.buffers.AudioRingBuffer`.  The PortAudio callback only
mixes to mono and copies: straight into the ring buffer when the device runs
at 16 kHz, otherwise into a queue that the source's supervisor thread drains
through a :class:`StreamingResampler`.  The supervisor thread is also the
watchdog: it reports a stream that finished on its own (device unplugged),
failed to start, or stopped delivering samples, closes it and opens it again
with exponential back-off.

``sounddevice`` is imported lazily; without the PortAudio library (apt
``libportaudio2``) the source does not raise but reports
``microphone unavailable: ...`` in its status.  PortAudio enumerates devices
once per process, so a device plugged in later is only seen after a restart
of the program.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np

from ..buffers import STARTING, STOPPED, SourceStatus
from .base import LIVE_SAMPLE_RATE, AudioSource

StreamFactory = Callable[..., Any]


class MicrophoneUnavailable(RuntimeError):
    """PortAudio or the ``sounddevice`` package is missing."""


def _import_sounddevice() -> Any:
    """The ``sounddevice`` module, or :class:`MicrophoneUnavailable` with the fix in the message."""
    try:
        import sounddevice
    except OSError as exc:
        raise MicrophoneUnavailable("PortAudio library not found (install libportaudio2)") from exc
    except ImportError as exc:
        raise MicrophoneUnavailable("the sounddevice package is not installed (pip install sounddevice)") from exc
    return sounddevice


@dataclass(frozen=True)
class AudioDeviceInfo:
    """An audio input device as PortAudio reports it."""

    index: int
    name: str
    max_input_channels: int
    default_samplerate: float
    is_default: bool = False


def list_input_devices() -> list[AudioDeviceInfo]:
    """All devices with at least one input channel.

    Raises :class:`MicrophoneUnavailable` when PortAudio is missing.
    """
    sd = _import_sounddevice()
    try:
        default = int(sd.query_devices(kind="input")["index"])
    except Exception:  # PortAudioError: no default input device
        default = -1
    return [AudioDeviceInfo(int(d.get("index", i)), str(d["name"]), int(d["max_input_channels"]),
                            float(d["default_samplerate"]), int(d.get("index", i)) == default)
            for i, d in enumerate(sd.query_devices()) if int(d["max_input_channels"]) > 0]


def _device_table(devices: Sequence[AudioDeviceInfo]) -> str:
    if not devices:
        return "no audio input devices found"
    return "available input devices: " + "; ".join(
        f"{d.index}: {d.name}{' (default)' if d.is_default else ''}" for d in devices)


def resolve_input_device(spec: str | int | None,
                         devices: Sequence[AudioDeviceInfo] | None = None) -> AudioDeviceInfo:
    """The input device meant by ``spec``.

    ``None`` is the default input device; an ``int`` or a digit string is a
    PortAudio device index; anything else is matched case-insensitively
    against the device names (an exact name first, then a substring; several
    devices with the same name, e.g. one per host API, resolve to the first).
    ``devices`` defaults to :func:`list_input_devices`.

    Raises:
        ValueError: nothing or several differently named devices match (the
            message lists the available devices).
    """
    devices = list_input_devices() if devices is None else list(devices)
    if spec is None:
        match = [d for d in devices if d.is_default] or devices[:1]
        if not match:
            raise ValueError(_device_table(devices))
        return match[0]
    if isinstance(spec, int) or str(spec).strip().isdigit():
        index = int(spec)
        for device in devices:
            if device.index == index:
                return device
        raise ValueError(f"no input device with index {index}; {_device_table(devices)}")
    wanted = str(spec).strip().lower()
    exact = [d for d in devices if d.name.lower() == wanted]
    match = exact or [d for d in devices if wanted in d.name.lower()]
    if not match:
        raise ValueError(f"no input device matches {spec!r}; {_device_table(devices)}")
    if len({d.name for d in match}) > 1:
        names = "; ".join(f"{d.index}: {d.name}" for d in match)
        raise ValueError(f"{spec!r} matches several input devices ({names}); use an index or a longer name")
    return match[0]


class StreamingResampler:
    """Rational polyphase resampler that keeps its state between blocks.

    Uses the same Kaiser-windowed FIR design and output alignment as
    :func:`scipy.signal.resample_poly`, so concatenating the outputs of any
    block split equals ``resample_poly`` on the whole signal (except the last
    few samples, which wait for the filter's look-ahead of ``10 * max(up,
    down) / up`` input samples).
    """

    def __init__(self, rate_in: int, rate_out: int, half_taps: int = 10) -> None:
        from scipy.signal import firwin

        if rate_in <= 0 or rate_out <= 0:
            raise ValueError("sample rates must be positive")
        g = gcd(int(rate_in), int(rate_out))
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.up, self.down = self.rate_out // g, self.rate_in // g
        max_rate = max(self.up, self.down)
        self._half = half_taps * max_rate
        taps = firwin(2 * self._half + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self._width = -(-len(taps) // self.up)  # taps per phase
        padded = np.zeros(self._width * self.up)
        padded[:len(taps)] = taps
        self._phases = padded.reshape(self._width, self.up).T  # [phase, k] = taps[phase + k * up]
        self._buf = np.zeros(self._width - 1)
        self._buf_start = -(self._width - 1)  # absolute input index of _buf[0] (zeros before 0)
        self._n_in = 0
        self._n_out = 0
        #: seconds between the last input sample and the last output sample of the latest block.
        self.lag_s = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample the next ``block`` of input; returns the output samples now complete."""
        x = np.asarray(block, dtype=np.float64).reshape(-1)
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        n_end = max((self._n_in * self.up - 1 - self._half) // self.down + 1, self._n_out)
        n = np.arange(self._n_out, n_end)
        centre = n * self.down + self._half
        newest, phase = centre // self.up, centre % self.up
        idx = newest[:, None] - np.arange(self._width)[None, :] - self._buf_start
        y = (self._buf[idx] * self._phases[phase]).sum(axis=1) if len(n) else np.zeros(0)
        self._n_out = n_end
        if n_end > 0:
            self.lag_s = ((self._n_in - 1) - (n_end - 1) * self.down / self.up) / self.rate_in
        keep_from = (self._n_out * self.down + self._half) // self.up - self._width + 1
        drop = min(max(keep_from - self._buf_start, 0), len(self._buf))
        self._buf, self._buf_start = self._buf[drop:], self._buf_start + drop
        return y.astype(np.float32)


def _block_end_time(time_info: Any, frames: int, rate: int) -> float:
    """Monotonic time of the last sample of a callback block (PortAudio's ADC time when sane)."""
    now = time.monotonic()
    try:
        age = float(time_info.currentTime) - float(time_info.inputBufferAdcTime)
    except (AttributeError, TypeError, ValueError):
        return now
    if float(time_info.inputBufferAdcTime) <= 0 or not 0.0 <= age < 0.5:
        return now
    return min(now - age + (frames - 1) / rate, now)


@dataclass
class _StreamState:
    """What one opened stream's callbacks share with the supervisor."""

    rate: int
    resampler: StreamingResampler | None
    chunks: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    finished: threading.Event = field(default_factory=threading.Event)
    active: bool = True
    error: BaseException | None = None


class MicrophoneSource(AudioSource):
    """A microphone recorded through PortAudio into :attr:`ring` (16 kHz mono).

    Args:
        device: ``None`` (default input), a device index, or a name substring
            (see :func:`resolve_input_device`); resolved again on every (re)open.
        sample_rate: rate to open the device at; when the device cannot do it,
            its default rate is used and the audio resampled to 16 kHz.
        block_s: callback block length in seconds.
        stream_factory: replaces ``sounddevice.InputStream`` (tests); called
            with ``device, samplerate, channels, dtype, blocksize, callback,
            finished_callback``.
        no_data_timeout_s: a stream without samples for this long is failing
            and gets restarted.
        restart_backoff: ``(min, max)`` seconds between restarts; doubles after
            every failure, back to the minimum once samples flow.
        capacity_s: seconds kept in the ring buffer.
        start_timeout_s: how long a freshly opened stream may take to deliver
            its first samples (PortAudio's ALSA/PulseAudio path and Bluetooth
            headsets can take a second or two) before it counts as failing.
    """

    def __init__(self, device: str | int | None = None, sample_rate: int = LIVE_SAMPLE_RATE,
                 block_s: float = 0.02, stream_factory: StreamFactory | None = None,
                 no_data_timeout_s: float = 1.0, restart_backoff: tuple[float, float] = (0.5, 8.0),
                 capacity_s: float = 30.0, start_timeout_s: float = 5.0) -> None:
        super().__init__(capacity_s)
        if min(sample_rate, block_s, no_data_timeout_s, start_timeout_s) <= 0:
            raise ValueError("sample_rate, block_s, no_data_timeout_s and start_timeout_s must be positive")
        if not 0 < restart_backoff[0] <= restart_backoff[1]:
            raise ValueError(f"restart_backoff must be (min, max) with 0 < min <= max, got {restart_backoff}")
        self.device = device
        self.sample_rate = int(sample_rate)
        self.block_s = float(block_s)
        self.no_data_timeout_s = float(no_data_timeout_s)
        self.start_timeout_s = float(start_timeout_s)
        self.restart_backoff = (float(restart_backoff[0]), float(restart_backoff[1]))
        self.description = "microphone (default)" if device is None else f"microphone {device!r}"
        self._stream_factory = stream_factory
        #: the device opened last (``None`` with an injected factory and no PortAudio).
        self.device_info: AudioDeviceInfo | None = None
        #: the rate the device runs at (``None`` until opened).
        self.capture_rate: int | None = None

    # -- public API ------------------------------------------------------
    def start(self) -> None:
        """Start the supervisor thread, which opens the stream (returns at once)."""
        if self.running:
            return
        self._set_status(STARTING)
        self._launch(self._keep_open, "microphone", self._session, self.restart_backoff)

    def stop(self, timeout: float = 2.0) -> None:
        """Close the stream and join the thread (idempotent)."""
        self._join(timeout)
        self._set_status(STOPPED)

    # -- supervisor thread -------------------------------------------------
    def _session(self) -> bool:
        """Open a stream, watch it until it fails or is stopped, close it; returns whether samples came."""
        opened = self._open()
        if opened is None:
            return False
        stream, state = opened
        try:
            return self._watch(state)
        finally:
            self._close(stream, state)

    def _candidates(self, sd: Any) -> list[tuple[int, int]]:
        """``(rate, channels)`` to try in order; sets :attr:`device_info`."""
        if sd is None:
            self.device_info = None
            return [(self.sample_rate, 1)]
        info = resolve_input_device(self.device)
        self.device_info = info
        rates = list(dict.fromkeys([self.sample_rate, int(round(info.default_samplerate))]))
        channel_options = list(dict.fromkeys([1, min(info.max_input_channels, 2)]))
        combos = [(r, c) for r in rates for c in channel_options]
        checked = [(r, c) for r, c in combos if self._settings_ok(sd, info.index, r, c)]
        return checked or combos

    @staticmethod
    def _settings_ok(sd: Any, index: int, rate: int, channels: int) -> bool:
        try:
            sd.check_input_settings(device=index, samplerate=rate, channels=channels, dtype="float32")
        except Exception:
            return False
        return True

    def _open(self) -> tuple[Any, _StreamState] | None:
        """Open and start a stream; on failure set a failing status and return ``None``."""
        try:
            sd = _import_sounddevice()
        except MicrophoneUnavailable as exc:
            if self._stream_factory is None:
                self._fail(f"microphone unavailable: {exc}")
                return None
            sd = None
        try:
            candidates = self._candidates(sd)
        except (ValueError, MicrophoneUnavailable) as exc:
            self._fail(f"microphone: {exc}")
            return None
        except Exception as exc:  # PortAudioError while querying devices
            self._fail(f"microphone: could not list audio devices: {exc}")
            return None
        factory = self._stream_factory or sd.InputStream
        device = self.device_info.index if self.device_info is not None else self.device
        error: BaseException | None = None
        for rate, channels in candidates:
            opened = self._try_open(factory, device, rate, channels)
            if isinstance(opened, tuple):
                self.capture_rate = rate
                return opened
            error = opened
        self._fail(f"microphone could not be started: {error}")
        return None

    def _try_open(self, factory: StreamFactory, device: Any, rate: int,
                  channels: int) -> tuple[Any, _StreamState] | BaseException:
        stream = state = None
        try:
            resampler = None if rate == LIVE_SAMPLE_RATE else StreamingResampler(rate, LIVE_SAMPLE_RATE)
            state = _StreamState(rate, resampler)
            stream = factory(device=device, samplerate=rate, channels=channels, dtype="float32",
                             blocksize=max(int(round(rate * self.block_s)), 1),
                             callback=self._make_callback(state),
                             finished_callback=state.finished.set)
            stream.start()
        except Exception as exc:  # PortAudioError, invalid settings, device busy, scipy missing
            if state is not None:
                state.active = False
                if stream is not None:
                    self._close(stream, state)
            return exc
        return stream, state

    def _make_callback(self, state: _StreamState) -> Callable[..., None]:
        ring = self.ring

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if not state.active:
                return
            try:
                t_end = _block_end_time(time_info, frames, state.rate)
                mono = indata[:, 0] if indata.shape[1] == 1 else indata.mean(axis=1)
                if state.resampler is None:
                    ring.write(mono, t_end)
                else:
                    state.chunks.put((np.array(mono, dtype=np.float32), t_end))
            except Exception as exc:  # never raise into PortAudio
                state.error = exc
                state.finished.set()

        return callback

    def _drain(self, state: _StreamState, resampler: StreamingResampler, timeout: float) -> bool:
        """Resample queued chunks into the ring (waits up to ``timeout`` for the first)."""
        got = False
        try:
            chunk, t_end = state.chunks.get(timeout=timeout)
            while True:
                out = resampler.process(chunk)
                if len(out):
                    self.ring.write(out, t_end - resampler.lag_s)
                got = True
                chunk, t_end = state.chunks.get_nowait()
        except queue.Empty:
            return got

    def _watch(self, state: _StreamState) -> bool:
        """Watch an open stream until it fails or stop; returns whether samples arrived."""
        last_progress = time.monotonic()
        last_total = self.ring.total_written
        delivered = False
        while not self._stop.is_set():
            if state.resampler is not None:
                got = self._drain(state, state.resampler, 0.02)
            else:
                got = False
                self._stop.wait(0.02)
            now = time.monotonic()
            if got or self.ring.total_written != last_total:
                last_total, last_progress, delivered = self.ring.total_written, now, True
                if not self._status.ok and not self._stop.is_set():
                    self._set_status(SourceStatus(True, self._describe_ok()))
            if state.finished.is_set():
                cause = f"callback failed: {state.error}" if state.error else "stream stopped unexpectedly"
                self._fail(f"microphone {cause}; restarting")
                return delivered
            limit = self.no_data_timeout_s if delivered else max(self.no_data_timeout_s, self.start_timeout_s)
            if now - last_progress > limit:
                self._fail(f"no samples from microphone for {now - last_progress:.1f} s")
                return delivered
        return delivered

    def _describe_ok(self) -> str:
        name = self.device_info.name if self.device_info is not None else str(self.device or "default")
        if self.capture_rate == LIVE_SAMPLE_RATE:
            return f"{name} @ {LIVE_SAMPLE_RATE} Hz"
        return f"{name} @ {self.capture_rate} Hz, resampled to {LIVE_SAMPLE_RATE} Hz"

    @staticmethod
    def _close(stream: Any, state: _StreamState) -> None:
        state.active = False
        for method in ("abort", "close"):
            try:
                getattr(stream, method, lambda: None)()
            except Exception:  # a vanished device may fail to close; nothing left to do
                pass
