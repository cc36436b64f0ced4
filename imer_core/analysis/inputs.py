"""What ``imer analyze`` was given, turned into a flat list of inputs (files, text lines, table rows).

* files are classified by extension (:data:`IMAGE_EXTENSIONS`, :data:`AUDIO_EXTENSIONS`,
  :data:`VIDEO_EXTENSIONS`, ``.txt``, ``.csv``);
* folders are walked recursively (sorted; hidden files and folders skipped;
  files of other types counted in :attr:`CollectedInputs.skipped`);
* a ``.txt`` file gives one text input per non-empty line (``notes.txt:3``),
  a ``.csv`` file one per row of its text column (``table.csv:3``, the data row number);
* ``--text`` strings give ``text:1``, ``text:2``, ...

A path that cannot be used (missing, unknown type, unreadable table) becomes
an input with a :attr:`AnalysisInput.problem`, reported as its row's error.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"})
TEXT_EXTENSIONS = frozenset({".txt"})
TABLE_EXTENSIONS = frozenset({".csv"})
KNOWN_EXTENSIONS = IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS | TEXT_EXTENSIONS | TABLE_EXTENSIONS
#: Kinds of :class:`AnalysisInput`.
IMAGE, AUDIO, VIDEO, TEXT, INVALID = "image", "audio", "video", "text", "invalid"
MAX_TEXT_FILE_BYTES = 50_000_000


@dataclass(frozen=True)
class AnalysisInput:
    """One thing to analyse.

    Attributes:
        path: the row's identifier: the file path as given (or found in a
            folder), ``file.txt:LINE``, ``file.csv:ROW`` or ``text:N``.
        kind: ``image``, ``audio``, ``video``, ``text`` or ``invalid``.
        file: the file to read (``None`` for text given inline or read from a table).
        text: the text of a ``text`` input.
        problem: why it cannot be analysed (``invalid`` inputs).
    """

    path: str
    kind: str
    file: Path | None = None
    text: str | None = None
    problem: str = ""


@dataclass
class CollectedInputs:
    """The inputs in order, and how many files in folders were skipped (by extension)."""

    inputs: list[AnalysisInput] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def kind_of(path: Path) -> str | None:
    """``image``/``audio``/``video``/``text`` (``.txt`` and ``.csv``) by extension, ``None`` when unknown."""
    ext = path.suffix.lower()
    for kind, extensions in ((IMAGE, IMAGE_EXTENSIONS), (AUDIO, AUDIO_EXTENSIONS), (VIDEO, VIDEO_EXTENSIONS),
                             (TEXT, TEXT_EXTENSIONS | TABLE_EXTENSIONS)):
        if ext in extensions:
            return kind
    return None


def collect_inputs(paths: Iterable["str | os.PathLike[str]"] = (), texts: Iterable[str] = (),
                   text_column: str = "text", exclude: Iterable["str | os.PathLike[str]"] = ()) -> CollectedInputs:
    """Expand paths (files and folders) and inline texts into :class:`AnalysisInput` items, in order.

    ``exclude`` lists files never analysed when met in a folder (e.g. the labels file).
    """
    out = CollectedInputs()
    skip = {_resolved(Path(p)) for p in exclude}
    for number, text in enumerate(texts, start=1):
        out.inputs.append(_text_input(f"text:{number}", text))
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path):
                if _resolved(file) in skip:
                    continue
                if kind_of(file) is None:
                    ext = file.suffix.lower() or "(no extension)"
                    out.skipped[ext] = out.skipped.get(ext, 0) + 1
                    continue
                out.inputs.extend(_file_inputs(file, text_column))
        elif not path.exists():
            out.inputs.append(AnalysisInput(str(raw), INVALID, path, problem="file not found"))
        elif kind_of(path) is None:
            out.inputs.append(AnalysisInput(str(raw), INVALID, path,
                                            problem=f"unsupported file type {path.suffix or '(no extension)'!r}"))
        else:
            out.inputs.extend(_file_inputs(path, text_column, str(raw)))
    return out


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    return found


def _text_input(name: str, text: str) -> AnalysisInput:
    if not text.strip():
        return AnalysisInput(name, INVALID, text=text, problem="empty text")
    return AnalysisInput(name, TEXT, text=text.strip())


def _file_inputs(path: Path, text_column: str, name: str | None = None) -> list[AnalysisInput]:
    name = str(path) if name is None else name
    kind = kind_of(path)
    if kind != TEXT:
        return [AnalysisInput(name, str(kind), path)]
    try:
        if path.stat().st_size > MAX_TEXT_FILE_BYTES:
            return [AnalysisInput(name, INVALID, path, problem=f"text file larger than {MAX_TEXT_FILE_BYTES} bytes")]
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return [AnalysisInput(name, INVALID, path, problem=f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return [AnalysisInput(name, INVALID, path, problem=f"cannot read: {exc.strerror or exc}")]
    if path.suffix.lower() in TABLE_EXTENSIONS:
        return _table_inputs(name, path, content, text_column)
    lines = [(i, line) for i, line in enumerate(content.splitlines(), start=1) if line.strip()]
    if not lines:
        return [AnalysisInput(name, INVALID, path, problem="no text in the file")]
    return [AnalysisInput(f"{name}:{i}", TEXT, path, text=line.strip()) for i, line in lines]


def _table_inputs(name: str, path: Path, content: str, column: str) -> list[AnalysisInput]:
    try:
        rows = list(csv.DictReader(content.splitlines()))
    except csv.Error as exc:
        return [AnalysisInput(name, INVALID, path, problem=f"not a readable CSV table: {exc}")]
    header = list(rows[0]) if rows else next(csv.reader(content.splitlines()[:1]), [])
    if column not in header:
        return [AnalysisInput(name, INVALID, path,
                              problem=f"no column {column!r} (columns: {', '.join(map(str, header)) or 'none'}); "
                                      "choose one with --text-column")]
    out = []
    for number, row in enumerate(rows, start=1):
        text = row.get(column) or ""
        out.append(_text_input(f"{name}:{number}", text) if text.strip()
                   else AnalysisInput(f"{name}:{number}", INVALID, path, problem="empty text"))
    return out or [AnalysisInput(name, INVALID, path, problem="the table has no rows")]
