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
        {"text": "orders grew", "label": 2},
    ])
    data = load_labelled(path)
    assert data.targets == [0, 1, 2, 2]
    assert data.examples[0].agreement == 100 and data.examples[1].agreement is None
    assert len(data.sha256) == 64 and data.lineage()["rows"] == 4


def test_lineage_names_a_relative_file_by_its_absolute_path(tmp_path: Path, monkeypatch) -> None:
    """Training CLI QA: `train sentiment --dev dev.jsonl` recorded "dev.jsonl", so `finpulse export` run
    from another folder read that folder's dev.jsonl (or none) for its parity texts."""
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "dev.jsonl", [{"text": "profit fell", "label": "negative"},
                                                  {"text": "sales rose", "label": "positive"}])
    monkeypatch.chdir(tmp_path / "data")
    data = load_labelled("dev.jsonl")
    assert data.lineage()["path"] == str(tmp_path / "data" / "dev.jsonl")
    assert data.path == "dev.jsonl"  # messages still name the file as the user typed it


def test_agreement_as_percent_or_fraction_is_one_scale(tmp_path: Path) -> None:
    """Regression (CLI QA): 0.75 was read as int(0.75) = 0, a fully split sentence, while 75
    trained as 87.5% on its label."""
    values = [75, "75", "75%", 0.75, 1.0, 100, 0.5, "66", "high", None, -3]
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": f"t{i}", "label": "positive", "agreement": v}
                                              for i, v in enumerate(values)])
    assert [e.agreement for e in load_labelled(path).examples] == [75, 75, 75, 75, 100, 100, 50, 66, None, None, None]


def test_csv_and_tsv_with_field_mapping(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("sentence,sentiment\nprofit fell,negative\nsales rose,positive\n")
    (tmp_path / "d.tsv").write_text("sentence\tsentiment\nprofit fell\t0\nsales rose\t2\n")
    for name in ("d.csv", "d.tsv"):
        data = load_labelled(tmp_path / name, text_field="sentence", label_field="sentiment")
        assert data.texts == ["profit fell", "sales rose"] and data.targets == [0, 2]


def test_tsv_lines_are_rows_and_quotes_are_text(tmp_path: Path) -> None:
    """Regression (CLI QA): TSV was read with CSV quoting, so a text opening with an unclosed
    quote (a cut-off tweet) swallowed the lines after it: 195 of 200 rows lost, no error."""
    rows = [("profit fell", "negative"), ('"Truncated quote from the CEO about the outlook https://t.co/x', "neutral"),
            ("sales rose", "positive"), ('"Record quarter"', "positive"), ('"He said ""no"" twice"', "negative"),
            ('a "quoted" word', "neutral")]
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows))
    data = load_labelled(path)
    assert data.texts == ["profit fell", '"Truncated quote from the CEO about the outlook https://t.co/x',
                          "sales rose", "Record quarter", 'He said "no" twice', 'a "quoted" word']  # quoted whole: CSV
    assert data.targets == [0, 1, 2, 2, 0, 1]
    path.write_text('text\tlabel\n"cut off\tneutral\nfine\tbullishish\n')
    with pytest.raises(BadRow, match=r"d\.tsv:3: unknown label"):  # the line it is on, not the last
        load_labelled(path)


def test_a_tsv_field_quoted_whole_may_hold_a_tab(tmp_path: Path) -> None:
    """CLI QA: csv.writer(delimiter="\\t") quotes a text holding a tab, and the reader split it there
    ("more fields than the header"); a quoted line break still ends the row, and the error says so."""
    import csv

    path = tmp_path / "d.tsv"
    with path.open("w", newline="") as fh:
        csv.writer(fh, delimiter="\t").writerows([("text", "label"), ("has\ttab inside", "positive"),
                                                  ('tab\tand "quotes"', "negative"), ("plain", "neutral")])
    data = load_labelled(path)
    assert data.texts == ["has\ttab inside", 'tab\tand "quotes"', "plain"] and data.targets == [2, 0, 1]
    path.write_text('text\tlabel\n"two\nlines"\tneutral\n')
    with pytest.raises(BadRow, match=r"d\.tsv:2: no value in field 'label'"):
        load_labelled(path)
    path.write_text('label\ttext\nneutral\t"two\nlines"\n')
    with pytest.raises(BadRow, match=r"d\.tsv:3: no value in field 'text' \(null, or fewer fields than the header; "
                                     r"in a TSV a line is one row\)"):
        load_labelled(path)


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
                     b'{not json\n{"text": "fine", "label": "positive"}\n{"text": "", "label": "neutral"}\n'
                     b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b', "label": "neutral"}\n')
    with pytest.raises(BadRow, match=r"d.jsonl:2: not UTF-8"):
        load_labelled(path)
    data = load_labelled(path, skip_bad=True)
    assert data.texts == ["ok", "fine"]
    assert [s["line"] for s in data.report.skipped] == [2, 3, 5, 6]
    # nesting deeper than the parser's stack raised a RecursionError that no reader caught
    assert data.report.skipped[-1]["reason"] == "invalid JSON (nested too deeply)"


