"""Put an expert-fusion head on a trained live checkpoint (``imer-train live-experts``).

The live corpora are class-matched pseudo-pairs: the modalities are
independent given the label, so the product of per-modality experts is the
right combination, and every fused network trained on the tuples scored below
it (``docs/live_model.md``).  This step keeps the method (its recovery and its
own prediction) and adds :class:`~imer_core.nn.expert_fusion.ExpertFusionHead`:

1. one expert per modality, trained on that modality of the training tuples
   alone (the architecture and training of ``live-eval``'s unimodal baseline:
   mean and std over time → 2-layer MLP, best epoch by validation macro-F1);
   with ``members`` > 1 each expert is an ensemble of that many such MLPs trained
   with different seeds (:class:`~imer_core.nn.expert_fusion.ExpertEnsemble`);
2. with ``speaker_audio``, a second audio expert trained on audio normalised
   with each speaker's own statistics (used by the engine once the running
   statistics of the session have enough speech, see
   :data:`SWITCH_AFTER_SPEECH_S`);
   with ``text_expert="text-net-head"`` (the default when the text feature is the
   fine-tuned text network's) the text expert is that network's own head carried
   over, not trained (:mod:`training.live.expert_calibration`);
3. every expert's temperature, fitted on the validation tuples (temperature
   scaling: the product of experts needs calibrated experts);
4. the correction (product of experts + method's prediction + mask → logits),
   fitted on training tuples under all seven availability conditions and
   **kept only if it lowers the validation loss**.

The output checkpoint has ``config.expert_fusion`` set and the data options,
normalisation, the training neutral means of face and voice
(``neutral_reference``, for a person's neutral baseline,
:mod:`imer_core.live.neutral_baseline`) and (with ``speaker_audio``) the
``speaker_normalization`` settings in its metadata.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from imer_core.checkpoint import checkpoint_info as read_meta
from imer_core.checkpoint import load_checkpoint, save_checkpoint
from imer_core.live.neutral_baseline import neutral_reference
from imer_core.methods.base import SamplingOptions
from imer_core.modalities import MODALITIES
from imer_core.nn.expert_fusion import SPEAKER_SUFFIX, ExpertFusionHead, fit_correction
from imer_core.registry import create_model

from .baselines import train_unimodal
from .dataset import SPEAKER_AUDIO_KEY, LiveData, build_live_data, load_pools, speaker_normalised_audio
from .evaluate import CONDITIONS, condition_mask, data_options_of
from .expert_calibration import fit_expert_temperatures, resolve_text_expert, text_net_head_expert
from .labels import LIVE_LABELS

#: Seconds of speech after which the engine switches the audio expert to per-speaker normalisation.
#: Measured (docs/perception.md, SVM on the same features): running statistics beat the global
#: normalisation only after ~30-40 s of speech (10/20/40/80 s: 49.9/53.3/57.8/61.4 % vs 54.9 % global).
SWITCH_AFTER_SPEECH_S = 40.0
#: Prior weight of the running speaker statistics, in steps of speech (10 s at 10 Hz).
SPEAKER_PRIOR_STEPS = 100
HEAD_SETTINGS: dict[str, Any] = {"hidden": 128, "depth": 2, "dropout": 0.2, "correction_hidden": 32}
#: Experts per modality of ``live-experts`` (seeds ``seed``, ``seed + MEMBER_SEED_STEP``, ...).
DEFAULT_MEMBERS = 3
MEMBER_SEED_STEP = 1000


def _expert_state(classifier: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The unimodal baseline classifier's weights as an expert's (same layer layout)."""
    return {k: v.detach().clone() for k, v in classifier.state_dict().items()}


def _train_expert(target: torch.nn.Module, datasets: Any, modality: str, dim: int, members: int, seed: int,
                  progress: bool) -> dict[str, Any]:
    """Train ``members`` unimodal classifiers into ``target`` (an expert or an ensemble); return their infos."""
    slots = list(getattr(target, "members", [target]))
    if len(slots) != members:
        raise ValueError(f"the head has {len(slots)} experts for {modality}, expected {members}")
    infos = []
    for k, slot in enumerate(slots):
        classifier, info = train_unimodal(datasets, modality, dim, tuple(LIVE_LABELS), seed=seed + MEMBER_SEED_STEP * k,
                                          progress=progress)
        slot.load_state_dict(_expert_state(classifier))
        infos.append(info)
    if members == 1:
        return infos[0]
    return {"members": infos, "valid_macro_f1_mean": float(np.mean([i["valid_macro_f1"] for i in infos]))}


