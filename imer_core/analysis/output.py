"""Rows of an analysis as JSON, JSON Lines or CSV, written as they come (a stopped run keeps its rows)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from ..config import LIVE_EMOTIONS
from .core import AnalysisRow

FORMATS = ("jsonl", "json", "csv")
CSV_HEAD = ("path", "kind", "start_s", "end_s", "observed", "recovered", "method", "top_emotion", "top_probability")
CSV_TAIL = ("face_found", "transcript", "error", "note")


def format_for(path: "str | Path | None", requested: str | None) -> str:
    """The requested format, else the one of ``path``'s extension, else ``jsonl``."""
    if requested:
        if requested not in FORMATS:
            raise ValueError(f"unknown format {requested!r}; expected one of {', '.join(FORMATS)}")
        return requested
    suffix = Path(path).suffix.lower().lstrip(".") if path else ""
    return suffix if suffix in FORMATS else "jsonl"


def csv_columns(labels: Iterable[str] = LIVE_EMOTIONS) -> list[str]:
    """CSV header: the row fields, one ``p_<label>`` column per class, then face/transcript/error/note."""
    return [*CSV_HEAD, *(f"p_{label}" for label in labels), *CSV_TAIL]


def csv_record(row: AnalysisRow, labels: Iterable[str] = LIVE_EMOTIONS) -> list[str]:
    """One CSV line of ``row`` (modalities joined with ``+``; empty cells for what is absent)."""
    data = row.to_dict()
    probs = data["probabilities"] or {}
    cells = [data["path"], data["kind"], data["start_s"], data["end_s"], "+".join(data["observed"]),
             "+".join(data["recovered"]), data["method"], data["top_emotion"], data["top_probability"],
             *(probs.get(label) for label in labels),
             data["face_found"], data["transcript"], data["error"], data["note"]]
    return ["" if c is None else str(c) for c in cells]


def write_rows(rows: Iterable[AnalysisRow], out: TextIO, fmt: str = "jsonl",
               labels: Iterable[str] = LIVE_EMOTIONS) -> Iterator[AnalysisRow]:
    """Write each row to ``out`` as it arrives (flushed) and yield it on; ``fmt``: jsonl, json or csv."""
    labels = tuple(labels)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(csv_columns(labels))
    elif fmt == "json":
        out.write("[")
    elif fmt != "jsonl":
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    first = True
    try:
        for row in rows:
            if fmt == "csv":
                writer.writerow(csv_record(row, labels))
            elif fmt == "json":
                out.write(("\n  " if first else ",\n  ") + json.dumps(row.to_dict(), ensure_ascii=False))
            else:
                out.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
            first = False
            out.flush()
            yield row
    finally:
        if fmt == "json":
            out.write("\n]\n" if not first else "]\n")
            out.flush()
