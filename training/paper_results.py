"""IMDer results as published, shown beside ours in reproduction tables, with the source of every number.

**Provenance (checked 2026-12-07, issue 12).**  Every number below is meant to be the IMDer row of
Table 1 of the IMDer paper (Wang, Li, Cui, NeurIPS 2023: CMU-MOSI / CMU-MOSEI, missing rates
0.0-0.7, Acc-2 / F1 / Acc-7).  **None has been checked against that table**: the paper's text is
stored in the project's search corpus, but the search returns only its opening pages, and no
other copy of its Table 1 could be read here (the official repository's README, mdswyz/IMDer,
publishes no results).  What was read, and how each number compares (:func:`source_of`):

* ``third-party-script``: a public third-party plotting script found through the project's code
  search (code-index file id 14383680367; the index names neither its repository nor its path)
  holds IMDer rows for MOSI and MOSEI at MR 0.0-0.7 as ``Acc-2/F1/Acc-7`` triples
  (:data:`THIRD_PARTY_SCRIPT_IMDER`).  46 of the 48 numbers below equal its values.
* ``unverified``: the 2 numbers that differ from that script (:data:`CONTESTED`).  Both equal the
  values an earlier audit attributed to "a later paper's comparison table", which was never
  identified and was not read here.

To settle them, read Table 1 at https://openreview.net/pdf?id=BuGFwUS9B3 and update
:data:`IMDER_PUBLISHED`, :data:`PAPER_CHECKED` and the tests (``tests/test_paper_results.py``).
"""

from __future__ import annotations

PAPER = "Wang, Li, Cui. Incomplete Multimodality-Diffused Emotion Recognition. NeurIPS 2023"
PAPER_CITATION = (f"{PAPER} — Table 1, row IMDer; values as given by a third-party script, "
                  "not checked against the paper's table (see training/paper_results.py)")

MISSING_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)

# dataset -> missing rate -> (Acc-2, F1, Acc-7), meant as Table 1 of the paper, row "IMDer"
IMDER_PUBLISHED: dict[str, dict[float, tuple[float, float, float]]] = {
    "mosi": dict(zip(MISSING_RATES, [
        (85.7, 85.6, 45.3), (84.9, 84.8, 44.8), (83.5, 83.4, 44.3), (81.2, 81.0, 42.5),
        (78.6, 78.5, 39.7), (76.2, 75.9, 37.9), (74.7, 74.0, 35.8), (71.9, 71.2, 33.4),
    ])),
    "mosei": dict(zip(MISSING_RATES, [
        (85.1, 85.1, 53.4), (84.8, 84.6, 53.1), (82.7, 82.4, 52.0), (81.3, 80.7, 51.3),
        (79.3, 78.1, 50.0), (79.0, 77.4, 49.2), (78.0, 75.5, 48.5), (77.3, 74.6, 47.6),
    ])),
}

# The IMDer rows of the third-party plotting script (code-index file id 14383680367), as read
# 2026-12-07: dataset -> missing rate -> (Acc-2, F1, Acc-7).  The same script also holds, under
# the label "DCCA" in its MOSEI block, a copy of the MOSI IMDer row that reads 84.9 (not 84.8)
# at MR 0.1 Acc-2 and 78.1 at MR 0.4 F1.
THIRD_PARTY_SCRIPT_IMDER: dict[str, dict[float, tuple[float, float, float]]] = {
    "mosi": dict(zip(MISSING_RATES, [
        (85.7, 85.6, 45.3), (84.8, 84.8, 44.8), (83.5, 83.4, 44.3), (81.2, 81.0, 42.5),
        (78.6, 78.1, 39.7), (76.2, 75.9, 37.9), (74.7, 74.0, 35.8), (71.9, 71.2, 33.4),
    ])),
    "mosei": dict(zip(MISSING_RATES, [
        (85.1, 85.1, 53.4), (84.8, 84.6, 53.1), (82.7, 82.4, 52.0), (81.3, 80.7, 51.3),
        (79.3, 78.1, 50.0), (79.0, 77.4, 49.2), (78.0, 75.5, 48.5), (77.3, 74.6, 47.6),
    ])),
}
THIRD_PARTY_SCRIPT = ("a third-party plotting script's IMDer rows (public GitHub file, code-index id 14383680367, "
                      "repository not named by the index; read 2026-12-07)")

# (dataset, missing rate, column) -> True once the value has been read in the paper's Table 1.
PAPER_CHECKED: dict[tuple[str, float, str], bool] = {}

