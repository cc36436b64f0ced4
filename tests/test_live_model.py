"""Live model end to end on tiny schema-exact corpora.

extract-live → pseudo-pairs → training → live-eval → engine contract of the shipped checkpoints.

The corpora are written to a temporary data root in the layout of
``../shared/data``: FER2013-like 48×48 faces (matplotlib's Grace Hopper sample,
plus one blank image that has no face), espeak-ng speech stored as RAVDESS /
EmoDB FLAC files, and a three-split MELD CSV.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from live_fakes import live_audio_dim

from imer_core.checkpoint import checkpoint_info, load_checkpoint
from imer_core.config import LIVE_EMOTIONS
from imer_core.features.face import live_face_feature_spec, live_vision_feature
from imer_core.features.registry import default_extractor_specs
from imer_core.features.text import text_feature_spec
from imer_core.modalities import Modality
from training.cli import main
from training.experiment import load_experiment
from training.live.dataset import LiveDataOptions, build_live_data, live_specs
from training.live.evaluate import CONDITIONS, condition_mask
from training.live.extract import load_cache
from training.runner import build_model

pytest.importorskip("mediapipe", reason="mediapipe not installed (pip install -e .[face])")
pytest.importorskip("faster_whisper", reason="faster-whisper not installed (pip install -e .[asr])")
pytest.importorskip("tokenizers", reason="the text extra is not installed (pip install -e .[text])")

MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
               "Episode", "StartTime", "EndTime"]
FER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
# (file stem, sentence): RAVDESS actors 01 (train), 19 (val), 21 (test); EmoDB speaker 03 (train).
RAVDESS = [("03-01-03-01-01-01-01", "Kids are talking by the door"),
           ("03-01-04-01-02-01-01", "Dogs are sitting by the door"),
           ("03-01-03-02-01-01-19", "Kids are talking by the door"),
           ("03-01-03-01-02-02-21", "Dogs are sitting by the door")]
EMODB = [("03a01Fa", "The tablecloth is lying on the fridge"), ("03a01La", "The tablecloth is lying on the fridge")]
MELD = {"train": [("I am so happy for you!", "joy"), ("This is the saddest day of my life.", "sadness")],
        "dev": [("Yes! We won!", "joy")], "test": [("That is wonderful news!", "joy")]}


def _faces() -> tuple[np.ndarray, list[str], list[str]]:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        gray = Image.open(handle).convert("L")
    crops = [(100, 60, 420, 400), (130, 80, 400, 380), (150, 100, 380, 360)]
    images = []
    for box in crops:
        for flip in (False, True):
            crop = gray.crop(box)
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT) if flip else crop
            images.append(np.asarray(crop.resize((48, 48), Image.BICUBIC), np.uint8))
    images.append(np.full((48, 48), 128, np.uint8))                      # no face: must be counted
    labels = ["happy", "happy", "sad", "happy", "happy", "happy", "neutral"]
    splits = ["train", "train", "train", "train", "val", "test", "train"]     # --limit 6 leaves out image 3
    return np.stack(images), labels, splits


def write_tiny_corpora(root: Path) -> None:
    """Schema-exact miniature FER2013 / RAVDESS / EmoDB / MELD under ``root``."""
    import soundfile as sf
    from clip_fixtures import espeak_16k

    images, labels, splits = _faces()
    (root / "fer2013").mkdir(parents=True)
    np.savez_compressed(root / "fer2013" / "fer2013_48x48.npz", images=images,
                        labels=np.array([FER_CLASSES.index(x) for x in labels], np.int8), split=np.array(splits),
                        source_name=np.array([f"{s}/{x}/{i}.jpg" for i, (s, x) in enumerate(zip(splits, labels))]),
                        classes=np.array(FER_CLASSES))
    speech = {text: espeak_16k(text) for text in {t for _, t in RAVDESS + EMODB}}
    for stem, text in RAVDESS:
        clip = np.concatenate([np.zeros(4800, np.float32), speech[text]])[:38224]   # 0.3 s lead-in, ≤ 2.39 s
        path = root / "ravdess_speech" / f"Actor_{stem[-2:]}" / f"{stem}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, clip, 16000, format="FLAC", subtype="PCM_16")
    (root / "emodb").mkdir()
    for stem, text in EMODB:
        clip = np.pad(speech[text], (0, 32000))[:32000]
        sf.write(root / "emodb" / f"{stem}.flac", clip / max(1e-6, np.abs(clip).max()), 16000, format="FLAC",
                 subtype="PCM_16")
    (root / "meld").mkdir()
    for split, rows in MELD.items():
        with (root / "meld" / f"{split}_sent_emo.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(MELD_HEADER)
            for i, (text, emotion) in enumerate(rows):
                writer.writerow([i + 1, text, "Ross", emotion, "positive", 0, i, 1, 1, "00:00:01,000",
                                 "00:00:02,000"])


@pytest.fixture(scope="module")
def live_cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shared_data")
    write_tiny_corpora(root)
    cache = tmp_path_factory.mktemp("live_cache")
    assert main(["extract-live", "--data", str(root), "--cache", str(cache), "--limit", "6", "--no-progress"]) == 0
    return cache


def test_extract_live_caches_features_and_counts_missed_faces(live_cache, capsys):
    fer = load_cache(live_cache, "fer2013")
    # --limit 6 of 7 images; the live vision feature: face-net embedding + blendshapes + pose
    assert fer["vision"].shape == (6, live_vision_feature()[1]) and fer["meta"]["stats"]["undetected"] == 1
    assert fer["detected"].sum() == 5 and not fer["detected"][-1]
    assert fer["meta"]["extractors"]["vision"] == live_face_feature_spec(20, 10.0).extractor
    ravdess = load_cache(live_cache, "ravdess")
    assert ravdess["audio"].shape == (4, 20, live_audio_dim()) and ravdess["text"].shape == (4, 384)
    assert all("door" in t.lower() for t in ravdess["transcript"]), ravdess["transcript"]
    assert np.allclose(ravdess["duration_s"], 2.389, atol=1e-3) and (ravdess["offset_s"] <= 0.39).all()
    assert load_cache(live_cache, "emodb")["source_label"].tolist() == ["happiness", "boredom"]
    meld = load_cache(live_cache, "meld")
    assert meld["text"].shape == (4, 384) and np.allclose(np.linalg.norm(meld["text"], axis=1), 1.0, atol=1e-4)
    summary = json.loads((live_cache / "summary.json").read_text())
    assert set(summary) == {"fer2013", "ravdess", "emodb", "meld"}
    capsys.readouterr()
    root = Path(summary["meld"]["data_root"])
    assert main(["extract-live", "--data", str(root), "--cache", str(live_cache), "--limit", "6",
                 "--corpora", "meld,emodb", "--no-progress"]) == 0
    assert capsys.readouterr().out.count("up to date") == 2


def test_pseudo_pairs_splits_and_normalisation(live_cache):
    data = build_live_data(live_cache, LiveDataOptions(train_tuples_per_class=5, val_tuples_per_class=3))
    assert data.specs == live_specs()
    assert {m: len(v["mean"]) for m, v in data.normalization.items()} == {"text": 384, "audio": live_audio_dim(),
                                                                          "vision": live_vision_feature()[1]}
    train, test = data.datasets["train"], data.datasets["test"]
    assert len(train) == 10 and sorted(set(train.labels.tolist())) == [1, 2]      # happy, sad: in every modality
    item = train[0]
    assert {k: tuple(item[k].shape) for k in ("text", "audio", "vision")} == {
        "text": (20, 384), "audio": (20, live_audio_dim()), "vision": (20, live_vision_feature()[1])}
    assert torch.equal(item["text"][0], item["text"][-1])
    assert not torch.equal(item["vision"][0], item["vision"][1])                  # jitter on training faces
    assert test.labels.tolist() == [1] and torch.equal(test[0]["vision"][0], test[0]["vision"][5])
    sources = test.sources()
    assert set(sources["vision"]) == {"fer2013:test/happy/5.jpg"} and len(set(sources["audio"])) == 1
    samples = data.summary["samples"]
    assert samples["audio"]["train"]["happy"] == 2 and samples["audio"]["train"]["neutral"] == 0   # boredom dropped
    assert samples["vision"]["train"]["neutral"] == 0                                             # no face: dropped


@pytest.mark.parametrize("name", ["live_imder", "live_rohydr", "live_cmarr"])
def test_live_configs_build_models_for_every_condition(name):
    experiment = load_experiment(name)
    torch.manual_seed(0)
    model = build_model(experiment, live_specs(), LIVE_EMOTIONS).eval()
    features = {s.modality.value: torch.randn(2, s.seq_len, s.dim) for s in live_specs()}
    for condition in CONDITIONS:
        assert model.predict(features, condition_mask(condition, 2)).shape == (2, 7)


def test_train_evaluate_and_ship_meet_the_engine_contract(live_cache, tmp_path, capsys):
    from imer_core.live.models import compatibility_problems, load_live_model

    tiny = ["--set", "train.max_epochs=1", "--set", "train.pretrain_max_epochs=1", "--set",
            "data.live.train_tuples_per_class=8", "--set", "data.live.val_tuples_per_class=4", "--no-progress"]
    checkpoints = []
    for name, extra in (("live_imder", ["--set", "model.options.sampler_steps=2",
                                        "--set", "model.options.train_sampler_steps=2"]), ("live_cmarr", [])):
        out = tmp_path / name
        assert main(["train", "--config", name, "--data", str(live_cache), "--out", str(out), *tiny, *extra]) == 0
        checkpoints.append(out / "model.pt")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(checkpoints[1]), "--data", str(live_cache), "--device", "cpu",
                 "--set", "data.live.train_tuples_per_class=8", "--set", "data.live.val_tuples_per_class=4"]) == 0
    evaluated = json.loads(capsys.readouterr().out)                      # imer-train evaluate reads the live cache
    assert evaluated["dataset"] == "live" and evaluated["data_source"] == str(live_cache)
    assert 0.0 <= evaluated["accuracy"] <= 1.0
    ship = tmp_path / "assets" / "models"
    assert main(["live-eval", "--cache", str(live_cache), "--checkpoints", ",".join(map(str, checkpoints)),
                 "--out", str(tmp_path / "eval"), "--ship", str(ship), "--latency-runs", "2",
                 "--set", "train.max_epochs=1", "--set", "train.pretrain_max_epochs=1", "--no-progress"]) == 0
    table = (tmp_path / "eval" / "results.md").read_text()
    for row in ("IMDer", "CM-ARR", "zero-fill", "mean-fill", "unimodal (late fusion)"):
        assert f"| {row} |" in table
    rows = list(csv.DictReader((tmp_path / "eval" / "results.csv").open()))
    assert {r["condition"] for r in rows} == set(CONDITIONS)
    for method in ("imder", "cmarr"):
        path = ship / f"live_{method}.pt"
        assert path.stat().st_size < 20 * 2**20
        info = checkpoint_info(path)
        meta = info["metadata"]
        assert meta["trained"] is True and meta["label_space"] == list(LIVE_EMOTIONS)
        assert meta["model_card"] == "assets/MODEL_CARD.md" and set(meta["results"]["table"]["zero-fill"]) == set(
            CONDITIONS)
        assert set(meta["feature_normalization"]) == {"text", "audio", "vision"} and "samples" in meta["data"]
        model = load_checkpoint(path)
        assert model.config.labels == LIVE_EMOTIONS and model.config.task == "classification"
        assert model.config.specs.text == text_feature_spec(20, 10.0)
        assert model.config.specs.audio == default_extractor_specs()[Modality.AUDIO].feature_spec(20, 10.0)
        assert model.config.specs.vision == live_face_feature_spec(20, 10.0)
        assert compatibility_problems(model.config, meta) == []
        assert load_live_model(path).labels == LIVE_EMOTIONS


def _tiny_pools() -> dict:
    from training.live.dataset import ModalityPool

    rng = np.random.default_rng(0)
    shapes = {"text": (384,), "audio": (20, live_audio_dim()), "vision": (55,)}
    labels = np.array([0, 1, 0, 1])
    return {m: ModalityPool(rng.standard_normal((4, *s)).astype(np.float32), labels, np.full(4, "train"),
                            np.array([f"{m}:{i}" for i in range(4)])) for m, s in shapes.items()}


def test_live_options_reject_unknown_keys_and_training_tuples_refuse_worker_processes():
    from torch.utils.data import DataLoader

    from training.live.dataset import LiveTupleDataset, load_live_experiment_data

    assert LiveDataOptions.from_mapping({"audio_corpora": ["ravdess"], "seed": 3}) == LiveDataOptions(
        audio_corpora=("ravdess",), seed=3)
    with pytest.raises(ValueError, match="unknown LiveDataOptions option"):
        LiveDataOptions.from_mapping({"tuples": 3})
    train = LiveTupleDataset(_tiny_pools(), len(LIVE_EMOTIONS), seed=0, resample=True, tuples_per_class=2,
                             vision_jitter=0.1)
    assert len(list(DataLoader(train, batch_size=2, num_workers=0))) == 2
    with pytest.raises(ValueError, match="num_workers = 0"):   # workers would repeat the same draws
        list(DataLoader(train, batch_size=2, num_workers=1))
    fixed = LiveTupleDataset(_tiny_pools(), len(LIVE_EMOTIONS), seed=0, resample=False, tuples_per_class=None)
    assert len(list(DataLoader(fixed, batch_size=2, num_workers=1))) == 2   # fixed tuples are safe in workers
    with pytest.raises(ValueError, match="num_workers = 0"):
        load_live_experiment_data(load_experiment("live_cmarr", ["train.num_workers=2"]))


def test_ship_refuses_an_oversized_checkpoint_without_leaving_it_behind(tmp_path, monkeypatch):
    from live_fakes import train_small_checkpoint

    from training.live import evaluate
    from training.live.dataset import LiveData

    path = train_small_checkpoint(tmp_path / "run" / "model.pt", "cmarr", steps=1)
    model = load_checkpoint(path)
    data = LiveData({}, live_specs(), {}, {})
    report = {"conditions": ["l"], "test": {"CM-ARR": {"l": {"accuracy": 0.5}}}, "latency_ms": {"CM-ARR": {"l": 1.0}},
              "torch_threads": 1, "test_tuples": 2}
    ship = tmp_path / "models"
    shipped = evaluate.ship_checkpoints([("CM-ARR", path, model)], report, data, ship)
    assert [p.name for p in ship.iterdir()] == ["live_cmarr.pt"] and shipped["CM-ARR"]["bytes"] < 20_000_000
    assert checkpoint_info(ship / "live_cmarr.pt")["metadata"]["results"]["torch_threads"] == 1
    before = (ship / "live_cmarr.pt").read_bytes()
    monkeypatch.setattr(evaluate, "MAX_SHIP_BYTES", 1000)
    with pytest.raises(ValueError, match="over the 1,000-byte limit"):
        evaluate.ship_checkpoints([("CM-ARR", path, model)], report, data, ship)
    assert [p.name for p in ship.iterdir()] == ["live_cmarr.pt"] and (ship / "live_cmarr.pt").read_bytes() == before


def test_ship_keeps_the_speaker_switch_only_if_it_did_not_lower_voice_only_macro_f1(tmp_path):
    from live_fakes import train_small_checkpoint

    from imer_core.checkpoint import save_checkpoint
    from training.live import evaluate
    from training.live.dataset import LiveData

    trained = train_small_checkpoint(tmp_path / "run" / "model.pt", "cmarr", steps=1)
    model = load_checkpoint(trained)
    switch = {"audio": {"prior_steps": 100, "min_speech_fraction": 0.5, "switch_after_steps": 400, "mode": "expert"}}
    path = save_checkpoint(model, tmp_path / "run" / "model-experts.pt",
                           {**checkpoint_info(trained)["metadata"], "speaker_normalization": switch})
    data = LiveData({}, live_specs(), {}, {})
    speaker_row = f"CM-ARR, after {evaluate.SPEAKER_TEST_SECONDS:.0f} s of speech"

    def shipped_metadata(after: float, folder: str) -> dict:
        report = {"conditions": ["a"], "latency_ms": {"CM-ARR": {"a": 1.0}}, "torch_threads": 1, "test_tuples": 2,
                  "test": {"CM-ARR": {"a": {"macro_f1": 0.508}}, speaker_row: {"a": {"macro_f1": after}}}}
        evaluate.ship_checkpoints([("CM-ARR", path, model)], report, data, tmp_path / folder)
        return checkpoint_info(tmp_path / folder / "live_cmarr.pt")["metadata"]

    worse = shipped_metadata(0.443, "worse")
    assert "speaker_normalization" not in worse
    assert worse["speaker_normalization_not_applied"]["settings_it_was_evaluated_with"] == switch
    assert "from 50.8 to 44.3" in worse["speaker_normalization_not_applied"]["why"]
    better = shipped_metadata(0.52, "better")
    assert better["speaker_normalization"] == switch and "speaker_normalization_not_applied" not in better


def test_live_experts_head_speaker_switch_and_targets_table(live_cache, tmp_path, capsys):
    """live-experts on a tiny CM-ARR: head in the config, neutral reference and speaker switch-over in the
    metadata, the engine contract kept; live-eval reports the targets and the after-40-s-of-speech row."""
    from imer_core.live.models import load_live_model

    tiny = ["--set", "train.max_epochs=1", "--set", "train.pretrain_max_epochs=1", "--set",
            "data.live.train_tuples_per_class=8", "--set", "data.live.val_tuples_per_class=4", "--no-progress"]
    out = tmp_path / "live_cmarr"
    assert main(["train", "--config", "live_cmarr", "--data", str(live_cache), "--out", str(out), *tiny]) == 0
    # the late-fusion baseline's seed spread (scripts/unimodal_seed_spread.py --modality all)
    from script_loader import load_script

    spread = load_script("unimodal_seed_spread")
    report = tmp_path / "spread.json"
    assert spread.main(["--checkpoint", str(out / "model.pt"), "--cache", str(live_cache), "--modality", "all",
                        "--seeds", "0,1", "--out", str(report)]) == 0
    late = json.loads(report.read_text())["late_fusion"]
    assert [row["seed"] for row in late["per_seed"]] == [0, 1] and set(late["spread"]) == set(CONDITIONS)
    for i, row in enumerate(late["per_seed"]):  # one modality's late fusion is that modality's classifier
        for condition, modality in (("l", "text"), ("a", "audio"), ("v", "vision")):
            assert row[condition] == json.loads(report.read_text())[modality]["seeds"][i]["test_macro_f1"]
    fused = tmp_path / "fused.pt"
    assert main(["live-experts", "--checkpoint", str(out / "model.pt"), "--cache", str(live_cache),
                 "--out", str(fused), "--no-progress", "--members", "2"]) == 0
    model = load_checkpoint(fused)
    assert model.config.expert_fusion["speaker_experts"] == ["audio"] and model.expert_fusion is not None
    assert model.config.expert_fusion["members"] == 2  # every expert an ensemble of two MLPs (own seeds)
    first, second = model.expert_fusion.experts["vision"].members
    assert not torch.equal(first.net[0].weight, second.net[0].weight)
    meta = checkpoint_info(fused)["metadata"]
    # the cache's text feature is the shipped text network's: its own head is the text expert (auto), not an MLP
    assert model.config.expert_fusion["linear_experts"] == ["text"]
    text = meta["expert_fusion"]["summary"]["experts"]["text"]
    assert text["kind"] == "text-net-head" and 3 < text["scale"] < 20
    assert len(meta["expert_fusion"]["summary"]["experts"]["audio"]["members"]) == 2
    # every expert calibrated on the validation tuples; the checkpoint scores with those temperatures
    temperatures = model.config.expert_fusion["temperatures"]
    assert set(temperatures) == {"text", "audio", "vision", "audio@speaker"}
    assert model.expert_fusion.temperatures == temperatures and all(t > 0 for t in temperatures.values())
    # an MLP text expert instead, the other experts reused from the first run (not re-drawn)
    trained_text = tmp_path / "mlp-text.pt"
    assert main(["live-experts", "--checkpoint", str(out / "model.pt"), "--cache", str(live_cache), "--out",
                 str(trained_text), "--no-progress", "--members", "2", "--text-expert", "mlp",
                 "--experts-from", str(fused)]) == 0
    mlp = load_checkpoint(trained_text)
    assert "linear_experts" not in mlp.config.expert_fusion
    assert len(mlp.expert_fusion.experts["text"].members[0].net) > 1  # trained: the source's was a carried-over head
    for name, pool in (("vision", "experts"), ("audio", "experts"), ("audio", "speaker_experts")):
        for key, value in getattr(mlp.expert_fusion, pool)[name].state_dict().items():
            assert torch.equal(value, getattr(model.expert_fusion, pool)[name].state_dict()[key])
    reused = checkpoint_info(trained_text)["metadata"]["expert_fusion"]["summary"]["experts"]["vision"]
    assert reused["reused_from"] == str(fused) and len(reused["members"]) == 2
    capsys.readouterr()
    assert main(["live-experts", "--checkpoint", str(out / "model.pt"), "--cache", str(live_cache), "--out",
                 str(tmp_path / "x.pt"), "--no-progress", "--experts-from", str(out / "model.pt")]) != 0
    assert "has no expert head" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    from imer_core.live.neutral_baseline import neutral_reference
    from training.live.dataset import load_pools

    pools, _ = load_pools(live_cache, LiveDataOptions())
    assert meta["neutral_reference"] == neutral_reference(pools)  # neutral training means (those the tiny data has)
    for modality, mean in meta["neutral_reference"].items():
        assert len(mean) == model.config.specs[modality].dim
    switch = meta["speaker_normalization"]["audio"]
    assert switch["mode"] == "expert" and switch["switch_after_steps"] == 400  # 40 s of speech at 10 Hz
    assert isinstance(meta["expert_fusion"]["summary"]["correction"]["correction_kept"], bool)
    assert load_live_model(fused).model.expert_fusion is not None
    assert main(["live-eval", "--cache", str(live_cache), "--checkpoints", str(fused), "--out", str(tmp_path / "ev"),
                 "--skip-fill-baselines", "--latency-runs", "1", "--no-progress"]) == 0
    table = (tmp_path / "ev" / "results.md").read_text()
    assert "### Targets (issue 11)" in table and "| CM-ARR, after 40 s of speech |" in table
    assert "zero-fill" not in table and "| unimodal (late fusion) |" in table
    # the late-fusion baseline over 5 seeds (the default): each seed kept, their mean a row of its own
    report = json.loads((tmp_path / "ev" / "results.json").read_text())
    seeds = report["late_fusion_seeds"]
    assert list(seeds) == ["1111", "1112", "1113", "1114", "1115"]
    first = report["test"]["unimodal (late fusion)"]
    assert all(seeds["1111"][c]["macro_f1"] == first[c]["macro_f1"] for c in CONDITIONS)
    mean = report["test"]["unimodal (late fusion), mean over seeds"]
    for c in CONDITIONS:
        assert mean[c]["macro_f1"] == pytest.approx(np.mean([s[c]["macro_f1"] for s in seeds.values()]))
    assert "### Late fusion over 5 seeds (macro-F1)" in table and "below the late-fusion mean over 5 seeds" in table
    # each checkpoint's difference from late fusion, with its paired bootstrap interval (2000 replicates by default)
    differences = report["difference_from_late_fusion"]["CM-ARR"]
    assert set(differences) == set(CONDITIONS) and "### Macro-F1 minus late fusion" in table
    for c in CONDITIONS:
        d = differences[c]
        assert d["difference"] == pytest.approx(report["test"]["CM-ARR"][c]["macro_f1"] - first[c]["macro_f1"])
        assert d["low"] <= d["high"] and 0.0 <= d["share_below"] <= 1.0 and d["replicates"] == 2000
