"""Class-matched pseudo-pair tuples of the live corpora (data source kind ``live``).

No corpus records face, voice and text together, so a training tuple
``(text, audio, vision, label)`` joins a MELD utterance, a RAVDESS / EmoDB clip
and a FER2013 face **of the same live label**, drawn independently.  A model
trained on such tuples can only learn label-level relations between the
modalities: recovering a missing modality from the others carries the class,
never the person-specific, moment-specific detail a real recording would.

Pools and splits (per modality, from the feature caches of
:mod:`training.live.extract`):

* text: MELD embeddings, MELD's train / dev / test;
* audio: RAVDESS + EmoDB clips, speaker-independent splits of
  :mod:`training.live.corpora` (RAVDESS actors 1-18 / 19-20 / 21-24, EmoDB
  speakers 03 08 09 10 11 14 / 12 13 / 15 16);
* vision: FER2013 faces with a detected face, FER2013's train / val / test.

Labels go through :mod:`training.live.labels` (RAVDESS calm → neutral, EmoDB
boredom dropped).  Every feature is z-scored with the mean / std of its
modality's **training** pool (audio: over all time steps); the statistics go
into the checkpoint for the live engine.

Tuples: the training split draws fresh partners on every access (a new
pairing every epoch; :data:`LiveDataOptions.train_tuples_per_class` tuples per
class and epoch, so classes are balanced).  Validation and test tuples are
fixed by the seed: class ``c`` gets ``n_c = max_m count_m(c)`` tuples (capped
by ``val_tuples_per_class`` for validation) and each modality cycles through a
seeded permutation of its class pool, so every test sample of every modality
is used and repeats differ by at most one within a class.

Time axis: 20 steps at 10 Hz.  Audio has 20 real steps; the text embedding and
the face vector are repeated over the 20 steps (the live engine repeats the
transcript embedding the same way and averages the face vectors of each
100 ms step).  Training faces get independent Gaussian noise of
``vision_jitter`` (normalised units) per step, a crude stand-in for the
frame-to-frame variation of live video.

The training draws come from one numpy generator held by the dataset, seeded
by :data:`LiveDataOptions.seed`.  DataLoader worker processes would each get
a copy of it and repeat the same draws, so the resampling training dataset
refuses to run in a worker: a live experiment needs ``[train] num_workers = 0``
(the shipped configs' setting; the items are cheap tensor lookups).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from imer_core.config import options_from_dict
from imer_core.features.face import live_face_feature_spec
from imer_core.features.text import text_feature_spec
from imer_core.live import checkpoint_keys as keys
from imer_core.live.models import LIVE_WINDOW_RATE_HZ, LIVE_WINDOW_STEPS
from imer_core.modalities import MODALITIES, FeatureSpecs, Modality

from ..data.source import LoadedData
from .corpora import SPLITS
from .extract import extractor_ids, has_transcripts, load_cache
from .labels import LIVE_LABELS, live_index

SEQ_LEN, RATE_HZ = LIVE_WINDOW_STEPS, LIVE_WINDOW_RATE_HZ  # the live pipeline's window
STD_FLOOR = 1e-3
TRAINER_SPLITS: dict[str, str] = {"train": "train", "val": "valid", "test": "test"}


@dataclass(frozen=True)
class LiveDataOptions:
    """Options of the live data source (``[data.live]`` of an experiment file).

    Attributes:
        audio_corpora: which audio corpora form the audio pool.
        train_tuples_per_class: training tuples per class and epoch.
        val_tuples_per_class: cap of validation tuples per class (early stopping only).
        vision_jitter: std of the per-step Gaussian noise on training faces (normalised units).
        seed: seed of the fixed validation / test tuples and of the training draws.
    """

    audio_corpora: tuple[str, ...] = ("ravdess", "emodb")
    train_tuples_per_class: int = 1000
    val_tuples_per_class: int = 300
    vision_jitter: float = 0.1
    seed: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "LiveDataOptions":
        """Options from a ``[data.live]`` table (unknown keys rejected, lists turned into tuples)."""
        return options_from_dict(cls, data)


def live_specs(seq_len: int = SEQ_LEN, rate_hz: float = RATE_HZ) -> FeatureSpecs:
    """Feature specs of the live model (the live engine's extractors and window)."""
    from imer_core.features.registry import default_extractor_specs

    audio = default_extractor_specs()[Modality.AUDIO].feature_spec(seq_len, rate_hz)  # the registry's default
    return FeatureSpecs(text_feature_spec(seq_len, rate_hz), audio, live_face_feature_spec(seq_len, rate_hz))


@dataclass
class ModalityPool:
    """Features ``(N, ...)`` of one modality with live labels, splits and ids (dropped labels removed)."""

    features: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    ids: np.ndarray

    def select(self, split: str) -> "ModalityPool":
        keep = self.splits == split
        return ModalityPool(self.features[keep], self.labels[keep], self.splits[keep], self.ids[keep])


def _pool(cache_dir: str | Path, corpus: str, key: str) -> tuple[ModalityPool, dict[str, Any]]:
    data = load_cache(cache_dir, corpus)
    labels = np.asarray([live_index(corpus, str(s)) for s in data["source_label"]], np.int64)
    keep = labels >= 0
    if "detected" in data:
        keep &= data["detected"].astype(bool)
    ids = np.asarray([f"{corpus}:{i}" for i in data["ids"]])
    pool = ModalityPool(data[key][keep].astype(np.float32), labels[keep], data["split"][keep].astype(str), ids[keep])
    stats = {"corpus": corpus, "items": int(len(labels)), "used": int(keep.sum()),
             "dropped_label": int((labels < 0).sum()), "meta_stats": data["meta"].get("stats", {}),
             "extractors": data["meta"].get("extractors", {})}
    return pool, stats


def _concat(pools: list[ModalityPool]) -> ModalityPool:
    return ModalityPool(*(np.concatenate([getattr(p, f.name) for p in pools]) for f in fields(ModalityPool)))


def load_pools(cache_dir: str | Path, options: LiveDataOptions) -> tuple[dict[str, ModalityPool], dict[str, Any]]:
    """Pools of the three modalities from the feature caches, plus a per-corpus summary.

    Raises:
        FileNotFoundError: a needed corpus cache is missing.
        ValueError: a cache was made with extractors other than the live engine's.
    """
    wanted = {"text": ("meld",), "audio": tuple(options.audio_corpora), "vision": ("fer2013",)}
    expected = extractor_ids()
    pools, summary = {}, {}
    for modality, corpora in wanted.items():
        parts = []
        for corpus in corpora:
            pool, stats = _pool(cache_dir, corpus, modality)
            made_with = stats["extractors"].get(modality)
            if made_with != expected[modality]:
                raise ValueError(f"{corpus}: its {modality} cache was made with extractor {made_with!r}, "
                                 f"this code uses {expected[modality]!r}; re-run imer-train extract-live "
                                 f"--corpora {corpus} --force")
            parts.append(pool)
            summary[corpus] = {k: v for k, v in stats.items() if k != "extractors"}
        pools[modality] = _concat(parts)
    return pools, summary


def normalization_stats(pools: Mapping[str, ModalityPool]) -> dict[str, dict[str, list[float]]]:
    """Per-dimension mean / std of each modality's training pool (std floored at :data:`STD_FLOOR`)."""
    stats = {}
    for modality, pool in pools.items():
        train = pool.select("train").features
        flat = train.reshape(-1, train.shape[-1]).astype(np.float64)
        if len(flat) == 0:
            raise ValueError(f"{modality}: the training split is empty")
        std = np.maximum(flat.std(axis=0), STD_FLOOR)
        stats[modality] = {"mean": flat.mean(axis=0).tolist(), "std": std.tolist()}
    return stats


def _normalize(features: np.ndarray, stats: Mapping[str, list[float]]) -> np.ndarray:
    mean, std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
    return ((features - mean) / std).astype(np.float32)


def class_members(labels: np.ndarray, n_classes: int) -> list[np.ndarray]:
    """Row indices of each class."""
    return [np.flatnonzero(labels == c) for c in range(n_classes)]


def fixed_tuples(labels: Mapping[str, np.ndarray], n_classes: int, seed: int,
                 cap: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fixed class-matched tuples: per modality an index array, plus the tuple labels.

    Class ``c`` gets ``max_m count_m(c)`` tuples (at most ``cap``); classes
    missing from any modality get none.
    """
    rng = np.random.default_rng(seed)
    members = {m: class_members(lab, n_classes) for m, lab in labels.items()}
    index: dict[str, list[np.ndarray]] = {m: [] for m in labels}
    tuple_labels: list[np.ndarray] = []
    for c in range(n_classes):
        counts = [len(members[m][c]) for m in labels]
        if min(counts) == 0:
            continue
        n = max(counts) if cap is None else min(max(counts), cap)
        for m in labels:
            pool = rng.permutation(members[m][c])
            index[m].append(np.resize(pool, n))
        tuple_labels.append(np.full(n, c, np.int64))
    return {m: np.concatenate(v) for m, v in index.items()}, np.concatenate(tuple_labels)


WORKER_ERROR = ("the live training tuples are drawn from one generator held by the dataset; DataLoader "
                "workers would each copy it and repeat the same draws: set [train] num_workers = 0")


class LiveTupleDataset(Dataset):
    """Pseudo-pair tuples of one split as trainer items.

    The resampling (training) dataset must be read in the main process: in a
    DataLoader worker (``num_workers > 0``) it raises ``ValueError``.

    Items are ``{"index", "text" (20, 384), "audio" (20, 44), "vision" (20, 55), "label"}``
    (normalised float32, int64 label).

    Args:
        pools: the split's normalised pools per modality.
        n_classes: number of live labels.
        seed: seed of the tuples.
        resample: draw fresh partners on every access (training), else fixed tuples.
        tuples_per_class: tuples per class (resample) or cap (fixed; ``None``: no cap).
        vision_jitter: per-step noise std on the repeated face vector (0: none).
        seq_len: time steps.
    """

    def __init__(self, pools: Mapping[str, ModalityPool], n_classes: int, seed: int, resample: bool,
                 tuples_per_class: int | None, vision_jitter: float = 0.0, seq_len: int = SEQ_LEN) -> None:
        self.extras: dict[str, tuple[str, torch.Tensor]] = {}
        self.pools = {m.value: pools[m.value] for m in MODALITIES}
        self.seq_len = seq_len
        self.resample = resample
        self.vision_jitter = float(vision_jitter)
        self._rng = np.random.default_rng(seed)
        labels = {m: pool.labels for m, pool in self.pools.items()}
        self.members = {m: class_members(lab, n_classes) for m, lab in labels.items()}
        if resample:
            usable = [c for c in range(n_classes) if all(len(self.members[m][c]) for m in labels)]
            self.labels = np.repeat(np.asarray(usable, np.int64), int(tuples_per_class or 0))
            self.index = None
        else:
            self.index, self.labels = fixed_tuples(labels, n_classes, seed, tuples_per_class)
        self._features = {m: torch.from_numpy(np.ascontiguousarray(p.features)) for m, p in self.pools.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, index: int) -> dict[str, int]:
        """Pool row of each modality for tuple ``index``."""
        if self.index is not None:
            return {m: int(v[index]) for m, v in self.index.items()}
        c = int(self.labels[index])
        return {m: int(self._rng.choice(self.members[m][c])) for m in self.members}

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.resample and get_worker_info() is not None:
            raise ValueError(WORKER_ERROR)
        rows = self.rows(index)
        item: dict[str, Any] = {"index": int(index), "label": torch.tensor(int(self.labels[index]))}
        for modality, row in rows.items():
            x = self._features[modality][row]
            if x.dim() == 1:
                x = x.unsqueeze(0).expand(self.seq_len, -1)
            if modality == "vision" and self.resample and self.vision_jitter > 0:
                x = x + torch.from_numpy(self._rng.normal(0.0, self.vision_jitter, tuple(x.shape)).astype(np.float32))
            item[modality] = x.contiguous()
        for key, (modality, values) in self.extras.items():
            item[key] = values[rows[modality]]
        return item

    def with_extra(self, key: str, modality: str, features: np.ndarray) -> "LiveTupleDataset":
        """A copy whose items also hold ``key``: ``features`` of the same pool row as ``modality``.

        ``features`` are aligned with this split's ``modality`` pool (e.g. the audio normalised
        per speaker as ``"audio@speaker"``).  The copy draws from its own generator, seeded alike.
        """
        if len(features) != len(self.pools[modality].labels):
            raise ValueError(f"{key}: {len(features)} rows for a {modality} pool of {len(self.pools[modality].labels)}")
        twin = copy.copy(self)
        twin._rng = copy.deepcopy(self._rng)
        twin.extras = {**self.extras, key: (modality, torch.from_numpy(np.ascontiguousarray(features, np.float32)))}
        return twin

    def sources(self) -> dict[str, np.ndarray]:
        """Ids of the pool rows of each fixed tuple (for reports)."""
        if self.index is None:
            raise ValueError("resampled tuples have no fixed sources")
        return {m: self.pools[m].ids[v] for m, v in self.index.items()}


@dataclass
class LiveData:
    """The live datasets plus everything the checkpoint metadata needs."""

    datasets: dict[str, LiveTupleDataset]
    specs: FeatureSpecs
    normalization: dict[str, dict[str, list[float]]]
    summary: dict[str, Any]


def split_summary(pools: Mapping[str, ModalityPool], datasets: Mapping[str, LiveTupleDataset],
                  corpora: Mapping[str, Any], options: LiveDataOptions) -> dict[str, Any]:
    """Counts per modality / split / label and the tuple counts (plain types)."""
    counts = {m: {s: {LIVE_LABELS[c]: int((p.select(s).labels == c).sum()) for c in range(len(LIVE_LABELS))}
                  for s in SPLITS} for m, p in pools.items()}
    return {"corpora": corpora, "samples": counts,
            "tuples": {name: int(len(d)) for name, d in datasets.items()},
            "pairing": "class-matched pseudo-pairs (independent draws of the same live label per modality)",
            "options": {f.name: getattr(options, f.name) for f in fields(options)}}


def build_live_data(cache_dir: str | Path, options: LiveDataOptions | None = None,
                    normalization: Mapping[str, Mapping[str, list[float]]] | None = None) -> LiveData:
    """Pools → normalisation → train / valid / test tuple datasets.

    ``normalization``: per-modality ``mean`` / ``std`` to apply (a trained checkpoint's
    ``feature_normalization``); default: the statistics of these training pools.
    """
    options = options or LiveDataOptions()
    pools, corpora = load_pools(cache_dir, options)
    norm = ({m: {"mean": list(normalization[m]["mean"]), "std": list(normalization[m]["std"])} for m in pools}
            if normalization is not None else normalization_stats(pools))
    normed = {m: ModalityPool(_normalize(p.features, norm[m]), p.labels, p.splits, p.ids) for m, p in pools.items()}
    n_classes = len(LIVE_LABELS)
    datasets = {}
    for split, name in TRAINER_SPLITS.items():
        split_pools = {m: p.select(split) for m, p in normed.items()}
        empty = [m for m, p in split_pools.items() if len(p.labels) == 0]
        if empty:
            raise ValueError(f"split {split!r} has no {', '.join(empty)} samples (is the cache --limit too small?)")
        train = split == "train"
        per_class = options.train_tuples_per_class if train else (options.val_tuples_per_class
                                                                  if split == "val" else None)
        datasets[name] = LiveTupleDataset(split_pools, n_classes, options.seed + SPLITS.index(split), train,
                                          per_class, options.vision_jitter if train else 0.0)
    return LiveData(datasets, live_specs(), norm, split_summary(pools, datasets, corpora, options))


MODEL_CARD_PATH = "assets/MODEL_CARD.md"


def live_checkpoint_metadata(data: LiveData) -> dict[str, Any]:
    """The live engine's checkpoint metadata known at training time (``results`` is added at shipping)."""
    return {keys.TRAINED: True, keys.FEATURE_NORMALIZATION: data.normalization, keys.LABEL_SPACE: list(LIVE_LABELS),
            keys.DATA: data.summary, keys.MODEL_CARD: MODEL_CARD_PATH}


def _options(options: Any) -> LiveDataOptions:
    if isinstance(options, LiveDataOptions):
        return options
    return LiveDataOptions.from_mapping(options or {})


def load_live_experiment_data(experiment: Any,
                              normalization: Mapping[str, Mapping[str, list[float]]] | None = None) -> LoadedData:
    """:class:`training.data.source.LoadedData` of an experiment with ``[data] dataset = "live"``.

    ``data.path`` is the feature cache of ``imer-train extract-live`` (default ``runs/live_cache``);
    ``normalization``: see :func:`build_live_data`.
    """
    if experiment.task != "classification":
        raise ValueError(f"{experiment.name}: the live data source is a classification task; "
                         "set [model] task = \"classification\"")
    if experiment.train.num_workers > 0:
        raise ValueError(f"{experiment.name}: {WORKER_ERROR} (got num_workers = {experiment.train.num_workers})")
    cache = Path(experiment.data.path or "runs/live_cache").expanduser()
    data = build_live_data(cache, _options(experiment.data.options), normalization)
    note = ("live corpora (FER2013, RAVDESS, EmoDB, MELD) as class-matched pseudo-pairs: no corpus records the "
            "three modalities together")
    return LoadedData(dict(data.datasets), data.specs, str(cache), False, note, tuple(LIVE_LABELS),
                      metadata=live_checkpoint_metadata(data))


class PairedAudioTextDataset(Dataset):
    """Audio clips with the embedding of **their own** ASR transcript (a real, not pseudo, pairing).

    Vision is zero (to be masked as missing).  Items as :class:`LiveTupleDataset`; ``corpora`` names
    the corpus of each clip.
    """

    def __init__(self, audio: np.ndarray, text: np.ndarray, labels: np.ndarray, corpora: np.ndarray,
                 vision_dim: int, seq_len: int = SEQ_LEN) -> None:
        self._audio = torch.from_numpy(np.ascontiguousarray(audio))
        self._text = torch.from_numpy(np.ascontiguousarray(text))
        self.labels = np.asarray(labels, np.int64)
        self.corpora = np.asarray(corpora)
        self._vision = torch.zeros(seq_len, vision_dim)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"index": int(index), "label": torch.tensor(int(self.labels[index])), "audio": self._audio[index],
                "text": self._text[index].unsqueeze(0).expand(self.seq_len, -1).contiguous(),
                "vision": self._vision}


