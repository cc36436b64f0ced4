"""Voice features and voice activity from a 16 kHz mono window (numpy only).

:class:`VoiceFeatureExtractor` computes eGeMAPS-like low-level descriptors
(LLDs) every ``hop_ms`` (10 ms) on ``win_ms`` (25 ms) Hann frames and
aggregates them to ``rate_hz`` (10 Hz) steps for the model's time axis.  The 22
LLDs (:data:`VOICE_LLD_NAMES`) are:

* ``loudness_db``: frame energy ``10 log10(mean(x^2) + 1e-10)`` (dBFS, floor -100);
* ``f0_semitone``: YIN F0 (``f0_min``-``f0_max`` Hz, 40 ms analysis frame) in
  semitones above 27.5 Hz, 0 when unvoiced; ``voicing_prob``: ``1 - d'(tau)``
  of the YIN cumulative-mean-normalised difference at the chosen lag;
* ``spectral_centroid``: centroid / Nyquist; ``spectral_flatness``: geometric /
  arithmetic mean of the power spectrum; ``spectral_flux``: L2 distance of
  consecutive L2-normalised magnitude spectra (0 for a window's first frame);
* ``alpha_ratio_db``: energy 50-1000 Hz over 1-5 kHz; ``hammarberg_db``: peak
  power 0-2 kHz over 2-5 kHz; ``zcr``: zero-crossing rate per sample;
* ``mfcc1`` .. ``mfcc13``: DCT-II (orthonormal) of 26 Slaney mel bands (20 Hz
  to Nyquist, 512-point FFT) in dB with an absolute 1e-10 floor; ``mfcc0`` is
  left out (``loudness_db`` carries the energy).

Each output step has the mean and the standard deviation of every LLD over its
frames (``f0_semitone`` over voiced frames only, 0 if none), so
``VOICE_FEATURE_DIM`` = 44, named ``<lld>_mean`` then ``<lld>_std``.  Values are
in natural units and should be standardised by the model's input statistics.
Steps are aligned to the end of the window: leading samples that do not fill a
whole step are ignored.  The result depends only on the samples (no state).

Voice activity (:meth:`VoiceFeatureExtractor.detect_voice`) is energy plus
spectral shape: a frame is speech-like when it is louder than
``max(abs_threshold_db, min(noise floor, noise_floor_cap_db) + snr_db)`` (noise
floor: a low percentile of the window's frame energies) and either voiced or
spectrally not flat; runs shorter than ``min_speech_ms`` are dropped, then
each run is extended by ``onset_ms`` before and ``hangover_ms`` after, which also
bridges short pauses.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..modalities import FeatureSpec, Modality
from .base import ExtractorEntry, ExtractorSpec
from .dsp import frames as _frames
from .dsp import mel_filterbank, yin
from .dsp import runs as _runs

log = logging.getLogger(__name__)

VOICE_EXTRACTOR_ID = "imer-voice-v1-numpy"
VOICE_LLD_NAMES: tuple[str, ...] = (
    "loudness_db", "f0_semitone", "voicing_prob", "spectral_centroid", "spectral_flatness",
    "spectral_flux", "alpha_ratio_db", "hammarberg_db", "zcr",
) + tuple(f"mfcc{i}" for i in range(1, 14))
VOICE_FEATURE_NAMES: tuple[str, ...] = (tuple(f"{n}_mean" for n in VOICE_LLD_NAMES)
                                        + tuple(f"{n}_std" for n in VOICE_LLD_NAMES))
VOICE_FEATURE_DIM = len(VOICE_FEATURE_NAMES)
_EPS = 1e-10
_F0, _VOICING = 1, 2


def voice_extractor_spec(rate_hz: float = 10.0) -> ExtractorSpec:
    """What a :class:`VoiceFeatureExtractor` with output rate ``rate_hz`` produces."""
    return ExtractorSpec(Modality.AUDIO, VOICE_EXTRACTOR_ID, VOICE_FEATURE_DIM, float(rate_hz))


def voice_feature_spec(seq_len: int, rate_hz: float = 10.0) -> FeatureSpec:
    """Audio :class:`FeatureSpec` for models fed by :class:`VoiceFeatureExtractor`."""
    return voice_extractor_spec(rate_hz).feature_spec(seq_len)


@dataclass(frozen=True)
class VoiceConfig:
    """Framing and analysis settings (changing them changes the features).

    Attributes:
        sample_rate: input sample rate in Hz (resample before calling).
        hop_ms, win_ms: LLD frame step and Hann window length.
        rate_hz: output steps per second; ``1 / rate_hz`` must be a multiple of ``hop_ms``.
        n_fft, n_mels: FFT size and number of mel bands for the MFCCs.
        f0_min, f0_max: YIN search range in Hz (the YIN frame is ``2 * sample_rate / f0_min``).
        yin_threshold: a lag is voiced when its normalised difference is below this.
        voicing_min_db: frames quieter than this (dBFS) are unvoiced.
    """

    sample_rate: int = 16000
    hop_ms: float = 10.0
    win_ms: float = 25.0
    rate_hz: float = 10.0
    n_fft: int = 512
    n_mels: int = 26
    f0_min: float = 60.0
    f0_max: float = 500.0
    yin_threshold: float = 0.2
    voicing_min_db: float = -60.0

    def __post_init__(self) -> None:
        if self.win_samples > self.n_fft or self.hop_samples <= 0:
            raise ValueError("need 0 < hop and win <= n_fft")
        exact = (abs(self.sample_rate * self.hop_ms / 1000 - self.hop_samples) < 1e-6
                 and abs(self.sample_rate / self.rate_hz - self.step_samples) < 1e-6)
        if not exact or self.step_samples % self.hop_samples:
            raise ValueError(f"1/rate_hz ({1000 / self.rate_hz} ms) must be a multiple of hop_ms ({self.hop_ms})")
        if not 0 < self.f0_min < self.f0_max < self.sample_rate / 4:
            raise ValueError("need 0 < f0_min < f0_max < sample_rate / 4")

    @property
    def hop_samples(self) -> int:
        """Samples per LLD frame step."""
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def win_samples(self) -> int:
        """Samples per LLD analysis window."""
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def step_samples(self) -> int:
        """Samples per output step (``sample_rate / rate_hz``)."""
        return round(self.sample_rate / self.rate_hz)


#: What the default :class:`VoiceFeatureExtractor` produces (44 values at 10 Hz).
VOICE_EXTRACTOR_SPEC = voice_extractor_spec(VoiceConfig().rate_hz)


@dataclass(frozen=True)
class VadConfig:
    """Voice activity thresholds.

    Attributes:
        abs_threshold_db: frames must be louder than this (dBFS).
        snr_db, noise_floor_percentile, noise_floor_cap_db: frames must also be
            ``snr_db`` above the noise floor, estimated as this percentile of the
            window's frame energies but never above the cap (so that a window
            full of speech still has a low floor).
        flatness_max, voicing_min: a loud frame counts as speech if its spectral
            flatness is below ``flatness_max`` or its YIN voicing probability is
            at least ``voicing_min`` (white noise is flat and unvoiced).
        min_speech_ms: shorter runs of speech frames are dropped (clicks).
        onset_ms, hangover_ms: each run is extended by this much before/after.
    """

    abs_threshold_db: float = -50.0
    snr_db: float = 10.0
    noise_floor_percentile: float = 10.0
    noise_floor_cap_db: float = -45.0
    flatness_max: float = 0.4
    voicing_min: float = 0.75
    min_speech_ms: float = 60.0
    onset_ms: float = 50.0
    hangover_ms: float = 250.0


@dataclass(frozen=True, eq=False)
class VoiceActivity:
    """Per-frame voice activity of a window; times in seconds (``start_time`` + offset)."""

    frame_times: np.ndarray
    is_speech: np.ndarray
    segments: tuple[tuple[float, float], ...]
    threshold_db: float

    @property
    def any_speech(self) -> bool:
        """Whether the window contains speech."""
        return bool(self.segments)


@dataclass(frozen=True, eq=False)
class VoiceFeatures:
    """Model features of a window: ``vector`` is ``(n_steps, VOICE_FEATURE_DIM)`` float32."""

    times: np.ndarray
    vector: np.ndarray
    speech_fraction: np.ndarray
    activity: VoiceActivity


def voice_mono(audio: np.ndarray) -> np.ndarray:
    """A window as 1-D float32: ``(n,)`` or ``(n, channels)`` (channels averaged); integer PCM scaled to [-1, 1)."""
    x = np.asarray(audio)
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    elif x.dtype.kind != "f":
        raise TypeError(f"audio must be float or signed integer PCM, got {x.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"audio must be (n,) or (n, channels), got {np.shape(audio)}")
    return x.astype(np.float32, copy=False)


class VoiceFeatureExtractor:
    """Voice LLDs, model features at ``config.rate_hz`` and voice activity.

    Args:
        config: analysis settings (:class:`VoiceConfig`).
        vad: voice activity thresholds (:class:`VadConfig`).

    Audio is mono at ``config.sample_rate``: float in ``[-1, 1]`` (integer PCM
    such as int16 is rescaled; a ``(n, channels)`` array is averaged to mono).
    """

    def __init__(self, config: VoiceConfig | None = None, vad: VadConfig | None = None) -> None:
        self.config = config or VoiceConfig()
        self.vad = vad or VadConfig()
        cfg = self.config
        self._window = np.hanning(cfg.win_samples + 1)[:-1]  # periodic Hann
        self._freqs = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate)
        tau_max = int(np.ceil(cfg.sample_rate / cfg.f0_min))
        self._yin_width = 2 * tau_max
        # Orthonormal DCT-II rows 1..13 (row 0, the energy term, is not used).
        k = np.arange(cfg.n_mels)
        self._dct = np.sqrt(2.0 / cfg.n_mels) * np.cos(np.pi / cfg.n_mels * np.outer(np.arange(1, 14), k + 0.5))
        self._mel = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels)
        band = self._freqs
        self._alpha_lo, self._alpha_hi = (band >= 50) & (band < 1000), (band >= 1000) & (band < 5000)
        self._ham_lo, self._ham_hi = band < 2000, (band >= 2000) & (band < 5000)

    @property
    def feature_dim(self) -> int:
        """Length of one output step (:data:`VOICE_FEATURE_DIM`)."""
        return VOICE_FEATURE_DIM

    @property
    def spec(self) -> ExtractorSpec:
        """What it produces: :data:`VOICE_FEATURE_DIM` values at ``config.rate_hz``."""
        return voice_extractor_spec(self.config.rate_hz)

    @property
    def step_samples(self) -> int:
        """Samples per output step."""
        return self.config.step_samples

    @property
    def sample_rate(self) -> int:
        """Input sample rate (Hz)."""
        return self.config.sample_rate

    def feature_spec(self, seq_len: int) -> FeatureSpec:
        """:func:`voice_feature_spec` at this extractor's output rate."""
        return voice_feature_spec(seq_len, self.config.rate_hz)

    def lld(self, audio: np.ndarray) -> np.ndarray:
        """``(len(audio) // hop, 22)`` float32 LLDs (:data:`VOICE_LLD_NAMES`) of a window."""
        cfg, x = self.config, voice_mono(audio)
        hop = cfg.hop_samples
        frames = _frames(x, cfg.win_samples, hop)
        n = frames.shape[0]
        out = np.zeros((n, len(VOICE_LLD_NAMES)), np.float32)
        if n == 0:
            return out
        loud = 10.0 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + _EPS)
        spec = np.abs(np.fft.rfft(frames * self._window, cfg.n_fft))
        power = spec * spec
        total = power.sum(axis=1) + _EPS
        f0, prob, voiced = yin(_frames(x, self._yin_width, hop), cfg.sample_rate, cfg.f0_min, cfg.f0_max,
                               cfg.yin_threshold)
        voiced &= loud > cfg.voicing_min_db
        unit = spec / (np.linalg.norm(spec, axis=1, keepdims=True) + _EPS)
        log_mel = 10.0 * np.log10(power @ self._mel.T + _EPS)
        out[:, 0] = loud
        out[:, _F0] = np.where(voiced, 12.0 * np.log2(np.maximum(f0, 1.0) / 27.5), 0.0)
        out[:, _VOICING] = np.where(loud > cfg.voicing_min_db, prob, 0.0)
        out[:, 3] = (power @ self._freqs) / total / (cfg.sample_rate / 2)
        out[:, 4] = np.exp(np.mean(np.log(power + _EPS), axis=1)) / (np.mean(power, axis=1) + _EPS)
        out[1:, 5] = np.linalg.norm(np.diff(unit, axis=0), axis=1)
        out[:, 6] = 10.0 * np.log10((power[:, self._alpha_lo].sum(1) + _EPS) / (power[:, self._alpha_hi].sum(1) + _EPS))
        out[:, 7] = 10.0 * np.log10((power[:, self._ham_lo].max(1) + _EPS) / (power[:, self._ham_hi].max(1) + _EPS))
        out[:, 8] = np.mean(np.signbit(frames[:, 1:]) != np.signbit(frames[:, :-1]), axis=1)
        out[:, 9:] = log_mel @ self._dct.T
        return out

    def _activity(self, lld: np.ndarray, start_time: float) -> VoiceActivity:
        cfg, vad = self.config, self.vad
        hop_s = cfg.hop_samples / cfg.sample_rate
        times = start_time + (np.arange(len(lld)) + 0.5) * hop_s
        if len(lld) == 0:
            return VoiceActivity(times, np.zeros(0, bool), (), vad.abs_threshold_db)
        loud = lld[:, 0]
        floor = min(float(np.percentile(loud, vad.noise_floor_percentile)), vad.noise_floor_cap_db)
        threshold = max(vad.abs_threshold_db, floor + vad.snr_db)
        raw = (loud > threshold) & ((lld[:, _VOICING] >= vad.voicing_min) | (lld[:, 4] < vad.flatness_max))
        min_frames = max(1, round(vad.min_speech_ms / 1000 / hop_s))
        for start, stop in _runs(raw):
            if stop - start < min_frames:
                raw[start:stop] = False
        after, before = round(vad.hangover_ms / 1000 / hop_s), round(vad.onset_ms / 1000 / hop_s)
        n = len(raw)
        speech = np.convolve(raw, np.ones(after + 1))[:n] > 0.5
        speech |= np.convolve(raw, np.ones(before + 1))[before:before + n] > 0.5
        segments = tuple((float(start_time + a * hop_s), float(start_time + b * hop_s)) for a, b in _runs(speech))
        return VoiceActivity(times, speech, segments, threshold)

    def detect_voice(self, audio: np.ndarray, start_time: float = 0.0) -> VoiceActivity:
        """Per-frame (``hop_ms``) speech flags and speech segments ``(start, end)`` in seconds."""
        return self._activity(self.lld(audio), start_time)

    def extract(self, audio: np.ndarray, start_time: float = 0.0) -> VoiceFeatures:
        """Model features of a window at ``rate_hz`` plus its voice activity.

        ``times`` are step centres in seconds (``start_time`` is the time of the
        window's first sample); ``speech_fraction`` is the share of VAD speech
        frames in each step.
        """
        cfg = self.config
        x = voice_mono(audio)
        skip = len(x) % cfg.step_samples
        lld = self.lld(x[skip:])
        activity = self._activity(lld, start_time + skip / cfg.sample_rate)
        per_step = cfg.step_samples // cfg.hop_samples
        n_steps = len(lld) // per_step
        blocks = lld[: n_steps * per_step].reshape(n_steps, per_step, lld.shape[1])
        vector = np.concatenate([blocks.mean(axis=1), blocks.std(axis=1)], axis=1)
        voiced = blocks[:, :, _F0] > 0
        count = voiced.sum(axis=1)
        f0_mean = np.where(count > 0, (blocks[:, :, _F0] * voiced).sum(axis=1) / np.maximum(count, 1), 0.0)
        f0_var = (np.square(blocks[:, :, _F0] - f0_mean[:, None]) * voiced).sum(axis=1) / np.maximum(count, 1)
        vector[:, _F0] = f0_mean
        vector[:, len(VOICE_LLD_NAMES) + _F0] = np.sqrt(f0_var)
        times = start_time + skip / cfg.sample_rate + (np.arange(n_steps) + 0.5) / cfg.rate_hz
        fraction = activity.is_speech[: n_steps * per_step].reshape(n_steps, per_step).mean(axis=1)
        return VoiceFeatures(times, vector.astype(np.float32), fraction.astype(np.float32), activity)

    __call__ = extract


