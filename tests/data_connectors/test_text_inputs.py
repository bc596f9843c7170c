"""Every text input is read alike: a BOM is fine, a byte that is not UTF-8 is named by its line
(also for a binary file read by its first line), and a folder is "a directory, not a file"."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from data_connectors.base import BadRow, iter_lines, iter_rows, read_texts
from data_connectors.faq import load_faq
from data_connectors.interactions import read_interactions
from data_connectors.labelled import load_labelled
from shared.errors import BadInput

ROWS = "user_id\titem_id\trating\ttimestamp\nu1\ti1\t5\t100\nu2\ti2\t4\t101\n"


def test_lines_drop_the_bom_and_name_the_line_of_a_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "u.txt"
    path.write_bytes(b"\xef\xbb\xbf1\r\n2\r\n3\r\n")
    assert list(iter_lines(path)) == [(1, "1"), (2, "2"), (3, "3")]
    path.write_bytes(b"1\nus\xe9\n")
    with pytest.raises(BadRow, match=rf"^{path}:2: not UTF-8 \(invalid continuation byte at byte 3 of the line\)$"):
        list(iter_lines(path))
    with pytest.raises(BadInput, match="is a directory, not a file"):
        list(iter_lines(tmp_path))


def test_unlabelled_text_names_the_line_of_a_bad_byte(tmp_path: Path) -> None:
    """A ``.txt`` for domain adaptation said "not UTF-8 (...)" with no line."""
    path = tmp_path / "mlm.txt"
    path.write_bytes(b"\xef\xbb\xbffirst\nsecond \xff\n")
    with pytest.raises(BadRow, match=rf"^{path}:2: not UTF-8"):
        read_texts(path)


def test_gzipped_interactions_are_not_utf8_at_line_1(tmp_path: Path) -> None:
    """``r.tsv.gz`` (read as JSONL by its first line) said ``:1: invalid JSON`` of the
    replacement characters the lenient decoding put in place of its bytes."""
    path = tmp_path / "r.tsv.gz"
    path.write_bytes(gzip.compress(ROWS.encode() * 50, mtime=0))
    with pytest.raises(BadRow, match=rf"^{path}:1: not UTF-8 \(invalid start byte at byte 2 of the line\)$"):
        read_interactions(path, skip_bad=False)
    with pytest.raises(BadInput, match=r"no usable interactions.*first: line 1: not UTF-8"):
        read_interactions(path, skip_bad=True)


def test_a_bad_byte_in_jsonl_interactions_is_a_bad_row_not_a_replacement_character(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"user_id": "u1", "item_id": "i1"}\n'
                     b'{"user_id": "u\xe9", "item_id": "i2"}\n'
                     b'{"user_id": "u3", "item_id": "i3"}\n')
    with pytest.raises(BadRow, match=rf"^{path}:2: not UTF-8"):
        read_interactions(path, skip_bad=False)
    rows, report = read_interactions(path)  # --skip-bad: that line is skipped, the rest read on
    assert [r.user_id for r in rows] == ["u1", "u3"] and [s["line"] for s in report.skipped] == [2]


def test_a_knowledge_base_that_is_a_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=rf"^{tmp_path}: is a directory, not a file$"):
        load_faq(tmp_path)
    with pytest.raises(BadInput, match=r"no such file"):
        load_faq(tmp_path / "nope.jsonl")


def test_a_csv_field_over_128_kib_is_read(tmp_path: Path) -> None:
    """csv's default field limit (131072) failed a valid file: "malformed CSV (field larger than
    field limit)", naming the line before the one the field is on."""
    big = "x" * 300_000
    path = tmp_path / "items.csv"
    path.write_text(f'id,text\n1,short\n2,"{big}"\n3,after\n')
    assert [(line, row["text"][:5]) for line, row in iter_rows(path)] == [(2, "short"), (3, "xxxxx"), (4, "after")]


def test_a_csv_error_names_the_line_it_is_on(tmp_path: Path, tiny_csv_fields: None) -> None:
    """DictReader's line_num is set after a row is read: the error named the line before."""
    path = tmp_path / "items.csv"
    path.write_text('id,text\n1,a\n2,b\n3,c\n4,d\n5,e\n6,"' + "x" * 200 + '"\n7,g\n')
    with pytest.raises(BadRow, match=rf"^{path}:7: malformed CSV \(field larger than field limit"):
        list(iter_rows(path))


