"""Load weights saved by the official IMDer code (mdswyz/IMDer) into :class:`~imer_core.methods.imder.IMDer`.

Two kinds of files come out of the reference:

* ``pt/pretrained-{mosi,mosei}.pth`` — the released stage-1 weights (complete
  data, fine-tuned BERT): an MMSA model state dict whose keys start with
  ``Model.``; it holds BERT (``text_model.model.*``), the projections and the
  MulT fusion, no score networks or refiners.
* ``pt/imder-{mosi,mosei}.pth`` — a trained IMDer: the reference module's full
  state dict (score networks ``score_{l,a,v}``, refiners ``rec_{l,a,v}``, the
  pair convolutions ``cat_{lv,la,va}``) with the same fusion keys.

:func:`convert_reference_state_dict` renames the keys into this project's
layout; :func:`load_reference_weights` loads them into a model, refusing any
key it cannot place or whose shape differs, and reports what the file did not
cover (for a stage-1 file: the recovery modules, which stage 2 trains).

Dropped on conversion: the reference Transformers' ``version`` and
``embed_positions._float_tensor`` buffers and BERT's ``position_ids`` /
``token_type_ids`` buffers (constants, rebuilt by the modules).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

_SHORT_TO_MODALITY = {"l": "text", "a": "audio", "v": "vision"}
_DROPPED = re.compile(r"(\.version|\.embed_positions\._float_tensor|\.position_ids|"
                      r"embeddings\.token_type_ids)$")
_SCORE_LEVELS = 4  # the reference ScoreNet has four resolution levels


class ReferenceWeightsError(ValueError):
    """A reference checkpoint cannot be converted into the model (names the offending key)."""


@dataclass
class ReferenceLoadReport:
    """What :func:`load_reference_weights` loaded.

    Attributes:
        loaded: project keys set from the file.
        not_in_file: project keys the file does not hold (kept at their current values).
        dropped: reference keys deliberately skipped (constant buffers).
    """

    loaded: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _score_key(rest: str) -> str | None:
    """Reference ``ScoreNet`` sub-key → :class:`ConditionalScoreUNet1d` sub-key."""
    if rest.startswith("embed."):
        return rest
    m = re.match(r"(conv|attention_|dense|gnorm)(\d)(_cond)?\.(.*)$", rest)
    if m:
        kind, level, cond, tail = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if kind == "conv":
            return f"enc_cond_convs.{level - 2}.{tail}" if cond else f"enc_convs.{level - 1}.{tail}"
        if kind == "dense":                               # dense1..4: encoder, dense5..7: decoder
            layer = f"enc_denses.{level - 1}" if level <= _SCORE_LEVELS else f"dec_denses.{level - _SCORE_LEVELS - 1}"
            return f"{layer}.{tail.removeprefix('dense.')}"
        if kind == "gnorm":
            return f"enc_norms.{level - 1}.{tail}"
        return f"enc_attns.{level - 1}.{tail}"
    m = re.match(r"(tconv|attention_t|tgnorm)(\d)(_cond)?\.(.*)$", rest)
    if m:
        kind, level, cond, tail = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if level == 1:
            if kind == "tconv":
                return f"out_cond_conv.{tail}" if cond else f"out_conv.{tail}"
            if kind == "attention_t":
                return f"out_attn.{tail}"
            return None
        index = _SCORE_LEVELS - level                    # t4 → 0, t3 → 1, t2 → 2
        if kind == "tconv":
            return f"dec_cond_convs.{index}.{tail}" if cond else f"dec_convs.{index}.{tail}"
        if kind == "tgnorm":
            return f"dec_norms.{index}.{tail}"
        return f"dec_attns.{index}.{tail}"
    return None


def reference_key_to_project(key: str) -> str | None:
    """The project key of one reference key (``Model.`` prefix allowed); ``None`` if it has no counterpart."""
    key = key.removeprefix("Model.")
    if key.startswith("text_model.model."):
        return "text_encoder.model." + key.removeprefix("text_model.model.")
    m = re.match(r"(proj_[lav]\.|trans_[lav]_with_[lav]\.|trans_[lav]_mem\.|proj1\.|proj2\.|out_layer\.)(.*)$", key)
    if m:
        return f"fusion.{key}"
    m = re.match(r"score_([lav])\.(.*)$", key)
    if m:
        rest = _score_key(m.group(2))
        return None if rest is None else f"score_nets.{_SHORT_TO_MODALITY[m.group(1)]}.{rest}"
    m = re.match(r"rec_([lav])\.(.*)$", key)
    if m:
        return f"refiners.{_SHORT_TO_MODALITY[m.group(1)]}.body.{m.group(2).replace('.conv_du.', '.gate.')}"
    if key.startswith("cat_va."):
        return "cat_av." + key.removeprefix("cat_va.")
    if re.match(r"cat_(lv|la)\.", key):
        return key
    return None


def convert_reference_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a reference state dict into the project's layout.

    Returns ``(converted, dropped)``.  Raises :class:`ReferenceWeightsError` on a
    key that is neither mapped nor a known constant buffer.
    """
    converted, dropped = {}, []
    for key, value in state.items():
        if _DROPPED.search(key):
            dropped.append(key)
            continue
        target = reference_key_to_project(key)
        if target is None:
            raise ReferenceWeightsError(f"reference key {key!r} has no counterpart in this project's IMDer")
        if not isinstance(value, torch.Tensor):
            raise ReferenceWeightsError(f"reference key {key!r} holds a {type(value).__name__}, not a tensor")
        converted[target] = value
    return converted, dropped


def read_reference_file(path: "str | os.PathLike[str]") -> dict[str, torch.Tensor]:
    """Read a reference ``.pth`` state dict with torch's safe loader (tensors only, no code)."""
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # corrupt file, or a pickle holding objects the safe loader refuses
        raise ReferenceWeightsError(f"{path}: not a readable state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ReferenceWeightsError(f"{path}: expected a non-empty state dict")
    return state


def load_reference_weights(model: nn.Module, source: "Mapping[str, torch.Tensor] | str | os.PathLike[str]",
                           require: tuple[str, ...] = ("fusion.",)) -> ReferenceLoadReport:
    """Load a reference state dict (or ``.pth`` path) into an IMDer ``model``.

    Every converted key must exist in ``model`` with the same shape; every model
    key starting with one of ``require`` must be covered by the file (the
    fusion by default: a file without it is not an IMDer/MulT checkpoint).
    """
    state = source if isinstance(source, Mapping) else read_reference_file(source)
    converted, dropped = convert_reference_state_dict(state)
    own = model.state_dict()
    for key, value in converted.items():
        if key not in own:
            hint = " (configure text_encoder='bert' to load BERT)" if key.startswith("text_encoder.") else ""
            raise ReferenceWeightsError(f"reference weights hold {key!r}, which this model lacks{hint}")
        if tuple(own[key].shape) != tuple(value.shape):
            raise ReferenceWeightsError(f"{key}: reference shape {tuple(value.shape)} != model shape "
                                        f"{tuple(own[key].shape)} (check feature dims, nlevels, d_model)")
    uncovered = [k for k in own if k not in converted]
    required_missing = [k for k in uncovered if k.startswith(require)]
    if required_missing:
        raise ReferenceWeightsError(f"reference weights lack {len(required_missing)} required key(s), e.g. "
                                    f"{required_missing[0]!r}")
    own.update({k: v.to(own[k].dtype) for k, v in converted.items()})
    model.load_state_dict(own)
    return ReferenceLoadReport(loaded=sorted(converted), not_in_file=uncovered, dropped=dropped)
