"""Interaction and item connectors: formats, line-numbered skips, MIND and MovieLens files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_connectors.interactions import (
    iter_mind_behaviors,
    iter_mind_news,
    parse_timestamp,
    read_interactions,
    read_items,
)
from shared.errors import BadInput


def test_tsv_with_bad_rows_keeps_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "r.tsv"
    path.write_text("user_id\titem_id\trating\ttimestamp\n1\t10\t4\t100\n\t11\t3\t101\n2\t12\tx\t102\n"
                    "3\t13\t5\tnot-a-time\n4\t14\t2\t103\n")
    rows, report = read_interactions(path)
    assert [(r.user_id, r.item_id, r.rating) for r in rows] == [("1", "10", 4.0), ("4", "14", 2.0)]
    assert [s["line"] for s in report.skipped] == [3, 4, 5]
    assert "missing user_id" in report.skipped[0]["reason"]


def test_strict_mode_raises_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id\nu1,i1\nu2,\n")
    with pytest.raises(BadInput, match=r"r\.csv:3: missing item_id"):
        read_interactions(path, skip_bad=False)


def test_movielens_csv_columns_are_read(tmp_path: Path) -> None:
    """CLI QA: MovieLens' ratings.csv (userId,movieId,...) was "missing item_id" on every row."""
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
    rows, report = read_interactions(path)
    assert [(r.user_id, r.item_id, r.rating, r.timestamp) for r in rows] == [("1", "31", 2.5, 1260759144)]


def test_ids_that_are_no_string_or_number_and_boolean_ratings_are_bad_rows(tmp_path: Path) -> None:
    """CLI QA: {"user_id": {"a": 1}} trained a user "{'a': 1}", ["x"] one "['x']", true one "True",
    and a rating of true was a 1."""
    path = tmp_path / "e.jsonl"
    path.write_text('{"user_id": {"a": 1}, "item_id": "a"}\n{"user_id": ["x"], "item_id": "a"}\n'
                    '{"user_id": true, "item_id": "a"}\n{"user_id": "u", "item_id": "a", "rating": true}\n'
                    '{"user_id": "u", "item_id": 1.5}\n{"user_id": 7.0, "item_id": "b"}\n')
    rows, report = read_interactions(path)
    assert [(r.user_id, r.item_id) for r in rows] == [("7", "b")]
    assert [(s["line"], s["reason"]) for s in report.skipped] == [
        (1, "user_id must be a string or a number, not an object"),
        (2, "user_id must be a string or a number, not a list"),
        (3, "user_id must be a string or a number, not a boolean"),
        (4, "a boolean is not a rating"),
        (5, "item_id 1.5 is not a whole number (write an id that is no integer as a string)")]


def test_jsonl_implicit_events_and_iso_times(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"user_id": 7, "item_id": "a", "event": "click", "timestamp": "2024-01-01T00:00:00Z"}\n'
                    "not json\n"
                    '{"user": "8", "item": "b"}\n')
    rows, report = read_interactions(path)
    assert rows[0].user_id == "7" and rows[0].rating == 1.0 and rows[0].event == "click"
    assert rows[0].timestamp == 1704067200
    assert rows[1].event == "view"
    assert report.skipped[0]["line"] == 2


def test_ids_keep_their_input_form(tmp_path: Path) -> None:
    path = tmp_path / "r.tsv"
    path.write_text("user_id\titem_id\trating\ttimestamp\n007\t0042\t1\t1\n")
    rows, _ = read_interactions(path)
    assert (rows[0].user_id, rows[0].item_id) == ("007", "0042")