@torch.no_grad()
def _collect(model: Any, head: ExpertFusionHead, dataset: Any, limit: int | None, batch_size: int = 256,
             speaker: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Experts' product, method logits, masks and labels of ``dataset`` under all seven conditions."""
    products, logits, masks, labels = [], [], [], []
    sampling = SamplingOptions(seed=0)
    seen = 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        features = {m.value: batch[m.value] for m in MODALITIES}
        if speaker and SPEAKER_AUDIO_KEY in batch:
            features[SPEAKER_AUDIO_KEY] = batch[SPEAKER_AUDIO_KEY]
        for condition in CONDITIONS:
            mask = condition_mask(condition, len(batch["label"]))
            method_logits = model.predict_from_recovered(model.recover(features, mask, sampling))
            products.append(head.product_of_experts(features, mask))
            logits.append(method_logits.float())
            masks.append(mask.float())
            labels.append(batch["label"])
        seen += len(batch["label"])
        if limit is not None and seen >= limit:
            break
    return torch.cat(products), torch.cat(logits), torch.cat(masks), torch.cat(labels)


def _fixed_training_tuples(data: LiveData, per_class: int, seed: int) -> Any:
    """A fixed sample of training tuples (the training dataset draws new partners every access)."""
    from .dataset import LiveTupleDataset

    train = data.datasets["train"]
    return LiveTupleDataset(train.pools, len(LIVE_LABELS), seed, resample=False, tuples_per_class=per_class)


def add_expert_fusion(checkpoint: str | Path, cache: str | Path, out: str | Path, speaker_audio: bool = True,
                      correction_tuples_per_class: int = 300, seed: int = 0, progress: bool = True,
                      log: Callable[[str], None] = print, members: int = DEFAULT_MEMBERS,
                      text_expert: str = "auto", text_net_path: str | Path | None = None,
                      experts_from: str | Path | None = None) -> dict[str, Any]:
    """Train the experts and the correction for ``checkpoint``; write ``out`` (a checkpoint); return a summary.

    ``members``: MLPs per modality expert (an ensemble above 1, each member with its own seed).
    ``text_expert``: ``"mlp"`` (trained like the others), ``"text-net-head"`` (the text
    network's head carried over) or ``"auto"`` (the head when the cache's text feature is
    the text network's at ``text_net_path``, default the shipped file).
    ``experts_from``: an earlier ``live-experts`` checkpoint on the same features whose
    trained experts (same kind, same members) are reused instead of training new ones
    (e.g. to change the text expert or recalibrate without re-drawing the other experts).
    """
    start = time.perf_counter()
    checkpoint = Path(checkpoint)
    options = data_options_of([checkpoint])
    data = build_live_data(cache, options)
    model = load_checkpoint(checkpoint)
    if model.config.specs != data.specs:
        raise ValueError(f"{checkpoint}: its feature specs differ from the cache's ({cache}); retrain it on this cache")
    settings = {**HEAD_SETTINGS, "speaker_experts": ["audio"] if speaker_audio else []}
    if members != 1:
        settings["members"] = int(members)
    text_kind = resolve_text_expert(text_expert, data.specs.text.extractor, text_net_path)
    if text_kind == "text-net-head":
        settings["linear_experts"] = ["text"]
    dims = {m.value: data.specs[m].dim for m in MODALITIES}
    head = ExpertFusionHead.from_settings(dims, len(LIVE_LABELS), settings)
    summary: dict[str, Any] = {"experts": {}}
    reused = _reusable_experts(experts_from, head, data.specs) if experts_from is not None else {}
    for key, (state, info) in reused.items():
        head.expert(key).load_state_dict(state)
        summary["experts"][key] = {"reused_from": str(experts_from), **info}
        log(f"expert {key}: reused from {experts_from}")
    for m in MODALITIES:
        if m.value in reused:
            continue
        if m.value in head.linear_experts:
            state, info = text_net_head_expert(cache, data.normalization["text"], text_net_path)
            head.experts[m.value].load_state_dict(state)
        else:
            info = _train_expert(head.experts[m.value], data.datasets, m.value, dims[m.value], members, seed,
                                 progress)
        summary["experts"][m.value] = info
        log(f"expert {m.value}: {json.dumps(info)}")
    datasets = data.datasets
    speaker_sets = _speaker_sets(cache, options, data, datasets) if speaker_audio else {}
    if speaker_audio and "audio" + SPEAKER_SUFFIX not in reused:
        renamed = {name: _RenamedKey(d, SPEAKER_AUDIO_KEY, "audio") for name, d in speaker_sets.items()}
        info = _train_expert(head.speaker_experts["audio"], renamed, "audio", dims["audio"], members, seed, progress)
        summary["experts"]["audio" + SPEAKER_SUFFIX] = info
        log(f"expert audio{SPEAKER_SUFFIX} (per-speaker normalisation): {json.dumps(info)}")
    calibration = fit_expert_temperatures(head, datasets["valid"], speaker_sets.get("valid"))
    settings["temperatures"] = dict(head.temperatures)
    summary["temperatures"] = calibration
    log(f"temperatures (fitted on validation tuples): {json.dumps(calibration)}")
    head.eval()
    model.eval()
    train_fixed = _fixed_training_tuples(data, correction_tuples_per_class, seed + 17)
    fit = fit_correction(head, _collect(model, head, train_fixed, None), _collect(model, head, datasets["valid"], None),
                         seed=seed)
    summary["correction"] = fit
    log(f"correction: {json.dumps(fit)}")
    config = replace(model.config, expert_fusion=settings)
    fused = create_model(config)
    state = {**model.state_dict(), **{f"expert_fusion.{k}": v for k, v in head.state_dict().items()}}
    fused.load_state_dict(state, strict=True)
    metadata = dict(read_meta(checkpoint)["metadata"])
    pools, _ = load_pools(cache, options)
    metadata["neutral_reference"] = neutral_reference(pools, LIVE_LABELS.index("neutral"))
    metadata["expert_fusion"] = {"summary": _plain(summary), "settings": settings,
                                 "note": "experts trained on class-matched pseudo-pair tuples, one modality each"}
    if speaker_audio:
        metadata["speaker_normalization"] = {"audio": {"prior_steps": SPEAKER_PRIOR_STEPS, "min_speech_fraction": 0.5,
                                                       "switch_after_steps": int(SWITCH_AFTER_SPEECH_S * 10),
                                                       "mode": "expert"}}
    save_checkpoint(fused.eval(), out, metadata)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["out"] = str(out)
    return summary


def _speaker_sets(cache: str | Path, options: Any, data: LiveData, datasets: Mapping[str, Any]) -> dict[str, Any]:
    """Training and validation tuples carrying the per-speaker-normalised audio under ``audio@speaker``."""
    audio = speaker_normalised_audio(cache, options, data.normalization, prior_steps=SPEAKER_PRIOR_STEPS)
    return {name: datasets[name].with_extra(SPEAKER_AUDIO_KEY, "audio", audio[split])
            for split, name in (("train", "train"), ("val", "valid"))}


def _reusable_experts(path: str | Path, head: ExpertFusionHead, specs: Any
                      ) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, Any]]]:
    """``{expert key: (state, summary)}`` of the trained experts of ``path`` that fit ``head``.

    Linear (carried-over) experts are never reused: they are rebuilt from their source.

    Raises:
        ValueError: ``path`` has no expert head, other feature specs or experts of another shape.
    """
    model = load_checkpoint(path)
    source = getattr(model, "expert_fusion", None)
    if source is None:
        raise ValueError(f"--experts-from {path}: the checkpoint has no expert head (run live-experts on it first)")
    if model.config.specs != specs:
        raise ValueError(f"--experts-from {path}: its feature specs differ from the cache's")
    old_summary = (read_meta(path)["metadata"].get("expert_fusion") or {}).get("summary", {}).get("experts", {})
    out: dict[str, tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}
    for key in head.expert_keys:
        speaker = key.endswith(SPEAKER_SUFFIX)
        name = key[: -len(SPEAKER_SUFFIX)] if speaker else key
        if not speaker and (name in head.linear_experts or name in source.linear_experts):
            continue  # a carried-over head is rebuilt from its source, never copied
        if name not in (source.speaker_experts if speaker else source.experts):
            continue
        state = source.expert(key).state_dict()
        wanted = head.expert(key).state_dict()
        if {k: tuple(v.shape) for k, v in state.items()} != {k: tuple(v.shape) for k, v in wanted.items()}:
            raise ValueError(f"--experts-from {path}: its {key} expert has another shape (members, depth or width "
                             f"differ); pass the same --members")
        info = old_summary.get(key, {})
        out[key] = ({k: v.detach().clone() for k, v in state.items()}, info if isinstance(info, dict) else {})
    return out


class _RenamedKey(torch.utils.data.Dataset):
    """Items of ``dataset`` with ``source`` copied into ``target`` (to train an expert on another key)."""

    def __init__(self, dataset: Any, source: str, target: str) -> None:
        self.dataset, self.source, self.target = dataset, source, target
        self.labels = dataset.labels

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        item[self.target] = item[self.source]
        return item


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
