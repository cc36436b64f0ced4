"""Readers of the four corpora the live model is trained on.

The data root (``../shared/data`` from the repository root by default) holds
the corpora as described in its README:

* ``fer2013/fer2013_48x48.npz``: 48×48 grayscale faces with the corpus's own
  train / val / test split;
* ``ravdess_speech/Actor_XX/03-01-EE-II-SS-RR-AA.flac``: RAVDESS speech, 24 actors;
* ``emodb/SSTTTEV.flac``: Berlin EmoDB, 10 speakers;
* ``meld/{train,dev,test}_sent_emo.csv``: MELD utterances with MELD's split.

Audio splits are speaker-independent and fixed here (:data:`RAVDESS_SPLITS`,
:data:`EMODB_SPLITS`); each is gender balanced.  Extraction stores each clip's
split and the tables in the feature cache; a cache made with other tables is
refused when loaded (see :func:`training.live.extract.load_cache`).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .labels import EMODB_CODES, RAVDESS_CODES

CORPORA: tuple[str, ...] = ("fer2013", "ravdess", "emodb", "meld")
AUDIO_CORPORA: tuple[str, ...] = ("ravdess", "emodb")
DEFAULT_DATA_ROOT = "../shared/data"
SPLITS: tuple[str, ...] = ("train", "val", "test")

FER_FILE = Path("fer2013") / "fer2013_48x48.npz"
RAVDESS_DIR = Path("ravdess_speech")
EMODB_DIR = Path("emodb")
MELD_DIR = Path("meld")
_MELD_SPLITS = {"train": "train", "dev": "val", "test": "test"}
_CORPUS_PATHS = {"fer2013": FER_FILE, "ravdess": RAVDESS_DIR, "emodb": EMODB_DIR, "meld": MELD_DIR}

# RAVDESS actors: odd = male, even = female.  Test 21-24 (2 m, 2 f), val 19-20 (1 m, 1 f), train 1-18.
RAVDESS_SPLITS: dict[str, tuple[int, ...]] = {
    "train": tuple(range(1, 19)), "val": (19, 20), "test": (21, 22, 23, 24),
}
# EmoDB speakers (m = 03 10 11 12 15, f = 08 09 13 14 16): test 15 m + 16 f, val 12 m + 13 f.
EMODB_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("03", "08", "09", "10", "11", "14"), "val": ("12", "13"), "test": ("15", "16"),
}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}

_RAVDESS_NAME = re.compile(r"^03-01-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_EMODB_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])$")


class CorpusNotFound(FileNotFoundError):
    """A corpus is not where the data root says it should be."""


def check_corpus(data_root: str | Path, corpus: str) -> Path:
    """Path of ``corpus`` under ``data_root``; raises :class:`CorpusNotFound` with a clear message."""
    if corpus not in _CORPUS_PATHS:
        raise ValueError(f"unknown corpus {corpus!r}; expected one of {', '.join(CORPORA)}")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise CorpusNotFound(f"data root {str(root)!r} does not exist: pass --data DIR holding fer2013/, "
                             f"ravdess_speech/, emodb/ and meld/ (see docs/live_model.md)")
    path = root / _CORPUS_PATHS[corpus]
    if not path.exists():
        raise CorpusNotFound(f"{corpus}: {str(path)!r} not found under the data root {str(root)!r} "
                             f"(see docs/live_model.md for the expected layout)")
    return path


def _split_of(value: object, table: dict[str, tuple]) -> str:
    for split, members in table.items():
        if value in members:
            return split
    raise ValueError(f"speaker {value!r} is in no split")


def split_table(corpus: str) -> dict[str, list]:
    """The speaker split table of an audio corpus as plain lists (how extraction records it in the cache)."""
    tables: dict[str, dict[str, tuple]] = {"ravdess": RAVDESS_SPLITS, "emodb": EMODB_SPLITS}
    if corpus not in tables:
        raise ValueError(f"{corpus!r} has no speaker split table; expected one of {', '.join(AUDIO_CORPORA)}")
    return {split: list(members) for split, members in tables[corpus].items()}


def speaker_split(corpus: str, speaker: str) -> str:
    """Split of an audio speaker id (``ravdess-21``, ``emodb-15``) under the current split tables."""
    code = speaker.partition("-")[2]
    if corpus == "ravdess":
        return _split_of(int(code), RAVDESS_SPLITS)
    if corpus == "emodb":
        return _split_of(code, EMODB_SPLITS)
    raise ValueError(f"{corpus!r} has no speaker split table; expected one of {', '.join(AUDIO_CORPORA)}")


@dataclass(frozen=True)
class AudioClip:
    """One speech recording: file, corpus, speaker, emotion label and split."""

    id: str
    path: Path
    corpus: str
    speaker: str
    source_label: str
    split: str
    sentence: str = ""


def ravdess_clips(data_root: str | Path) -> list[AudioClip]:
    """RAVDESS speech clips sorted by file name (actor-independent split)."""
    root = check_corpus(data_root, "ravdess")
    clips = []
    for path in sorted(root.glob("Actor_*/*.flac"), key=lambda p: p.name):
        match = _RAVDESS_NAME.match(path.stem)
        if match is None:
            raise ValueError(f"RAVDESS file name {path.name!r} does not follow 03-01-EE-II-SS-RR-AA")
        emotion, _intensity, statement, _rep, actor = match.groups()
        clips.append(AudioClip(path.stem, path, "ravdess", f"ravdess-{actor}", RAVDESS_CODES[emotion],
                               _split_of(int(actor), RAVDESS_SPLITS), RAVDESS_STATEMENTS[statement]))
    if not clips:
        raise CorpusNotFound(f"no RAVDESS clips (Actor_XX/*.flac) under {str(root)!r}")
    return clips


def emodb_clips(data_root: str | Path) -> list[AudioClip]:
    """EmoDB utterances sorted by file name (speaker-independent split)."""
    root = check_corpus(data_root, "emodb")
    clips = []
    for path in sorted(root.glob("*.flac")):
        match = _EMODB_NAME.match(path.stem)
        if match is None:
            raise ValueError(f"EmoDB file name {path.name!r} does not follow SSTTTEV")
        speaker, text_code, emotion, _version = match.groups()
        clips.append(AudioClip(path.stem, path, "emodb", f"emodb-{speaker}", EMODB_CODES[emotion],
                               _split_of(speaker, EMODB_SPLITS), text_code))
    if not clips:
        raise CorpusNotFound(f"no EmoDB clips (*.flac) under {str(root)!r}")
    return clips


def audio_clips(data_root: str | Path, corpus: str) -> list[AudioClip]:
    """Clips of ``"ravdess"`` or ``"emodb"``."""
    readers = {"ravdess": ravdess_clips, "emodb": emodb_clips}
    return readers[corpus](data_root)


def read_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of an audio file, which must be at ``sample_rate``."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
    return audio.mean(axis=1)


@dataclass(frozen=True)
class FaceImages:
    """FER2013 faces: ``images (N, 48, 48)`` uint8 with per-image ids, labels and splits."""

    images: np.ndarray
    ids: np.ndarray
    source_labels: np.ndarray
    splits: np.ndarray


def load_fer2013(data_root: str | Path) -> FaceImages:
    """FER2013 images, labels and the train / val / test split as stored in the npz."""
    path = check_corpus(data_root, "fer2013")
    with np.load(path, allow_pickle=False) as data:
        missing = {"images", "labels", "split", "source_name", "classes"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        classes = [str(c) for c in data["classes"]]
        labels = np.asarray([classes[int(i)] for i in data["labels"]])
        splits = np.asarray([str(s) for s in data["split"]])
        unknown = set(splits.tolist()) - set(SPLITS)
        if unknown:
            raise ValueError(f"{path}: unknown split names {sorted(unknown)}")
        return FaceImages(np.asarray(data["images"], np.uint8), np.asarray(data["source_name"]).astype(str),
                          labels, splits)


@dataclass(frozen=True)
class Utterance:
    """One MELD utterance."""

    id: str
    text: str
    speaker: str
    source_label: str
    split: str


def meld_utterances(data_root: str | Path) -> list[Utterance]:
    """MELD utterances of the train, dev (→ ``val``) and test CSVs, in file order."""
    root = check_corpus(data_root, "meld")
    rows: list[Utterance] = []
    for name, split in _MELD_SPLITS.items():
        path = root / f"{name}_sent_emo.csv"
        if not path.is_file():
            raise CorpusNotFound(f"meld: {str(path)!r} not found")
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                uid = f"{name}-d{row['Dialogue_ID']}-u{row['Utterance_ID']}"
                rows.append(Utterance(uid, row["Utterance"].strip(), row["Speaker"], row["Emotion"].strip().lower(),
                                      split))
    return rows


def spread_subset(n: int, limit: int | None) -> np.ndarray:
    """Indices of at most ``limit`` items spread evenly over ``range(n)`` (all when ``limit`` is None)."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    return np.unique(np.linspace(0, n - 1, int(limit)).round().astype(int))
