"""Fine-tune the top layers of all-MiniLM-L6-v2 on MELD (``imer-train text-finetune``).

The bottom ``6 - trainable_layers`` layers stay frozen, so their output is
computed once per utterance and cached; only the top layers, mean pooling and
a linear head are trained (AdamW, linear warm-up and decay, cross-entropy with
class weights ``(n / (C n_c)) ** power``).  The epoch with the best MELD
**dev** weighted-F1 is kept; the saved file (float16 delta, see
:mod:`imer_core.live.text_net`) is reloaded and scored on dev and, once, on
**test**.  Labels are the live 7 classes (MELD's seven emotions, renamed).

``context_turns > 0`` prepends the previous utterances of the same dialogue
(``context [SEP] utterance``); ``pool="utterance"`` then mean-pools only the
utterance's tokens (the context is attended to, not pooled).  At run time that
needs the app to keep the previous transcript lines apart from the newest one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imer_core.config import LIVE_EMOTIONS

from .corpora import meld_utterances, spread_subset
from .labels import live_index
from .text_head import scores

SPLITS = ("train", "val", "test")


@dataclass
class FinetuneSettings:
    """One fine-tuning run."""

    trainable_layers: int = 3
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    power: float = 0.0
    label_smoothing: float = 0.0
    dropout: float = 0.1
    max_len: int = 64
    context_turns: int = 0
    pool: str = "all"
    warmup: float = 0.06
    seed: int = 0
    limit: int | None = None


def meld_examples(data_root: str | Path, context_turns: int = 0) -> dict[str, tuple[list[str], list[str], np.ndarray]]:
    """``{split: (utterances, contexts, live class indices)}``; a context is the previous turns of its dialogue."""
    rows = meld_utterances(data_root)
    dialogues: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for index, row in enumerate(rows):
        dialogue, _, turn = row.id.rpartition("-u")
        dialogues[dialogue].append((int(turn), index))
    contexts = [""] * len(rows)
    if context_turns > 0:
        for turns in dialogues.values():
            ordered = [i for _, i in sorted(turns)]
            for k, index in enumerate(ordered):
                contexts[index] = " ".join(rows[j].text for j in ordered[max(0, k - context_turns): k])
    out: dict[str, tuple[list[str], list[str], np.ndarray]] = {}
    for split in SPLITS:
        idx = [i for i, r in enumerate(rows) if r.split == split]
        out[split] = ([rows[i].text for i in idx], [contexts[i] for i in idx],
                      np.asarray([live_index("meld", rows[i].source_label) for i in idx], np.int64))
    return out


def _frozen_cache(model: Any, encoded: list[list[int]], batch_size: int = 64) -> list[Any]:
    """Per-utterance frozen-part outputs ``(len, H)`` (float32), batches of similar lengths."""
    import torch

    from imer_core.live.text_net import pad_batch

    order = np.argsort([len(e) for e in encoded], kind="stable")
    out: list[Any] = [None] * len(encoded)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start: start + batch_size]
            ids, mask = pad_batch([encoded[i] for i in chunk])
            hidden = model.frozen_part(ids, mask)
            for row, i in enumerate(chunk):
                out[int(i)] = hidden[row, : len(encoded[int(i)])].clone()
    return out


def _stack(cached: list[Any], items: np.ndarray, context: np.ndarray) -> tuple[Any, Any]:
    """Padded frozen outputs and their masks (2 on context tokens that are not pooled, see ``pad_batch``)."""
    import torch

    width = max(int(cached[int(i)].shape[0]) for i in items)
    dim = int(cached[int(items[0])].shape[1])
    hidden = torch.zeros((len(items), width, dim))
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, i in enumerate(items):
        n = int(cached[int(i)].shape[0])
        hidden[row, :n] = cached[int(i)]
        mask[row, :n] = 1
        mask[row, 1: 1 + int(context[int(i)])] = 2
    return hidden, mask


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar lengths (sorted within chunks of 50 batches)."""
    perm = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(perm), chunk):
        part = perm[start: start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i: i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _predict(model: Any, cached: list[Any], context: np.ndarray, batch_size: int = 128) -> np.ndarray:
    import torch

    order = np.argsort([int(c.shape[0]) for c in cached], kind="stable")
    pred = np.zeros(len(cached), np.int64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start: start + batch_size]
            hidden, mask = _stack(cached, chunk, context)
            pred[chunk] = model.head(model.pooled(hidden, mask)).argmax(1).numpy()
    return pred


def run_text_finetune(data_root: str | Path, out_dir: str | Path, settings: FinetuneSettings,
                      log: Callable[[str], None] = print, base_path: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune, pick the epoch on dev, save ``text_net.pt`` and ``summary.json``, report dev and test."""
    import torch

    from imer_core.features.text import minilm_model_path
    from imer_core.live.text_net import (
        base_weights_id,
        build_text_net,
        encode_pair,
        load_text_net,
        load_tokenizer,
        save_text_net,
    )

    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    base = Path(base_path) if base_path is not None else minilm_model_path()
    model = build_text_net(base, settings.trainable_layers, len(LIVE_EMOTIONS), settings.dropout)
    tokenizer = load_tokenizer(base)
    data = meld_examples(data_root, settings.context_turns)
    if settings.limit is not None:
        data = {s: ([t[i] for i in keep], [c[i] for i in keep], y[keep])
                for s, (t, c, y) in data.items() for keep in [spread_subset(len(y), settings.limit)]}
    if settings.pool not in ("all", "utterance"):
        raise ValueError(f"pool must be 'all' or 'utterance', got {settings.pool!r}")
    model.eval()
    cached: dict[str, list[Any]] = {}
    unpooled: dict[str, np.ndarray] = {}  # per utterance: leading context tokens left out of the mean
    for split, (texts, contexts, _) in data.items():
        pairs = [encode_pair(tokenizer, t, c, settings.max_len) for t, c in zip(texts, contexts)]
        encoded = [ids for ids, _ in pairs]
        unpooled[split] = np.asarray([n if settings.pool == "utterance" else 0 for _, n in pairs], np.int64)
        cached[split] = _frozen_cache(model, encoded)
        log(json.dumps({"cached": split, "n": len(encoded), "mean_tokens": float(np.mean([len(e) for e in encoded])),
                        "seconds": round(time.perf_counter() - started, 1)}))
    y_train = data["train"][2]
    counts = np.bincount(y_train, minlength=len(LIVE_EMOTIONS)).astype(np.float64)
    weights = (counts.sum() / (len(counts) * np.maximum(counts, 1))) ** settings.power
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32),
                                        label_smoothing=settings.label_smoothing)
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW([{"params": encoder_params, "lr": settings.lr},
                                   {"params": list(model.head.parameters()), "lr": settings.head_lr}],
                                  weight_decay=settings.weight_decay)
    lengths = np.asarray([int(c.shape[0]) for c in cached["train"]])
    rng = np.random.default_rng(settings.seed)
    steps_per_epoch = math.ceil(len(lengths) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    warmup = max(1, int(settings.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    labels = torch.from_numpy(y_train)
    best: tuple[float, int, dict[str, Any]] = (-1.0, -1, {})
    history = []
    for epoch in range(settings.epochs):
        model.train()
        epoch_start, running = time.perf_counter(), 0.0
        for batch in _batches(lengths, settings.batch_size, rng):
            hidden, mask = _stack(cached["train"], batch, unpooled["train"])
            loss = loss_fn(model.head(model.pooled(hidden, mask)), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder_params, 1.0)
            optimiser.step()
            scheduler.step()
            running += float(loss.detach()) * len(batch)
        dev = scores(data["val"][2], _predict(model, cached["val"], unpooled["val"]))
        row = {"epoch": epoch + 1, "train_loss": running / len(lengths), "dev_weighted_f1": dev["weighted_f1"],
               "dev_macro_f1": dev["macro_f1"], "seconds": round(time.perf_counter() - epoch_start, 1)}
        history.append(row)
        log(json.dumps(row))
        if dev["weighted_f1"] > best[0]:
            best = (dev["weighted_f1"], epoch + 1,
                    {k: v.detach().clone() for k, v in model.trainable_state().items()})
    state = best[2]
    model.encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items()
                                   if k.startswith("encoder.")}, strict=False)
    model.head.load_state_dict({k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"trainable_layers": settings.trainable_layers, "num_classes": len(LIVE_EMOTIONS),
              "max_len": settings.max_len, "context_turns": settings.context_turns, "pool": settings.pool}
    metadata = {"labels": list(LIVE_EMOTIONS), "trained_on": "MELD train (live 7 classes), epoch chosen on MELD dev",
                "settings": asdict(settings), "best_epoch": best[1]}
    path = out / "text_net.pt"
    save_text_net(path, model, config, base_weights_id(base), metadata)
    reloaded, _ = load_text_net(path, base)  # the saved float16 delta is what gets scored
    result = {split: scores(data[split][2], _predict(reloaded, cached[split], unpooled[split]))
              for split in ("val", "test")}
    size = os.path.getsize(path)
    summary: dict[str, Any] = {
        "settings": asdict(settings), "history": history, "best_epoch": best[1], "dev": result["val"],
        "test": result["test"], "file_bytes": size, "counts": {s: int(len(v[2])) for s, v in data.items()},
        "seconds": round(time.perf_counter() - started, 1), "load_average": list(os.getloadavg())}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"epoch {best[1]} chosen on dev: dev weighted-F1 {result['val']['weighted_f1']:.4f}; test weighted-F1 "
        f"{result['test']['weighted_f1']:.4f}, macro-F1 {result['test']['macro_f1']:.4f}, "
        f"accuracy {result['test']['accuracy']:.4f} ({size / 1e6:.1f} MB delta)")
    return summary


def evaluate_text_net_file(data_root: str | Path, path: str | Path, base_path: str | Path | None = None,
                           splits: tuple[str, ...] = ("val", "test")) -> dict[str, Any]:
    """Scores of a saved text network on MELD ``splits``, through the run-time :class:`TextNetRunner`.

    The contexts are built with the ``context_turns`` the file was trained with.
    """
    from imer_core.live.text_net import TextNetRunner

    runner = TextNetRunner(path, base_path)
    data = meld_examples(data_root, int(runner.config.get("context_turns", 0)))
    out: dict[str, Any] = {"file": str(path), "weights": runner.weights_id}
    for split in splits:
        texts, contexts, labels = data[split]
        out[split] = scores(labels, runner(texts, contexts, batch_size=64)[1].argmax(1))
    out["load_average"] = list(os.getloadavg())
    return out
