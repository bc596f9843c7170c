"""Hypothesis fuzzing of every data connector: hostile files give rows or a FinPulseError.

Any other exception (UnicodeDecodeError, csv.Error, KeyError, XML parser errors...)
would surface as a 500 in a service or a traceback in the CLI, so it fails here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hostile_inputs import any_bytes, csv_bytes, jsonl_bytes, markup_bytes, xml_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import FinPulseError

FULL = os.environ.get("FINPULSE_RELIABILITY_FULL") == "1"
FUZZ = settings(max_examples=300 if FULL else 30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def consume(result: Any) -> int:
    """Drain whatever a connector returns (iterator, list, report, tuple) and count rows."""
    if isinstance(result, tuple):
        return sum(consume(r) for r in result)
    if isinstance(result, dict | str | bytes) or result is None:
        return 1
    if isinstance(result, Iterable):
        return sum(1 for _ in result)
    return 1


def feed(reader: Callable[[Path], Any], scratch: Path, name: str, data: bytes) -> int:
    """Write ``data`` as ``name`` and read it; only FinPulseError may escape."""
    path = scratch / name
    path.write_bytes(data)
    try:
        return consume(reader(path))
    except FinPulseError as exc:
        assert exc.message, "an error must say what is wrong"
        assert 400 <= exc.status < 500, f"bad input must be a 4xx-class error, got {exc.status}"
        return 0


def connector(module: str, attr: str) -> Callable[..., Any]:
    """The connector function, or a skip naming what has not landed yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        pytest.skip(f"{module} not present yet ({exc})")
    if not hasattr(mod, attr):
        pytest.skip(f"{module}.{attr} not present yet")
    return getattr(mod, attr)


# -- data_connectors.base ------------------------------------------------------
@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
@FUZZ
@given(data=any_bytes)
def test_iter_rows_raw_bytes(scratch: Path, tally, suffix: str, data: bytes) -> None:
    from data_connectors.base import iter_rows

    tally(__name__, "inputs")
    feed(iter_rows, scratch, "raw" + suffix, data)


@FUZZ
@given(data=jsonl_bytes(("text", "label", "id")))
def test_iter_rows_jsonl(scratch: Path, tally, data: bytes) -> None:
    from data_connectors.base import iter_rows

    tally(__name__, "inputs")
    feed(iter_rows, scratch, "rows.jsonl", data)


@pytest.mark.parametrize(("suffix", "delim"), [(".csv", ","), (".tsv", "\t")])
@FUZZ
@given(data=st.data())
def test_iter_rows_csv(scratch: Path, tally, suffix: str, delim: str, data: st.DataObject) -> None:
    from data_connectors.base import iter_rows

    tally(__name__, "inputs")
    feed(iter_rows, scratch, "rows" + suffix, data.draw(csv_bytes(("text", "label"), delim)))


def test_iter_rows_known_hostile_cases(scratch: Path) -> None:
    """Hand-picked regressions: BOM, NUL, bad UTF-8, huge field, ragged row."""
    from data_connectors.base import BadRow, iter_rows

    cases = {
        "bom.jsonl": (b'\xef\xbb\xbf{"text": "a"}\n', None),
        "nul.csv": (b"text,label\na\x00b,positive\n", None),
        "latin1.jsonl": (b'{"text": "caf\xe9"}\n', BadRow),
        "huge.csv": (b"text\n" + b'"' + b"x" * 200_000 + b'"\n', None),
        "ragged.csv": (b"text,label\na,b,c\n", BadRow),
        "array.jsonl": (b"[1, 2]\n", BadRow),
    }
    for name, (data, expected) in cases.items():
        (scratch / name).write_bytes(data)
        try:
            list(iter_rows(scratch / name))
        except FinPulseError as exc:
            assert expected is None or isinstance(exc, expected), (name, exc)
        else:
            assert expected is None, f"{name}: expected {expected.__name__}"


