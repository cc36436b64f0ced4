"""A trained MELD text-emotion head on frozen all-MiniLM-L6-v2 embeddings (``imer-train text-head``).

Reads the MELD cache of ``imer-train extract-live`` (384-d unit-norm
embeddings of each utterance, the live text feature), trains small MLP heads
with a few settings (hidden width, class weighting, dropout), picks the one
with the best **dev** weighted-F1 and reports the **test** split once.  The
class weights, when used, are ``(n / (C · n_c)) ** power``: ``power = 0`` is
unweighted, ``1`` fully balanced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imer_core.config import LIVE_EMOTIONS

from .extract import load_cache
from .labels import live_index

DEFAULT_GRID: tuple[dict[str, float], ...] = (
    {"hidden": 256, "power": 0.0, "dropout": 0.3},
    {"hidden": 256, "power": 0.5, "dropout": 0.3},
    {"hidden": 512, "power": 0.5, "dropout": 0.5},
    {"hidden": 512, "power": 0.25, "dropout": 0.5},
)


def meld_arrays(cache_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (embeddings (n, 384), live class indices (n,))}`` of the MELD cache."""
    data = load_cache(cache_dir, "meld")
    y = np.asarray([live_index("meld", str(s)) for s in data["source_label"]], np.int64)
    split = data["split"].astype(str)
    return {s: (data["text"][split == s].astype(np.float32), y[split == s]) for s in ("train", "val", "test")}


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Weighted-F1 (MELD's usual figure), macro-F1, accuracy and per-class recall."""
    from sklearn.metrics import f1_score, recall_score

    labels = list(range(len(LIVE_EMOTIONS)))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {"weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
            "accuracy": float((y_true == y_pred).mean()),
            "recall": {n: float(r) for n, r in zip(LIVE_EMOTIONS, recall)}}


def train_head(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], hidden: int, power: float,
               dropout: float, epochs: int = 40, lr: float = 1e-3, seed: int = 0) -> tuple[Any, float]:
    """An MLP head (best dev weighted-F1 epoch) and that dev weighted-F1."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x, y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    counts = np.bincount(train[1], minlength=len(LIVE_EMOTIONS)).astype(np.float64)
    weights = (counts.sum() / (len(counts) * np.maximum(counts, 1))) ** power
    model = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.GELU(), nn.Dropout(dropout),
                          nn.Linear(hidden, len(LIVE_EMOTIONS)))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32), label_smoothing=0.05)
    generator = torch.Generator().manual_seed(seed)
    best, best_state = -1.0, {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=generator).split(64):
            loss = loss_fn(model(x[idx]), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        f1 = scores(val[1], predict(model, val[0]))["weighted_f1"]
        if f1 > best:
            best, best_state = f1, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval(), best


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """Class indices of embeddings ``x``."""
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(x, np.float32))).argmax(1).numpy()


def run_text_head(cache_dir: str | Path, out_dir: str | Path, grid: Sequence[dict[str, float]] = DEFAULT_GRID,
                  epochs: int = 40, seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Grid over :data:`DEFAULT_GRID` on dev, the chosen head on test; writes ``summary.json`` and ``text_head.pt``."""
    import torch
    from sklearn.svm import LinearSVC

    parts = meld_arrays(cache_dir)
    start = time.perf_counter()
    svm = LinearSVC(C=0.5).fit(*parts["train"])
    rows: list[dict[str, Any]] = [{"model": "linear SVM (C=0.5)",
                                   "dev": scores(parts["val"][1], svm.predict(parts["val"][0])),
                                   "test": scores(parts["test"][1], svm.predict(parts["test"][0]))}]
    log(json.dumps({"model": rows[0]["model"], "dev_wf1": rows[0]["dev"]["weighted_f1"],
                    "test_wf1": rows[0]["test"]["weighted_f1"]}))
    best: tuple[dict[str, Any], float, Any] | None = None
    for setting in grid:
        model, dev_f1 = train_head(parts["train"], parts["val"], int(setting["hidden"]), float(setting["power"]),
                                   float(setting["dropout"]), epochs, seed=seed)
        row: dict[str, Any] = {"model": f"MLP {json.dumps(setting)}", "setting": dict(setting),
                               "dev": scores(parts["val"][1], predict(model, parts["val"][0])),
                               "test": scores(parts["test"][1], predict(model, parts["test"][0]))}
        rows.append(row)
        log(json.dumps({"model": row["model"], "dev_wf1": row["dev"]["weighted_f1"],
                        "test_wf1": row["test"]["weighted_f1"]}))
        if best is None or dev_f1 > best[1]:
            best = (row, dev_f1, model)
    if best is None:
        raise ValueError("the text-head grid is empty")
    chosen, _, model = best
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"setting": chosen["setting"], "state_dict": model.state_dict(), "labels": list(LIVE_EMOTIONS)},
               out / "text_head.pt")
    summary = {"cache": str(cache_dir), "rows": rows, "chosen": chosen["model"], "chosen_test": chosen["test"],
               "seconds": round(time.perf_counter() - start, 1), "epochs": epochs, "seed": seed,
               "counts": {s: int(len(v[1])) for s, v in parts.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"chosen on dev: {chosen['model']}: test weighted-F1 {chosen['test']['weighted_f1']:.4f}, "
        f"macro-F1 {chosen['test']['macro_f1']:.4f}, accuracy {chosen['test']['accuracy']:.4f}")
    return summary
