"""The MMIN data source: the IEMOCAP / MSP-IMPROV feature release (or its synthetic stand-in),
six missing scenarios cross-validated over the release's folds."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imer_core.modalities import FeatureSpecs

from .mmin import MMIN_DATASETS, MMINDataset, load_mmin_fold
from .mmin_synthetic import SYNTHETIC_MMIN_NOTE, write_synthetic_mmin
from .mmsa_source import uses_bert_tokens
from .source import SCENARIO, DataSource, LoadedData

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from training.experiment import Experiment


@dataclass(frozen=True)
class MMINOptions:
    """Options of the MMIN source (``[data]`` keys).

    Attributes:
        synthetic_utterances: utterances of the synthetic release (spread over all speakers).
        folds: cross-validation folds to run (numbered from 1; empty: all).
        seq_lens: fixed (text, audio, vision) lengths of the features (empty: derived
            from the data, the longest sequence of each modality, so nothing is truncated;
            MMIN's fixed-length exports used (22, 60, 50) for IEMOCAP and (22, 50, 50) for
            MSP-IMPROV, ComParE audio at 10 frames/s).
        audio_norm: audio normalisation, ``"published"``, ``"train"`` or ``"none"``.
    """

    synthetic_utterances: int = 200
    folds: tuple[int, ...] = ()
    seq_lens: tuple[int, ...] = ()
    audio_norm: str = "published"


def mmin_folds(experiment: Experiment) -> list[int]:
    """The folds an experiment runs: ``folds`` of its options, or all folds of the corpus."""
    info = MMIN_DATASETS[experiment.data.dataset.lower()]
    return [int(f) for f in experiment.data.options.folds] or list(range(1, info.n_folds + 1))


def load_mmin_data(experiment: Experiment, cache_dir: Path, fold: int | None = None) -> LoadedData:
    """One fold of the MMIN release (``fold``: default the first of :func:`mmin_folds`)."""
    cfg = experiment.data
    opts: MMINOptions = cfg.options
    key = cfg.dataset.lower()
    if experiment.task != "classification":
        raise ValueError(f"{experiment.name}: {key} (MMIN release) is a classification corpus; "
                         "set [model] task = \"classification\"")
    if uses_bert_tokens(experiment):
        raise ValueError(f"{experiment.name}: the MMIN release carries BERT-large word vectors, no token ids; "
                         "use model.options.text_encoder=\"features\"")
    fold = int(fold) if fold is not None else mmin_folds(experiment)[0]
    if cfg.synthetic:
        root = Path(cache_dir) / f"synthetic_mmin_{key}_n{opts.synthetic_utterances}_s{cfg.synthetic_seed}"
        if not (root / "target").is_dir():
            _write_synthetic_root(root, key, opts.synthetic_utterances, cfg.synthetic_seed)
        note = SYNTHETIC_MMIN_NOTE
    else:
        root, note = Path(cfg.path).expanduser(), ""
    splits = load_mmin_fold(root, key, fold, seq_lens=tuple(opts.seq_lens) or None, audio_norm=opts.audio_norm)
    train = splits["train"]
    extractor = f"{'synthetic-' if cfg.synthetic else ''}mmin-{key}"
    specs = FeatureSpecs.from_dims(train.dims, train.seq_lens, extractor=extractor)
    datasets: dict[str, Dataset] = {name: MMINDataset(split) for name, split in splits.items()}
    return LoadedData(datasets, specs, str(root), cfg.synthetic, note, tuple(train.classes), fold)


def _write_synthetic_root(root: Path, dataset: str, utterances: int, seed: int) -> None:
    """Write the synthetic MMIN release (all folds) to a private folder, then rename it into place."""
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic_mmin(tmp, dataset, n_utterances=utterances, seed=seed)
    try:
        tmp.rename(root)
    except OSError:  # another process (DDP rank) finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / "target").is_dir():
            raise


MMIN_SOURCE = DataSource("mmin", tuple(MMIN_DATASETS), load_mmin_data, default_protocol="scenario",
                         protocol_kind=SCENARIO, options=MMINOptions, folds=mmin_folds,
                         per_experiment_options=("seq_lens",), folder_data=True,
                         description="MMIN feature release")

#: Discovered by :mod:`training.data.source`.
DATA_SOURCES = (MMIN_SOURCE,)
