"""imer analyze without models: inputs, label files and maps, metrics, output formats, windows."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from imer_core.analysis import AnalysisRow, collect_inputs, evaluate_labels, read_label_map, read_labels, write_rows
from imer_core.analysis.core import AnalysisOptions
from imer_core.analysis.runner import window_ends
from imer_core.config import LIVE_EMOTIONS


def _row(path: str, top: str | None, error: str = "") -> AnalysisRow:
    if top is None:
        return AnalysisRow(path, "image", error=error or "no face found in the image")
    probs = tuple(0.9 if label == top else 0.1 / 6 for label in LIVE_EMOTIONS)
    return AnalysisRow(path, "image", observed=("vision",), recovered=("text", "audio"), method="cmarr",
                       labels=LIVE_EMOTIONS, probabilities=probs, face_found=True)


def test_inputs_from_folders_files_and_texts(tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    (folder / "b.jpg").write_bytes(b"x")
    (folder / "sub" / "a.WAV").write_bytes(b"x")
    (folder / "sub" / "clip.mp4").write_bytes(b"x")
    (folder / ".hidden" / "c.png").write_bytes(b"x")
    (folder / "readme.md").write_text("skip me")
    (folder / "labels.csv").write_text("path,label\n")
    (folder / "lines.txt").write_text("first line\n\n  second line  \n")
    (folder / "table.csv").write_text("id,text\n1,hello there\n2,\n3,\"so, happy\"\n")
    (tmp_path / "other.csv").write_text("id,utterance\n1,hi\n")
    collected = collect_inputs([folder, tmp_path / "gone.jpg", tmp_path / "other.csv", folder / "readme.md"],
                               texts=["Wow!", "  "], exclude=[folder / "labels.csv"])
    got = [(i.path.replace(str(tmp_path), "T"), i.kind, i.problem or i.text or "") for i in collected.inputs]
    assert got == [
        ("text:1", "text", "Wow!"), ("text:2", "invalid", "empty text"),
        ("T/data/b.jpg", "image", ""),
        ("T/data/lines.txt:1", "text", "first line"), ("T/data/lines.txt:3", "text", "second line"),
        ("T/data/table.csv:1", "text", "hello there"), ("T/data/table.csv:2", "invalid", "empty text"),
        ("T/data/table.csv:3", "text", "so, happy"),
        ("T/data/sub/a.WAV", "audio", ""), ("T/data/sub/clip.mp4", "video", ""),
        ("T/gone.jpg", "invalid", "file not found"),
        ("T/other.csv", "invalid", "no column 'text' (columns: id, utterance); choose one with --text-column"),
        ("T/data/readme.md", "invalid", "unsupported file type '.md'"),
    ]
    assert collected.skipped == {".md": 1}
    by_column = collect_inputs([tmp_path / "other.csv"], text_column="utterance").inputs
    assert [(i.path.endswith("other.csv:1"), i.text) for i in by_column] == [(True, "hi")]


def test_unreadable_text_file_is_one_row(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    (item,) = collect_inputs([bad]).inputs
    assert item.kind == "invalid" and item.problem.startswith("not UTF-8 text")


def test_labels_file_and_maps(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("Path,Label\na.jpg,happy\nb.jpg,Joy\n\n")
    assert read_labels(labels) == {"a.jpg": "happy", "b.jpg": "Joy"}
    (tmp_path / "nolabel.csv").write_text("file,emotion\na.jpg,happy\n")
    with pytest.raises(ValueError, match="needs a header with the columns path,label"):
        read_labels(tmp_path / "nolabel.csv")
    (tmp_path / "twice.csv").write_text("path,label\na.jpg,happy\na.jpg,sad\n")
    with pytest.raises(ValueError, match="labelled both 'happy' and 'sad'"):
        read_labels(tmp_path / "twice.csv")
    with pytest.raises(ValueError, match="cannot read the labels file"):
        read_labels(tmp_path / "missing.csv")
    assert read_label_map("Joy=happy, anger = angry") == {"joy": "happy", "anger": "angry"}
    (tmp_path / "map.json").write_text(json.dumps({"Joy": "happy"}))
    (tmp_path / "map.csv").write_text("source,live\njoy,happy\n")
    assert read_label_map(str(tmp_path / "map.json")) == read_label_map(str(tmp_path / "map.csv")) == {"joy": "happy"}
    with pytest.raises(ValueError, match="not source=live"):
        read_label_map("joy")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        read_label_map(str(tmp_path / "bad.json"))


def test_metrics_unknown_labels_and_matching(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\na.jpg,happy\nb.jpg,happy\nc.jpg,sad\nd.jpg,joy\ne.jpg,contempt\n"
                      "f.jpg,sad\nnotes.txt,angry\ngone.jpg,neutral\n")
    rows = [_row(str(tmp_path / "a.jpg"), "happy"),  # matched through the labels file's folder
            _row("b.jpg", "sad"), _row("c.jpg", "sad"), _row("d.jpg", "happy"), _row("e.jpg", "happy"),
            _row("f.jpg", None), _row("notes.txt:1", "angry"), _row("notes.txt:2", "happy"),
            _row("unlabelled.jpg", "happy")]
    result = evaluate_labels(rows, labels)  # no map: 'joy' and 'contempt' are unknown
    assert result.unknown_labels == {"joy": 1, "contempt": 1}
    assert result.unknown_examples == {"joy": "d.jpg", "contempt": "e.jpg"}
    assert result.no_prediction == {"no face found in the image": 1}
    assert result.unlabelled_rows == 1 and result.labels_without_rows == ["gone.jpg"]
    # scored: a happy->happy, b happy->sad, c sad->sad, notes:1 angry->angry, notes:2 angry->happy
    assert result.scored == 5 and result.accuracy == pytest.approx(3 / 5)
    assert result.recall == {"happy": 0.5, "sad": 1.0, "angry": 0.5}
    assert result.uar == pytest.approx(2 / 3)
    f1 = {"happy": 2 * 0.5 * 0.5 / 1.0, "sad": 2 * 0.5 * 1.0 / 1.5, "angry": 2 * 1.0 * 0.5 / 1.5}
    assert result.macro_f1 == pytest.approx(np.mean(list(f1.values())))
    confusion = np.array(result.confusion)
    assert confusion.sum() == 5 and confusion[LIVE_EMOTIONS.index("happy"), LIVE_EMOTIONS.index("sad")] == 1
    text = result.markdown()
    assert "Unknown labels, not scored:** 'contempt' (1 rows, e.g. e.jpg), 'joy' (1 rows, e.g. d.jpg)" in text
    assert "--label-map" in text and "| 60.0 % |" in text and "gone.jpg" in text
    mapped = evaluate_labels(rows, labels, label_map="joy=happy")
    assert mapped.unknown_labels == {"contempt": 1} and mapped.scored == 6
    assert json.loads(json.dumps(mapped.to_dict()))["scored_rows"] == 6


def test_nothing_scored_is_not_a_number(tmp_path):
    result = evaluate_labels([_row("a.jpg", None)], {"a.jpg": "happy"})
    assert result.scored == 0 and result.accuracy is None and result.macro_f1 is None
    assert "n/a" in result.markdown()


def test_output_formats():
    rows = [_row("a.jpg", "happy"), _row("b, c.jpg", None)]
    for fmt in ("jsonl", "json", "csv"):
        out = io.StringIO()
        assert list(write_rows(rows, out, fmt)) == rows
        text = out.getvalue()
        if fmt == "jsonl":
            parsed = [json.loads(line) for line in text.splitlines()]
        elif fmt == "json":
            parsed = json.loads(text)
        else:
            parsed = list(csv.DictReader(io.StringIO(text)))
        assert [p["path"] for p in parsed] == ["a.jpg", "b, c.jpg"]
        assert parsed[1]["error"] == "no face found in the image"
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert table[0]["top_emotion"] == "happy" and float(table[0]["p_happy"]) == pytest.approx(0.9)
    assert table[0]["observed"] == "vision" and table[0]["recovered"] == "text+audio"
    empty = io.StringIO()
    list(write_rows([], empty, "json"))
    assert json.loads(empty.getvalue()) == []


def test_window_ends_and_options():
    assert window_ends(1.2, 2.0, 1.0) == [1.2]
    assert window_ends(4.5, 2.0, 1.0) == [2.0, 3.0, 4.0, 4.5]
    assert window_ends(4.0, 2.0, 1.0) == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="hop_s"):
        AnalysisOptions(hop_s=0)
    with pytest.raises(ValueError, match="batch size"):
        AnalysisOptions(batch_size=0)
    with pytest.raises(ValueError):
        AnalysisOptions(modalities=("smell",))


def test_large_images_are_scaled_down_and_rotated_by_exif(tmp_path):
    from PIL import Image

    from imer_core.analysis.media import MAX_IMAGE_SIDE, UnreadableInput, read_image

    Image.new("RGB", (3000, 2000), (10, 20, 30)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png").shape == (2000 * MAX_IMAGE_SIDE // 3000, MAX_IMAGE_SIDE, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.new("RGB", (40, 20)).save(tmp_path / "turned.jpg", exif=exif)
    assert read_image(tmp_path / "turned.jpg").shape == (40, 20, 3)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UnreadableInput, match="not a readable image"):
        read_image(tmp_path / "empty.jpg")