# -- data_connectors.labelled ----------------------------------------------------
@pytest.mark.parametrize("skip_bad", [False, True])
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
@FUZZ
@given(data=st.data())
def test_load_labelled(scratch: Path, tally, suffix: str, skip_bad: bool, data: st.DataObject) -> None:
    load = connector("data_connectors.labelled", "load_labelled")
    fields = ("text", "label", "agreement")
    raw = data.draw(st.one_of(any_bytes, jsonl_bytes(fields) if suffix == ".jsonl" else csv_bytes(fields)))
    tally(__name__, "inputs")
    feed(lambda p: load(p, skip_bad=skip_bad).examples, scratch, "labelled" + suffix, raw)


# -- data_connectors.faq -----------------------------------------------------------
FAQ_FIELDS = ("id", "question", "questions", "answer", "category")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv", ".md", ".html"])
@FUZZ
@given(data=st.data())
def test_load_faq(scratch: Path, tally, suffix: str, data: st.DataObject) -> None:
    load = connector("data_connectors.faq", "load_faq")
    structured = {".jsonl": jsonl_bytes(FAQ_FIELDS), ".csv": csv_bytes(FAQ_FIELDS),
                  ".tsv": csv_bytes(FAQ_FIELDS, "\t"), ".md": markup_bytes(),
                  ".html": markup_bytes()}[suffix]
    raw = data.draw(st.one_of(any_bytes, structured))
    tally(__name__, "inputs")
    feed(load, scratch, "kb" + suffix, raw)


# -- data_connectors.news ------------------------------------------------------------
NEWS_FIELDS = ("id", "source", "published_at", "title", "body", "url", "tickers")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".xml", ".atom", ".txt"])
@FUZZ
@given(data=st.data())
def test_news_sources(scratch: Path, tally, suffix: str, data: st.DataObject) -> None:
    open_source = connector("data_connectors.news.base", "open_source")
    structured = {".jsonl": jsonl_bytes(NEWS_FIELDS), ".csv": csv_bytes(NEWS_FIELDS),
                  ".xml": xml_bytes(), ".atom": xml_bytes(), ".txt": xml_bytes()}[suffix]
    raw = data.draw(st.one_of(any_bytes, structured))
    tally(__name__, "inputs")

    def read(path: Path) -> Any:
        batch = open_source(path).read()
        for row in batch.rows:  # what the ingest normaliser receives
            assert isinstance(row, dict)
        return batch.rows

    feed(read, scratch, "news" + suffix, raw)


# -- data_connectors.interactions ------------------------------------------------------
INTERACTION_FIELDS = ("user_id", "item_id", "rating", "timestamp")


@pytest.mark.parametrize(("suffix", "strict"), [(".tsv", False), (".csv", True), (".jsonl", False)])
@FUZZ
@given(data=st.data())
def test_read_interactions(scratch: Path, tally, suffix: str, strict: bool, data: st.DataObject) -> None:
    read = connector("data_connectors.interactions", "read_interactions")
    structured = {".tsv": csv_bytes(INTERACTION_FIELDS, "\t"), ".csv": csv_bytes(INTERACTION_FIELDS),
                  ".jsonl": jsonl_bytes(INTERACTION_FIELDS)}[suffix]
    raw = data.draw(st.one_of(any_bytes, structured))
    tally(__name__, "inputs")
    feed(lambda p: read(p, skip_bad=not strict)[0], scratch, "interactions" + suffix, raw)


@pytest.mark.parametrize("reader", ["read_items", "iter_mind_behaviors", "iter_mind_news"])
@FUZZ
@given(data=st.data())
def test_item_and_mind_readers(scratch: Path, tally, reader: str, data: st.DataObject) -> None:
    fn = connector("data_connectors.interactions", reader)
    raw = data.draw(st.one_of(any_bytes, csv_bytes(("id", "title", "category", "text"), "\t"),
                              csv_bytes(("item_id", "title", "genres"), "|")))
    tally(__name__, "inputs")
    feed(fn, scratch, "items.tsv", raw)
