"""VoiceFeatureExtractor: shapes, F0, voice activity on synthetic speech (speed: benchmarks/bench_voice_features.py)."""

from __future__ import annotations

import numpy as np
import pytest
from clip_fixtures import espeak_16k

from imer_core.features.dsp import mel_filterbank
from imer_core.features.voice import (
    VOICE_EXTRACTOR_ID,
    VOICE_FEATURE_DIM,
    VOICE_FEATURE_NAMES,
    VOICE_LLD_NAMES,
    VoiceConfig,
    VoiceFeatureExtractor,
    voice_feature_spec,
)
from imer_core.modalities import Modality

SR = 16000
F0_MEAN = VOICE_FEATURE_NAMES.index("f0_semitone_mean")
VOICING_MEAN = VOICE_FEATURE_NAMES.index("voicing_prob_mean")


@pytest.fixture(scope="module")
def extractor() -> VoiceFeatureExtractor:
    return VoiceFeatureExtractor()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[np.ndarray, float, float]:
    """espeak-ng sentence at 16 kHz with 1 s of silence before and after; (audio, start s, end s)."""
    # espeak-ng's default voice and speed (en, 175 words per minute).
    resampled = espeak_16k("The quick brown fox jumps over the lazy dog.", tmp_path_factory.mktemp("tts"),
                           speed=175, voice="en")
    loud = np.flatnonzero(np.abs(resampled) > 0.01)
    silence = np.zeros(SR, np.float32)
    audio = np.concatenate([silence, resampled.astype(np.float32), silence])
    return audio, 1.0 + loud[0] / SR, 1.0 + loud[-1] / SR


def test_names_and_spec():
    assert len(VOICE_LLD_NAMES) == 22 and VOICE_FEATURE_DIM == len(VOICE_FEATURE_NAMES) == 44
    assert VOICE_FEATURE_NAMES[:3] == ("loudness_db_mean", "f0_semitone_mean", "voicing_prob_mean")
    spec = voice_feature_spec(seq_len=20, rate_hz=10)
    assert spec.modality is Modality.AUDIO and spec.dim == 44 and spec.rate_hz == 10.0
    assert spec.extractor == VOICE_EXTRACTOR_ID
    assert VoiceFeatureExtractor().feature_spec(30).seq_len == 30


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of hop"):
        VoiceConfig(rate_hz=7.0)
    with pytest.raises(ValueError):
        VoiceConfig(f0_min=600.0, f0_max=500.0)


def test_shapes_rate_and_alignment(extractor):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(2.05 * SR))).astype(np.float32)
    result = extractor.extract(audio, start_time=5.0)
    assert result.vector.shape == (20, VOICE_FEATURE_DIM) and result.vector.dtype == np.float32
    assert np.isfinite(result.vector).all()
    # Steps are aligned to the window's end: the leading 50 ms are skipped.
    np.testing.assert_allclose(result.times, 5.05 + 0.05 + 0.1 * np.arange(20), atol=1e-9)
    assert result.speech_fraction.shape == (20,)
    assert extractor.lld(audio).shape == (len(audio) // 160, 22)
    np.testing.assert_array_equal(extractor.extract(audio, 5.0).vector, result.vector)  # deterministic
    assert extractor.extract(audio[:1000]).vector.shape == (0, VOICE_FEATURE_DIM)


def test_int16_and_stereo_input(extractor):
    tone = 0.25 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)
    reference = extractor.extract(tone.astype(np.float32)).vector
    as_int16 = extractor.extract((tone * 32767).astype(np.int16)).vector
    np.testing.assert_allclose(as_int16[:, F0_MEAN], reference[:, F0_MEAN], atol=0.05)
    stereo = np.stack([tone, tone], axis=1).astype(np.float32)
    np.testing.assert_allclose(extractor.extract(stereo).vector, reference, atol=1e-4)
    stereo16 = extractor.extract((np.stack([tone, tone], axis=1) * 32767).astype(np.int16)).vector
    np.testing.assert_allclose(stereo16, as_int16, atol=1e-4)


@pytest.mark.parametrize("frequency", [110.0, 196.0, 330.0])
def test_tone_f0(extractor, frequency):
    t = np.arange(2 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * frequency * t) + 0.1 * np.sin(4 * np.pi * frequency * t)).astype(np.float32)
    features = extractor.extract(tone).vector
    f0 = 27.5 * 2.0 ** (features[1:-1, F0_MEAN] / 12.0)
    np.testing.assert_allclose(f0, frequency, rtol=0.01)
    assert features[1:-1, VOICING_MEAN].min() > 0.9


def test_silence_and_faint_noise_are_not_voice(extractor):
    silence = np.zeros(2 * SR, np.float32)
    result = extractor.extract(silence)
    assert not result.activity.any_speech and not result.activity.is_speech.any()
    assert np.isfinite(result.vector).all() and not result.speech_fraction.any()
    assert not result.vector[:, F0_MEAN].any()
    noise = (0.002 * np.random.default_rng(1).standard_normal(2 * SR)).astype(np.float32)
    assert extractor.detect_voice(noise).segments == ()


def test_vad_finds_speech(extractor, speech):
    audio, start, end = speech
    activity = extractor.detect_voice(audio, start_time=10.0)
    assert len(activity.segments) == 1, activity.segments
    seg_start, seg_end = activity.segments[0]
    assert start - 0.15 <= seg_start - 10.0 <= start + 0.1
    assert end - 0.1 <= seg_end - 10.0 <= end + 0.4
    assert activity.is_speech.shape == activity.frame_times.shape == (len(audio) // 160,)
    assert not activity.is_speech[: int(0.8 * 100)].any() and not activity.is_speech[-60:].any()
    # With background noise the segment stays in place.
    noisy = audio + (0.005 * np.random.default_rng(2).standard_normal(len(audio))).astype(np.float32)
    noisy_segments = extractor.detect_voice(noisy).segments
    assert len(noisy_segments) == 1 and abs(noisy_segments[0][0] - seg_start + 10.0) < 0.1


def test_speech_features(extractor, speech):
    audio, start, end = speech
    result = extractor.extract(audio)
    assert np.isfinite(result.vector).all()
    inside = (result.times > start + 0.1) & (result.times < end - 0.1)
    outside = (result.times < start - 0.3) | (result.times > end + 0.5)
    assert result.speech_fraction[inside].mean() > 0.9 and not result.speech_fraction[outside].any()
    f0 = 27.5 * 2.0 ** (result.vector[inside, F0_MEAN][result.vector[inside, F0_MEAN] > 0] / 12.0)
    assert len(f0) > 5 and 70 < np.median(f0) < 300  # espeak's default male voice


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa", reason="librosa not installed: reference check only")
    reference = librosa.filters.mel(sr=SR, n_fft=512, n_mels=26, fmin=20.0, fmax=SR / 2)
    np.testing.assert_allclose(mel_filterbank(SR, 512, 26), reference, atol=1e-7)