def loudest_window(audio: np.ndarray, length: int, hop: int) -> tuple[np.ndarray, int]:
    """The ``length``-sample window with the most energy among offsets ``0, hop, 2·hop, …`` and the end.

    Shorter audio is zero-padded at the end.  Returns ``(window, offset)``.  The
    live model's training clips were cut this way (a 2 s window of each clip).
    """
    if len(audio) <= length:
        return np.pad(audio, (0, length - len(audio))), 0
    offsets = sorted(set(range(0, len(audio) - length + 1, hop)) | {len(audio) - length})
    energy = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    best = max(offsets, key=lambda o: energy[o + length] - energy[o])
    return audio[best: best + length], best


def context_samples(extractor: Any, context_s: float, sample_rate: int) -> int:
    """Samples of audio to pass before the steps wanted: ``context_s``, or more if the extractor declares more."""
    return int(max(float(context_s), float(getattr(extractor, "context_s", None) or 0.0)) * sample_rate)


def extract_from(extractor: Any, audio: np.ndarray, start_time: float, keep_from: float) -> Any:
    """``extractor.extract(audio, start_time)`` when only the steps from ``keep_from`` on are used.

    An extractor that declares ``context_s`` (its steps need audio before them, e.g.
    :class:`~imer_core.features.voice_whisper.WhisperVoiceExtractor`) is told ``keep_from``
    and may leave the earlier steps out of its expensive part.
    """
    if getattr(extractor, "context_s", None) is None:
        return extractor.extract(audio, start_time=start_time)
    return extractor.extract(audio, start_time=start_time, keep_from=keep_from)


