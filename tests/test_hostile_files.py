"""Table-driven fuzzing of every loader of user files: clear error, no code run, bounded memory.

Each loader (checkpoint, MMSA pickle, MMIN folder, calibration npz, media
file) is fed truncated, random, wrong-type and oversized inputs; every case
must end in the loader's own error type (never another exception, a hang or
a crash) and never run the marker command a hostile pickle carries.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from imer_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from imer_core.config import LIVE_EMOTIONS
from imer_core.live.calibration import CalibrationFileError, load_calibration
from imer_core.live.models import LiveModelError, load_live_model
from imer_core.live.sources.media import MediaOpenError, probe_media
from training.data import MMSAFormatError, load_mmsa, make_synthetic_mmsa

TINY = {"sizes": (6, 3, 3), "seq_len": 4, "dims": (8, 5, 6)}


class _Payload:
    """Unpickling this with pickle.load runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- checkpoints
def _checkpoint_cases(good: Path, marker: Path) -> dict[str, Callable[[Path], None]]:
    data = good.read_bytes()
    payload = torch.load(good, weights_only=True)

    def edited(**changes):
        def write(path: Path) -> None:
            torch.save({**payload, **changes}, path)
        return write

    def nan_weights(path: Path) -> None:
        state = {k: v.clone() for k, v in payload["state_dict"].items()}
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key].view(-1)[0] = float("nan")
        torch.save({**payload, "state_dict": state}, path)

    def zip_bomb(path: Path) -> None:  # members declaring gigabytes in a small file
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("archive/data.pkl", b"\0" * (300 << 20))

    def code(path: Path) -> None:
        with open(path, "wb") as handle:
            pickle.dump({"format": "imer-checkpoint", "x": _Payload(marker)}, handle)

    return {
        "empty": lambda p: p.write_bytes(b""),
        "truncated": lambda p: p.write_bytes(data[: len(data) // 3]),
        "random": lambda p: p.write_bytes(_random_bytes(4096)),
        "text": lambda p: p.write_text("not a checkpoint\n" * 20),
        "legacy pickle running code": code,
        "config is a string": edited(config="imder"),
        "config is a list": edited(config=[1, 2]),
        "metadata is a list": edited(metadata=[1, 2]),
        "state_dict is a string": edited(state_dict="weights"),
        "state_dict values are not tensors": edited(state_dict={"a": 1}),
        "method is a number": edited(method=3),
        "format_version is a string": edited(format_version="one"),
        "specs missing": edited(config={**payload["config"], "specs": None}),
        "fusion options of wrong type": edited(config={**payload["config"], "fusion": "big"}),
        "NaN weight": nan_weights,
        "zip declaring 300 MB": zip_bomb,
    }


def test_checkpoint_fuzz_cases_raise_checkpoint_error(tmp_path, live_checkpoints):
    marker = tmp_path / "payload_ran"
    for name, write in _checkpoint_cases(live_checkpoints["cmarr"], marker).items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        write(path)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value), name
        with pytest.raises(LiveModelError):  # the live loader says the same, in its own type
            load_live_model(path)
    assert not marker.exists()


def test_a_checkpoint_declaring_far_more_than_it_holds_is_refused_before_reading(tmp_path, monkeypatch):
    """The zip members' declared sizes are checked first (the fuzz case above would fail later anyway)."""
    import imer_core.checkpoint as checkpoint

    def read(*args, **kwargs):
        raise AssertionError("the checkpoint was read before its declared size was checked")

    monkeypatch.setattr(checkpoint.torch, "load", read)
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:  # ~100 KB holding 96 MB of zeros
        archive.writestr("archive/data.pkl", b"\0" * (96 << 20))
    with pytest.raises(CheckpointError, match=r"declares \d+ bytes of content in a \d+-byte file"):
        load_checkpoint(path)


@pytest.mark.parametrize("normalization", ["not a dict", {"audio": "x"}, {"audio": {"mean": "abc", "std": 1}},
                                           {"audio": {"mean": [float("nan")] * 44, "std": [1.0] * 44}}])
def test_live_checkpoint_with_bad_normalization_is_refused_clearly(tmp_path, live_checkpoints, normalization):
    payload = torch.load(live_checkpoints["cmarr"], weights_only=True)
    payload["metadata"] = {**payload["metadata"], "feature_normalization": normalization}
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(LiveModelError, match="feature_normalization"):
        load_live_model(tmp_path / "m.pt")


def test_a_model_with_nan_weights_is_never_saved(tmp_path, live_checkpoints):
    model = load_checkpoint(live_checkpoints["cmarr"])
    next(p for p in model.parameters()).data.view(-1)[0] = float("inf")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        save_checkpoint(model, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


# ---------------------------------------------------------------- MMSA pickles
def _mmsa_cases(marker: Path) -> dict[str, Callable[[Path], None]]:
    good = pickle.dumps(make_synthetic_mmsa(**TINY), protocol=4)

    def dump(obj, protocol: int = 4):
        return lambda p: p.write_bytes(pickle.dumps(obj, protocol=protocol))

    nested = make_synthetic_mmsa(**TINY)
    nested["test"]["annotations"] = [_Payload(marker)]
    huge = pickle.PROTO + b"\x04" + b"\x8e" + (20 << 30).to_bytes(8, "little") + b"abc"
    return {
        "empty": lambda p: p.write_bytes(b""),
        "truncated": lambda p: p.write_bytes(good[: len(good) // 2]),
        "random": lambda p: p.write_bytes(_random_bytes(4096)),
        "text": lambda p: p.write_text("train,valid,test\n"),
        "top-level payload": dump(_Payload(marker)),
        "nested payload": dump(nested),
        "payload in protocol 0": dump(_Payload(marker), protocol=0),
        "top level is a list": dump([1, 2, 3]),
        "split is a string": dump({"train": "x", "valid": {}, "test": {}}),
        "bytes object declaring 20 GiB": lambda p: p.write_bytes(huge),
        "features are strings": dump({s: {**make_synthetic_mmsa(**TINY)[s], "text": np.array(["a"])}
                                      for s in ("train", "valid", "test")}),
    }


def test_mmsa_fuzz_cases_raise_format_error_and_run_no_code(tmp_path):
    marker = tmp_path / "payload_ran"
    peak_before = _peak_rss_mib()  # the process's high-water mark so far (earlier tests load models)
    for name, write in _mmsa_cases(marker).items():
        path = tmp_path / f"{name.replace(' ', '_')}.pkl"
        write(path)
        with pytest.raises(MMSAFormatError):
            load_mmsa(path)
        assert not marker.exists(), name
    assert _peak_rss_mib() < max(peak_before, 1024) + 1024  # the 20 GiB declaration was never allocated


_WITH_LITTLE_MEMORY = r"""
import json, resource, sys
from training import data
with open("/proc/self/statm") as statm:
    virtual = int(statm.read().split()[0]) * resource.getpagesize()
limit = virtual + int(sys.argv[1])  # this much more address space than the imports took
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    getattr(data, sys.argv[2])(*json.loads(sys.argv[3]))
except (data.MMSAFormatError, data.MMINFormatError) as exc:
    print(exc)
"""


def _load_with_little_memory(root: Path, spare_bytes: int, loader: str, *args: object) -> subprocess.CompletedProcess:
    """``training.data.<loader>(*args)`` in a subprocess with ``spare_bytes`` of address space to spare."""
    return subprocess.run([sys.executable, "-c", _WITH_LITTLE_MEMORY, str(spare_bytes), loader, json.dumps(args)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)


def test_a_pickle_frame_declaring_20_gib_is_not_allocated(tmp_path):
    """Reads are clamped to the file: a protocol-4 FRAME declaring 20 GiB in a 23-byte file is a truncated pickle.

    Run with 2 GiB of address space to spare, an attempt to allocate the frame would fail instead
    ("declares more data than fits in memory").
    """
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs Linux /proc to size the address-space limit")
    path = tmp_path / "frame.pkl"
    path.write_bytes(pickle.PROTO + b"\x04" + pickle.FRAME + (20 << 30).to_bytes(8, "little") + b"abc")
    root = Path(__file__).resolve().parents[1]
    done = _load_with_little_memory(root, 2 << 30, "load_mmsa", str(path))
    assert "truncated" in done.stdout, done.stdout + done.stderr[-2000:]


# ---------------------------------------------------------------- MMIN folders
h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def mmin_root(tmp_path_factory) -> Path:
    from training.data import write_synthetic_mmin
    return write_synthetic_mmin(tmp_path_factory.mktemp("mmin"), "iemocap", n_utterances=30, folds=(1,), seed=0)


def _mmin_cases(marker: Path) -> dict[str, Callable[[Path], None]]:
    label = Path("target/1/trn_label.npy")
    names = Path("target/1/trn_int2name.npy")
    audio = Path("A/comparE.h5")

    def overwrite(rel: Path, content: bytes):
        return lambda root: (root / rel).write_bytes(content)

    def truncate(rel: Path):
        return lambda root: (root / rel).write_bytes((root / rel).read_bytes()[:60])

    def object_npy(root: Path) -> None:
        np.save(root / names, np.array([_Payload(marker)], dtype=object), allow_pickle=True)

    def oversized_header(root: Path) -> None:  # header declares 1 GB, file holds 128 bytes
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (1 << 28,)})
        (root / label).write_bytes(buffer.getvalue() + b"\0" * 64)

    def huge_utterance(root: Path) -> None:
        with h5py.File(root / audio, "a") as h5:
            uid = next(iter(h5.keys()))
            del h5[uid]
            h5.create_dataset(uid, shape=(1 << 22, 130), dtype="f4")  # 2 GiB declared, nothing stored

    def nan_feature(root: Path) -> None:
        with h5py.File(root / audio, "a") as h5:
            uid = next(iter(h5.keys()))
            values = np.array(h5[uid])
            values[0, 0] = np.nan
            del h5[uid]
            h5[uid] = values

    return {
        "label file random": overwrite(label, _random_bytes(512)),
        "label file empty": overwrite(label, b""),
        "label file truncated": truncate(label),
        "names hold pickled objects": object_npy,
        "label header declares 1 GB": oversized_header,
        "audio h5 random": overwrite(audio, _random_bytes(2048)),
        "audio h5 truncated": truncate(audio),
        "utterance declares 2 GiB": huge_utterance,
        "NaN feature": nan_feature,
        "labels are strings": lambda root: np.save(root / label, np.array(["a"] * 10)),
    }


def test_mmin_fuzz_cases_raise_format_error(tmp_path, mmin_root):
    from training.data import MMINFormatError, load_mmin_fold
    marker = tmp_path / "payload_ran"
    for i, damage in enumerate(_mmin_cases(marker).values()):
        root = Path(shutil.copytree(mmin_root, tmp_path / f"case{i}"))
        damage(root)
        with pytest.raises(MMINFormatError):
            load_mmin_fold(root, "iemocap", 1)
        shutil.rmtree(root)
    assert not marker.exists()




def test_an_npy_header_declaring_a_gigabyte_is_refused_before_the_data_is_read(tmp_path):
    """The declared size is compared with the file first: nothing of the declared 1 GiB is allocated.

    Run with 512 MiB of address space to spare, reading the data (numpy allocates the declared
    array first) would fail with a MemoryError instead.
    """
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs Linux /proc to size the address-space limit")
    fold = tmp_path / "target" / "1"
    fold.mkdir(parents=True)
    np.save(fold / "trn_int2name.npy", np.array(["u1", "u2"]))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)})
    (fold / "trn_label.npy").write_bytes(header.getvalue() + b"\0" * 64)
    root = Path(__file__).resolve().parents[1]
    done = _load_with_little_memory(root, 512 << 20, "load_mmin_fold", str(tmp_path), "iemocap", 1)
    assert "declares 1073741824 bytes" in done.stdout, done.stdout + done.stderr[-2000:]


