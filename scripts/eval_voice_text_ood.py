"""Out-of-domain check of the voice and text paths of a live checkpoint (tuned on nothing).

    python scripts/eval_voice_text_ood.py \\
        --voice-dir /work/cache/ood_voice/urdu --per-class 100 \\
        --text-tsv /work/cache/ood_text/goemotions/data/ekman/test.tsv --text-per-class 200 \\
        [--checkpoint assets/models/live_cmarr.pt] --out docs/results/voice_text_ood_check.json

Voice only: the URDU emotional speech dataset (``siddiquelatif/URDU-Dataset``:
400 clips of Urdu talk shows in the class folders ``Angry``, ``Happy``,
``Neutral`` and ``Sad``; files ``S<gender><speaker>_F<n>_<class><n>.wav``;
research use only).  Each clip goes through the live short-clip path of
``imer analyze`` (:meth:`imer_core.analysis.features.Extractors.loudest_voice_window`:
decoded to 16 kHz mono, the loudest window of the checkpoint's length,
zero-padded when the clip is shorter), and the checkpoint predicts with only
the voice observed (condition ``a``; face and text are recovered).  When the
checkpoint asks for per-speaker voice normalisation (metadata
``speaker_normalization``), its statistics are those of the clip (as
``imer analyze`` does for a recording) or, with ``--speaker-stats speaker``,
of all the chosen clips of the clip's speaker (what a live session with that
speaker tends to); the engine's rules apply (``expert`` mode: global
normalisation, plus the per-speaker window once enough speech is counted).

Text only: the GoEmotions test split grouped into Ekman categories
(``monologg/GoEmotions-pytorch`` ``data/ekman/test.tsv`` with ``labels.txt``;
the GoEmotions data is CC BY 4.0).  Only rows with a single label are kept;
anger, disgust, fear, joy, sadness, surprise and neutral become the live
classes angry, disgusted, fearful, happy, sad, surprised and neutral.  Each
text is embedded by the live text extractor (the registry's default, as in
``imer analyze``; ``IMER_LIVE_TEXT_NET=1`` or ``--extractor`` picks another),
repeated over the window, and the checkpoint predicts with only the text
observed (condition ``l``).

``--per-class`` / ``--text-per-class`` take up to that many items per class
(seeded permutation of the sorted items).  Reported per modality: items
used, accuracy, macro-F1 over the classes present, per-class recall and the
confusion counts (true class → predicted live class).  The JSON also names
the datasets, their sources and licences, the checkpoint's SHA-256 and ids,
and the git commit.  A bad input (missing folder or file, an unreadable or
empty audio file, a malformed TSV row) or a checkpoint that does not fit is
reported in one line, with exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imer_core.config import LIVE_EMOTIONS  # noqa: E402 - after the repository is on the path

PROG = "eval_voice_text_ood"
#: Exit status of a bad input or an unusable checkpoint (argparse's usage errors use it too).
EXIT_BAD_INPUT = 2

#: URDU class folder → live label.
URDU_LABELS = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad"}
#: GoEmotions Ekman category → live label.
EKMAN_LABELS = {"anger": "angry", "disgust": "disgusted", "fear": "fearful", "joy": "happy",
                "neutral": "neutral", "sadness": "sad", "surprise": "surprised"}

VOICE_DATASET = {
    "name": "URDU emotional speech dataset",
    "source": "https://github.com/siddiquelatif/URDU-Dataset",
    "licence": "research use only (the repository's README: 'Anyone can use this data only for research "
               "purposes')",
    "reference": "S. Latif et al., Cross Lingual Speech Emotion Recognition: Urdu vs. Western Languages, "
                 "FIT 2018, arXiv:1812.10411",
    "label_map": {"Angry": "angry", "Happy": "happy", "Neutral": "neutral", "Sad": "sad"},
}
TEXT_DATASET = {
    "name": "GoEmotions test split, Ekman grouping, single-label rows",
    "source": "https://github.com/monologg/GoEmotions-pytorch (data/ekman/test.tsv, labels.txt), "
              "from https://github.com/google-research/google-research/tree/master/goemotions",
    "licence": "CC BY 4.0 (GoEmotions data); the GoEmotions-pytorch code is Apache-2.0",
    "reference": "D. Demszky et al., GoEmotions: A Dataset of Fine-Grained Emotions, ACL 2020",
    "label_map": EKMAN_LABELS,
}


class InputError(ValueError):
    """A dataset or argument problem the user can fix from the one-line message."""


@dataclass(frozen=True)
class Clip:
    """One labelled audio file."""

    path: Path
    label: str
    speaker: str


@dataclass(frozen=True)
class TextSet:
    """The single-label rows of a GoEmotions TSV and what was left out."""

    rows: list[tuple[str, str]]
    total_rows: int
    multi_label: int


# -- datasets ------------------------------------------------------------------------------
def speaker_of(path: Path) -> str:
    """The URDU speaker id of a file (``SM1_F10_A010.wav`` → ``SM1``; the stem when there is no ``_``)."""
    return path.stem.split("_", 1)[0]


def urdu_clips(folder: Path) -> list[Clip]:
    """The ``.wav`` files of the URDU class folders under ``folder`` (sorted, labelled with live classes).

    Raises:
        InputError: the folder is missing, holds no class folder or no clip, or a clip is an empty file.
    """
    if not folder.is_dir():
        raise InputError(f"voice folder {folder} does not exist (expected the class folders "
                         f"{', '.join(VOICE_DATASET['label_map'])})")
    clips = []
    classes = [d for d in sorted(folder.iterdir()) if d.is_dir() and d.name.lower() in URDU_LABELS]
    if not classes:
        raise InputError(f"voice folder {folder} has none of the class folders "
                         f"{', '.join(VOICE_DATASET['label_map'])}")
    for directory in classes:
        for path in sorted(directory.glob("*.wav")):
            if path.stat().st_size == 0:
                raise InputError(f"audio file {path} is empty")
            clips.append(Clip(path, URDU_LABELS[directory.name.lower()], speaker_of(path)))
    if not clips:
        raise InputError(f"voice folder {folder}: its class folders hold no .wav file")
    return clips


def read_ekman_labels(path: Path) -> list[str]:
    """The category names of ``labels.txt`` (one per line; a label id is a line number from 0).

    Raises:
        InputError: missing or empty file, or a name that is not an Ekman category.
    """
    if not path.is_file():
        raise InputError(f"labels file {path} does not exist")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise InputError(f"labels file {path} is empty")
    unknown = [n for n in names if n not in EKMAN_LABELS]
    if unknown:
        raise InputError(f"labels file {path} names {', '.join(unknown)}: expected the Ekman categories "
                         f"{', '.join(EKMAN_LABELS)} (data/ekman/labels.txt)")
    return names


def goemotions_rows(tsv: Path, labels: Path) -> TextSet:
    """Single-label rows of a GoEmotions TSV (``text<TAB>label ids<TAB>comment id``) as ``(text, live label)``.

    Raises:
        InputError: a missing or empty file, or a row without valid label ids.
    """
    names = read_ekman_labels(labels)
    if not tsv.is_file():
        raise InputError(f"text file {tsv} does not exist")
    rows, total, multi = [], 0, 0
    with open(tsv, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row:
                continue
            total += 1
            if len(row) < 2:
                raise InputError(f"{tsv}:{number}: expected text<TAB>label ids, got one column")
            try:
                ids = [int(i) for i in row[1].split(",")]
            except ValueError:
                raise InputError(f"{tsv}:{number}: label ids {row[1]!r} are not integers") from None
            if any(not 0 <= i < len(names) for i in ids):
                raise InputError(f"{tsv}:{number}: label id out of range 0-{len(names) - 1} in {row[1]!r}")
            if len(set(ids)) > 1:
                multi += 1
                continue
            rows.append((row[0], EKMAN_LABELS[names[ids[0]]]))
    if total == 0:
        raise InputError(f"text file {tsv} holds no rows")
    return TextSet(rows, total, multi)


def balanced(labels: Sequence[str], per_class: int, seed: int) -> list[int]:
    """Indices of up to ``per_class`` items of each label: a seeded permutation of each class, in class order."""
    if per_class < 1:
        raise InputError(f"the per-class cap must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in sorted(set(labels)):
        members = [i for i, name in enumerate(labels) if name == label]
        chosen.extend(int(members[j]) for j in rng.permutation(len(members))[:per_class])
    return chosen


def class_counts(labels: Sequence[str]) -> dict[str, int]:
    """``{live label: count}`` in the live label order."""
    return {name: int(sum(label == name for label in labels)) for name in LIVE_EMOTIONS if name in labels}


# -- metrics --------------------------------------------------------------------------------
def metrics(true: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the true classes present, per-class recall and the confusion counts.

    A prediction of a live class that the dataset does not have counts against the recall of the
    true class (and in no F1 term of its own), as scikit-learn's ``f1_score(labels=present)`` does.
    """
    if len(true) != len(pred):
        raise ValueError("true and predicted labels differ in length")
    present = [name for name in LIVE_EMOTIONS if name in set(true)]
    t, p = np.asarray(true, dtype=object), np.asarray(pred, dtype=object)
    f1s, recall = [], {}
    for name in present:
        hits = float(np.sum((t == name) & (p == name)))
        support, predicted = float(np.sum(t == name)), float(np.sum(p == name))
        recall[name] = hits / support
        f1s.append(2 * hits / (support + predicted) if support + predicted else 0.0)
    confusion = {name: {other: int(np.sum((t == name) & (p == other))) for other in LIVE_EMOTIONS}
                 for name in present}
    return {"n": len(t), "accuracy": float(np.mean(t == p)) if len(t) else float("nan"),
            "macro_f1": float(np.mean(f1s)) if f1s else float("nan"), "classes": present,
            "recall": recall, "count": {name: int(np.sum(t == name)) for name in present},
            "predicted": {name: int(np.sum(p == name)) for name in LIVE_EMOTIONS},
            "confusion": confusion}


