"""Does per-speaker normalisation help the voice model, and how much speech do its statistics need?

``imer-train voice-norm-eval --data ../shared/data --out runs/voice_norm`` runs
the app's :class:`~imer_core.features.voice.VoiceFeatureExtractor` on the
loudest 2.0 s window of every RAVDESS and EmoDB clip (as ``extract-live``
does, without speech recognition; cached in ``<out>/voice_features.npz``),
then trains one classifier (mean and std over time → RBF SVM, live 7-class
label space, the speaker-independent splits of ``extract-live``) three ways:

* **global:** every clip z-scored with the training pool's statistics;
* **per speaker (all):** every clip z-scored with its own speaker's
  statistics over all their speech steps (training and test speakers alike);
* **running:** the training side per speaker; each test speaker's statistics
  come from only the first ``S`` seconds of their speech (clips in a random
  order), shrunk towards the training statistics with the prior weight of
  :class:`~imer_core.live.speaker_norm.RunningSpeakerStats`, as the live
  engine does; for ``S`` = 0, 2, 5, 10, 20, 40, 80 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from imer_core.config import LIVE_EMOTIONS
from imer_core.live.speaker_norm import (
    DEFAULT_MIN_SPEECH_FRACTION,
    DEFAULT_PRIOR_STEPS,
    RunningSpeakerStats,
    normalise_by_speaker,
    speaker_statistics,
)

from .corpora import AUDIO_CORPORA, audio_clips, read_audio
from .extract import AUDIO_SAMPLE_RATE, AUDIO_WINDOW_S, WINDOW_HOP_S, loudest_window
from .labels import live_index

SPEECH_SECONDS: tuple[float, ...] = (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0)


def voice_features(data_root: str | Path, cache: Path, progress: bool = True) -> dict[str, np.ndarray]:
    """Voice windows ``(N, 20, 44)``, speech fractions, labels, speakers and splits (cached)."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    from imer_core.features.voice import VoiceFeatureExtractor

    voice = VoiceFeatureExtractor()
    length, hop = int(AUDIO_WINDOW_S * AUDIO_SAMPLE_RATE), int(WINDOW_HOP_S * AUDIO_SAMPLE_RATE)
    rows: dict[str, list[Any]] = {k: [] for k in ("audio", "speech", "label", "speaker", "split", "corpus")}
    for corpus in AUDIO_CORPORA:
        for clip in tqdm(audio_clips(data_root, corpus), desc=f"{corpus} voice", disable=not progress,
                         mininterval=30.0):
            index = live_index(corpus, clip.source_label)
            if index < 0:
                continue
            window, _ = loudest_window(read_audio(clip.path, AUDIO_SAMPLE_RATE), length, hop)
            out = voice.extract(window)
            rows["audio"].append(out.vector)
            rows["speech"].append(out.speech_fraction)
            rows["label"].append(index)
            rows["speaker"].append(f"{corpus}:{clip.speaker}")
            rows["split"].append(clip.split)
            rows["corpus"].append(corpus)
    arrays: dict[str, np.ndarray] = {"audio": np.stack(rows["audio"]).astype(np.float32),
              "speech": np.stack(rows["speech"]).astype(np.float32),
              "label": np.asarray(rows["label"], np.int64), "speaker": np.asarray(rows["speaker"]),
              "split": np.asarray(rows["split"]), "corpus": np.asarray(rows["corpus"])}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **arrays)  # type: ignore[arg-type, unused-ignore]  # numpy 2 stub: **arrays vs allow_pickle: bool
    return arrays


def _pool(windows: np.ndarray) -> np.ndarray:
    return np.concatenate([windows.mean(axis=1), windows.std(axis=1)], axis=1)


def _fit_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    model = make_pipeline(StandardScaler(), SVC(C=3.0, gamma="scale", class_weight="balanced"))
    return model.fit(_pool(train_x), train_y).predict(_pool(test_x))


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    return {"accuracy": float((y == pred).mean()),
            "macro_f1": float(f1_score(y, pred, labels=list(range(len(LIVE_EMOTIONS))), average="macro",
                                       zero_division=0))}


def running_normalised(windows: np.ndarray, speech: np.ndarray, speakers: np.ndarray, seconds: float,
                       prior: tuple[np.ndarray, np.ndarray], rate_hz: float, seed: int) -> np.ndarray:
    """Each speaker's clips normalised by the statistics of their first ``seconds`` of speech (random order)."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(windows)
    budget = int(round(seconds * rate_hz))
    for speaker in sorted(set(speakers.tolist())):
        rows = np.flatnonzero(speakers == speaker)
        stats = RunningSpeakerStats(prior[0], prior[1], DEFAULT_PRIOR_STEPS, DEFAULT_MIN_SPEECH_FRACTION)
        for row in rng.permutation(rows):
            if stats.speech_steps >= budget:
                break
            keep = np.flatnonzero(speech[row] >= DEFAULT_MIN_SPEECH_FRACTION)[: budget - stats.speech_steps]
            stats.update(windows[row][keep], speech[row][keep])
        for row in rows:
            out[row] = stats.normalise(windows[row])
    return out


def run_voice_norm_eval(data_root: str | Path, out_dir: str | Path, seconds: Sequence[float] = SPEECH_SECONDS,
                        seeds: Sequence[int] = (0, 1, 2), progress: bool = True,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """The three ways above on the test speakers; writes ``<out>/summary.json``."""
    out = Path(out_dir)
    start = time.perf_counter()
    data = voice_features(data_root, out / "voice_features.npz", progress)
    windows, speech = data["audio"].astype(np.float64), data["speech"]
    y, speakers, split = data["label"], data["speaker"].astype(str), data["split"].astype(str)
    train, test = split == "train", split == "test"
    steps = windows[train].reshape(-1, windows.shape[-1])
    prior = (steps.mean(axis=0), np.maximum(steps.std(axis=0), 1e-3))
    rows: list[dict[str, Any]] = []
    globally = (windows - prior[0]) / prior[1]
    rows.append({"normalisation": "global (training statistics)",
                 **_scores(y[test], _fit_predict(globally[train], y[train], globally[test]))})
    by_speaker = normalise_by_speaker(windows, speakers, speaker_statistics(windows, speakers, speech))
    train_x = by_speaker[train]
    rows.append({"normalisation": "per speaker, all of each speaker's speech",
                 **_scores(y[test], _fit_predict(train_x, y[train], by_speaker[test]))})
    for s in seconds:
        accs, f1s = [], []
        for seed in seeds:
            test_x = running_normalised(windows[test], speech[test], speakers[test], s, prior, 10.0, seed)
            result = _scores(y[test], _fit_predict(train_x, y[train], test_x))
            accs.append(result["accuracy"])
            f1s.append(result["macro_f1"])
        rows.append({"normalisation": f"running, first {s:g} s of speech (prior {DEFAULT_PRIOR_STEPS} steps)",
                     "speech_seconds": s, "accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
                     "macro_f1": float(np.mean(f1s)), "seeds": list(seeds)})
    for row in rows:
        log(json.dumps(row))
    summary = {"rows": rows, "test_clips": int(test.sum()), "train_clips": int(train.sum()),
               "test_speakers": sorted(set(speakers[test].tolist())), "seconds": round(time.perf_counter() - start, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
