"""Pieces shared by the corpus loaders."""

from __future__ import annotations

import numpy as np


class ThreeModalityArrays:
    """Mixin for split dataclasses holding ``text``, ``audio`` and ``vision`` arrays of shape (N, L, D)."""

    # Declared for the type checker only; the dataclasses using the mixin define the fields.
    text: np.ndarray
    audio: np.ndarray
    vision: np.ndarray

    @property
    def dims(self) -> tuple[int, int, int]:
        """(text, audio, vision) feature dimensions."""
        return (self.text.shape[2], self.audio.shape[2], self.vision.shape[2])

    @property
    def seq_lens(self) -> tuple[int, int, int]:
        """(text, audio, vision) numbers of time steps."""
        return (self.text.shape[1], self.audio.shape[1], self.vision.shape[1])
