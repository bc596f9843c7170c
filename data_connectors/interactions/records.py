"""Interaction rows (explicit ratings and implicit events) from TSV, CSV and JSONL files.

Every reader returns the rows it could use plus a :class:`~data_connectors.base.ReadReport`
naming the lines it skipped and why, so one malformed line never sinks a whole file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data_connectors.base import (
    BadHeader,
    BadRow,
    ReadReport,
    check_file,
    detect_format,
    first_line,
    iter_jsonl_objects,
    iter_rows_or_bad,
)
from data_connectors.base import _tsv_fields as tsv_fields
from shared.errors import BadInput
from shared.text import is_blank

# column names, matched case-insensitively
USER_KEYS = ("user_id", "user", "userid", "uid")
ITEM_KEYS = ("item_id", "item", "itemid", "movie_id", "movieid", "news_id", "iid")  # movieId: MovieLens' CSVs
RATING_KEYS = ("rating", "score", "weight", "value")
TIME_KEYS = ("timestamp", "ts", "time", "event_time", "at")
KNOWN_KEYS = {*USER_KEYS, *ITEM_KEYS, *RATING_KEYS, *TIME_KEYS, "event", "type"}
HEADERLESS_COLUMNS = ("user_id", "item_id", "rating", "timestamp")  # MovieLens u.data's order


@dataclass(frozen=True)
class Interaction:
    """One user-item event; ``rating`` is 1.0 for implicit events (view, click)."""

    user_id: str
    item_id: str
    rating: float = 1.0
    timestamp: int = 0
    event: str = "rating"


def _first(row: dict[str, Any], keys: Iterable[str]) -> Any:
    """The first of ``keys`` with a value; a blank one counts as none (ids are stripped, so a blank
    id became "" and "" an item everyone was recommended; "\\u200b" alone stayed an invisible user)."""
    for key in keys:
        value = row.get(key)
        if value is not None and not is_blank(str(value)):
            return value
    return None


def id_text(value: Any, name: str = "id") -> str:
    """A user or item id as text: a JSON number the way its integer is written, so 1.0 (a float
    column written by pandas) is the item 1 and not another item "1.0", which a user holding 1
    was then recommended; a boolean, an object or a list is no id (they were stored as "True",
    "{'a': 1}")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = {bool: "a boolean", dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
        raise ValueError(f"{name} must be a string or a number, not {kind}")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"{name} {value!r} is not a whole number (write an id that is no integer as a string)")
        value = int(value)
    return str(value)