def test_a_file_without_a_header_is_read_in_movielens_order(tmp_path: Path) -> None:
    """MovieLens' own u.data has no header line: its first row was taken for one, and the
    file failed with "line 2: missing user_id"."""
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    rows, report = read_interactions(path, skip_bad=False)  # no suffix: TSV from its first line
    assert [(r.user_id, r.item_id, r.rating, r.timestamp) for r in rows] == [
        ("196", "242", 3.0, 881250949), ("186", "302", 3.0, 891717742)]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("u1,i1\nu2,i2\n")
    assert [(r.user_id, r.item_id, r.rating) for r in read_interactions(pairs)[0]] == [
        ("u1", "i1", 1.0), ("u2", "i2", 1.0)]
    upper = tmp_path / "upper.tsv"  # a header in capitals is still a header
    upper.write_text("USER_ID\tItemId\tRating\tTIMESTAMP\n1\t2\t4\t100\n")
    assert [(r.user_id, r.item_id, r.rating) for r in read_interactions(upper, skip_bad=False)[0]] == [("1", "2", 4.0)]
    with pytest.raises(BadInput, match=r"bad\.tsv:2: rating 'x'"):  # line numbers stay the file's
        bad = tmp_path / "bad.tsv"
        bad.write_text("1\t2\t3\t4\n1\t3\tx\t5\n")
        read_interactions(bad, skip_bad=False)


def test_headerless_iso_times_and_a_header_naming_no_column(tmp_path: Path) -> None:
    """A headerless file with ISO times (which a header's column reads) took its first row for a
    header, as did a first row with a fifth field: each was "line 2: missing user_id"."""
    iso = tmp_path / "iso.tsv"
    iso.write_text("u1\ti1\t5\t2024-01-01T00:00:00Z\nu2\ti2\t4\t2024-01-02\n")
    assert [(r.user_id, r.timestamp) for r in read_interactions(iso, skip_bad=False)[0]] == [
        ("u1", 1704067200), ("u2", 1704153600)]
    # QA: a fifth field, or a single column, was "read as a header, but it names none of the columns"
    # too, which hid what was wrong (too many columns for data; no separator)
    for name, text, says in [
            ("five.tsv", "u1\ti1\t5\t100\textra\nu2\ti2\t5\t200\n",
             "the first line has 5 columns, too many for a file without a header (2-4: user_id, item_id, rating, "
             "timestamp in that order), and as a header it names none of the columns (user_id, item_id, rating, "
             "timestamp or their aliases)"),
            ("spaces.tsv", "u1 i1 5 100\n",
             "the first line is a single column (no tab in it): a header names the columns (user_id, item_id, "
             "rating, timestamp or their aliases), a file without a header has 2-4 columns in that order"),
            ("words.csv", "customer,product,amount\nu2,i2,5\n",
             "read as a header, but it names none of the columns (user_id, item_id, rating, timestamp or their "
             "aliases); a file without a header has 2-4 columns in that order")]:
        path = tmp_path / name
        path.write_text(text)
        for skip_bad in (False, True):  # the whole file is unreadable: no row to skip to
            with pytest.raises(BadInput) as bad:
                read_interactions(path, skip_bad=skip_bad)
            assert str(bad.value) == f"{path}:1: {says}"


@pytest.mark.parametrize("name", ["r.tsv", "r.csv", "r.jsonl", "u.data"])
def test_an_empty_file_says_it_is_empty(tmp_path: Path, name: str) -> None:
    """QA: an empty CSV/TSV was "line 1: read as a header, but it names none of the columns"."""
    path = tmp_path / name
    for body, what in (("", "is empty"), ("\n  \n\t\n", "holds only blank lines")):
        path.write_text(body)
        for skip_bad in (False, True):
            with pytest.raises(BadInput) as bad:
                read_interactions(path, skip_bad=skip_bad)
            assert str(bad.value) == (f"{path}: the file {what}; expected interactions, one a line: "
                                      "user_id, item_id[, rating, timestamp]")


@pytest.mark.parametrize(("name", "body", "column", "where"), [
    ("r.tsv", "user_id\titem_id\tuser_id\n1\t2\t3\n", "user_id", "columns 1 and 3"),
    ("r.csv", "user_id,item_id,rating,rating\n1,2,3,4\n", "rating", "columns 3 and 4"),
    ("r.csv", "User_ID,item_id,user_id\n1,2,3\n", "User_ID", "as 'User_ID' in column 1 and 'user_id' in column 3"),
    ("r.tsv", "user\tmovieId\ttimestamp\tTimestamp\n1\t2\t100\t200\n", "timestamp",
     "as 'timestamp' in column 3 and 'Timestamp' in column 4"),
])
def test_a_header_naming_a_column_twice_is_an_error_naming_it(tmp_path: Path, name: str, body: str,
                                                              column: str, where: str) -> None:
    """QA: `user_id` twice in the header was read with the last one, silently (a row is a dict)."""
    path = tmp_path / name
    path.write_text(body)
    for skip_bad in (False, True):
        with pytest.raises(BadInput) as bad:
            read_interactions(path, skip_bad=skip_bad)
        assert str(bad.value) == (f"{path}:1: the header names the column {column!r} twice ({where}); "
                                  "rename or drop one: which of them holds the data is ambiguous")


