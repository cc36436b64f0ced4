"""The live voice worker keeps numpy's BLAS on one thread while it extracts (its idle threads spin otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from imer_core.features.voice import VoiceFeatureExtractor
from imer_core.live.buffers import AudioRingBuffer
from imer_core.live.tracks import FeatureTrack
from imer_core.live.workers import VoiceWorker

threadpoolctl = pytest.importorskip("threadpoolctl")


def numpy_blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info()
            if i["user_api"] == "blas" and "numpy" in i["filepath"]]


class SpyExtractor(VoiceFeatureExtractor):
    """The voice features, recording numpy's BLAS threads at each call."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[int]] = []

    def extract(self, audio, start_time=0.0):
        self.seen.append(numpy_blas_threads())
        return super().extract(audio, start_time)


def test_numpy_blas_runs_on_one_thread_during_the_workers_extraction_and_as_before_after_it():
    """Measured without it (no OMP_NUM_THREADS, 10 calls/s on 2 s of audio): a whole core spinning."""
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core machine by default
        before = numpy_blas_threads()
        extractor = SpyExtractor()
        ring = AudioRingBuffer(16000, capacity_s=10.0)
        worker = VoiceWorker(ring, FeatureTrack(44), FeatureTrack(1), extractor, context_s=2.0)
        rng = np.random.default_rng(0)
        ring.write((0.1 * rng.standard_normal(16000 * 3)).astype(np.float32), t_end=103.0)
        worker._extract(16000 * 2, ring.total_written)
        assert before == [2] * len(before) and before
        assert extractor.seen == [[1] * len(before)]
        assert numpy_blas_threads() == before