def summary_line(modality: str, dataset: str, result: dict[str, Any]) -> str:
    """One short line: dataset, items, accuracy, macro-F1 and the per-class recall."""
    recall = " ".join(f"{name} {value:.2f}" for name, value in result["recall"].items())
    return (f"{modality}: {dataset}, {result['n']} items, {len(result['classes'])} classes: "
            f"accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}; recall {recall}")


# -- prediction ------------------------------------------------------------------------------
def read_clips(clips: Sequence[Clip]) -> list[np.ndarray]:
    """Each clip decoded to 16 kHz mono float32 (raises :class:`InputError` naming an unreadable file)."""
    from imer_core.analysis.media import UnreadableInput, read_audio

    audio = []
    for clip in clips:
        try:
            audio.append(read_audio(clip.path))
        except UnreadableInput as exc:
            raise InputError(f"audio file {clip.path}: {exc}") from None
    return audio


def _speaker_settings(model: Any) -> dict[str, Any] | None:
    """The checkpoint's per-speaker voice normalisation settings, or ``None`` when it has none."""
    from imer_core.live.speaker_norm import speaker_normalization_settings
    from imer_core.modalities import Modality

    settings = speaker_normalization_settings(model.metadata).get(Modality.AUDIO.value)
    return settings if settings is not None and Modality.AUDIO in model.mean else None