def paired_asr_dataset(cache_dir: str | Path, normalization: Mapping[str, Mapping[str, list[float]]],
                       options: LiveDataOptions, split: str = "test") -> PairedAudioTextDataset | None:
    """The ``split`` clips of the audio corpora with their own transcript embeddings, normalised.

    ``None`` when an audio cache was made without speech recognition (``extract-live --no-asr``).
    """
    audio, text, labels, corpora = [], [], [], []
    for corpus in options.audio_corpora:
        data = load_cache(cache_dir, corpus)
        if not has_transcripts(data["meta"]):
            return None
        live = np.asarray([live_index(corpus, str(s)) for s in data["source_label"]], np.int64)
        keep = (live >= 0) & (data["split"].astype(str) == split)
        audio.append(_normalize(data["audio"][keep], normalization["audio"]))
        text.append(_normalize(data["text"][keep], normalization["text"]))
        labels.append(live[keep])
        corpora.append(np.full(int(keep.sum()), corpus))
    return PairedAudioTextDataset(np.concatenate(audio), np.concatenate(text), np.concatenate(labels),
                                  np.concatenate(corpora), len(normalization["vision"]["mean"]))


SPEAKER_AUDIO_KEY = "audio@speaker"


def speaker_normalised_audio(cache_dir: str | Path, options: LiveDataOptions,
                             normalization: Mapping[str, Mapping[str, list[float]]],
                             test_seconds: float | None = None, prior_steps: float = 100.0,
                             min_speech_fraction: float = 0.5, seed: int = 0) -> dict[str, np.ndarray]:
    """The audio pool of every split normalised with each clip's **speaker's** statistics.

    Training and validation speakers: the statistics of all their speech steps
    (:func:`~imer_core.live.speaker_norm.speaker_statistics`), the limit the
    engine's running estimate tends to.  Test speakers: with ``test_seconds``,
    what the engine would have after that much speech: a
    :class:`~imer_core.live.speaker_norm.RunningSpeakerStats` (prior: the
    global statistics, ``prior_steps``) fed with the speaker's clips in a
    seeded random order until ``test_seconds`` of speech; else all their speech.

    Returns ``{split: (N_split, T, D)}`` aligned with the split's audio pool.
    """
    from imer_core.live.speaker_norm import RunningSpeakerStats, speaker_statistics

    windows, speech, speakers, splits = [], [], [], []
    for corpus in options.audio_corpora:
        data = load_cache(cache_dir, corpus)
        labels = np.asarray([live_index(corpus, str(x)) for x in data["source_label"]], np.int64)
        keep = labels >= 0
        windows.append(data["audio"][keep].astype(np.float64))
        speech.append(data["speech_fraction"][keep].astype(np.float64))
        speakers.append(np.asarray([f"{corpus}:{x}" for x in data["speaker"][keep]]))
        splits.append(data["split"][keep].astype(str))
    x, fraction = np.concatenate(windows), np.concatenate(speech)
    who, split = np.concatenate(speakers), np.concatenate(splits)
    out = np.empty_like(x)
    stats = speaker_statistics(x, who, fraction, min_speech_fraction)
    prior = (np.asarray(normalization["audio"]["mean"]), np.asarray(normalization["audio"]["std"]))
    rng = np.random.default_rng(seed)
    rate = float(RATE_HZ)
    for speaker in sorted(set(who.tolist())):
        rows = np.flatnonzero(who == speaker)
        if test_seconds is not None and split[rows[0]] == "test":
            running = RunningSpeakerStats(prior[0], prior[1], prior_steps, min_speech_fraction)
            budget = int(round(test_seconds * rate))
            for row in rng.permutation(rows):
                if running.speech_steps >= budget:
                    break
                steps = np.flatnonzero(fraction[row] >= min_speech_fraction)[: budget - running.speech_steps]
                running.update(x[row][steps], fraction[row][steps])
            mean, std = running.mean_std()
        else:
            mean, std = stats[speaker]
        out[rows] = (x[rows] - mean) / std
    return {s: out[split == s].astype(np.float32) for s in SPLITS}
