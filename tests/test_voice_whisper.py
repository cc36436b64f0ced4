"""Voice features with Whisper tiny.en's encoder: left context only; live worker and offline pass agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ctranslate2")
pytest.importorskip("faster_whisper")

from imer_core.features.registry import (  # noqa: E402
    available_extractors,
    default_extractor_specs,
    extractor_factories,
)
from imer_core.features.voice import (  # noqa: E402
    LIVE_VOICE_ENCODER,
    VOICE_EXTRACTOR_ID,
    WHISPER_VOICE_ENV,
    whisper_voice_default,
)
from imer_core.features.voice_whisper import (  # noqa: E402
    WHISPER_VOICE_DIM,
    WHISPER_VOICE_ID,
    WhisperVoiceExtractor,
)
from imer_core.live.buffers import AudioRingBuffer  # noqa: E402
from imer_core.live.tracks import FeatureTrack  # noqa: E402
from imer_core.live.workers import VoiceWorker  # noqa: E402

RATE = 16000


def _clip(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """A vowel-like tone with a moving pitch and some noise (speech-shaped enough for the encoder)."""
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2)
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * voiced + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def extractor() -> WhisperVoiceExtractor:
    return WhisperVoiceExtractor()


def test_registered_beside_the_voice_features_and_the_default_as_the_constant_or_the_environment_says():
    assert WHISPER_VOICE_ID in available_extractors("audio") and VOICE_EXTRACTOR_ID in available_extractors("audio")
    expected = WHISPER_VOICE_ID if whisper_voice_default() else VOICE_EXTRACTOR_ID
    assert default_extractor_specs()["audio"].extractor_id == expected
    code = ("from imer_core.features.registry import default_extractor_specs as d; "
            "s = d()['audio']; print(s.extractor_id, s.dim)")
    for value, wanted in (("1", [WHISPER_VOICE_ID, str(WHISPER_VOICE_DIM)]), ("0", [VOICE_EXTRACTOR_ID, "44"]),
                          ("", [WHISPER_VOICE_ID, str(WHISPER_VOICE_DIM)] if LIVE_VOICE_ENCODER
                           else [VOICE_EXTRACTOR_ID, "44"])):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, WHISPER_VOICE_ENV: value}).stdout.split()
        assert out == wanted, value


def test_steps_are_the_voice_features_then_the_encoder_and_never_see_later_audio(extractor):
    clip = _clip()
    full = extractor.extract(clip)
    plain = extractor.voice.extract(clip)
    assert full.vector.shape == (40, WHISPER_VOICE_DIM) and np.isfinite(full.vector).all()
    np.testing.assert_array_equal(full.vector[:, :44], plain.vector)
    np.testing.assert_array_equal(full.times, plain.times)
    assert np.abs(full.vector[:, 44:]).sum(axis=1).min() > 0  # every step encoded
    cut = clip.copy()
    cut[25 * 1600:] = 0.0  # silence after step 25: the encoder part of steps 0-24 is unchanged
    changed = extractor.extract(cut)
    np.testing.assert_array_equal(changed.vector[:25, 44:], full.vector[:25, 44:])
    assert not np.allclose(changed.vector[30:, 44:], full.vector[30:, 44:])
    kept = extractor.extract(clip, keep_from=full.times[30])  # the encoder runs only for the kept steps
    assert not kept.vector[:30, 44:].any()
    np.testing.assert_array_equal(kept.vector[30:], full.vector[30:])


def test_the_live_worker_computes_what_an_offline_pass_computes(extractor):
    """Chunks of 100 ms through the ring and the voice worker (2 s of context, keep_from) against one pass."""
    clip = _clip(5.0, seed=1)
    ring = AudioRingBuffer(RATE, capacity_s=30.0)
    track, speech = FeatureTrack(WHISPER_VOICE_DIM), FeatureTrack(1)
    worker = VoiceWorker(ring, track, speech, extractor, context_s=0.5)
    step = extractor.step_samples
    for k in range(len(clip) // step):
        ring.write(clip[k * step: (k + 1) * step], t_end=100.0 + (k + 1) * step / RATE)
        if k >= 1:
            worker._extract(worker.processed_samples, ring.total_written)
            worker.processed_samples = ring.total_written
    times, vectors = track.between(0.0, 1e9)
    offline = extractor.extract(clip, start_time=ring.time_of(0))
    index = {round(float(t), 4): i for i, t in enumerate(offline.times)}
    matched = [(index[round(float(t), 4)], v) for t, v in zip(times, vectors) if round(float(t), 4) in index]
    assert len(matched) >= 45
    full_context = [(i, v) for i, v in matched if offline.times[i] - ring.time_of(0) > 2.05]
    assert len(full_context) >= 25
    for i, vector in full_context:  # a full 2 s of context in both: identical encoder values
        np.testing.assert_allclose(vector[44:], offline.vector[i, 44:], rtol=1e-5, atol=1e-5)


def test_training_windows_get_the_context_the_live_worker_gives(extractor):
    """Training windows (extract-live, imer analyze): the clip's audio before the window is the encoder's context."""
    from imer_core.features.voice import window_features

    clip = _clip(5.0, seed=2)
    vector, fraction = window_features(extractor, clip, 48000, 32000)  # the last 2 s, 3 s of audio before it
    whole = extractor.extract(clip)
    assert vector.shape == (20, WHISPER_VOICE_DIM) and fraction.shape == (20,)
    np.testing.assert_allclose(vector[:, 44:], whole.vector[-20:, 44:], rtol=1e-5, atol=1e-5)
    short = clip[:20000]  # shorter than a window: zero-padded at the end, as loudest_window does
    padded = np.pad(short, (0, 12000))
    vector, _ = window_features(extractor, short, 0, 32000)
    np.testing.assert_allclose(vector[:, 44:], extractor.extract(padded).vector[:, 44:], rtol=1e-5, atol=1e-5)


def test_extract_live_caches_the_encoder_feature_when_it_is_the_default(tmp_path):
    from test_live_model import write_tiny_corpora

    write_tiny_corpora(tmp_path / "data")
    env = {**os.environ, WHISPER_VOICE_ENV: "1"}
    run = subprocess.run([sys.executable, "-m", "training.cli", "extract-live", "--data", str(tmp_path / "data"),
                          "--cache", str(tmp_path / "cache"), "--corpora", "ravdess,emodb,meld", "--no-asr",
                          "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    code = ("import sys; from training.live.extract import load_cache; c = load_cache(sys.argv[1], 'ravdess'); "
            "print(c['audio'].shape[-1], c['meta']['extractors']['audio'])")
    shown = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True,
                           env=env, check=True).stdout.split()
    assert shown == [str(WHISPER_VOICE_DIM), WHISPER_VOICE_ID]
    code = ("import sys; from training.live.dataset import LiveDataOptions, load_pools; "
            "load_pools(sys.argv[1], LiveDataOptions())")
    refused = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True,
                             env={**os.environ, WHISPER_VOICE_ENV: "0"})  # the voice features alone: refused
    assert refused.returncode != 0 and "its audio cache was made with extractor" in refused.stderr


def test_the_test_rigs_cheap_encoder_stand_in_has_the_real_extractors_spec_and_left_context():
    from live_fakes import CheapEncoderVoiceExtractor

    fake, clip = CheapEncoderVoiceExtractor(), _clip()
    registered = extractor_factories(choice={"audio": WHISPER_VOICE_ID})["audio"].spec
    assert fake.spec == registered and fake.feature_spec(20) == registered.feature_spec(20)
    full = fake.extract(clip)
    cut = clip.copy()
    cut[25 * 1600:] = 0.0
    np.testing.assert_array_equal(fake.extract(cut).vector[:25, 44:], full.vector[:25, 44:])
    assert full.vector.shape == (40, WHISPER_VOICE_DIM) and np.abs(full.vector[:, 44:]).sum(axis=1).min() > 0


def test_the_encoder_values_are_those_the_shipped_models_were_trained_with(extractor):
    """A faster-whisper or CTranslate2 release that changed the log-mel or the encoder would shift the feature
    under the shipped models without an error; this pins it (reference: faster-whisper 1.2.1, CTranslate2 4.8.5,
    steps 10 and 30 of ``_clip()``; a clip with other noise scores 0.957 / 0.985)."""
    reference = np.load(Path(__file__).parent / "data" / "whisper_voice_reference.npy")
    values = extractor.extract(_clip()).vector[[10, 30], 44:]
    cosine = (values * reference).sum(axis=1) / np.linalg.norm(values, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.998, cosine