# Our metric keys that correspond to the paper's columns.
PAPER_COLUMNS = (("Acc-2", "Non0_acc_2"), ("F1", "Non0_F1_score"), ("Acc-7", "Mult_acc_7"))

SOURCES: dict[str, str] = {
    "third-party-script": f"equals {THIRD_PARTY_SCRIPT}; not the IMDer paper itself",
    "unverified": ("differs from that script; attributed by an earlier audit to a later paper's comparison "
                   "table that was not identified or read — unverified, not the IMDer paper itself"),
    "paper-unchecked": "IMDer paper, Table 1 — could not be read here, so no value has been checked against it",
}

# (dataset, missing rate, column) -> the other value found for it, and where.
CONTESTED: dict[tuple[str, float, str], str] = {
    ("mosi", 0.1, "Acc-2"): ("84.9 here; 84.8 in the third-party script's IMDer row (its mislabelled copy of the "
                             "row has 84.9) — unresolved"),
    ("mosi", 0.4, "F1"): "78.5 here; 78.1 in the third-party script's IMDer row — unresolved",
}


def _column_index(column: str) -> int:
    labels = [label for label, _ in PAPER_COLUMNS]
    if column not in labels:
        raise KeyError(f"unknown column {column!r}; known: {labels}")
    return labels.index(column)


def _lookup(table: dict[str, dict[float, tuple[float, float, float]]], dataset: str,
            missing_rate: float) -> tuple[float, float, float]:
    rate = round(float(missing_rate), 2)
    row = table.get(dataset.lower(), {}).get(rate)
    if row is None:
        raise KeyError(f"no published IMDer number for {dataset} MR {rate}")
    return row


def source_of(dataset: str, missing_rate: float, column: str) -> str:
    """Key of :data:`SOURCES` for one published number (``column``: ``"Acc-2"``, ``"F1"`` or ``"Acc-7"``)."""
    index = _column_index(column)
    value = _lookup(IMDER_PUBLISHED, dataset, missing_rate)[index]
    script = _lookup(THIRD_PARTY_SCRIPT_IMDER, dataset, missing_rate)[index]
    return "third-party-script" if value == script else "unverified"


def provenance(dataset: str, missing_rate: float, column: str) -> str:
    """Where one published number comes from: paper, table, row and cell, and what it was checked against."""
    index = _column_index(column)
    rate = round(float(missing_rate), 2)
    value = _lookup(IMDER_PUBLISHED, dataset, rate)[index]
    name = {"mosi": "CMU-MOSI", "mosei": "CMU-MOSEI"}[dataset.lower()]
    cell = f"{PAPER}, Table 1, row IMDer, {name} MR {rate:.1f} {column} = {value:.1f}"
    if PAPER_CHECKED.get((dataset.lower(), rate, column)):
        return f"{cell}: checked against the paper"
    text = f"{cell}: NOT checked against the paper (its table could not be read here); " \
           f"{SOURCES[source_of(dataset, rate, column)]}"
    why = contested(dataset, rate, column)
    return f"{text}; contested: {why}" if why else text


def contested(dataset: str, missing_rate: float, column: str) -> str | None:
    """Why a published number is contested, or ``None``."""
    return CONTESTED.get((dataset.lower(), round(float(missing_rate), 2), column))


def provenance_notes(dataset: str) -> list[str]:
    """Markdown lines that explain where the published numbers in a table come from."""
    table = IMDER_PUBLISHED.get(dataset.lower(), {})
    keys = [(rate, label) for rate in table for label, _ in PAPER_COLUMNS]
    agreeing = sum(source_of(dataset, rate, label) == "third-party-script" for rate, label in keys)
    lines = [f"Published numbers (IMDer, NeurIPS 2023, Table 1, row IMDer): {SOURCES['paper-unchecked']}. "
             f"{agreeing} of {len(keys)} equal {THIRD_PARTY_SCRIPT} (not the IMDer paper itself); the others "
             f"are marked \\* and are unverified."]
    for (ds, rate, column), why in CONTESTED.items():
        if ds == dataset.lower():
            lines.append(f"\\* {ds.upper()} MR {rate:.1f} {column} is contested: {why}.")
    return lines


def published(method: str, dataset: str, missing_rate: float) -> tuple[float, float, float] | None:
    """The published (Acc-2, F1, Acc-7) for a method/dataset/missing rate, or ``None`` if not published."""
    if method.lower() != "imder":
        return None
    table = IMDER_PUBLISHED.get(dataset.lower(), {})
    return table.get(round(float(missing_rate), 2))
