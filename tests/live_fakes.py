"""Fakes for live-pipeline tests: sources, extractors, ASR, and small trained checkpoints.

The fakes implement the same interfaces as the real parts (see
imer_core.live.sources.base and imer_core.live.parts); their failure switches
let tests inject faults (camera stops, microphone raises, ASR raises/hangs).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from imer_core.asr.types import Segment, Transcript
from imer_core.checkpoint import save_checkpoint
from imer_core.config import CLASSIFICATION, LIVE_EMOTIONS, FusionConfig, ModelConfig, fold_fusion_option
from imer_core.features.face import live_face_feature_spec, live_vision_feature
from imer_core.features.text import TEXT_DIM, text_feature_spec
from imer_core.features.voice import VoiceFeatureExtractor
from imer_core.features.voice_whisper import ENCODER_DIM, WHISPER_VOICE_ID, WhisperVoiceExtractor
from imer_core.live.buffers import SourceStatus, VideoFrame
from imer_core.live.parts import PipelineParts
from imer_core.live.sources.base import AudioSource, VideoSource
from imer_core.modalities import FeatureSpecs
from imer_core.registry import create_model

LIVE_SEQ = 20
#: Length of the live vision feature (face network embedding + blendshapes + pose with the shipped face net).
LIVE_VISION_DIM = live_vision_feature()[1]
SMALL_OPTIONS = {
    "cmarr": {"latent_dim": 16, "encoder_hidden": 32, "flow_layers": 2, "flow_hidden": 32, "refiner_hidden": 32},
    "imder": {"score_channels": (32, 64), "score_embed_dim": 32, "refiner_blocks": 1, "sampler": "heun",
              "sampler_steps": 2, "train_sampler": "heun", "train_sampler_steps": 2},
}


SMALL_FUSION = FusionConfig(d_model=32, num_heads=4, nlevels=1, mem_layers=1)
"""MulT of the tiny live models (for the methods built on it)."""


def live_specs() -> FeatureSpecs:
    """The live models' feature specs at :data:`LIVE_SEQ` steps (audio: the default audio extractor's)."""
    return FeatureSpecs(text_feature_spec(LIVE_SEQ, 10.0), default_audio_spec().feature_spec(LIVE_SEQ, 10.0),
                        live_face_feature_spec(LIVE_SEQ, 10.0))


def default_audio_spec():
    """The registry's default audio extractor spec (what the shipped live models were trained on)."""
    from imer_core.features.registry import default_extractor_specs
    from imer_core.modalities import Modality

    return default_extractor_specs()[Modality.AUDIO]


def train_small_checkpoint(path: Path, method: str = "cmarr", steps: int = 3, trained: bool = True,
                           specs: FeatureSpecs | None = None, options: dict | None = None,
                           extra_metadata: dict | None = None) -> Path:
    """A tiny live model trained for a few steps with the method's own train_step."""
    torch.manual_seed(0)
    options = dict(SMALL_OPTIONS.get(method, {}) if options is None else options)
    config = ModelConfig(method=method, specs=specs or live_specs(), task=CLASSIFICATION, labels=LIVE_EMOTIONS,
                         method_options=fold_fusion_option(method, options, SMALL_FUSION))
    model = create_model(config)
    optimizers = model.configure_optimizers(1e-3)
    batch = 8
    features = {s.modality.value: torch.randn(batch, s.seq_len, s.dim) for s in config.specs}
    labels = torch.randint(0, len(LIVE_EMOTIONS), (batch,))
    for stage in ("pretrain", "recovery"):
        model.prepare_stage(stage)
        model.train()
        for _ in range(steps):
            mask = torch.rand(batch, 3) > 0.3 if stage == "recovery" else torch.ones(batch, 3, dtype=torch.bool)
            mask[:, 0] |= ~mask.any(dim=1)
            model.train_step(features, labels, mask, optimizers)
    norm = {s.modality.value: {"mean": [0.0] * s.dim, "std": [1.0] * s.dim} for s in config.specs}
    return save_checkpoint(model.eval(), path, {"trained": trained, "feature_normalization": norm,
                                                "label_space": list(LIVE_EMOTIONS), **(extra_metadata or {})})


class FakeVideo(VideoSource):
    """Frames at ``fps`` from a thread; ``fail`` stops delivery and reports a read failure."""

    def __init__(self, fps: float = 30.0, size: tuple[int, int] = (64, 48)) -> None:
        super().__init__()
        self.fps, self.size = fps, size
        self.fail = False
        self.starts = 0
        self.description = "fake camera"

    def start(self) -> None:
        self.starts += 1
        self._launch(self._run, "fake-camera")

    def stop(self, timeout: float = 2.0) -> None:
        self._join(timeout)
        self._set_status(SourceStatus(False, "stopped"))

    def _run(self) -> None:
        index = 0
        while not self._stop.wait(1.0 / self.fps):
            if self.fail:
                self._set_status(SourceStatus(False, "fake camera stopped delivering frames"))
                continue
            image = np.full((self.size[1], self.size[0], 3), index % 255, np.uint8)
            self.frames.put(VideoFrame(image, time.monotonic(), index))
            self._set_status(SourceStatus(True))
            index += 1