# ---------------------------------------------------------------- calibration npz
def _calibration_arrays(n: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"text": rng.normal(size=(n, 20, 8)).astype(np.float32),
            "audio": rng.normal(size=(n, 20, 4)).astype(np.float32),
            "vision": rng.normal(size=(n, 20, 5)).astype(np.float32),
            "label": np.arange(n, dtype=np.int64) % len(LIVE_EMOTIONS),
            "step": np.arange(n, dtype=np.int64), "available": np.ones((n, 3), bool),
            "labels": np.asarray(LIVE_EMOTIONS)}


def _calibration_cases(marker: Path) -> dict[str, Callable[[Path], None]]:
    def save(**changes):
        def write(path: Path) -> None:
            arrays = {**_calibration_arrays(), **changes}
            np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
        return write

    good = io.BytesIO()
    np.savez_compressed(good, **_calibration_arrays())

    def nan(key: str, value: float):
        values = _calibration_arrays()[key]
        values[1, 2, 0] = value
        return save(**{key: values})

    def declares_gigabytes(path: Path) -> None:  # a valid npz whose text array declares 1.5 GiB
        np.savez_compressed(path, **{k: v for k, v in _calibration_arrays().items() if k != "text"})
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (6, 20, 3 << 22)})
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
            with archive.open("text.npy", "w", force_zip64=True) as member:
                member.write(header.getvalue())
                zeros = bytes(1 << 20)
                for _ in range(4):
                    member.write(zeros)

    def corrupt_deflate(path: Path) -> None:  # 8 bytes at the start of the first member's compressed data
        data = bytearray(good.getvalue())
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            offset = archive.infolist()[0].header_offset
        start = offset + 30 + int.from_bytes(data[offset + 26:offset + 28], "little") + \
            int.from_bytes(data[offset + 28:offset + 30], "little")
        data[start:start + 8] = b"\xff" * 8
        path.write_bytes(bytes(data))

    def object_labels(path: Path) -> None:
        arrays = _calibration_arrays()
        arrays["labels"] = np.array([_Payload(marker)], dtype=object)
        np.savez(path, **arrays)

    return {
        "empty": lambda p: p.write_bytes(b""),
        "truncated": lambda p: p.write_bytes(good.getvalue()[: len(good.getvalue()) // 2]),
        "random": lambda p: p.write_bytes(_random_bytes(2048)),
        "corrupt compressed data": corrupt_deflate,
        "row-count mismatch": save(audio=_calibration_arrays(5)["audio"]),
        "label 99": save(label=np.array([0, 1, 2, 3, 4, 99])),
        "label -1": save(label=np.array([0, 1, 2, 3, 4, -1])),
        "labels are floats": save(label=np.zeros(6, np.float32)),
        "NaN feature": nan("vision", np.nan),
        "infinite feature": nan("audio", np.inf),
        "missing label array": save(label=None),
        "object array": object_labels,
        "array declaring 1.5 GiB": declares_gigabytes,
        "zero windows": save(**{k: v[:0] for k, v in _calibration_arrays().items() if k != "labels"}),
    }


def test_calibration_fuzz_cases_raise_calibration_file_error(tmp_path):
    marker = tmp_path / "payload_ran"
    for name, write in _calibration_cases(marker).items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        write(folder / "calibration.npz")
        rss = _peak_rss_mib()
        with pytest.raises(CalibrationFileError) as info:
            load_calibration([folder])
        assert folder.name in str(info.value), name
        assert _peak_rss_mib() - rss < 200, f"{name}: read the declared data before refusing it"
    assert not marker.exists()


def test_calibration_sizes_are_checked_from_the_headers_before_any_array_is_read(tmp_path, monkeypatch):
    """A file whose arrays declare more than the limit is refused from its ``.npy`` headers alone.

    (The fuzz case above declares 1.5 GiB but holds 4 MB, so reading it fails at its end anyway; here
    the file is valid and only the declared-size check can refuse it.)
    """
    from imer_core.live import calibration

    arrays = _calibration_arrays()
    np.savez_compressed(tmp_path / "calibration.npz", **arrays)
    declared = sum(a.nbytes for a in arrays.values())
    monkeypatch.setattr(calibration, "MAX_CALIBRATION_BYTES", declared)
    assert len(load_calibration([tmp_path])) == 6  # at the limit: read
    monkeypatch.setattr(calibration, "MAX_CALIBRATION_BYTES", declared - 1)

    def read(*args, **kwargs):
        raise AssertionError("array data read before the declared sizes were checked")

    monkeypatch.setattr(calibration.np, "load", read)
    with pytest.raises(CalibrationFileError, match="arrays declare"):
        load_calibration([tmp_path])


def _finetune_arrays(n: int) -> dict[str, np.ndarray]:
    """Calibration windows sized like the live model's features."""
    from live_fakes import live_audio_dim

    from imer_core.features.face import live_vision_feature
    from imer_core.features.text import TEXT_DIM

    data = _calibration_arrays(n)
    for key, dim in (("text", TEXT_DIM), ("audio", live_audio_dim()), ("vision", live_vision_feature()[1])):
        data[key] = np.random.default_rng(1).normal(size=(n, 20, dim)).astype(np.float32)
    return data


def test_finetune_that_diverges_writes_nothing(tmp_path, live_checkpoints):
    from training.finetune import FinetuneOptions, finetune

    np.savez_compressed(tmp_path / "calibration.npz", **_finetune_arrays(14))
    out = tmp_path / "personal.pt"
    with pytest.raises(ValueError, match="fine-tuning diverged.*smaller --lr"):
        finetune(live_checkpoints["cmarr"], [tmp_path], out,
                 FinetuneOptions(epochs=2, learning_rate=1e30, batch_size=4), progress=False)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_finetune_refuses_nan_calibration_and_empty_training_sets(tmp_path, live_checkpoints, capsys):
    from training.cli import main as train_main
    data = _finetune_arrays(8)
    data["vision"][3, 4, 5] = np.nan
    (tmp_path / "nan").mkdir()
    np.savez_compressed(tmp_path / "nan" / "calibration.npz", **data)
    out = tmp_path / "personal.pt"
    assert train_main(["finetune", "--sessions", str(tmp_path / "nan"), "--checkpoint",
                       str(live_checkpoints["cmarr"]), "--out", str(out), "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or infinite vision" in err[0] and not out.exists()
    from training.finetune import FinetuneOptions, finetune
    data["vision"][3, 4, 5] = 0.0
    data["label"] = np.zeros(8, np.int64)  # one class: valid_share 1.0 holds every window out
    (tmp_path / "ok").mkdir()
    np.savez_compressed(tmp_path / "ok" / "calibration.npz", **data)
    with pytest.raises(ValueError, match="at least 1"):
        finetune(live_checkpoints["cmarr"], [tmp_path / "ok"], out, FinetuneOptions(epochs=0), progress=False)
    with pytest.raises(ValueError, match="no calibration window is left for training"):
        finetune(live_checkpoints["cmarr"], [tmp_path / "ok"], out, FinetuneOptions(valid_share=1.0),
                 progress=False)
    assert not out.exists()


# ---------------------------------------------------------------- media files
def _media_cases(clip: Path) -> dict[str, Callable[[Path], None]]:
    data = clip.read_bytes()
    return {
        "zero bytes": lambda p: p.write_bytes(b""),
        "truncated to 10 KB": lambda p: p.write_bytes(data[:10_000]),
        "random": lambda p: p.write_bytes(_random_bytes(50_000)),
        "text": lambda p: p.write_text("# README\n" * 100),
        "header only": lambda p: p.write_bytes(data[:512]),
        "a pickle": lambda p: p.write_bytes(pickle.dumps({"a": 1})),
    }


def test_media_fuzz_cases_raise_media_open_error(tmp_path, demo_test_clip):
    for name, write in _media_cases(Path(demo_test_clip.path)).items():
        path = tmp_path / f"{name.replace(' ', '_')}.mp4"
        write(path)
        with pytest.raises(MediaOpenError) as info:
            probe_media(path)
        assert path.name in str(info.value), name
    with pytest.raises(MediaOpenError, match="not a file"):
        probe_media(tmp_path)


# ---------------------------------------------------------------- engine output and session files
def test_nan_never_reaches_a_prediction_or_a_session_file(tmp_path, live_checkpoints):
    import json
    import time

    from test_live_engine import _tracks

    from imer_core.live.engine import EngineInputs, InferenceEngine, NonFiniteOutputError
    from imer_core.live.health import ModalityState, ModalityStatus
    from imer_core.live.models import ModelBank
    from imer_core.live.session import SessionRecorder
    from imer_core.live.tracks import FeatureTrack
    from imer_core.modalities import MODALITIES, Modality

    now = time.monotonic()
    tracks = _tracks(now)
    poisoned = FeatureTrack(tracks[Modality.AUDIO].dim)
    for t in np.arange(now - 2.5, now, 0.05):
        poisoned.append(float(t), np.full(poisoned.dim, np.nan))
    tracks[Modality.AUDIO] = poisoned
    statuses = {m: ModalityStatus(m, ModalityState.OBSERVED, "") for m in MODALITIES}
    engine = InferenceEngine(ModelBank(live_checkpoints), EngineInputs(tracks, lambda: statuses), method="cmarr")
    result = engine.step(now)  # NaN features are not fed: audio is recovered instead
    assert "audio" in result.recovered and np.isfinite(result.probabilities).all()

    live = engine.bank.get("cmarr")
    live.model.predict_from_recovered = lambda recovered: torch.full((1, 7), float("nan"))
    with pytest.raises(NonFiniteOutputError):
        engine.step(now)
    recorder = SessionRecorder(tmp_path, {"note": float("nan"), "inf": float("inf")})
    recorder.write_result(result)
    recorder.close()
    for name in ("session.json", "predictions.jsonl"):
        text = (tmp_path / name).read_text()
        assert "NaN" not in text and "Infinity" not in text
        for line in ([text] if name.endswith(".json") else text.splitlines()):
            json.loads(line, parse_constant=lambda token, name=name: pytest.fail(f"{name} holds {token}"))


def test_raw_audio_is_split_before_the_wav_size_limit(tmp_path):
    import wave

    from imer_core.live.session import WavAppender

    wav = WavAppender(tmp_path / "audio.wav", part_bytes=2000)  # 1000 frames per part
    signal_in = np.sin(np.arange(3500) / 7.0).astype(np.float32) * 0.5
    for lo in range(0, len(signal_in), 300):
        wav.write(signal_in[lo:lo + 300])
    wav.close()
    assert [p.name for p in wav.paths] == ["audio.wav", "audio-002.wav", "audio-003.wav", "audio-004.wav"]
    parts = []
    for path in wav.paths:
        with wave.open(str(path)) as handle:
            parts.append(np.frombuffer(handle.readframes(handle.getnframes()), "<i2"))
    joined = np.concatenate(parts).astype(np.float32) / 32767.0
    assert [len(p) for p in parts] == [1000, 1000, 1000, 500]
    np.testing.assert_allclose(joined, signal_in, atol=1e-4)
