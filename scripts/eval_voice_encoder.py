"""Would a pretrained speech encoder make a better voice feature?  Whisper tiny.en's encoder against the live one.

    python scripts/eval_voice_encoder.py --data ../shared/data --seeds 0,1,2,3,4 \\
        [--limit N] [--out docs/results/voice_encoder_check.json]

Every RAVDESS and EmoDB clip with a live label is cut as the live training
cache cuts it (the loudest 2 s window, with up to 2 s of the clip before it as
context: :func:`imer_core.features.voice.window_features`), and described three
ways, 20 steps of 100 ms each:

* ``live``: the app's voice features (:class:`imer_core.features.voice.VoiceFeatureExtractor`, 44 values per step);
* ``whisper``: the encoder of the bundled faster-whisper tiny.en model (CTranslate2, int8,
  the model the app already ships for speech recognition), 384 values per step, as the app's
  :class:`~imer_core.features.voice_whisper.WhisperVoiceExtractor` computes them: each step from
  its 100 ms and up to 2 s of the clip's audio before it (nothing after it), the mean of its
  five 20 ms encoder frames; the encoder takes short inputs (no padding to 30 s);
* ``live+whisper``: both side by side.

For each, the live experts' classifier (:class:`training.live.baselines.UnimodalClassifier`:
mean and std over the steps, two layers of 128) is trained on the training speakers' clips
(best epoch by validation macro-F1) once per seed, and scored on the validation and the
test speakers' clips (the live splits: RAVDESS actors 19-20 / 21-24, EmoDB speakers 12 13 /
15 16), alone and as the mean probability of the first three seeds.  Nothing is tuned on the
test speakers.  The median time of one encoder call (batch 1, one thread) is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def clip_features(data: Path, limit: int | None) -> tuple[dict[str, np.ndarray], list[float], np.ndarray,
                                                           np.ndarray]:
    """``({feature set: (N, 20, D)}, encoder call seconds, labels, splits)`` of the clips with a live label.

    The features are the app's :class:`~imer_core.features.voice_whisper.WhisperVoiceExtractor`
    on the loudest window with up to 2 s of the clip before it
    (:func:`imer_core.features.voice.window_features`, what ``extract-live`` stores): its first
    44 values per step are the live voice features, the other 384 the encoder's.
    """
    from imer_core.features.voice import VOICE_FEATURE_DIM, loudest_window, window_features
    from imer_core.features.voice_whisper import WhisperVoiceExtractor
    from training.live.corpora import audio_clips, read_audio, spread_subset
    from training.live.extract import AUDIO_SAMPLE_RATE, AUDIO_WINDOW_S, WINDOW_HOP_S
    from training.live.labels import live_index

    try:
        extractor = WhisperVoiceExtractor()
    except RuntimeError as exc:
        raise SystemExit(f"eval_voice_encoder: error: {exc}") from exc
    calls: list[float] = []
    encode = extractor.encode

    def timed(audio: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = encode(audio)
        calls.append(time.perf_counter() - start)
        return out

    extractor.encode = timed  # type: ignore[method-assign]
    length, hop = int(AUDIO_WINDOW_S * AUDIO_SAMPLE_RATE), int(WINDOW_HOP_S * AUDIO_SAMPLE_RATE)
    vectors, labels, splits = [], [], []
    for corpus in ("ravdess", "emodb"):
        clips = [c for c in audio_clips(data, corpus) if live_index(corpus, c.source_label) >= 0]
        for clip in (clips[i] for i in spread_subset(len(clips), limit)):
            audio = read_audio(clip.path, AUDIO_SAMPLE_RATE)
            _, offset = loudest_window(audio, length, hop)
            vectors.append(window_features(extractor, audio, offset, length)[0])
            labels.append(live_index(corpus, clip.source_label))
            splits.append(clip.split)
    both = np.stack(vectors)
    sets = {"live": both[..., :VOICE_FEATURE_DIM], "whisper": both[..., VOICE_FEATURE_DIM:], "live+whisper": both}
    return sets, calls, np.asarray(labels), np.asarray(splits)


def train_and_score(x: np.ndarray, labels: np.ndarray, splits: np.ndarray, seed: int, epochs: int = 30
                    ) -> dict[str, np.ndarray]:
    """Probabilities on the ``val`` and ``test`` clips of one classifier trained on the ``train`` clips."""
    import torch

    from training.live.baselines import UnimodalClassifier
    from training.live.labels import LIVE_LABELS
    from training.metrics import classification_metrics

    train = splits == "train"
    flat = x[train].reshape(-1, x.shape[-1])
    normalised = torch.tensor((x - flat.mean(0)) / np.maximum(flat.std(0), 1e-3), dtype=torch.float32)
    y = torch.as_tensor(labels)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = UnimodalClassifier(x.shape[-1], len(LIVE_LABELS))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows, valid = torch.as_tensor(np.flatnonzero(train)), np.flatnonzero(splits == "val")
    best, state = -1.0, None
    for _ in range(epochs):
        model.train()
        for batch in rows[torch.randperm(len(rows), generator=generator)].split(128):
            loss = torch.nn.functional.cross_entropy(model(normalised[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            score = classification_metrics(model(normalised[valid]).numpy(), labels[valid], LIVE_LABELS)["macro_f1"]
        if score > best:
            best, state = score, {k: v.clone() for k, v in model.state_dict().items()}
    if state is not None:
        model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return {s: torch.softmax(model(normalised[splits == s]), -1).numpy() for s in ("val", "test")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data", help="folder with ravdess_speech/ and emodb/")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips per corpus (spread)")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        print("eval_voice_encoder: error: --seeds must be integers", file=sys.stderr)
        return 2
    import torch

    from imer_core.features.voice_whisper import CONTEXT_S
    from training.live.labels import LIVE_LABELS
    from training.metrics import classification_metrics

    torch.set_num_threads(1)
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    try:
        sets, calls, labels, splits = clip_features(Path(args.data), args.limit)
    except (FileNotFoundError, ValueError) as exc:
        print(f"eval_voice_encoder: error: {exc}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "check": "clip-level voice-only classification, speaker-independent live splits; tuned on nothing of test",
        "clips": {s: int((splits == s).sum()) for s in ("train", "val", "test")}, "context_s": CONTEXT_S,
        "encoder_call_ms_median": round(1000 * float(np.median(calls)), 2),
        "extraction_s": round(time.perf_counter() - start, 1),
        "dims": {name: int(x.shape[-1]) for name, x in sets.items()}, "features": {}}
    for name, x in sets.items():
        probabilities = [train_and_score(x, labels, splits, seed) for seed in seeds]
        scores: dict[str, Any] = {}
        for split in ("val", "test"):
            truth = labels[splits == split]
            singles = [classification_metrics(np.log(p[split] + 1e-12), truth, LIVE_LABELS) for p in probabilities]
            mean3 = np.mean([p[split] for p in probabilities[:3]], axis=0)
            ensemble = classification_metrics(np.log(mean3 + 1e-12), truth, LIVE_LABELS)
            scores[split] = {"macro_f1": [round(100 * m["macro_f1"], 1) for m in singles],
                             "accuracy": [round(100 * m["accuracy"], 1) for m in singles],
                             "first3_macro_f1": round(100 * ensemble["macro_f1"], 1),
                             "first3_accuracy": round(100 * ensemble["accuracy"], 1)}
        report["features"][name] = scores
        print(name, json.dumps(scores), flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["load_average"] = {"before": load_before, "after": list(os.getloadavg())}
    print(f"encoder call: median {report['encoder_call_ms_median']} ms (<= {CONTEXT_S} s of audio, 1 thread)")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
