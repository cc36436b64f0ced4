"""Feature extraction of the live-model corpora with the app's own extractors.

``imer-train extract-live --data ../shared/data --cache runs/live_cache`` runs:

* **FER2013** → the live face extractor
  (:func:`~imer_core.features.face.live_face_extractor`: MediaPipe + the face
  network's embedding of the aligned crop) in
  still-image mode (each image detected on its own: VIDEO-mode tracking would
  carry a face from one unrelated image to the next).  ``face_crops`` reuses
  the crops, landmarks and blendshapes of ``imer-train face-crops`` (the same
  framing, detector and crop function) and only runs the face network.  A 48×48 face fills its
  whole image, which MediaPipe's detector handles poorly, so each image gets a
  uniform gray (128) border of :data:`FACE_PAD_FRACTION` of its side and is
  upscaled to :data:`FACE_UPSCALE` pixels (bicubic).  Images without a detected
  face are counted and kept with ``detected = False`` (the dataset drops them).
* **RAVDESS, EmoDB** → :class:`~imer_core.features.voice.VoiceFeatureExtractor`
  on a 2.0 s window (20 steps at 10 Hz) chosen by :func:`loudest_window`, plus
  a faster-whisper ``tiny.en`` transcript of the whole stored clip and its
  all-MiniLM-L6-v2 embedding.  With ``asr=False`` (``--no-asr``) only the voice
  features are extracted (training and distillation use nothing else); the
  cache records ``"asr": "none"`` and :func:`has_transcripts` is false for it.
* **MELD** → :class:`~imer_core.features.text.SentenceEmbedder` of each utterance.

Each corpus is cached as ``<cache>/<corpus>.npz`` (ids, source labels,
splits, speakers, features, and a JSON ``meta`` with the extractor ids and
settings).  A cache whose meta matches the request is reused.

The audio splits are decided here, from the speaker tables of
:mod:`training.live.corpora`, and the tables are part of the settings.  When
only the tables changed, a re-run re-derives the stored splits from the
cached speakers (no new extraction); :func:`load_cache` refuses an audio
cache whose stored splits differ from the current tables.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from imer_core.features.voice import loudest_window, window_features  # noqa: F401 - loudest_window: the tests too

from .corpora import (
    AUDIO_CORPORA,
    CORPORA,
    audio_clips,
    check_corpus,
    load_fer2013,
    meld_utterances,
    read_audio,
    speaker_split,
    split_table,
    spread_subset,
)

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
#: The ``asr`` setting of an audio cache made without speech recognition.
NO_ASR = "none"
#: Which modalities' extractors a corpus's cache holds features of.
CORPUS_MODALITIES: dict[str, tuple[str, ...]] = {"fer2013": ("vision",), "ravdess": ("audio", "text"),
                                                 "emodb": ("audio", "text"), "meld": ("text",)}
FACE_UPSCALE = 192  # imer_core.features.face.STILL_FACE_SIZE
FACE_PAD_FRACTION = 0.25  # imer_core.features.face.STILL_FACE_PAD_FRACTION
AUDIO_WINDOW_S = 2.0
AUDIO_SAMPLE_RATE = 16000
WINDOW_HOP_S = 0.1


def extractor_ids() -> dict[str, str]:
    """Extractor ids of the three modalities (those of the live engine's specs)."""
    from imer_core.features.face import live_vision_feature
    from imer_core.features.registry import default_extractor_specs
    from imer_core.features.text import live_text_feature
    from imer_core.modalities import Modality

    audio = default_extractor_specs()[Modality.AUDIO].extractor_id
    return {"vision": live_vision_feature()[0], "audio": audio, "text": live_text_feature()[0]}


def corpus_extractor_ids(corpus: str) -> dict[str, str]:
    """Extractor ids of the modalities a corpus's cache holds (a MELD cache does not depend on the face model)."""
    ids = extractor_ids()
    return {m: ids[m] for m in CORPUS_MODALITIES.get(corpus, tuple(ids))}


# ----------------------------------------------------------------------------- cache


def cache_path(cache_dir: str | Path, corpus: str) -> Path:
    """File of one corpus's cached features."""
    return Path(cache_dir) / f"{corpus}.npz"


def read_meta(path: Path) -> dict[str, Any] | None:
    """The ``meta`` of a cache file, or ``None`` when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError):
        return None


def _cache_matches(meta: dict[str, Any] | None, request: dict[str, Any]) -> bool:
    """The cache holds what the request asks for.

    Extractor ids are compared for the modalities the request names (older caches stored all three);
    a request without speech recognition is served by a cache made with it.
    """
    if meta is None:
        return False
    for key, wanted in request.items():
        have = meta.get(key)
        if key == "extractors":
            if not isinstance(have, dict) or any(have.get(m) != v for m, v in wanted.items()):
                return False
        elif key == "settings" and isinstance(have, dict) and wanted.get("asr") == NO_ASR:
            if {k: v for k, v in have.items() if k != "asr"} != {k: v for k, v in wanted.items() if k != "asr"}:
                return False
        elif have != wanted:
            return False
    return True


def _write_npz(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write arrays plus meta atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.asarray(json.dumps(meta)), **arrays)  # type: ignore[arg-type, unused-ignore]  # numpy 2 stub: **arrays vs allow_pickle: bool
    os.replace(tmp, path)


def _load_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {k: data[k] for k in data.files if k != "meta"}
        out["meta"] = json.loads(str(data["meta"]))
    return out


def current_splits(corpus: str, speakers: np.ndarray) -> np.ndarray:
    """Split of each cached audio clip under the current speaker tables of :mod:`training.live.corpora`."""
    return np.asarray([speaker_split(corpus, str(s)) for s in speakers])


def load_cache(cache_dir: str | Path, corpus: str) -> dict[str, Any]:
    """Arrays of one cached corpus plus its ``meta`` dict.

    Raises:
        FileNotFoundError: the corpus has not been extracted into ``cache_dir``.
        ValueError: an audio cache's stored splits differ from the current speaker split tables.
    """
    path = cache_path(cache_dir, corpus)
    if not path.is_file():
        raise FileNotFoundError(f"no feature cache {str(path)!r}: run `imer-train extract-live --cache "
                                f"{cache_dir}` first")
    out = _load_npz(path)
    if corpus in AUDIO_CORPORA:
        stale = current_splits(corpus, out["speaker"]) != out["split"].astype(str)
        if stale.any():
            raise ValueError(f"{path}: the splits stored at extraction differ from the current {corpus} speaker "
                             f"split table in training/live/corpora.py for {int(stale.sum())} of {len(stale)} clips: "
                             f"re-run `imer-train extract-live --data DIR --cache {cache_dir} --corpora {corpus}` "
                             "(it re-derives the splits without re-extracting)")
    return out


# ----------------------------------------------------------------------------- vision


def prepare_face(image: np.ndarray, size: int = FACE_UPSCALE, pad_fraction: float = FACE_PAD_FRACTION) -> np.ndarray:
    """Gray border of ``pad_fraction`` of the side, then bicubic resize to ``size``² (RGB uint8)."""
    from imer_core.features.face import prepare_still_face

    return prepare_still_face(image, size, pad_fraction)


def extract_fer2013(data_root: str | Path, limit: int | None = None, progress: bool = True,
                    face_crops: str | Path | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Live face vectors of FER2013 (``vision (N, dim)``, ``detected (N,)``) and extraction stats.

    ``face_crops``: a crop file of ``imer-train face-crops`` over the same images (its blendshapes and
    crops are reused; only the face network runs).
    """
    from imer_core.features.face import live_face_extractor, live_vision_feature

    fer = load_fer2013(data_root)
    index = spread_subset(len(fer.images), limit)
    dim = live_vision_feature()[1]
    if face_crops is not None:
        vectors, detected = _fer_vectors_from_crops(face_crops, index, progress)
    else:
        vectors = np.zeros((len(index), dim), np.float32)
        detected = np.zeros(len(index), bool)
        with live_face_extractor(color="rgb", still_images=True) as extractor:
            for row, i in enumerate(tqdm(index, desc="fer2013 faces", unit="img", disable=not progress)):
                features = extractor.process(prepare_face(fer.images[i]))
                detected[row] = features.detected
                if features.detected:
                    vectors[row] = features.vector
    arrays = {"ids": fer.ids[index], "source_label": fer.source_labels[index], "split": fer.splits[index],
              "vision": vectors, "detected": detected}
    stats = {"n": int(len(index)), "detected": int(detected.sum()), "undetected": int((~detected).sum()),
             "undetected_by_split": _count(arrays["split"][~detected]),
             "undetected_by_label": _count(arrays["source_label"][~detected])}
    return arrays, stats


def _fer_vectors_from_crops(path: str | Path, index: np.ndarray,
                            progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Live face vectors of the FER2013 images ``index`` from a crop file: face network on the stored crops."""
    from imer_core.features.face import FACE_FEATURE_DIM
    from imer_core.live.face_net import FaceNetError, FaceNetRunner, default_face_net_path

    from .face_net_data import load_fer_crops

    crops = load_fer_crops(path)
    rows = {int(i): r for r, i in enumerate(crops["index"])}
    missing = [int(i) for i in index if int(i) not in rows]
    if missing:
        raise ValueError(f"{path}: no crop of {len(missing)} requested FER2013 images (e.g. {missing[0]}); "
                         "make the crops of the whole corpus with `imer-train face-crops`")
    if crops["vision"].shape[1] != FACE_FEATURE_DIM:
        raise ValueError(f"{path}: blendshape vectors of {crops['vision'].shape[1]} values, "
                         f"expected {FACE_FEATURE_DIM}")
    take = np.asarray([rows[int(i)] for i in index], np.int64)
    try:
        runner = FaceNetRunner(default_face_net_path())
    except FaceNetError as exc:
        raise ValueError(f"the live vision feature needs the face network: {exc}") from exc
    embeddings = []
    for start in tqdm(range(0, len(take), 512), desc="fer2013 face net", unit="batch", disable=not progress):
        embeddings.append(runner(crops["crops"][take[start:start + 512]])[0])
    embedding = np.concatenate(embeddings) if embeddings else np.zeros((0, runner.embedding_dim), np.float32)
    detected = crops["detected"][take].astype(bool)
    vectors = np.concatenate([embedding, crops["vision"][take]], axis=1).astype(np.float32)
    vectors[~detected] = 0.0
    return vectors, detected


# ----------------------------------------------------------------------------- audio


def _load_asr() -> Any:
    from imer_core.asr import FasterWhisperBackend

    threads = int(os.environ.get("IMER_ASR_THREADS", "1"))
    return FasterWhisperBackend(device="cpu", cpu_threads=threads, word_timestamps=False)


def _voice_extractor() -> Any:
    """The registry's default audio extractor (the live engine's; see ``$IMER_LIVE_VOICE_ENCODER``)."""
    from imer_core.features.registry import default_extractor_specs, extractor_factory
    from imer_core.modalities import Modality

    return extractor_factory(default_extractor_specs()[Modality.AUDIO].extractor_id)()


def extract_audio(data_root: str | Path, corpus: str, limit: int | None = None, progress: bool = True,
                  embedder: Any = None, asr: Any = None,
                  transcribe: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Voice features (``audio (N, 20, 44)``), ASR transcripts and their embeddings of one audio corpus.

    ``transcribe=False``: voice features only; transcripts are empty and their embeddings zero.
    """
    clips = audio_clips(data_root, corpus)
    clips = [clips[i] for i in spread_subset(len(clips), limit)]
    voice = _voice_extractor()
    if transcribe:
        asr = asr or _load_asr()
    length, hop = int(AUDIO_WINDOW_S * AUDIO_SAMPLE_RATE), int(WINDOW_HOP_S * AUDIO_SAMPLE_RATE)
    features, speech, offsets, durations, transcripts = [], [], [], [], []
    asr_seconds = 0.0
    desc = f"{corpus} voice+asr" if transcribe else f"{corpus} voice"
    for clip in tqdm(clips, desc=desc, unit="clip", disable=not progress):
        audio = read_audio(clip.path, AUDIO_SAMPLE_RATE)
        _, offset = loudest_window(audio, length, hop)
        vector, fraction = window_features(voice, audio, offset, length)
        features.append(vector)
        speech.append(fraction)
        offsets.append(offset / AUDIO_SAMPLE_RATE)
        durations.append(len(audio) / AUDIO_SAMPLE_RATE)
        if transcribe:
            transcript = asr.transcribe(audio)
            asr_seconds += transcript.processing_s
            transcripts.append(transcript.text)
        else:
            transcripts.append("")
    if transcribe and transcripts:
        text = (embedder or _embedder()).embed(transcripts)
    else:
        text = np.zeros((len(transcripts), 384), np.float32)
    arrays = {"ids": np.asarray([c.id for c in clips]), "source_label": np.asarray([c.source_label for c in clips]),
              "split": np.asarray([c.split for c in clips]), "speaker": np.asarray([c.speaker for c in clips]),
              "sentence": np.asarray([c.sentence for c in clips]), "audio": np.stack(features).astype(np.float32),
              "speech_fraction": np.stack(speech).astype(np.float32), "offset_s": np.asarray(offsets, np.float32),
              "duration_s": np.asarray(durations, np.float32), "transcript": np.asarray(transcripts, dtype=str),
              "text": text.astype(np.float32)}
    stats = {"n": len(clips), "empty_transcripts": int(sum(not t for t in transcripts)) if transcribe else None,
             "asr_rtf": float(asr_seconds / max(sum(durations), 1e-9)) if transcribe else None,
             "mean_window_offset_s": float(np.mean(offsets)) if offsets else 0.0}
    return arrays, stats


# ----------------------------------------------------------------------------- text


def _embedder() -> Any:
    """The live engine's default text extractor (frozen MiniLM, or the fine-tuned network: IMER_LIVE_TEXT_NET)."""
    from imer_core.features.text import SentenceEmbedder, TextNetEmbedder, live_text_feature, text_net_extractor_spec

    net = text_net_extractor_spec()
    if net is not None and live_text_feature()[0] == net.extractor_id:
        return TextNetEmbedder(batch_size=64)
    return SentenceEmbedder(device="cpu", batch_size=64)


def extract_meld(data_root: str | Path, limit: int | None = None, progress: bool = True,
                 embedder: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """all-MiniLM-L6-v2 embeddings (``text (N, 384)``) of the MELD utterances."""
    rows = meld_utterances(data_root)
    rows = [rows[i] for i in spread_subset(len(rows), limit)]
    embedder = embedder or _embedder()
    batch = 256
    chunks = [embedder.embed([r.text for r in rows[i: i + batch]])
              for i in tqdm(range(0, len(rows), batch), desc="meld sentences", unit="batch", disable=not progress)]
    text = np.concatenate(chunks) if chunks else np.zeros((0, 384), np.float32)
    arrays = {"ids": np.asarray([r.id for r in rows]), "source_label": np.asarray([r.source_label for r in rows]),
              "split": np.asarray([r.split for r in rows]), "speaker": np.asarray([r.speaker for r in rows]),
              "utterance": np.asarray([r.text for r in rows], dtype=str), "text": text.astype(np.float32)}
    return arrays, {"n": len(rows), "empty_utterances": int(sum(not r.text for r in rows))}


# ----------------------------------------------------------------------------- driver


def _count(values: np.ndarray) -> dict[str, int]:
    names, counts = np.unique(values, return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}


def _settings(corpus: str, asr: bool = True) -> dict[str, Any]:
    if corpus == "fer2013":
        return {"upscale": FACE_UPSCALE, "pad_fraction": FACE_PAD_FRACTION, "mode": "still-image"}
    if corpus in AUDIO_CORPORA:
        return {"window_s": AUDIO_WINDOW_S, "window": "loudest", "window_hop_s": WINDOW_HOP_S,
                "asr": "faster-whisper tiny.en (bundled), beam 5, language en, whole clip" if asr else NO_ASR,
                "speaker_splits": split_table(corpus)}
    return {}


def has_transcripts(meta: dict[str, Any]) -> bool:
    """Whether an audio cache holds ASR transcripts (it was not extracted with ``--no-asr``)."""
    return (meta.get("settings") or {}).get("asr") != NO_ASR


def _without_splits(meta: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in (meta.get("settings") or {}).items() if k != "speaker_splits"}
    return {**meta, "settings": settings}


def _only_splits_differ(corpus: str, meta: dict[str, Any] | None, request: dict[str, Any]) -> bool:
    """The cache holds this request's features, made under other (or unrecorded) speaker split tables."""
    return (corpus in AUDIO_CORPORA and meta is not None
            and _cache_matches(_without_splits(meta), _without_splits(request)))


def resplit_cache(path: Path, corpus: str, request: dict[str, Any]) -> dict[str, Any]:
    """Re-derive an audio cache's stored splits from its speakers under the current tables; returns the new meta."""
    data = _load_npz(path)
    meta = data.pop("meta")
    data["split"] = current_splits(corpus, data["speaker"])
    meta = {**meta, "settings": request["settings"], "split_counts": _count(data["split"])}
    _write_npz(path, meta, data)
    return meta


class _Models:
    """The ASR and sentence-embedding models, loaded on first use and shared by the corpora of one run."""

    def __init__(self) -> None:
        self._asr: Any = None
        self._embedder: Any = None

    @property
    def asr(self) -> Any:
        if self._asr is None:
            self._asr = _load_asr()
        return self._asr

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = _embedder()
        return self._embedder


def _extract_one(corpus: str, data_root: str | Path, limit: int | None, progress: bool, models: _Models,
                 asr: bool = True,
                 face_crops: str | Path | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if corpus == "fer2013":
        return extract_fer2013(data_root, limit, progress, face_crops)
    if corpus in AUDIO_CORPORA:
        if not asr:
            return extract_audio(data_root, corpus, limit, progress, transcribe=False)
        return extract_audio(data_root, corpus, limit, progress, models.embedder, models.asr)
    return extract_meld(data_root, limit, progress, models.embedder)


def extract_live(data_root: str | Path, cache_dir: str | Path, corpora: Sequence[str] = CORPORA,
                 limit: int | None = None, force: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print, asr: bool = True,
                 face_crops: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Extract (or reuse) the feature cache of each corpus; returns the ``meta`` of each.

    ``asr=False``: the audio corpora get voice features only (no transcripts; see :func:`extract_audio`;
    a cache made with transcripts is reused);
    ``face_crops`` reuses the crop file of ``imer-train face-crops`` for FER2013.

    Raises:
        CorpusNotFound: a requested corpus is missing under ``data_root``.
    """
    unknown = sorted(set(corpora) - set(CORPORA))
    if unknown:
        raise ValueError(f"unknown corpora {unknown}; expected some of {', '.join(CORPORA)}")
    for corpus in corpora:  # fail before any work when a corpus is missing
        check_corpus(data_root, corpus)
    summary: dict[str, dict[str, Any]] = {}
    models = _Models()
    for corpus in corpora:
        path = cache_path(cache_dir, corpus)
        request = {"version": CACHE_VERSION, "corpus": corpus, "limit": limit,
                   "extractors": corpus_extractor_ids(corpus), "settings": _settings(corpus, asr)}
        meta = read_meta(path)
        if not force and meta is not None and _cache_matches(meta, request):
            log(f"{corpus}: cache {path} is up to date ({meta['stats']['n']} items), skipped")
            summary[corpus] = meta
            continue
        if not force and _only_splits_differ(corpus, meta, request):
            meta = resplit_cache(path, corpus, request)
            log(f"{corpus}: cache {path} re-split by the current speaker tables, features kept "
                f"({json.dumps(meta['split_counts'])})")
            summary[corpus] = meta
            continue
        start = time.perf_counter()
        arrays, stats = _extract_one(corpus, data_root, limit, progress, models, asr, face_crops)
        meta = {**request, "data_root": str(data_root), "stats": stats,
                "seconds": round(time.perf_counter() - start, 1),
                "split_counts": _count(arrays["split"]), "label_counts": _count(arrays["source_label"])}
        _write_npz(path, meta, arrays)
        log(f"{corpus}: {stats['n']} items in {meta['seconds']} s → {path}; {json.dumps(stats)}")
        summary[corpus] = meta
    write_summary(cache_dir)
    return summary


def write_summary(cache_dir: str | Path) -> Path:
    """``<cache>/summary.json``: the meta of every corpus cached there."""
    metas = {c: read_meta(cache_path(cache_dir, c)) for c in CORPORA}
    path = Path(cache_dir) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({c: m for c, m in metas.items() if m is not None}, indent=2) + "\n")
    return path
