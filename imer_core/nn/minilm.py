"""A self-contained BERT sentence encoder for all-MiniLM-L6-v2 (torch + ``tokenizers`` + ``safetensors``).

The live text feature is the sentence-transformers recipe of all-MiniLM-L6-v2: a
6-layer BERT (Devlin et al., 2019, §3; Vaswani et al., 2017, eq. 1 for the attention),
the mean of the last hidden states over the real tokens, and L2 normalisation
(Reimers & Gurevych, 2019, §3).  This module computes exactly that from the model
directory's own files — ``config.json``, ``model.safetensors``, ``tokenizer.json``,
``sentence_bert_config.json`` and ``1_Pooling/config.json`` — without importing
sentence-transformers or transformers.  Those two libraries cost ~8 CPU-seconds of
imports at every start of the app and bring the Hugging Face hub client into the
process; the forward pass here matches theirs to float precision
(``tests/test_minilm_encoder.py`` checks it against embeddings made with
sentence-transformers).

Only what the shipped model uses is supported (post-LayerNorm BERT, absolute
positions, GELU, mean pooling, normalisation); a directory that asks for anything
else is refused with :class:`MiniLMFormatError` instead of giving other numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual torch alias

#: The sentence-transformers modules this encoder reproduces, in order.
_EXPECTED_MODULES = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                     "sentence_transformers.models.Normalize")


class MiniLMFormatError(ValueError):
    """The model directory is not a BERT sentence encoder this module reproduces."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MiniLMFormatError(f"cannot read {path.name}: {exc}") from exc


class BertConfigValues:
    """The fields of a BERT ``config.json`` the encoder needs, checked."""

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise MiniLMFormatError("config.json is not an object")
        if raw.get("model_type") != "bert" or raw.get("hidden_act") != "gelu" \
                or raw.get("position_embedding_type", "absolute") != "absolute":
            raise MiniLMFormatError(f"only a BERT with GELU and absolute positions is supported, got "
                                    f"model_type={raw.get('model_type')!r} hidden_act={raw.get('hidden_act')!r}")
        try:
            self.vocab_size = int(raw["vocab_size"])
            self.hidden_size = int(raw["hidden_size"])
            self.num_layers = int(raw["num_hidden_layers"])
            self.num_heads = int(raw["num_attention_heads"])
            self.intermediate_size = int(raw["intermediate_size"])
            self.max_positions = int(raw["max_position_embeddings"])
            self.type_vocab_size = int(raw["type_vocab_size"])
            self.layer_norm_eps = float(raw["layer_norm_eps"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MiniLMFormatError(f"config.json lacks a BERT field: {exc}") from exc
        if self.hidden_size % self.num_heads:
            raise MiniLMFormatError(f"hidden_size {self.hidden_size} is not a multiple of "
                                    f"num_attention_heads {self.num_heads}")


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfigValues) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_positions, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)  # noqa: N815 - checkpoint key

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions)[None] \
            + self.token_type_embeddings.weight[0]  # one segment: token type 0 everywhere
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfigValues) -> None:
        super().__init__()
        self.heads = c.num_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        # softmax(QK^T / sqrt(d_head) + mask) V  (Vaswani et al., 2017, eq. 1); padded keys get -inf-like bias
        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                             attn_mask=bias)
        return out.transpose(1, 2).reshape(b, n, d)


class _DenseNorm(nn.Module):
    """``LayerNorm(residual + dense(x))`` — BERT's post-norm residual (keys ``dense``, ``LayerNorm``)."""

    def __init__(self, d_in: int, c: BertConfigValues) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)  # noqa: N815 - checkpoint key

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(x))


class _Attention(nn.Module):
    def __init__(self, c: BertConfigValues) -> None:
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _DenseNorm(c.hidden_size, c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfigValues) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, BERT's "gelu"


class _Layer(nn.Module):
    def __init__(self, c: BertConfigValues) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _DenseNorm(c.intermediate_size, c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, c: BertConfigValues) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_layers))