def predict_voice(model: Any, extractors: Any, clips: Sequence[Clip], audio: Sequence[np.ndarray],
                  speaker_stats: str = "clip", batch_size: int = 64) -> tuple[list[str], dict[str, Any]]:
    """Live labels predicted from the voice alone, and how the windows were made.

    ``speaker_stats``: ``clip`` or ``speaker`` (see the module docstring); used only when the checkpoint
    asks for per-speaker normalisation.
    """
    from imer_core.live.inference import predict_normalised_windows
    from imer_core.live.speaker_norm import RunningSpeakerStats, route_voice_window
    from imer_core.modalities import Modality

    spec = model.config.specs[Modality.AUDIO]
    window_s = spec.seq_len / float(spec.rate_hz or 10.0)
    rate = extractors.voice.sample_rate
    windows = [extractors.loudest_voice_window(a, window_s)[0] for a in audio]
    settings = _speaker_settings(model)
    stats: list[Any] = [None] * len(clips)
    if settings is not None:
        keyed: dict[str, Any] = {}
        for i, (clip, samples) in enumerate(zip(clips, audio)):
            key = clip.speaker if speaker_stats == "speaker" else str(i)
            if key not in keyed:
                keyed[key] = RunningSpeakerStats(model.mean[Modality.AUDIO], model.std[Modality.AUDIO],
                                                 settings["prior_steps"], settings["min_speech_fraction"])
            track, _, speech = extractors.voice_track(samples)
            keyed[key].update(track.between(-np.inf, np.inf)[1], speech)
            stats[i] = keyed[key]
    probs = np.zeros((len(windows), len(model.labels)))
    for first in range(0, len(windows), batch_size):
        batch, personal = [], []
        for i in range(first, min(first + batch_size, len(windows))):
            normed, by_speaker = route_voice_window(  # as the live engine (no neutral baseline here)
                windows[i], stats[i], settings or {},
                lambda v: model.normalise(Modality.AUDIO, v).astype(np.float32))
            if not np.isfinite(normed).all():
                raise InputError(f"audio file {clips[i].path}: its voice features are not finite")
            batch.append({Modality.AUDIO: normed})
            personal.append({} if by_speaker is None else {Modality.AUDIO: by_speaker})
        probs[first: first + len(batch)] = predict_normalised_windows(model, batch, personal)
    predicted = np.argmax(probs, axis=1)
    shorter = sum(len(a) < window_s * rate for a in audio)
    how = {"window_s": window_s, "clips_shorter_than_window": int(shorter),
           "speaker_normalization": (None if settings is None else {**settings, "statistics_of": speaker_stats})}
    return [model.labels[k] for k in predicted], how