def test_a_lone_surrogate_escape_is_mended_with_a_warning_not_a_tokenizer_crash(tmp_path: Path, capsys) -> None:
    """Regression: ``"\\ud800"`` in a JSONL training text (CSV/TSV never hold one) loaded as it was and
    crashed the tokenizer with a TypeError naming no file or line, after the transfer stage had run
    for minutes. It reads as every text reader reads it: U+FFFD in its place, one warning."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "loss widened", "label": "negative"}\n'
                    '{"text": "profit up \\ud800 strongly", "label": "positive"}\n'
                    '{"text": "pair \\ud83d\\ude00 kept", "label": "neutral"}\n')
    data = load_labelled(path)
    assert data.texts == ["loss widened", "profit up \ufffd strongly", "pair \U0001f600 kept"]
    assert data.targets == [0, 2, 1] and data.report.skipped == []
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "1 row(s) held lone UTF-16 surrogates" in err and "line 2" in err


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


# -- numeric labels: one scheme per file (QA: "-1/0/1" trained with no positive class) ------
@pytest.mark.parametrize(("values", "expected"), [
    ([-1, 0, 1], [0, 1, 2]),                  # JSON ints, -1/0/1
    (["-1", "0", "1"], [0, 1, 2]),            # strings, -1/0/1
    (["0", "-1", "+1"], [1, 0, 2]),
    ([0, 1, 2], [0, 1, 2]),                   # FPB / Hugging Face 0/1/2
    (["2", "0", "1"], [2, 0, 1]),
    ([1, 0, -1, "neutral"], [2, 1, 0, 1]),    # names may sit beside the numbers
])
def test_numeric_labels_are_read_per_file(tmp_path: Path, values: list, expected: list[int]) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": v} for i, v in enumerate(values)])
    assert load_labelled(path).targets == expected


def test_numeric_labels_in_csv_minus_one_zero_one(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\nprofit fell,-1\nmeeting held,0\nsales rose,1\n")
    assert load_labelled(path).targets == [0, 1, 2]


@pytest.mark.parametrize(("values", "line", "reason"), [
    ([0, 1, 2, 1, -1], 5, "mix the 0/1/2 scheme (line 3) and the -1/0/1 scheme (line 5)"),
    (["-1", "2"], 2, "mix the 0/1/2 scheme"),
    ([0, 1, 1], 1, "only 0 and 1, which could mean either scheme"),
    (["positive", "1"], 2, "only 0 and 1"),
])
def test_ambiguous_numeric_labels_fail_even_with_skip_bad(tmp_path: Path, values: list, line: int,
                                                          reason: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": v} for i, v in enumerate(values)])
    for skip_bad in (False, True):
        with pytest.raises(BadRow) as info:
            load_labelled(path, skip_bad=skip_bad)
        assert info.value.line == line and f"{path}:{line}:" in str(info.value) and reason in str(info.value)
        assert "\n" not in str(info.value)


def test_out_of_scheme_number_is_a_bad_row(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": -1}, {"text": "b", "label": 1},
                                              {"text": "c", "label": 5}])
    with pytest.raises(BadRow, match=r"d.jsonl:3: unknown label 5; this file's numeric labels are -1/0/1"):
        load_labelled(path)
    data = load_labelled(path, skip_bad=True)
    assert data.targets == [0, 2] and [s["line"] for s in data.report.skipped] == [3]


def test_custom_label_sets_keep_numbers_as_indices(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    assert load_labelled(path, labels=("down", "up")).targets == [0, 1]


# -- text fields that are not strings, BOMs, directories ----------------------------------------
@pytest.mark.parametrize(("text", "reason"), [(42, r"text in field 'text' is not a string \(int\)"),
                                             (["a", "b"], r"text in field 'text' is not a string \(list\)"),
                                             (None, r"no value in field 'text' \(null, or fewer fields")])
def test_non_string_text_says_so(tmp_path: Path, text: object, reason: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok", "label": "neutral"}, {"text": text, "label": "neutral"}])
    with pytest.raises(BadRow, match=rf"d.jsonl:2: {reason}"):
        load_labelled(path)


@pytest.mark.parametrize("name", ["d.jsonl", "d.csv"])
def test_utf8_bom_is_accepted(tmp_path: Path, name: str) -> None:
    body = ('{"text": "profit fell", "label": "negative"}\n{"text": "sales rose", "label": "positive"}\n'
            if name.endswith(".jsonl") else "text,label\nprofit fell,negative\nsales rose,positive\n")
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    data = load_labelled(path)
    assert data.texts == ["profit fell", "sales rose"] and data.targets == [0, 2]
    from data_connectors.base import iter_rows

    assert [row["text"] for _, row in iter_rows(path)] == ["profit fell", "sales rose"]


def test_directory_is_named_as_such(tmp_path: Path) -> None:
    from data_connectors.base import iter_rows

    with pytest.raises(BadInput, match="is a directory, not a file"):
        load_labelled(tmp_path)
    with pytest.raises(BadInput, match="is a directory, not a file"):
        list(iter_rows(tmp_path))


def test_skip_summary_is_one_line_with_count_and_first_reasons(tmp_path: Path) -> None:
    rows = [{"text": "ok", "label": "neutral"}] + [{"text": f"x{i}", "label": "meh"} for i in range(5)]
    data = load_labelled(write_jsonl(tmp_path / "d.jsonl", rows), skip_bad=True)
    line = data.report.summary(data.path)
    assert line is not None and "\n" not in line
    assert line.startswith(f"{data.path}: skipped 5 bad rows (line 2: unknown label 'meh'")
    assert "line 4:" in line and "line 5:" not in line and "2 more" in line
    clean = load_labelled(write_jsonl(tmp_path / "c.jsonl", rows[:1]))
    assert clean.report.summary(clean.path) is None


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_row_short_of_the_label_column_names_the_missing_field(tmp_path: Path, suffix: str) -> None:
    """A CSV/TSV row lacking the label column said "unknown label None"; now it says so as it
    does of the text column."""
    sep = "\t" if suffix == ".tsv" else ","
    path = tmp_path / f"t{suffix}"
    path.write_text(f"text{sep}label\nup{sep}positive\njust text\n")
    with pytest.raises(BadRow, match=rf"^{path}:3: no value in field 'label' \(null, or fewer fields than the header"):
        load_labelled(path)


@pytest.mark.parametrize(("header", "message"), [
    ("Text,label", "missing field 'text' (this row has 'Text': pass --text-field Text)"),
    ("text,LABEL", "missing field 'label' (this row has 'LABEL': pass --label-field LABEL)"),
    ("body,label", "missing field 'text' (use --text-field to map another column)"),
])
def test_a_missing_field_names_the_column_that_differs_only_in_case(tmp_path: Path, header: str,
                                                                    message: str) -> None:
    """CLI QA: a spreadsheet's `Text,Label` header said only "use --text-field", leaving the user to
    guess that field names are case-sensitive."""
    path = tmp_path / "t.csv"
    path.write_text(f"{header}\nprofit rose,positive\n")
    with pytest.raises(BadRow) as bad:
        load_labelled(path)
    assert str(bad.value) == f"{path}:2: {message}"


@pytest.mark.parametrize(("name", "body", "text", "target"), [
    ("d.csv", "text, label\nprofit rose, positive\n", "profit rose", 2),
    ("d.tsv", " text \t label\nloss\tnegative\n", "loss", 0),
])
def test_spaces_around_csv_and_tsv_header_names_are_no_part_of_them(tmp_path: Path, name: str, body: str,
                                                                   text: str, target: int) -> None:
    """CLI QA: the header `text, label` (a space after the comma) was "missing field 'label'"."""
    path = tmp_path / name
    path.write_text(body)
    data = load_labelled(path)
    assert (data.texts, data.targets) == ([text], [target])


@pytest.mark.parametrize("sep", [",", "\t"])
def test_skip_bad_reads_on_past_a_bad_csv_or_tsv_row(tmp_path: Path, sep: str) -> None:
    """Regression (training CLI QA): with ``--skip-bad`` a CSV/TSV row with one field too many
    ended the read there, and a byte that is not UTF-8 lost its whole 8 KiB decoding chunk, the
    rows before it included: a 30-row file trained on 5 rows (or none) and said "skipped 1 bad
    row". A bad row is one skipped row; the reader reads on, as it does in a JSONL file."""
    rows = [f"text {i}{sep}{LABELS[i % 3]}" for i in range(30)]
    rows[5] += f"{sep}extra"                                  # line 7: more fields than the header
    raw = (f"text{sep}label\n" + "\n".join(rows) + "\n").encode()
    raw = raw.replace(f"text 20{sep}".encode(), f"caf\xe9 20{sep}".encode("latin-1"))  # line 22
    path = tmp_path / ("d.csv" if sep == "," else "d.tsv")
    path.write_bytes(raw)
    with pytest.raises(BadRow, match=r"d\.[ct]sv:7: more fields than the header"):
        load_labelled(path)
    data = load_labelled(path, skip_bad=True)
    assert len(data.examples) == 28 and data.texts[-1] == "text 29"
    assert [(s["line"], s["reason"].split(" (")[0]) for s in data.report.skipped] == [
        (7, "more fields than the header"), (22, "not UTF-8")]