def test_a_quote_never_closed_names_the_line_it_opens_on(tmp_path: Path) -> None:
    """An unclosed quote made the rest of the file one field of one row, silently (a labelled file
    then failed on "missing label" at its last line; a news file stored one article with it all)."""
    path = tmp_path / "train.csv"
    path.write_text('text,label\nprofit rose,positive\n"sales fell,negative\nflat quarter,neutral\n')
    with pytest.raises(BadRow, match=rf"^{path}:3: unclosed quote: this field runs to the end of the file$"):
        list(iter_rows(path))
    path.write_text('text,label\n"two\r\nlines",neutral\nlast,"positive"')  # closed, no final newline: read
    assert [(line, row["label"]) for line, row in iter_rows(path)] == [(3, "neutral"), (4, "positive")]


@pytest.mark.parametrize("blank", ["   ", "\t\t\t", " \t "])
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_whitespace_only_lines_are_blank_lines(tmp_path: Path, blank: str, suffix: str) -> None:
    """A line of spaces or tabs failed the run ("missing item_id", "empty text in field") while
    an empty line was skipped, as JSONL readers skip both."""
    sep = "\t" if suffix == ".tsv" else ","
    path = tmp_path / f"r{suffix}"
    path.write_text(f"{blank}\nuser_id{sep}item_id{sep}rating\n{blank}\nu1{sep}i1{sep}5\n{blank}\nu2{sep}i2{sep}4\n")
    inter, report = read_interactions(path, skip_bad=False)
    assert [i.item_id for i in inter] == ["i1", "i2"] and not report.skipped
    labelled = tmp_path / f"l{suffix}"
    labelled.write_text(f"text{sep}label\nup{sep}positive\n{blank}\ndown{sep}negative\n")
    assert load_labelled(labelled).texts == ["up", "down"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_file_is_named_so_at_line_1(tmp_path: Path, encoding: str) -> None:
    """Read as UTF-8 it was "not UTF-8" or "invalid JSON" on each line, never the one fix."""
    for name in ("t.jsonl", "t.csv", "t.tsv"):
        path = tmp_path / name
        text = '{"text": "up", "label": "positive"}\n' if name.endswith("jsonl") else "text,label\nup,positive\n"
        path.write_bytes(("\ufeff" + text).encode(encoding) if encoding == "utf-16-be" else text.encode(encoding))
        with pytest.raises(BadRow, match=rf"^{path}:1: the file is UTF-16 .*; save it as UTF-8$"):
            load_labelled(path)
        with pytest.raises(BadRow, match=rf"^{path}:1: the file is UTF-16"):
            list(iter_lines(path))


@pytest.mark.parametrize("first", ["1::1193::5::978300760", "user;item;rating"])
def test_a_file_of_no_known_format_says_so_not_invalid_json(tmp_path: Path, first: str) -> None:
    """MovieLens-1M's ratings.dat (or a semicolon CSV) was read as JSONL: ":1: invalid JSON (Extra data ...)"."""
    path = tmp_path / "ratings.dat"
    path.write_text(first + "\n1::661::3::978302109\n")
    with pytest.raises(BadRow, match=rf"^{path}:1: not TSV, CSV or JSONL: .*sed 's/::/\\t/g'"):
        read_interactions(path, skip_bad=False)


@pytest.mark.timeout(30)  # the fault was a wait for a writer that never came
def test_a_pipe_is_named_as_one_and_never_waited_on(tmp_path: Path) -> None:
    """CLI QA: `--input /dev/stdin` on a pipe, `<(...)` and a FIFO were "no such file", and a FIFO
    without a suffix (sniffed by its first line) hung every reader until a writer came."""
    import os

    from data_connectors.news import open_source
    from training.predict import predict_file

    fifo = tmp_path / "rows"
    os.mkfifo(fifo)
    reason = "not a regular file (a pipe or device; the file is read more than once): save it to a file first"
    readers = [lambda: list(iter_rows(fifo)), lambda: read_interactions(fifo), lambda: load_labelled(fifo),
               lambda: load_faq(fifo), lambda: open_source(fifo),
               lambda: predict_file(None, "news/sentiment", fifo, tmp_path / "out.jsonl")]  # type: ignore[arg-type]
    for read in readers:
        with pytest.raises(BadInput, match=rf"^{fifo}: {reason}$".replace("(", r"\(").replace(")", r"\)")):
            read()
    with pytest.raises(BadInput, match=rf"^{tmp_path / 'gone'}: no such file$"):
        list(iter_rows(tmp_path / "gone"))