class BertSentenceEncoder(nn.Module):
    """BERT → mean pooling over real tokens → L2 normalisation (the sentence-transformers recipe).

    Parameter names follow the Hugging Face BERT checkpoint, so ``model.safetensors``
    loads with ``strict=True`` (its unused ``pooler`` is dropped).
    """

    def __init__(self, config: BertConfigValues) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``ids``, ``mask``: ``(batch, tokens)`` token ids and 1/0 real-token mask → ``(batch, hidden)``."""
        keep = mask.to(torch.bool)
        bias = torch.zeros(keep.shape, dtype=torch.float32, device=ids.device)
        bias = bias.masked_fill(~keep, torch.finfo(torch.float32).min)[:, None, None, :]
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        weights = keep.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=-1, eps=1e-12)


def _check_sentence_transformers_layout(path: Path) -> int:
    """Check modules.json / pooling config ask for what this encoder does; return ``max_seq_length``."""
    modules = _read_json(path / "modules.json")
    types = tuple(m.get("type") for m in modules) if isinstance(modules, list) \
        and all(isinstance(m, dict) for m in modules) else None
    if types != _EXPECTED_MODULES:
        raise MiniLMFormatError(f"modules.json must list Transformer, Pooling, Normalize; got {types}")
    pooling = _read_json(path / "1_Pooling" / "config.json")
    modes = {k: v for k, v in pooling.items() if k.startswith("pooling_mode") and v} \
        if isinstance(pooling, dict) else None
    if modes != {"pooling_mode_mean_tokens": True}:
        raise MiniLMFormatError(f"only mean pooling is supported, 1_Pooling/config.json asks for {modes}")
    settings = _read_json(path / "sentence_bert_config.json")
    length = settings.get("max_seq_length") if isinstance(settings, dict) else None
    if not isinstance(length, int) or length < 2:
        raise MiniLMFormatError(f"sentence_bert_config.json has no usable max_seq_length: {length!r}")
    return length


class MiniLMEncoder:
    """Tokenizer + :class:`BertSentenceEncoder` loaded from a sentence-transformers model directory.

    Args:
        path: the directory (``config.json``, ``model.safetensors``, ``tokenizer.json``, ...).
        device: torch device string.

    Raises:
        MiniLMFormatError: a file is missing or asks for something this encoder does not reproduce.
    """

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from safetensors.torch import load_file  # small; imported with the encoder only
        from tokenizers import Tokenizer

        path = Path(path)
        self.max_tokens = min(_check_sentence_transformers_layout(path),
                              BertConfigValues(_read_json(path / "config.json")).max_positions)
        config = BertConfigValues(_read_json(path / "config.json"))
        try:
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            state = load_file(str(path / "model.safetensors"))
        except Exception as exc:  # tokenizers/safetensors raise their own exception types
            raise MiniLMFormatError(f"cannot load the tokenizer or the weights from {str(path)!r}: {exc}") from exc
        # sentence-transformers pads to the longest text of a batch and truncates at max_seq_length
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer = tokenizer
        state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        model = BertSentenceEncoder(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = " ".join(str(exc).split())  # torch's message spans lines
            raise MiniLMFormatError(f"model.safetensors does not fit config.json: {first[:300]}") from exc
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dim = config.hidden_size

    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Unit-norm embeddings ``(len(texts), dim)`` (float32, on the CPU); texts sorted by length per batch."""
        if not texts:
            return torch.zeros(0, self.dim)
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        out = torch.empty(len(texts), self.dim)
        with torch.inference_mode():
            for start in range(0, len(order), max(1, batch_size)):
                chunk = order[start:start + max(1, batch_size)]
                width = max(len(encodings[i].ids) for i in chunk)
                ids = torch.zeros(len(chunk), width, dtype=torch.long)
                mask = torch.zeros(len(chunk), width, dtype=torch.long)
                for row, i in enumerate(chunk):
                    n = len(encodings[i].ids)
                    ids[row, :n] = torch.tensor(encodings[i].ids, dtype=torch.long)
                    mask[row, :n] = 1
                out[chunk] = self.model(ids.to(self.device), mask.to(self.device)).float().cpu()
        return out

