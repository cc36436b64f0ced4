"""Optional BERT text encoder for the token-id input path.

MMSA pickles carry ``text_bert`` tensors of shape ``(B, 3, L)`` — input ids,
attention mask and segment ids — next to pre-extracted 768-d ``text``
features.  The default input of the models is the pre-extracted features; this
module is only needed when a model is configured with ``text_encoder="bert"``.
``transformers`` is imported lazily and the weights must exist locally (no
download is attempted).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TextEncoderUnavailable(RuntimeError):
    """The BERT text encoder cannot be built (missing package or missing weights)."""


def _missing_weights_message(path: Path) -> str:
    return (f"BERT-base weights not found at {str(path)!r}; MMSA pickles carry pre-extracted 768-d `text` "
            f"features, which are the default input (use text_encoder='features'), or point bert_path to a "
            f"local folder holding a Hugging Face BERT checkpoint (config.json + weights).")


class BertTextEncoder(nn.Module):
    """BERT returning the last hidden states ``(B, L, 768)`` of MMSA token tensors.

    Frozen by default; :meth:`set_trainable` switches fine-tuning on (IMDer's
    stage 1 fine-tunes BERT, its recovery stage keeps it frozen).

    Args:
        pretrained: local folder with a Hugging Face BERT checkpoint (e.g. ``bert-base-uncased``).

    Raises:
        TextEncoderUnavailable: ``transformers`` is not installed or the weights are not found locally.
    """

    def __init__(self, pretrained: str | Path) -> None:
        super().__init__()
        path = Path(pretrained).expanduser() if str(pretrained) else None
        if path is None or not path.is_dir():
            raise TextEncoderUnavailable(_missing_weights_message(path if path is not None else Path("")))
        try:
            from transformers import BertModel  # lazy: optional dependency
        except ImportError as exc:
            raise TextEncoderUnavailable(
                "the BERT text encoder needs the optional `transformers` package (pip install transformers); "
                "MMSA pickles carry pre-extracted 768-d `text` features, which are the default input "
                "(text_encoder='features')."
            ) from exc
        try:
            self.model = BertModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise TextEncoderUnavailable(_missing_weights_message(path)) from exc
        self.trainable = False
        self.set_trainable(False)
        self.hidden_size = int(self.model.config.hidden_size)

    def set_trainable(self, trainable: bool) -> None:
        """Fine-tune (``True``: gradients reach BERT's weights) or freeze the encoder."""
        self.trainable = bool(trainable)
        for p in self.model.parameters():
            p.requires_grad_(self.trainable)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Encode ``tokens (B, 3, L)`` (ids, attention mask, segment ids) into ``(B, L, hidden)``.

        Runs under ``no_grad`` while frozen (the IMDer reference's recovery
        stage); with :meth:`set_trainable` gradients flow into BERT.  BERT's
        dropout follows the module's train/eval mode like the reference.
        """
        if tokens.dim() != 3 or tokens.shape[1] != 3:
            raise ValueError(f"BERT token tensors must have shape (batch, 3, length), got {tuple(tokens.shape)}")
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            out = self.model(input_ids=tokens[:, 0].long(), attention_mask=tokens[:, 1].float(),
                             token_type_ids=tokens[:, 2].long())
        return out[0]