def test_skip_bad_csv_record_over_lines_with_a_bad_byte_is_one_skipped_row(tmp_path: Path) -> None:
    """A quoted CSV field over several lines holding a bad byte spoils that record alone."""
    path = tmp_path / "d.csv"
    path.write_bytes(b'text,label\nprofit fell,negative\n"two\nlines caf\xe9",neutral\nsales rose,positive\n')
    with pytest.raises(BadRow, match=r"d\.csv:4: not UTF-8"):
        load_labelled(path)
    data = load_labelled(path, skip_bad=True)
    assert data.texts == ["profit fell", "sales rose"] and [s["line"] for s in data.report.skipped] == [4]


def test_a_file_whose_every_row_was_skipped_says_why(tmp_path: Path) -> None:
    """``--skip-bad`` on a file of only bad rows said "no usable rows (expected fields 'text' and
    'label')" whatever was wrong: an unknown label, bad bytes. The first reason is named."""
    path = tmp_path / "d.csv"
    path.write_text("text,label\nprofit fell,mixed\nsales rose,mixed\n")
    with pytest.raises(BadInput, match=r"no usable rows .*; 2 bad rows skipped, first: line 2: unknown label 'mixed'"):
        load_labelled(path, skip_bad=True)


@pytest.mark.parametrize(("name", "body", "options", "column", "where"), [
    ("d.csv", "text,label,label\nprofit fell,negative,positive\n", {}, "label", "columns 2 and 3"),
    ("d.tsv", "label\ttext\tlabel\nnegative\tprofit fell\tpositive\n", {}, "label", "columns 1 and 3"),
    ("d.csv", "\ntext, label,text\nprofit fell,negative,x\n", {}, "text", "columns 1 and 3"),  # line 2: the header's
    ("d.csv", "body,label,agreement,agreement\nprofit fell,negative,100,50\n", {"text_field": "body"},
     "agreement", "columns 3 and 4"),
    ("d.csv", "id,body,text,body\n1,a,b,c\n", {"text_field": "body"}, "body", "columns 2 and 4"),
])
def test_a_header_naming_a_column_read_twice_is_an_error_naming_it(tmp_path: Path, name: str, body: str,
                                                                   options: dict, column: str, where: str) -> None:
    """QA: `text,label,label` was read with the last `label` column, silently (a row is a dict), and
    trained on whatever it held. A repeated column that is read is an error at the header's line,
    `--skip-bad` or not (no row can be trusted under it)."""
    path = tmp_path / name
    path.write_text(body)
    line = 2 if body.startswith("\n") else 1
    for skip_bad in (False, True):
        with pytest.raises(BadRow) as bad:
            load_labelled(path, skip_bad=skip_bad, **options)
        assert str(bad.value) == (f"{path}:{line}: the header names the column {column!r} twice ({where}); "
                                  "rename or drop one: which of them holds the data is ambiguous")


@pytest.mark.parametrize(("name", "body"), [
    ("d.csv", "text,label,note,note,,\nprofit fell,negative,a,b,,\n"),  # unread columns, blank trailing names
    ("d.tsv", "Text\ttext\tlabel\nx\tprofit fell\tnegative\n"),          # names are case-sensitive here
])
def test_a_repeated_column_that_is_not_read_is_no_error(tmp_path: Path, name: str, body: str) -> None:
    path = tmp_path / name
    path.write_text(body)
    data = load_labelled(path)
    assert (data.texts, data.targets) == (["profit fell"], [0])