def rating_number(value: Any) -> float:
    """A rating as a float; ``true`` was read as 1 (a boolean is no rating, as it is no timestamp).
    ``"NaN"``, ``"inf"`` (or a JSON ``NaN``) is no rating either: a posted one passed here and was
    then refused as "must be <= 1000000", as no comparison holds for NaN."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a rating")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"rating {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"rating {value!r} is not a finite number")
    return number


MAX_RATING = 1e6  # |rating| above it is a unit or typing mistake (1e300 overflowed the fit); as over HTTP


def no_timestamp(value: Any) -> bool:
    """Whether a timestamp field says no time: absent, null, or a string of only spaces (or invisible
    characters), as a blank id is no id; an empty CSV cell is the same as no column."""
    return value is None or (isinstance(value, str) and is_blank(value))


LATEST_TIMESTAMP = 4_102_444_800  # 2100-01-01: past it a "timestamp" is a unit mistake (ms, ns)


def parse_timestamp(value: Any) -> int:
    """Unix seconds from an int/float, a numeric string or an ISO-8601 string (UTC if naive),
    between 1970 and 2100: outside that it is a mistake, and 1e20 would not even fit the database.

    None or a blank string is no time at all: 0, what a file's row without one gets (an empty cell
    and a missing column alike, see :func:`_first`); the HTTP API reads it as "now" instead, so it
    asks :func:`no_timestamp` first."""
    if no_timestamp(value):
        return 0
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"timestamp {value!r} is not finite")
        seconds = int(value)
    else:
        text = str(value).strip()
        try:
            seconds = int(float(text))
        except ValueError:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            seconds = int(dt.timestamp())
    if not 0 <= seconds < LATEST_TIMESTAMP:
        raise ValueError(f"timestamp {value!r} is outside 1970-2100 (Unix seconds expected)")
    return seconds


def parse_interaction(row: dict[str, Any]) -> Interaction:
    """Validate one row; raises ``ValueError`` with the reason."""
    row = {str(k).strip().lower(): v for k, v in row.items()}
    user = _first(row, USER_KEYS)
    item = _first(row, ITEM_KEYS)
    if user is None:
        raise ValueError("missing user_id")
    if item is None:
        raise ValueError("missing item_id")
    raw_rating = _first(row, RATING_KEYS)
    rating = 1.0 if raw_rating is None else rating_number(raw_rating)  # a number, and finite
    if not -MAX_RATING <= rating <= MAX_RATING:
        raise ValueError(f"rating {raw_rating!r} is outside -{MAX_RATING:g}..{MAX_RATING:g}")
    try:
        ts = parse_timestamp(_first(row, TIME_KEYS))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad timestamp ({exc})") from None
    event = str(row.get("event") or row.get("type") or ("rating" if raw_rating is not None else "view"))
    return Interaction(id_text(user, "user_id").strip(), id_text(item, "item_id").strip(), rating, ts, event)


def iter_interactions(path: str | Path, fmt: str | None = None, *, skip_bad: bool = True,
                      report: ReadReport | None = None) -> Iterator[Interaction]:
    """Yield interactions; bad rows are recorded in ``report`` (or raised without ``skip_bad``).

    An empty file (or one of blank lines only) is a :class:`BadInput` saying so, and a CSV/TSV header
    naming a column read here twice (``user_id`` twice, or as ``user_id`` and ``User_ID``: names match
    case-insensitively) a :class:`BadHeader`, ``skip_bad`` or not: the row kept the last of them and
    fitted on it silently; a JSON object naming one twice is a bad row, for the same reason. A repeated
    column never read (see :data:`KNOWN_KEYS`) is no error, see
    :func:`~data_connectors.base.repeated_column`; nor are two aliases of one column (``item_id`` and
    ``item``, an id and a title): the first of ``ITEM_KEYS`` with a value is read.
    """
    report = report if report is not None else ReadReport()
    _refuse_empty(path)
    fmt = fmt or detect_format(path)
    # a CSV/TSV row with a bad byte or one field too many is skipped like a broken JSON line: the
    # reader read on (iter_rows stopped there, and every row after it was lost to one "bad row")
    rows = iter_jsonl_objects(path, column=_read_column) if fmt == "jsonl" else iter_rows_or_bad(
        path, fmt, _headerless_columns(path, fmt), column=_read_column)
    while True:
        try:
            line, row = next(rows)
        except StopIteration:
            return
        except BadHeader:  # no row can be read by this header: an error, skip_bad or not
            raise
        except BadRow as err:
            # a structural error (a header or UTF-16 file it cannot read, a quote never closed, broken
            # CSV) ends the file: nothing after it is trusted
            if not skip_bad:
                raise
            report.skip(err)
            return
        if isinstance(row, BadRow):  # one broken line (or CSV record): skip it, read on
            if not skip_bad:
                raise row
            report.skip(row)
            continue
        try:
            inter = parse_interaction(row)
        except (TypeError, ValueError) as exc:
            err = BadRow(path, line, str(exc))
            if not skip_bad:
                raise err from None
            report.skip(err)
            continue
        report.rows += 1
        yield inter


def _read_column(name: str) -> str | None:
    """The column a header's name is read as (names match case-insensitively), None for one never read."""
    key = name.strip().lower()
    return key if key in KNOWN_KEYS else None


def _refuse_empty(path: str | Path) -> None:
    """A :class:`BadInput` for a file without a non-blank line: it was "read as a header, but it names
    none of the columns" (CSV/TSV) or "no usable interactions" with no word of the file being empty."""
    if first_line(path, skip_blank=True).strip():
        return
    what = "is empty" if check_file(path).stat().st_size == 0 else "holds only blank lines"
    raise BadInput(f"{path}: the file {what}; expected interactions, one a line: "
                   f"{', '.join(HEADERLESS_COLUMNS[:2])}[, {', '.join(HEADERLESS_COLUMNS[2:])}]")