def predict_text(model: Any, embed: Callable[[list[str]], np.ndarray], texts: Sequence[str],
                 batch_size: int = 64) -> list[str]:
    """Live labels predicted from each text alone (its embedding repeated over the window)."""
    from imer_core.live.inference import predict_windows, repeat_vector
    from imer_core.modalities import Modality

    seq_len = model.config.specs[Modality.TEXT].seq_len
    labels: list[str] = []
    for first in range(0, len(texts), batch_size):
        vectors = embed(list(texts[first: first + batch_size]))
        windows = [{Modality.TEXT: repeat_vector(v, seq_len)} for v in vectors]
        labels.extend(model.labels[int(k)] for k in np.argmax(predict_windows(model, windows), axis=1))
    return labels


# -- provenance -----------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    from imer_core.live.text_net import file_sha256 as prefix_of_sha256

    return prefix_of_sha256(path, digits=64)


def files_sha256(paths: Sequence[Path], base: Path) -> str:
    """One SHA-256 over the relative names and contents of ``paths`` (a fingerprint of the items used)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(base)).encode() + b"\0" + bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """The repository's commit and whether tracked files differ from it (``None`` outside git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "tracked_files_modified": None if changes is None else bool(changes)}


def model_identity(model: Any) -> dict[str, Any]:
    """The checkpoint file's SHA-256 and size, and the ids it carries (method, experiment, seed, features)."""
    meta = model.metadata
    path = Path(model.path).resolve()
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return {"path": str(shown), "sha256": file_sha256(model.path), "bytes": model.path.stat().st_size,
            "method": model.method, "experiment": meta.get("experiment"), "seed": meta.get("seed"),
            "data_source": meta.get("data_source"),
            "features": {spec.modality.value: spec.extractor for spec in model.config.specs}}