def test_repeated_columns_never_read_and_aliases_of_one_column_are_read(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,item,note,note\nu1,i1,Some title,a,b\n")  # item: a title beside the id
    assert [(r.user_id, r.item_id) for r in read_interactions(path, skip_bad=False)[0]] == [("u1", "i1")]


def test_a_header_in_quotes_is_a_header(tmp_path: Path) -> None:
    """A CSV writer quoting every field (QUOTE_ALL) wrote a header its quotes hid: 2 columns were read
    as a first interaction of user "user_id", 3 or more refused as naming no column."""
    two = tmp_path / "two.csv"
    two.write_text('"user_id","item_id"\n"u1","i1"\n')
    assert [(r.user_id, r.item_id) for r in read_interactions(two, skip_bad=False)[0]] == [("u1", "i1")]
    three = tmp_path / "three.csv"
    three.write_text('"user_id","item_id","rating"\n"u1","i1","4"\n')
    assert [(r.user_id, r.rating) for r in read_interactions(three, skip_bad=False)[0]] == [("u1", 4.0)]
    tsv = tmp_path / "q.tsv"
    tsv.write_text('"user_id"\t"item_id"\n"u1"\t"i1"\n')
    assert [(r.user_id, r.item_id) for r in read_interactions(tsv, skip_bad=False)[0]] == [("u1", "i1")]


@pytest.mark.parametrize("rating", ["NaN", "nan", "inf", "-Infinity"])
def test_a_rating_that_is_no_finite_number_says_so(tmp_path: Path, rating: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"user_id": "u1", "item_id": "i1", "rating": rating}) + "\n"
                    + '{"user_id": "u1", "item_id": "i2", "rating": NaN}\n{"user_id": "u1", "item_id": "i3"}\n')
    with pytest.raises(BadInput) as bad:
        read_interactions(path, skip_bad=False)
    assert str(bad.value) == f"{path}:1: rating {rating!r} is not a finite number"
    rows, report = read_interactions(path)
    assert [r.item_id for r in rows] == ["i3"]
    assert [s["reason"] for s in report.skipped] == [f"rating {rating!r} is not a finite number",
                                                     "rating nan is not a finite number"]


def test_a_file_with_nothing_usable_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.tsv"
    path.write_text("user_id\titem_id\n\tx\n")
    with pytest.raises(BadInput, match="no usable interactions"):
        read_interactions(path)


def test_timestamps() -> None:
    assert parse_timestamp("874965478") == 874965478
    assert parse_timestamp(1.5) == 1
    assert parse_timestamp("1970-01-01T00:01:00") == 60
    with pytest.raises(ValueError):
        parse_timestamp("soon")
    for unit_mistake in (1_700_000_000_000, "1700000000000", -1, "0001-01-05T00:00:00Z"):
        with pytest.raises(ValueError, match="outside 1970-2100"):
            parse_timestamp(unit_mistake)


def test_mind_behaviors_and_news(tmp_path: Path) -> None:
    beh = tmp_path / "behaviors.tsv"
    beh.write_text("1\tU1\t11/12/2019 2:14:46 PM\tN1 N2\tN3-1 N4-0\n"
                   "2\tU1\t11/12/2019 3:00:00 PM\tN1 N2\tN5-0 N6-1\n"
                   "3\tU2\tbad date\t\tN3-1\n")
    from data_connectors.base import ReadReport

    report = ReadReport()
    events = list(iter_mind_behaviors(beh, report=report))
    assert [e.item_id for e in events] == ["N1", "N2", "N3", "N6"]  # history once, then clicks
    assert events[0].timestamp < events[1].timestamp < events[2].timestamp
    assert report.skipped[0]["line"] == 3
    rows, _ = read_interactions(beh)  # the generic reader recognises the MIND format
    assert [r.item_id for r in rows] == ["N1", "N2", "N3", "N6"]
    news = tmp_path / "news.tsv"
    news.write_text("N1\tnews\tpolitics\tA title\tAn abstract\turl\t[]\t[]\nbroken\n")
    items = list(iter_mind_news(news))
    assert items[0].item_id == "N1" and items[0].categories == ("news", "politics")
    assert "A title" in items[0].content
    items2, rep2 = read_items(news)
    assert len(items2) == 1 and rep2.skipped[0]["line"] == 2