def _first_cells(path: str | Path, fmt: str) -> list[str]:
    """The first non-blank line's cells as the reader will split them (a CSV writer's quotes taken
    off: a quoted ``"user_id","item_id"`` header was read as no header, and as the file's first row)."""
    line = first_line(path, skip_blank=True)
    try:
        cells = tsv_fields(line) if fmt == "tsv" else next(csv.reader([line]), [""])
    except csv.Error:  # the reader proper names it
        cells = line.split(",")
    return [c.strip() for c in cells]


def _headerless_columns(path: str | Path, fmt: str) -> tuple[str, ...] | None:
    """The column names of a CSV/TSV whose first line is data, not a header (MovieLens'
    ``u.data``: user, item, rating, timestamp): 2-4 cells, none naming a known column, that
    :func:`_read_as_data`. None when it has a header; a first line that is neither is an error
    (each row was "missing user_id", from line 2 on) saying which: too many columns for data, a
    single column (no separator), or 2-4 cells that are no data and name no column."""
    cells = _first_cells(path, fmt)
    if any(c.lower() in KNOWN_KEYS for c in cells):
        return None
    n, most = len(cells), len(HEADERLESS_COLUMNS)
    if 2 <= n <= most and _read_as_data(cells):
        return HEADERLESS_COLUMNS[:n]
    columns = ", ".join(HEADERLESS_COLUMNS)
    if n > most:
        reason = (f"the first line has {n} columns, too many for a file without a header (2-{most}: {columns} "
                  f"in that order), and as a header it names none of the columns ({columns} or their aliases)")
    elif n < 2:
        sep = "tab" if fmt == "tsv" else "comma"
        reason = (f"the first line is a single column (no {sep} in it): a header names the columns ({columns} "
                  f"or their aliases), a file without a header has 2-{most} columns in that order")
    else:
        reason = (f"read as a header, but it names none of the columns ({columns} or their aliases); "
                  f"a file without a header has 2-{most} columns in that order")
    raise BadRow(path, 1, reason)


def _read_as_data(cells: list[str]) -> bool:
    """Whether a first line's rating cell is a number and its timestamp cell a time (Unix seconds or
    ISO 8601, which a header's column reads too), where present; blank is no value, as in any row."""
    try:
        if len(cells) > 2 and not is_blank(cells[2]):
            float(cells[2])
        if len(cells) > 3:
            parse_timestamp(cells[3])
    except ValueError:
        return False
    return True


def _looks_like_mind(path: str | Path) -> bool:
    """A MIND ``behaviors.tsv``: no header, 5 tab-separated fields, impressions like ``N1-0``."""
    cols = first_line(path, skip_blank=True).split("\t")
    return len(cols) == 5 and "/" in cols[2] and all("-" in t for t in cols[4].split()[:3])


def read_interactions(path: str | Path, fmt: str | None = None, *,
                      skip_bad: bool = True) -> tuple[list[Interaction], ReadReport]:
    """All usable interactions of a file plus the report of skipped lines.

    ``fmt``: jsonl, csv, tsv or mind (MIND ``behaviors.tsv``); by default from the suffix
    and, for MIND, the first line.
    """
    report = ReadReport()
    if fmt == "mind" or (fmt is None and _looks_like_mind(path)):
        from data_connectors.interactions.msnews_clicks import iter_mind_behaviors

        rows = list(iter_mind_behaviors(path, report=report, skip_bad=skip_bad))
    else:
        rows = list(iter_interactions(path, fmt, skip_bad=skip_bad, report=report))
    if not rows:
        detail = f" ({len(report.skipped)} bad rows, first: line {report.skipped[0]['line']}: " \
                 f"{report.skipped[0]['reason']})" if report.skipped else ""
        raise BadInput(f"{path}: no usable interactions; expected columns "
                       f"user_id, item_id[, rating, timestamp]{detail}")
    return rows, report


def format_skips(report: ReadReport, path: str | Path, limit: int = 5) -> list[str]:
    """Human lines for the skipped rows (first ``limit``), e.g. for stderr."""
    lines = [f"{path}:{s['line']}: skipped: {s['reason']}" for s in report.skipped[:limit]]
    if len(report.skipped) > limit:
        lines.append(f"{path}: ... {len(report.skipped) - limit} more bad rows skipped")
    return lines
