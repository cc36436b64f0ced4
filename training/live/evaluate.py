"""Evaluation of the live models under the seven availability conditions, with baselines.

``imer-train live-eval --cache runs/live_cache --checkpoints a.pt,b.pt,c.pt --out runs/live_eval``:

1. rebuilds the held-out test tuples from the cache with the data options
   stored in the checkpoints (all must agree);
2. evaluates each checkpoint under every availability subset (``l``, ``a``,
   ``v``, ``la``, ``lv``, ``av``, ``lav``; ``l`` text, ``a`` audio, ``v``
   vision): accuracy, macro-F1, UAR and per-class recall;
3. trains and evaluates the baselines of :mod:`training.live.baselines` on
   the same tuples: zero-fill and mean-fill (the MulT fusion network and
   training settings of ``--baseline-config``, no recovery, same two stages
   and protocol) and unimodal classifiers combined by late fusion;
4. evaluates every model and baseline on the test speakers' real audio clips
   with the embedding of their own ASR transcript (the one genuinely paired
   combination in the corpora): audio only, transcript only, both;
5. measures the CPU latency of one 2 s window (batch 1) per condition;
6. gives each checkpoint's macro-F1 minus late fusion's with a 95 % interval
   (paired bootstrap over each modality's test samples,
   :mod:`training.live.paired_bootstrap`; ``--bootstrap 0`` skips it);
7. writes ``results.md``, ``results.csv`` and ``results.json``; with
   ``--ship DIR`` each checkpoint is copied to ``DIR/live_<method>.pt`` with
   the results in its metadata (and the per-speaker voice switch-over of
   ``live-experts`` kept only if it did not lower voice-only macro-F1).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from imer_core.checkpoint import load_checkpoint, save_checkpoint
from imer_core.config import ModelConfig
from imer_core.live import checkpoint_keys as keys
from imer_core.methods.base import PRETRAIN, RECOVERY, SamplingOptions
from imer_core.modalities import AVAILABLE_SUBSETS, MODALITIES, mask_from_available, subset_name
from imer_core.registry import method_title

from ..distributed import DistContext
from ..experiment import Experiment, load_experiment
from ..metrics import classification_metrics
from ..protocol_spec import make_protocol
from ..runs import RunFolder
from ..trainer import Trainer, seed_everything
from .baselines import FILL_KINDS, FillFusion, dataset_labels, fill_vectors
from .dataset import (
    SPEAKER_AUDIO_KEY,
    LiveData,
    LiveDataOptions,
    PairedAudioTextDataset,
    build_live_data,
    live_checkpoint_metadata,
    paired_asr_dataset,
    speaker_normalised_audio,
)
from .eval_tables import write_tables
from .labels import LIVE_LABELS
from .late_fusion_seeds import LATE_FUSION, LATE_FUSION_MEAN, mean_metrics, more_seeds, train_late_fusion
from .paired_bootstrap import DEFAULT_REPLICATES, paired_difference

CONDITIONS: tuple[str, ...] = tuple(subset_name(s) for s in AVAILABLE_SUBSETS)
PAIRED_CONDITIONS: tuple[str, ...] = ("a", "l", "la")
MAX_SHIP_BYTES = 20_000_000  # 20 MB: the size limit of a shipped checkpoint
Predictor = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def condition_mask(condition: str, batch: int) -> torch.Tensor:
    """Availability mask of a condition name such as ``"la"``."""
    return mask_from_available(list(condition), batch)


@torch.no_grad()
def predict_conditions(predict: Predictor, dataset: Dataset, conditions: Sequence[str] = CONDITIONS,
                       batch_size: int = 128, progress: bool = True, desc: str = "eval") -> dict[str, np.ndarray]:
    """Scores ``(N, K)`` of ``predict(features, mask)`` on ``dataset`` under each condition."""
    out = {}
    batches = []  # assembled once, reused by every condition (the items are fixed tuples)
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        features = {m.value: batch[m.value] for m in MODALITIES}
        features.update({k: v for k, v in batch.items() if "@" in k})  # e.g. audio@speaker
        batches.append((features, len(batch["label"])))
    for condition in tqdm(conditions, desc=desc, leave=False, disable=not progress):
        scores = []
        for features, size in batches:
            scores.append(predict(features, condition_mask(condition, size)).float().numpy())
        out[condition] = np.concatenate(scores)
    return out


def evaluate_conditions(predict: Predictor, dataset: Dataset, conditions: Sequence[str] = CONDITIONS,
                        batch_size: int = 128, progress: bool = True, desc: str = "eval",
                        keep_scores: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Metrics of ``predict(features, mask)`` on ``dataset`` under each condition (default: all seven).

    ``keep_scores``: a dict that receives the ``(N, K)`` scores per condition as well.
    """
    labels = dataset_labels(dataset)
    scores = predict_conditions(predict, dataset, conditions, batch_size, progress, desc)
    if keep_scores is not None:
        keep_scores.update(scores)
    return {c: classification_metrics(s, labels, LIVE_LABELS) for c, s in scores.items()}