def test_movielens_items_and_jsonl_catalogue(tmp_path: Path) -> None:
    ml = tmp_path / "items.psv"
    ml.write_text("1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
    items, _ = read_items(ml)
    assert items[0].title == "Toy Story (1995)"
    assert items[0].categories == ("Animation", "Children's", "Comedy")
    cat = tmp_path / "items.jsonl"
    cat.write_text('{"item_id": "a", "title": "T", "categories": "x|y"}\n{"title": "no id"}\n')
    items, report = read_items(cat)
    assert items[0].categories == ("x", "y") and report.skipped[0]["line"] == 2
    cat.write_text('{"item_id": 1.0, "title": "float"}\n{"item_id": [1], "title": "list"}\n{"id": 2, "title": "int"}\n')
    items, report = read_items(cat)  # the ids the interactions read: 1.0 is item 1
    assert [i.item_id for i in items] == ["1", "2"]
    assert report.skipped == [{"line": 2, "reason": "item_id must be a string or a number, not a list"}]


@pytest.mark.parametrize(("name", "body"), [
    ("e.jsonl", '{"user_id": 7, "item_id": "a"}\n'),
    ("e.tsv", "user_id\titem_id\n7\ta\n"),
])
def test_utf8_bom_is_accepted(tmp_path: Path, name: str, body: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())  # saved on Windows
    rows, report = read_interactions(path)
    assert [(r.user_id, r.item_id) for r in rows] == [("7", "a")] and not report.skipped


def test_mind_behaviors_strict_mode_raises_with_file_and_line(tmp_path: Path) -> None:
    beh = tmp_path / "behaviors.tsv"
    beh.write_text("1\tU1\t11/12/2019 2:14:46 PM\tN1 N2\tN3-1 N4-0\n"
                   "2\tU2\tbad date\t\tN3-1\n")
    with pytest.raises(BadInput, match=r"behaviors\.tsv:2: time data"):
        read_interactions(beh, skip_bad=False)


def test_catalogue_ids_named_like_interaction_ids_and_nothing_usable(tmp_path: Path) -> None:
    cat = tmp_path / "movies.csv"
    cat.write_text("movie_id,title\n42,Answer\n")
    items, _ = read_items(cat)
    assert [(i.item_id, i.title) for i in items] == [("42", "Answer")]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(BadInput, match="no usable items"):
        read_items(empty)
    nameless = tmp_path / "nameless.jsonl"
    nameless.write_text('{"title": "no id"}\n')
    with pytest.raises(BadInput, match=r"no usable items.*line 1: missing item_id"):
        read_items(nameless)


def test_skip_bad_reads_on_past_a_row_with_an_extra_field_or_a_bad_byte(tmp_path: Path) -> None:
    """Regression (CLI QA): a TSV/CSV row with one field too many, or a byte that is not UTF-8,
    ended the read (the byte lost its whole decoding chunk, the rows before it too): every row
    after it was dropped as one "bad row". Each is one skipped row now; the rest is read."""
    for name, sep in (("r.tsv", "\t"), ("r.csv", ",")):
        path = tmp_path / name
        lines = ["user_id item_id rating timestamp", "1 10 4 100", "2 11 3 101 extra", "3 caf\xe9 5 102",
                 "4 13 2 103", "5 14 1 104"]
        path.write_bytes("".join(line.replace(" ", sep) + "\n" for line in lines).encode("latin-1"))
        rows, report = read_interactions(path)
        assert [r.user_id for r in rows] == ["1", "4", "5"], name
        assert [(s["line"], s["reason"].split(" (")[0]) for s in report.skipped] == [
            (3, "more fields than the header"), (4, "not UTF-8")], name
