"""scripts/eval_voice_text_ood.py: dataset readers, subsampling, metrics, the JSON report and bad inputs.

Synthetic inputs only: a URDU-style folder of short tones, a GoEmotions-style
TSV, a tiny live checkpoint, and a stand-in text embedder (no MiniLM load).
"""

from __future__ import annotations

import dataclasses
import json
import wave
from pathlib import Path

import numpy as np
import pytest
from live_fakes import train_small_checkpoint
from script_loader import load_script

from imer_core.features.text import TEXT_DIM

ood = load_script("eval_voice_text_ood")

LABELS_TXT = "anger\ndisgust\nfear\njoy\nneutral\nsadness\nsurprise\n"


def _write_tone(path: Path, seconds: float, pitch: float, rate: int = 44100) -> None:
    """A mono 16-bit WAV of a voiced-like tone (a pitch and its harmonics, with a slow loudness swell)."""
    t = np.arange(int(seconds * rate)) / rate
    signal = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6)) * (0.3 + 0.2 * np.sin(3 * t))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((0.5 * signal / np.abs(signal).max() * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny live checkpoint (untrained weights: these tests check the plumbing, not the scores)."""
    return train_small_checkpoint(tmp_path_factory.mktemp("ood") / "live_cmarr.pt", steps=0)


@pytest.fixture
def urdu(tmp_path) -> Path:
    """Two URDU class folders, two speakers, one clip shorter than the 2 s window."""
    root = tmp_path / "urdu"
    _write_tone(root / "Angry" / "SM1_F1_A01.wav", 2.5, 220.0)
    _write_tone(root / "Angry" / "SF2_F1_A02.wav", 1.2, 300.0)
    _write_tone(root / "Sad" / "SM1_F2_S01.wav", 2.2, 120.0)
    _write_tone(root / "Sad" / "SF2_F2_S02.wav", 2.0, 180.0)
    (root / "README.md").write_text("not a class folder\n")
    return root


@pytest.fixture
def goemotions(tmp_path) -> Path:
    folder = tmp_path / "ekman"
    folder.mkdir()
    (folder / "labels.txt").write_text(LABELS_TXT)
    rows = ["I am so angry right now\t0\ta1", "gross\t1\ta2", "what a day\t3,5\ta3", "yay\t3\ta4",
            "fine.\t4\ta5", "so sad \"really\"\t5\ta6", "wow\t6\ta7", "ugh\t0\ta8", "meh\t4,4\ta9"]
    (folder / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder / "test.tsv"


def _fake_embed(texts: list[str]) -> np.ndarray:
    """Deterministic unit vectors standing in for MiniLM embeddings."""
    rows = [np.random.default_rng(sum(map(ord, text))).standard_normal(TEXT_DIM) for text in texts]
    return np.asarray([r / np.linalg.norm(r) for r in rows], np.float32).reshape(len(texts), TEXT_DIM)


def test_goemotions_rows_keep_single_labels_mapped_to_live_classes(goemotions):
    found = ood.goemotions_rows(goemotions, goemotions.parent / "labels.txt")
    assert found.total_rows == 9 and found.multi_label == 1  # "3,5"; "4,4" is one label
    assert found.rows[:3] == [("I am so angry right now", "angry"), ("gross", "disgusted"), ("yay", "happy")]
    assert ("so sad \"really\"", "sad") in found.rows and ("meh", "neutral") in found.rows
    assert {label for _, label in found.rows} == {"angry", "disgusted", "happy", "neutral", "sad", "surprised"}


def test_balanced_subsample_is_capped_per_class_and_seeded():
    labels = ["sad"] * 5 + ["angry"] * 2 + ["happy"] * 9
    chosen = ood.balanced(labels, 3, seed=4)
    assert chosen == ood.balanced(labels, 3, seed=4) and len(chosen) == 8
    assert sorted(labels[i] for i in chosen) == ["angry"] * 2 + ["happy"] * 3 + ["sad"] * 3
    assert len(set(chosen)) == len(chosen)
    assert {tuple(ood.balanced(labels, 3, seed=s)) for s in range(6)} != {tuple(chosen)}


def test_metrics_macro_f1_over_present_classes_recall_and_confusion():
    result = ood.metrics(["angry", "angry", "sad", "sad"], ["angry", "happy", "sad", "angry"])
    assert result["classes"] == ["sad", "angry"] and result["accuracy"] == 0.5
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)  # happy is no term of its own
    assert result["recall"] == {"sad": 0.5, "angry": 0.5}
    assert result["confusion"]["angry"]["happy"] == 1 and result["confusion"]["sad"]["angry"] == 1
    assert sum(result["predicted"].values()) == 4


def test_report_names_data_model_and_metrics_per_modality(tmp_path, urdu, goemotions, checkpoint, monkeypatch,
                                                         capsys):
    from imer_core.analysis.features import Extractors

    monkeypatch.setattr(Extractors, "embed", lambda self, texts: _fake_embed(texts))
    out = tmp_path / "report.json"
    code = ood.main(["--voice-dir", str(urdu), "--per-class", "1", "--text-tsv", str(goemotions),
                     "--text-per-class", "5", "--checkpoint", str(checkpoint), "--out", str(out)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["voice", "text", "written " + str(out)]
    report = json.loads(out.read_text())
    assert report["model"]["sha256"] == ood.file_sha256(checkpoint) and report["model"]["method"] == "cmarr"
    assert "commit" in report["git"]
    voice, text = report["voice"], report["text"]
    assert voice["dataset"]["source"].endswith("siddiquelatif/URDU-Dataset") and "research" in voice["dataset"][
        "licence"]
    assert voice["clips_available"] == {"sad": 2, "angry": 2} and voice["clips_used"] == 2
    assert voice["speakers_available"] == 2 and voice["speaker_normalization"] is None
    assert voice["metrics"]["n"] == 2 and set(voice["metrics"]["confusion"]) == {"sad", "angry"}
    assert "CC BY 4.0" in text["dataset"]["licence"] and text["multi_label_rows_dropped"] == 1
    assert text["texts_used"] == 8 and text["metrics"]["count"]["angry"] == 2


def test_speaker_statistics_follow_the_checkpoint(urdu, checkpoint):
    """A checkpoint that normalises voices per speaker gets its windows normalised by their speaker's clips."""
    from imer_core.analysis.features import Extractors
    from imer_core.live.inference import predict_windows
    from imer_core.live.models import load_live_model
    from imer_core.live.speaker_norm import RunningSpeakerStats
    from imer_core.modalities import Modality

    extractors = Extractors()
    plain = load_live_model(checkpoint, extractors=extractors.specs)
    settings = {"audio": {"prior_steps": 5, "min_speech_fraction": 0.0, "mode": "replace"}}
    model = dataclasses.replace(plain, metadata={**plain.metadata, "speaker_normalization": settings})
    clips = ood.urdu_clips(urdu)
    audio = ood.read_clips(clips)
    predicted, how = ood.predict_voice(model, extractors, clips, audio, speaker_stats="speaker")
    assert how["speaker_normalization"]["statistics_of"] == "speaker" and how["clips_shorter_than_window"] == 1
    expected = []
    for speaker in sorted({c.speaker for c in clips}):
        stats = RunningSpeakerStats(model.mean[Modality.AUDIO], model.std[Modality.AUDIO], 5, 0.0)
        for clip, samples in zip(clips, audio):
            if clip.speaker == speaker:
                track, _, speech = extractors.voice_track(samples)
                stats.update(track.between(-np.inf, np.inf)[1], speech)
        for clip, samples in zip(clips, audio):
            if clip.speaker == speaker:
                window = stats.normalise(extractors.loudest_voice_window(samples, 2.0)[0])
                probs = predict_windows(model, [{Modality.AUDIO: window}], normalise=False)[0]
                expected.append((clips.index(clip), model.labels[int(np.argmax(probs))]))
    assert predicted == [label for _, label in sorted(expected)]


def _broken(kind: str, root: Path, tsv: Path) -> list[str]:
    """Arguments with one bad input of ``kind``."""
    if kind == "missing folder":
        return ["--voice-dir", str(root / "nowhere")]
    if kind == "no class folder":
        return ["--voice-dir", str(root / "Sad")]
    if kind == "empty wav":
        (root / "Sad" / "SM9_F1_S09.wav").write_bytes(b"")
        return ["--voice-dir", str(root)]
    if kind == "unreadable wav":
        (root / "Sad" / "SM9_F1_S09.wav").write_bytes(b"RIFF\x00\x00not audio at all" * 4)
        return ["--voice-dir", str(root)]
    if kind == "missing tsv":
        return ["--text-tsv", str(tsv.parent / "absent.tsv")]
    if kind == "bad label id":
        tsv.write_text("hello\t12\tx1\n")
        return ["--text-tsv", str(tsv)]
    assert kind == "missing checkpoint"
    return ["--voice-dir", str(root), "--checkpoint", str(root / "absent.pt")]


@pytest.mark.parametrize("kind", ["missing folder", "no class folder", "empty wav", "unreadable wav", "missing tsv",
                                  "bad label id", "missing checkpoint"])
def test_a_bad_input_is_one_line_and_exit_status_2(kind, urdu, goemotions, capsys):
    code = ood.main(_broken(kind, urdu, goemotions))
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("eval_voice_text_ood: error: ")
    assert "Traceback" not in err