def window_features(extractor: Any, audio: np.ndarray, offset: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vector, speech_fraction)`` of the ``length``-sample window at ``offset`` of a clip.

    The window is zero-padded past the clip's end (as :func:`loudest_window` does).  An
    extractor that declares ``context_s`` gets up to that much of the clip before the
    window (what the live voice worker gives it) and only the window's steps are kept; any
    other extractor sees the window alone.
    """
    padded = np.pad(np.asarray(audio), (0, max(0, offset + length - len(audio))))
    context_s = getattr(extractor, "context_s", None)
    if context_s is None:
        out = extractor.extract(padded[offset: offset + length])
        return out.vector, out.speech_fraction
    rate = int(extractor.sample_rate)
    start = max(0, offset - int(float(context_s) * rate))
    out = extractor.extract(padded[start: offset + length], keep_from=(offset - start) / rate)
    steps = length // int(extractor.step_samples)
    return out.vector[-steps:], out.speech_fraction[-steps:]


def audio_extractor_or_voice_activity(factory: Any) -> tuple[Any, str]:
    """``(factory(), "")``; when that fails, ``(VoiceFeatureExtractor(), why)``.

    The live pipeline and ``imer analyze`` then use the plain voice features for voice
    activity only (speech recognition cuts utterances with it) and treat the audio
    modality as unavailable with ``why`` as the reason (the model recovers it), e.g.
    when the default extractor's Whisper model is not installed.
    """
    try:
        return factory(), ""
    except Exception as exc:  # noqa: BLE001 - any build failure: a visible degraded state, never a crash
        log.warning("audio feature extractor unavailable: %s", exc)
        return VoiceFeatureExtractor(), f"voice features unavailable: {exc}"


def build_voice_extractor(device: str = "cpu") -> VoiceFeatureExtractor:
    """The registry's builder (numpy: ``device`` is not used)."""
    return VoiceFeatureExtractor()


#: Discovered by :mod:`imer_core.features.registry`.
#: Whether the registry's default audio extractor is the voice features with Whisper's encoder
#: (:mod:`imer_core.features.voice_whisper`) instead of these: it must be the feature the shipped
#: live models were trained on (a checkpoint names its audio feature; the engine refuses a mismatch).
#: ``$IMER_LIVE_VOICE_ENCODER`` (``1`` / ``0``, read when this module is imported) overrides it, e.g.
#: for ``extract-live`` and the training of live models on the other feature.
LIVE_VOICE_ENCODER = True
WHISPER_VOICE_ENV = "IMER_LIVE_VOICE_ENCODER"


def whisper_voice_default() -> bool:
    """Whether the default audio extractor is the Whisper voice encoder (see :data:`LIVE_VOICE_ENCODER`)."""
    value = os.environ.get(WHISPER_VOICE_ENV, "").strip()
    return value == "1" if value in ("0", "1") else LIVE_VOICE_ENCODER


EXTRACTORS = (ExtractorEntry(VOICE_EXTRACTOR_SPEC, build_voice_extractor, default=not whisper_voice_default()),)
