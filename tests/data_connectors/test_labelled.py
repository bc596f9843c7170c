"""Labelled-data loader: mapping, label normalisation, errors naming file:line, skip_bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_connectors.base import BadRow
from data_connectors.labelled import load_labelled, normalise_label, stratified_split
from shared.errors import BadInput

LABELS = ("negative", "neutral", "positive")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_labels_names_and_ints(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"text": "profit fell", "label": "negative", "agreement": 100},
        {"text": "meeting held", "label": 1},
        {"text": "sales rose", "label": "Positive"},
    ])
    data = load_labelled(path)
    assert data.targets == [0, 1, 2]
    assert data.examples[0].agreement == 100 and data.examples[1].agreement is None
    assert len(data.sha256) == 64 and data.lineage()["rows"] == 3


def test_csv_and_tsv_with_field_mapping(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("sentence,sentiment\nprofit fell,negative\nsales rose,positive\n")
    (tmp_path / "d.tsv").write_text("sentence\tsentiment\nprofit fell\t0\nsales rose\t2\n")
    for name in ("d.csv", "d.tsv"):
        data = load_labelled(tmp_path / name, text_field="sentence", label_field="sentiment")
        assert data.texts == ["profit fell", "sales rose"] and data.targets == [0, 2]


@pytest.mark.parametrize(("row", "reason"), [
    ({"text": "x", "label": "bullishish"}, "unknown label"),
    ({"text": "  ", "label": "neutral"}, "empty text"),
    ({"label": "neutral"}, "missing field 'text'"),
    ({"text": "x", "label": 7}, "unknown label"),
])
def test_bad_rows_name_file_and_line(tmp_path: Path, row: dict, reason: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok", "label": "neutral"}, row])
    with pytest.raises(BadRow) as info:
        load_labelled(path)
    assert info.value.line == 2 and f"{path}:2:" in str(info.value) and reason in str(info.value)


def test_bad_encoding_and_json_are_counted_with_skip_bad(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "neutral"}\n{"text": "caf\xe9", "label": "neutral"}\n'
                     b'{not json\n{"text": "fine", "label": "positive"}\n{"text": "", "label": "neutral"}\n')
    with pytest.raises(BadRow, match=r"d.jsonl:2: not UTF-8"):
        load_labelled(path)
    data = load_labelled(path, skip_bad=True)
    assert data.texts == ["ok", "fine"]
    assert [s["line"] for s in data.report.skipped] == [2, 3, 5]


def test_missing_file_and_empty_file_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        load_labelled(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(BadInput, match="no usable rows"):
        load_labelled(tmp_path / "empty.jsonl")


def test_normalise_label_aliases() -> None:
    assert normalise_label("bearish", LABELS) == 0
    assert normalise_label("2", LABELS) == 2
    assert normalise_label(True, LABELS) is None
    assert normalise_label(3, LABELS) is None


def test_stratified_split_keeps_every_label(tmp_path: Path) -> None:
    labels = ["negative"] * 10 + ["neutral"] * 60 + ["positive"] * 30
    rows = [{"text": f"t{i}", "label": lab} for i, lab in enumerate(labels)]
    data = load_labelled(write_jsonl(tmp_path / "d.jsonl", rows))
    train, held = stratified_split(data.examples, 0.1, seed=3)
    assert len(held) == 10 and len(train) == 90
    assert sorted(e.label for e in held) == [0] + [1] * 6 + [2] * 3
    assert not {e.text for e in held} & {e.text for e in train}
    again, _ = stratified_split(data.examples, 0.1, seed=3)
    assert [e.text for e in again] == [e.text for e in train]