def differences_from(reference: Mapping[str, np.ndarray], models: Mapping[str, Mapping[str, np.ndarray]],
                     dataset: Any, replicates: int, seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """Per model and condition: macro-F1 minus the reference's, with its paired pigeonhole-bootstrap interval."""
    labels, sources = dataset_labels(dataset), dataset.sources()
    names = {m.short: m.value for m in MODALITIES}
    return {title: {c: paired_difference(labels, scores[c], reference[c], sources, [names[x] for x in c],
                                         len(LIVE_LABELS), replicates, seed)
                    for c in reference if c in scores}
            for title, scores in models.items()}


def evaluate_paired(predict: Predictor, dataset: PairedAudioTextDataset, progress: bool = True,
                    desc: str = "paired") -> dict[str, dict[str, dict[str, float]]]:
    """Metrics on real audio + own-transcript pairs under :data:`PAIRED_CONDITIONS`, overall and per corpus."""
    scores = predict_conditions(predict, dataset, PAIRED_CONDITIONS, progress=progress, desc=desc)
    groups = {"all": np.ones(len(dataset), bool), **{c: dataset.corpora == c for c in np.unique(dataset.corpora)}}
    return {group: {c: classification_metrics(s[keep], dataset.labels[keep], LIVE_LABELS) for c, s in scores.items()}
            for group, keep in groups.items() if keep.any()}


@torch.no_grad()
def window_latency_ms(model: Any, runs: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median milliseconds of ``model.predict`` on one window (batch 1) per condition."""
    specs = model.config.specs
    features = {s.modality.value: torch.randn(1, s.seq_len, s.dim) for s in specs}
    sampling = SamplingOptions(seed=0)
    out = {}
    for condition in CONDITIONS:
        mask = condition_mask(condition, 1)
        for _ in range(warmup):
            model.predict(features, mask, sampling)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model.predict(features, mask, sampling)
            times.append((time.perf_counter() - start) * 1000.0)
        out[condition] = statistics.median(times)
    return out


def _model_predictor(model: Any) -> Predictor:
    sampling = SamplingOptions(seed=0)
    return lambda features, mask: model.predict(features, mask, sampling)


def data_options_of(checkpoints: Sequence[Path]) -> LiveDataOptions:
    """The data options stored in the checkpoints (they must all be the same)."""
    from imer_core.checkpoint import checkpoint_info as read_meta

    options = [read_meta(p)["metadata"].get("data", {}).get("options") for p in checkpoints]
    if any(o is None for o in options):
        raise ValueError("a checkpoint has no live data options in its metadata: train it with a live_* config")
    if any(o != options[0] for o in options[1:]):
        raise ValueError(f"the checkpoints were trained on different live data options: {options}")
    return LiveDataOptions.from_mapping(options[0])


def train_fill_baseline(kind: str, config: ModelConfig, data: LiveData, experiment: Experiment, run_dir: Path,
                        seed: int, progress: bool) -> FillFusion:
    """Train a :class:`FillFusion` with the experiment's optimisation settings and ``scenario:complete``."""
    seed_everything(seed)
    model = FillFusion(config, fill_vectors(kind, data.normalization))
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    trainer = Trainer(model, dict(data.datasets), experiment.train, make_protocol("scenario:complete", seed=seed),
                      ctx, RunFolder(run_dir), seed, progress)
    trainer.fit(PRETRAIN)
    trainer.fit(RECOVERY)
    return model.eval()


def _baseline_predictors(data: LiveData, config: ModelConfig, experiment: Experiment, out: Path, seed: int,
                         progress: bool, fill: bool = True) -> tuple[dict[str, Predictor], dict[str, Any]]:
    """Trained baselines as predictors: zero-fill, mean-fill (unless ``fill`` is false), unimodal late fusion."""
    predictors: dict[str, Predictor] = {}
    info: dict[str, Any] = {}
    for kind in FILL_KINDS if fill else ():
        model = train_fill_baseline(kind, config, data, experiment, out / f"baseline_{kind}_fill", seed, progress)
        predictors[f"{kind}-fill"] = _model_predictor(model)
    late_fusion, late_info = train_late_fusion(data, seed, progress)
    info.update(late_info)
    predictors[LATE_FUSION] = late_fusion.predict
    return predictors, info


def _check_contract(model: Any) -> None:
    specs = model.config.specs
    if tuple(model.config.labels) != tuple(LIVE_LABELS) or model.config.task != "classification":
        raise ValueError(f"{model.name}: labels {model.config.labels} are not the live label space")
    if any(s.seq_len != specs.text.seq_len for s in specs):
        raise ValueError(f"{model.name}: the modalities have different sequence lengths")


def run_live_eval(cache: str | Path, checkpoints: Sequence[str | Path], out: str | Path,
                  baseline_config: str = "live_imder", overrides: Sequence[str] = (), ship: str | Path | None = None,
                  seed: int = 1111, latency_runs: int = 20, progress: bool = True,
                  log: Callable[[str], None] = print, fill_baselines: bool = True,
                  late_fusion_seeds: int = 1, bootstrap: int = DEFAULT_REPLICATES) -> dict[str, Any]:
    """Evaluate checkpoints and baselines; write the tables; optionally ship the checkpoints.

    ``fill_baselines=False`` skips the zero-fill and mean-fill baselines (two full trainings of the
    fusion network); the unimodal late-fusion baseline is always trained, with ``seed`` and,
    for ``late_fusion_seeds`` above 1, the following seeds too (their mean becomes a row,
    :mod:`training.live.late_fusion_seeds`).  ``bootstrap``: replicates of the paired bootstrap of
    each checkpoint's macro-F1 difference from late fusion (:mod:`training.live.paired_bootstrap`;
    0 skips it).
    """
    if bootstrap != 0 and bootstrap < 100:
        raise ValueError(f"bootstrap must be 0 or at least 100 replicates, got {bootstrap}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in checkpoints]
    options = data_options_of(paths)
    data = build_live_data(cache, options)
    test = data.datasets["test"]
    paired = paired_asr_dataset(cache, data.normalization, options)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    paired_rows: dict[str, Any] = {}
    latency: dict[str, dict[str, float]] = {}
    models = []
    model_scores: dict[str, dict[str, np.ndarray]] = {}
    speaker_test = None
    for path in paths:
        model = load_checkpoint(path)
        _check_contract(model)
        title = method_title(model.name)
        log(f"evaluating {title} ({path})")
        model_scores[title] = {}
        rows[title] = evaluate_conditions(_model_predictor(model), test, progress=progress, desc=title,
                                          keep_scores=model_scores[title])
        if _has_speaker_expert(model):
            if speaker_test is None:
                audio = speaker_normalised_audio(cache, options, data.normalization, test_seconds=SPEAKER_TEST_SECONDS,
                                                 prior_steps=_speaker_prior(model))
                speaker_test = test.with_extra(SPEAKER_AUDIO_KEY, "audio", audio["test"])
            speaker_row = f"{title}, after {SPEAKER_TEST_SECONDS:.0f} s of speech"
            rows[speaker_row] = evaluate_conditions(_model_predictor(model), speaker_test,
                                                    [c for c in CONDITIONS if "a" in c], progress=progress,
                                                    desc=speaker_row)
        if paired is not None:
            paired_rows[title] = evaluate_paired(_model_predictor(model), paired, progress, title)
        latency[title] = window_latency_ms(model, latency_runs)
        models.append((title, path, model))
    experiment = load_experiment(baseline_config, list(overrides))
    config = ModelConfig(method="fill", specs=data.specs, task="classification", labels=tuple(LIVE_LABELS),
                         method_options={"fusion": experiment.fusion})
    predictors, baseline_info = _baseline_predictors(data, config, experiment, out, seed, progress, fill_baselines)
    late_scores: dict[str, np.ndarray] = {}
    for title, predict in predictors.items():
        rows[title] = evaluate_conditions(predict, test, progress=progress, desc=title,
                                          keep_scores=late_scores if title == LATE_FUSION else None)
        if paired is not None:
            paired_rows[title] = evaluate_paired(predict, paired, progress, title)
    seed_rows: dict[int, dict[str, dict[str, float]]] = {}
    if late_fusion_seeds > 1:
        seed_rows = {seed: rows[LATE_FUSION], **more_seeds(
            lambda predict: evaluate_conditions(predict, test, progress=progress, desc="late fusion"), data, seed,
            late_fusion_seeds, progress)}
        rows[LATE_FUSION_MEAN] = mean_metrics(list(seed_rows.values()))
    report = {"conditions": list(CONDITIONS), "labels": list(LIVE_LABELS), "test": rows, "latency_ms": latency,
              "paired_asr": paired_rows,
              "paired_clips": _label_counts(paired.labels) if paired is not None else {},
              "test_tuples": int(len(test)), "test_tuple_counts": _label_counts(test.labels),
              "baselines": baseline_info, "torch_threads": torch.get_num_threads(),
              "checkpoints": {t: str(p) for t, p, _ in models}, "data": data.summary,
              "late_fusion_seeds": {str(k): {c: {m: v[c][m] for m in ("macro_f1", "accuracy")} for c in v}
                                    for k, v in seed_rows.items()}}
    if bootstrap > 0:
        log(f"paired bootstrap against {LATE_FUSION} ({bootstrap} replicates)")
        report["difference_from_late_fusion"] = differences_from(late_scores, model_scores, test, bootstrap)
    write_tables(report, out)
    if ship is not None:
        report["shipped"] = ship_checkpoints(models, report, data, Path(ship))
    (out / "results.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    return report


#: Seconds of each test speaker's speech behind the running statistics of the "after N s of speech" rows.
SPEAKER_TEST_SECONDS = 40.0


def _has_speaker_expert(model: Any) -> bool:
    head = getattr(model, "expert_fusion", None)
    return head is not None and "audio" in getattr(head, "speaker_experts", {})


def _speaker_prior(model: Any) -> float:
    entry = (getattr(model, "checkpoint_metadata", {}).get("speaker_normalization") or {}).get("audio") or {}
    return float(entry.get("prior_steps", 100.0))


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    return {name: int((np.asarray(labels) == i).sum()) for i, name in enumerate(LIVE_LABELS)}


def results_metadata(report: Mapping[str, Any]) -> dict[str, Any]:
    """The plain-dict results table stored in shipped checkpoints."""
    keep = ("accuracy", "macro_f1", "uar") + tuple(f"recall_{n}" for n in LIVE_LABELS)
    table = {row: {c: {k: float(m[k]) for k in keep if k in m} for c, m in conds.items()}
             for row, conds in report["test"].items()}
    paired = {row: {g: {c: {k: float(m[k]) for k in ("accuracy", "macro_f1")} for c, m in conds.items()}
                    for g, conds in groups.items()} for row, groups in report.get("paired_asr", {}).items()}
    return {"split": "test", "conditions": report["conditions"], "table": table, "paired_asr": paired,
            "latency_ms_batch1": report["latency_ms"], "torch_threads": report.get("torch_threads"),
            "test_tuples": report["test_tuples"],
            "difference_from_late_fusion": {row: {c: dict(d) for c, d in conds.items()} for row, conds in
                                            report.get("difference_from_late_fusion", {}).items()},
            "note": "class-matched pseudo-pairs of unimodal corpora; see assets/MODEL_CARD.md"}


NOT_APPLIED_KEY = keys.SPEAKER_NORMALIZATION + "_not_applied"
"""Metadata key of a speaker switch-over that was evaluated and not kept (the engine reads only
:data:`~imer_core.live.checkpoint_keys.SPEAKER_NORMALIZATION`)."""


def speaker_switch_decision(metadata: Mapping[str, Any], report: Mapping[str, Any], title: str) -> dict[str, Any]:
    """``metadata`` with the per-speaker audio switch-over kept only if it helped voice alone.

    The switch-over (``speaker_normalization``, written by ``live-experts``) is kept when the
    evaluation's "after N s of speech" row has an audio-only (condition ``a``) macro-F1 at least
    that of the same model with the global normalisation; otherwise the entry is moved to
    :data:`NOT_APPLIED_KEY` with the two measurements, so the engine keeps the global
    normalisation.  Without a speaker row or entry the metadata is returned unchanged.
    """
    meta = dict(metadata)
    settings = meta.get(keys.SPEAKER_NORMALIZATION)
    rows = report.get("test", {})
    speaker = rows.get(f"{title}, after {SPEAKER_TEST_SECONDS:.0f} s of speech", {}).get("a")
    globally = rows.get(title, {}).get("a")
    if not settings or speaker is None or globally is None:
        return meta
    before, after = float(globally["macro_f1"]), float(speaker["macro_f1"])
    if after >= before:
        return meta
    del meta[keys.SPEAKER_NORMALIZATION]
    meta[NOT_APPLIED_KEY] = {
        "settings_it_was_evaluated_with": settings,
        "why": (f"live-eval on the test speakers: after {SPEAKER_TEST_SECONDS:.0f} s of speech the per-speaker "
                f"audio expert lowered audio-only macro-F1 from {100 * before:.1f} to {100 * after:.1f}; so the "
                "shipped model keeps the global normalisation (a checkpoint opts in with "
                f"{keys.SPEAKER_NORMALIZATION})")}
    return meta


def ship_checkpoints(models: Sequence[tuple[str, Path, Any]], report: Mapping[str, Any], data: LiveData,
                     ship_dir: Path) -> dict[str, dict[str, Any]]:
    """Write ``ship_dir/live_<method>.pt`` with the live metadata and the results.

    A per-speaker audio switch-over that lowered voice-only macro-F1 in ``report`` is not
    shipped as active (:func:`speaker_switch_decision`).

    Each file must stay under :data:`MAX_SHIP_BYTES` (20 MB).  It is written under a staging name
    first and only renamed into place when it fits, so an oversized checkpoint never lands in
    ``ship_dir`` (nor replaces a file already there).

    Raises:
        ValueError: a checkpoint is 20 MB or more (nothing of it is left in ``ship_dir``).
    """
    from imer_core.checkpoint import checkpoint_info as read_meta

    shipped = {}
    for title, path, model in models:
        meta = {**read_meta(path)["metadata"], **live_checkpoint_metadata(data), keys.RESULTS: results_metadata(report),
                "method_title": title}
        meta = speaker_switch_decision(meta, report, title)
        target = ship_dir / f"live_{model.name}.pt"
        staged = save_checkpoint(model, ship_dir / f".{target.name}.staged", meta)
        size = staged.stat().st_size
        if size >= MAX_SHIP_BYTES:
            staged.unlink()
            raise ValueError(f"{title}: the checkpoint is {size:,} bytes ({size / 1e6:.1f} MB), over the "
                             f"{MAX_SHIP_BYTES:,}-byte limit of a shipped model; {target} was not written")
        os.replace(staged, target)
        shipped[title] = {"path": str(target), "bytes": size, "parameters": model.parameter_count()}
    return shipped
