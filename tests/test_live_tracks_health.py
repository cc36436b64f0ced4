"""Feature tracks (windowing) and the modality health rules."""

import numpy as np
import pytest

from imer_core.live.health import HealthConfig, HealthMonitor, ModalitySignals, ModalityState
from imer_core.live.tracks import FeatureTrack
from imer_core.modalities import Modality


def test_window_averages_samples_within_a_step():
    track = FeatureTrack(2)
    for k in range(30):  # 30 fps for 1 s: values k
        track.append(k / 30.0, np.array([k, -k], np.float32))
    window = track.window(1.0, seq_len=10, rate_hz=10.0)
    assert window.values.shape == (10, 2)
    assert window.coverage == 1.0
    np.testing.assert_allclose(window.values[0, 0], np.mean([0, 1, 2]), atol=1e-5)
    np.testing.assert_allclose(window.values[-1, 0], np.mean([27, 28, 29]), atol=1e-5)
    assert window.newest_time == pytest.approx(29 / 30.0)


def test_window_holds_values_and_fills_the_start():
    track = FeatureTrack(1)
    track.append(0.55, np.array([5.0]))
    window = track.window(1.0, seq_len=10, rate_hz=10.0, hold_s=0.5)
    assert np.all(window.values == 5.0)  # steps before the sample copy it; later ones hold it
    assert window.coverage == pytest.approx(0.5)
    assert track.window(3.0, seq_len=10, rate_hz=10.0, hold_s=0.5) is None  # too old to hold


def test_text_embedding_is_held_for_the_hold_time():
    track = FeatureTrack(1)
    track.append(0.0, np.array([1.0]))
    assert track.window(10.0, 20, 10.0, hold_s=15.0) is not None
    assert track.window(20.0, 20, 10.0, hold_s=15.0) is None


def test_track_rejects_wrong_dims_and_drops_old_samples():
    track = FeatureTrack(3, capacity_s=1.0)
    with pytest.raises(ValueError, match="expects 3"):
        track.append(0.0, np.zeros(4))
    for t in np.arange(0, 5, 0.1):
        track.append(float(t), np.zeros(3))
    assert len(track) <= 11
    track.clear()
    assert track.newest_time is None


def _signals(**kw):
    base = dict(enabled=True, source_ok=True, last_data=10.0, last_signal=10.0, started=0.0)
    base.update(kw)
    return ModalitySignals(**base)


def test_health_states_and_reasons():
    monitor = HealthMonitor(HealthConfig(stale_after_s=0.5, no_face_after_s=1.0, text_silence_after_s=5.0,
                                         asr_timeout_s=2.0))
    now = 10.2
    out = monitor.evaluate(now, {
        Modality.VISION: _signals(),
        Modality.AUDIO: _signals(enabled=False),
        Modality.TEXT: _signals(last_signal=2.0),
    })
    assert out[Modality.VISION].state is ModalityState.OBSERVED
    assert out[Modality.AUDIO].state is ModalityState.DISABLED
    assert out[Modality.TEXT].state is ModalityState.FAILING and "no speech" in out[Modality.TEXT].reason
    out = monitor.evaluate(11.0, {
        Modality.VISION: _signals(last_data=10.3),  # frames stopped 0.7 s ago
        Modality.AUDIO: _signals(source_ok=False, source_reason="microphone error: gone"),
        Modality.TEXT: _signals(last_data=10.9, last_signal=10.9, busy_since=8.5),
    })
    assert "no new frames" in out[Modality.VISION].reason
    assert out[Modality.AUDIO].reason == "microphone error: gone"
    assert "timed out" in out[Modality.TEXT].reason


def test_no_face_fails_after_the_limit_and_silence_is_fine_for_audio_by_default():
    monitor = HealthMonitor(HealthConfig(no_face_after_s=1.0))
    out = monitor.evaluate(12.0, {Modality.VISION: _signals(last_data=11.9, last_signal=10.5),
                                  Modality.AUDIO: _signals(last_data=11.9, last_signal=0.5),
                                  Modality.TEXT: _signals(enabled=False)})
    assert out[Modality.VISION].state is ModalityState.FAILING
    assert out[Modality.VISION].reason.startswith("no face detected for")
    assert out[Modality.AUDIO].state is ModalityState.OBSERVED
    strict = HealthMonitor(HealthConfig(audio_silence_after_s=5.0))
    out = strict.evaluate(12.0, {Modality.AUDIO: _signals(last_data=11.9, last_signal=0.5)})
    assert out[Modality.AUDIO].state is ModalityState.FAILING and "no voice" in out[Modality.AUDIO].reason


def test_since_is_kept_while_the_same_failure_goes_on():
    monitor = HealthMonitor()
    a = monitor.evaluate(5.0, {Modality.VISION: _signals(last_data=4.0)})[Modality.VISION]
    b = monitor.evaluate(5.5, {Modality.VISION: _signals(last_data=4.0)})[Modality.VISION]
    assert a.state is b.state is ModalityState.FAILING
    assert a.reason != b.reason and b.since == a.since == 5.0