class FakeAudio(AudioSource):
    """A 200 Hz tone in 20 ms chunks (voiced), or silence; ``fail`` raises inside the 'stream'."""

    def __init__(self, voiced: bool = True) -> None:
        super().__init__()
        self.voiced = voiced
        self.fail = False
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self._launch(self._run, "fake-microphone")

    def stop(self, timeout: float = 2.0) -> None:
        self._join(timeout)
        self._set_status(SourceStatus(False, "stopped"))

    def _run(self) -> None:
        n, k = 320, 0
        while not self._stop.wait(0.02):
            try:
                if self.fail:
                    raise OSError("fake stream error: device vanished")
                t = (np.arange(n) + k * n) / 16000.0
                chunk = 0.3 * np.sin(2 * np.pi * 200.0 * t) * (1.0 + 0.5 * np.sin(2 * np.pi * 3 * t))
                self.ring.write(chunk if self.voiced else np.zeros(n), time.monotonic())
                self._set_status(SourceStatus(True))
                k += 1
            except OSError as exc:
                self._set_status(SourceStatus(False, f"microphone error: {exc}"))


@dataclass(frozen=True, eq=False)
class _Face:
    detected: bool
    vector: np.ndarray


class FakeFaceExtractor:
    """Detects a 'face' in every frame unless ``no_face`` is set."""

    no_face = False

    def process(self, image: np.ndarray, timestamp_ms: float) -> _Face:
        value = float(image.mean()) / 255.0
        return _Face(not FakeFaceExtractor.no_face, np.full(LIVE_VISION_DIM, value, np.float32))

    def close(self) -> None:
        pass


class CheapEncoderVoiceExtractor(WhisperVoiceExtractor):
    """The Whisper voice extractor with a fixed random projection of each 20 ms frame in place of the encoder.

    Everything else (voice features, left context per step, ``keep_from``) is the real
    extractor's code; only the CTranslate2 model is not loaded or run.
    """

    def __init__(self) -> None:
        self.voice = VoiceFeatureExtractor()
        rng = np.random.default_rng(0)
        self._projection = (rng.standard_normal((320, ENCODER_DIM)) / np.sqrt(320)).astype(np.float32)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio, np.float32)
        frames = max(1, len(x) // 320)
        x = np.pad(x[: frames * 320], (0, max(0, frames * 320 - len(x))))
        return np.tanh(10.0 * x.reshape(frames, 320) @ self._projection)


def fake_audio_extractor() -> VoiceFeatureExtractor | WhisperVoiceExtractor:
    """An audio extractor with the default audio spec that loads no model (see :class:`CheapEncoderVoiceExtractor`)."""
    if default_audio_spec().extractor_id == WHISPER_VOICE_ID:
        return CheapEncoderVoiceExtractor()
    return VoiceFeatureExtractor()


class FakeASR:
    """Returns a fixed sentence; ``mode`` 'raise' or 'hang' injects faults."""

    def __init__(self, text: str = "i am very happy today") -> None:
        self.text, self.mode, self.calls = text, "ok", 0
        self.release = threading.Event()

    def transcribe(self, audio: np.ndarray, *, start_time: float = 0.0) -> Transcript:
        self.calls += 1
        if self.mode == "raise":
            raise RuntimeError("fake recogniser crashed")
        if self.mode == "hang":
            self.release.wait(30)
        duration = len(audio) / 16000.0
        segment = Segment(self.text, start_time, start_time + duration)
        return Transcript((segment,), start_time, duration, "fake", processing_s=0.01)


class FakeEmbedder:
    def embed(self, text: str) -> np.ndarray:
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal((1, TEXT_DIM)).astype(np.float32)


@dataclass
class FakeRig:
    video: FakeVideo
    audio: FakeAudio
    asr: FakeASR

    def parts(self) -> PipelineParts:
        return PipelineParts(sources=lambda spec: (self.video, self.audio), face_extractor=FakeFaceExtractor,
                             voice_extractor=fake_audio_extractor, asr=lambda: self.asr, embedder=FakeEmbedder)


def fake_rig() -> FakeRig:
    FakeFaceExtractor.no_face = False
    return FakeRig(FakeVideo(), FakeAudio(), FakeASR())


@pytest.fixture(scope="session")
def live_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny trained live checkpoints: ``{"cmarr": path, "imder": path}`` (built once per session)."""
    folder = tmp_path_factory.mktemp("live_ckpt")
    return {m: train_small_checkpoint(folder / f"live_{m}.pt", m, steps=1) for m in ("cmarr", "imder")}


@pytest.fixture
def sources() -> list:
    """Sources a test starts; every one is stopped at teardown."""
    made: list = []
    yield made
    for source in made:
        source.stop()


def live_audio_dim() -> int:
    """Values per step of the default audio extractor (the live models' audio feature)."""
    return default_audio_spec().dim