# -- command line -----------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voice-dir", default=None, help="URDU dataset folder (class folders Angry, Happy, ...)")
    parser.add_argument("--per-class", type=int, default=100, help="clips per class (default 100: all of URDU)")
    parser.add_argument("--speaker-stats", choices=("clip", "speaker"), default="clip",
                        help="per-speaker voice statistics, when the checkpoint uses them: of the clip (as "
                             "imer analyze) or of all chosen clips of its speaker")
    parser.add_argument("--text-tsv", default=None, help="GoEmotions data/ekman/test.tsv")
    parser.add_argument("--text-labels", default=None, help="its labels.txt (default: next to the TSV)")
    parser.add_argument("--text-per-class", type=int, default=200, help="texts per class")
    parser.add_argument("--checkpoint", default=str(ROOT / "assets" / "models" / "live_cmarr.pt"),
                        help="live checkpoint (default: the shipped CM-ARR model)")
    parser.add_argument("--extractor", default="", metavar="MODALITY=ID[,...]",
                        help="feature extractors other than the defaults (as imer run --extractor)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class subsamples")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    if args.voice_dir is None and args.text_tsv is None:
        parser.error("give --voice-dir, --text-tsv or both")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation; returns the report (raises :class:`InputError` and the app's own one-line errors)."""
    start = time.perf_counter()
    voice_clips: list[Clip] = []
    voice_audio: list[np.ndarray] = []
    text_set: TextSet | None = None
    text_chosen: list[int] = []
    if args.voice_dir is not None:  # every input is read before the models load: a bad one fails fast
        clips = urdu_clips(Path(args.voice_dir))
        voice_clips = [clips[i] for i in balanced([c.label for c in clips], args.per_class, args.seed)]
        voice_audio = read_clips(voice_clips)
    if args.text_tsv is not None:
        tsv = Path(args.text_tsv)
        text_set = goemotions_rows(tsv, Path(args.text_labels) if args.text_labels else tsv.parent / "labels.txt")
        if not text_set.rows:
            raise InputError(f"text file {tsv} has no single-label row")
        text_chosen = balanced([label for _, label in text_set.rows], args.text_per_class, args.seed)

    import torch

    from imer_core.analysis.features import Extractors
    from imer_core.features.registry import extractor_factories, parse_extractor_choice
    from imer_core.live.models import load_live_model
    from imer_core.modalities import Modality

    torch.set_num_threads(1)
    try:
        choice = parse_extractor_choice(args.extractor)
    except ValueError as exc:
        raise InputError(f"--extractor: {exc}") from None
    extractors = Extractors(factories=extractor_factories("cpu", choice))
    model = load_live_model(args.checkpoint, extractors=extractors.specs)
    report: dict[str, Any] = {"check": "out-of-domain, tuned on nothing", "git": git_state(),
                              "model": model_identity(model), "seed": args.seed}
    try:
        if voice_clips:
            pred, how = predict_voice(model, extractors, voice_clips, voice_audio, args.speaker_stats)
            base = Path(args.voice_dir)
            everything = urdu_clips(base)
            report["voice"] = {
                "dataset": {**VOICE_DATASET, "folder": str(base.resolve()),
                            "clips_sha256": files_sha256([c.path for c in voice_clips], base)},
                "condition": "voice only (face and text recovered)", "per_class_cap": args.per_class,
                "clips_available": class_counts([c.label for c in everything]),
                "speakers_available": len({c.speaker for c in everything}),
                "clips_used": len(voice_clips), "speakers_used": len({c.speaker for c in voice_clips}), **how,
                "metrics": metrics([c.label for c in voice_clips], pred)}
        if text_set is not None:
            texts = [text_set.rows[i][0] for i in text_chosen]
            truth = [text_set.rows[i][1] for i in text_chosen]
            tsv = Path(args.text_tsv)
            report["text"] = {
                "dataset": {**TEXT_DATASET, "file": str(tsv.resolve()), "file_sha256": file_sha256(tsv)},
                "condition": "text only (face and voice recovered)",
                "extractor": extractors.specs[Modality.TEXT].extractor_id,
                "rows": text_set.total_rows, "multi_label_rows_dropped": text_set.multi_label,
                "single_label_rows": class_counts([label for _, label in text_set.rows]),
                "per_class_cap": args.text_per_class, "texts_used": len(texts),
                "metrics": metrics(truth, predict_text(model, extractors.embed, texts))}
    finally:
        extractors.close()
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from imer_core.analysis.features import ModelUnavailable
    from imer_core.features.text import TextModelUnavailable
    from imer_core.live.models import LiveModelError

    try:
        report = run(args)
    except (InputError, LiveModelError, ModelUnavailable, TextModelUnavailable) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for modality, name in (("voice", "URDU"), ("text", "GoEmotions-Ekman test")):
        if modality in report:
            print(summary_line(modality, name, report[modality]["metrics"]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
