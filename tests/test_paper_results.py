"""Every published IMDer number says where it comes from; the values read in a source are looked up exactly."""

from __future__ import annotations

import pytest

from training.paper_results import (
    CONTESTED,
    IMDER_PUBLISHED,
    PAPER_CHECKED,
    THIRD_PARTY_SCRIPT_IMDER,
    provenance,
    provenance_notes,
    published,
    source_of,
)

COLUMNS = ("Acc-2", "F1", "Acc-7")


def test_every_entry_carries_a_source_string_naming_paper_table_row_and_cell() -> None:
    count = 0
    for dataset, table in IMDER_PUBLISHED.items():
        name = {"mosi": "CMU-MOSI", "mosei": "CMU-MOSEI"}[dataset]
        for rate, values in table.items():
            for column, value in zip(COLUMNS, values):
                text = provenance(dataset, rate, column)
                assert "NeurIPS 2023, Table 1, row IMDer" in text
                assert f"{name} MR {rate:.1f} {column} = {value:.1f}" in text
                assert "NOT checked against the paper" in text            # nothing was read in the paper
                count += 1
    assert count == 48 and not PAPER_CHECKED


@pytest.mark.parametrize("dataset, rate, expected", [
    ("mosei", 0.3, (81.3, 80.7, 51.3)),
    ("mosi", 0.5, (76.2, 75.9, 37.9)),
    ("mosei", 0.7, (77.3, 74.6, 47.6)),
])
def test_values_read_in_the_third_party_script_are_looked_up_exactly(dataset, rate, expected) -> None:
    assert published("imder", dataset, rate) == expected
    assert THIRD_PARTY_SCRIPT_IMDER[dataset][rate] == expected
    for column in COLUMNS:
        assert source_of(dataset, rate, column) == "third-party-script"
        assert "equals a third-party plotting script" in provenance(dataset, rate, column)


def test_only_the_numbers_that_differ_from_the_script_are_unverified_and_contested() -> None:
    unverified = {(d, r, c) for d, table in IMDER_PUBLISHED.items() for r in table for c in COLUMNS
                  if source_of(d, r, c) == "unverified"}
    assert unverified == set(CONTESTED) == {("mosi", 0.1, "Acc-2"), ("mosi", 0.4, "F1")}
    assert "contested" in provenance("mosi", 0.4, "F1") and "78.1" in provenance("mosi", 0.4, "F1")
    notes = " ".join(provenance_notes("mosi"))
    assert "22 of 24" in notes and "not the IMDer paper itself" in notes
    assert "24 of 24" in " ".join(provenance_notes("mosei"))


def test_unknown_cells_are_key_errors() -> None:
    with pytest.raises(KeyError, match="no published"):
        provenance("mosi", 0.9, "F1")
    with pytest.raises(KeyError, match="unknown column"):
        source_of("mosi", 0.1, "MAE")
    assert published("rohydr", "mosi", 0.1) is None
