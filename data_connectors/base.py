"""Row readers shared by every connector: JSONL, CSV and TSV with line numbers.

Readers yield ``(line_number, dict)``; a bad row raises :class:`BadRow` naming the file
and line, which callers turn into an error or, with ``skip_bad``, a counted skip.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import BadInput


class BadRow(BadInput):
    """A row that cannot be used; the message names file and line."""

    code = "bad_row"

    def __init__(self, path: str | Path, line: int, reason: str):
        super().__init__(f"{path}:{line}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


class BadHeader(BadRow):
    """A header line no row can be read by (a column the reader uses named twice): it ends the
    file, ``--skip-bad`` or not, since skipping it would skip every row under it."""


# what a header's name reads as for the caller (e.g. its lower case), None for a column it never reads
ColumnKey = Callable[[str], str | None]


def every_column(name: str) -> str | None:
    """The :data:`ColumnKey` of a caller that keeps whole rows (``predict`` and ``kb ask`` echo them,
    a knowledge base keeps extra fields): each named column is read; blank names (trailing
    separators) are none."""
    return name or None


def only_columns(*names: str) -> ColumnKey:
    """The :data:`ColumnKey` of a caller that reads just ``names`` (names match exactly)."""
    wanted = frozenset(names)
    return lambda name: name if name in wanted else None


def _first_repeat(names: Sequence[str], column: ColumnKey) -> tuple[int, str, int, str] | None:
    """``(first place, first name, place, name)`` of the first name read as one seen before, else None."""
    seen: dict[str, tuple[int, str]] = {}
    for n, name in enumerate(names, start=1):
        key = column(name)
        if key is None:
            continue
        if key in seen:
            return (*seen[key], n, name)
        seen[key] = (n, name)
    return None


def repeated_column(path: str | Path, line: int, header: Sequence[str], column: ColumnKey) -> BadHeader | None:
    """The error for a ``header`` that names a column the caller reads twice, else None.

    A row is read into a dict, which keeps the last of two same-named fields: ``text,label,label``
    trained on the third column's labels and ``user_id`` twice fitted on the second one's ids,
    silently, whichever the file meant. Only a column the caller reads (``column`` gives its key,
    e.g. its name in lower case where names match case-insensitively) is refused: a repeated
    column it never reads (two ``notes`` columns of an export, the blank names of trailing
    separators) changes nothing read, and refusing it would fail a file that reads correctly.
    """
    repeat = _first_repeat(header, column)
    if repeat is None:
        return None
    first_n, first_name, n, name = repeat
    where = (f"columns {first_n} and {n}" if name == first_name
             else f"as {first_name!r} in column {first_n} and {name!r} in column {n}")
    return BadHeader(path, line, f"the header names the column {first_name!r} twice ({where}); "
                                 "rename or drop one: which of them holds the data is ambiguous")


class RepeatedKey(ValueError):
    """A JSON object naming a key the caller reads twice (see :func:`json_line`)."""


@dataclass
class ReadReport:
    """What a read kept and skipped (with reasons), for ingest reports."""

    rows: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, err: BadRow) -> None:
        self.skipped.append({"line": err.line, "reason": err.reason})

    def summary(self, path: str | Path, limit: int = 3) -> str | None:
        """One stderr line: how many bad rows of ``path`` were skipped and the first reasons;
        None when none were (``--skip-bad`` must never drop rows silently)."""
        if not self.skipped:
            return None
        first = "; ".join(f"line {s['line']}: {s['reason']}" for s in self.skipped[:limit])
        more = f"; ... {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        n = len(self.skipped)
        return f"{path}: skipped {n} bad row{'s' if n != 1 else ''} ({first}{more})"


def file_sha256(path: str | Path) -> str:
    """Content hash of a data file, recorded for lineage."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_file(path: str | Path) -> Path:
    """``path`` as a Path when it is a readable file; else BadInput saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a file")
    if not path.is_file():
        if path.exists():  # /dev/stdin on a pipe, <(...), a FIFO: "no such file" was false
            raise BadInput(f"{path}: not a regular file (a pipe or device; the file is read more than once): "
                           "save it to a file first")
        raise BadInput(f"{path}: no such file")
    return path


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # what Windows "Unicode" and PowerShell's ``>`` write


def refuse_utf16(path: str | Path, head: bytes) -> None:
    """A :class:`BadRow` at line 1 when the file opening with ``head`` is UTF-16: read as UTF-8,
    each of its lines was "not UTF-8" or "invalid JSON", which hid the one fix."""
    if head.startswith(UTF16_BOMS):
        raise BadRow(path, 1, "the file is UTF-16 (it opens with a UTF-16 byte-order mark); save it as UTF-8")


def decode_line(path: str | Path, line_no: int, raw: bytes) -> str:
    """One line read as bytes, decoded (a BOM opens line 1, as files saved on Windows do); a
    :class:`BadRow` naming the line and the bad byte's place in it when it is not UTF-8."""
    if line_no == 1:
        refuse_utf16(path, raw)
    try:
        return raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
    except UnicodeDecodeError as err:
        raise BadRow(path, line_no, f"not UTF-8 ({err.reason} at byte {err.start + 1} of the line)") from None


def not_utf8(path: str | Path, exc: UnicodeDecodeError) -> BadRow:
    """The error for a file that failed to decode, naming the line that holds the bad byte.

    A text reader decodes whole chunks, so the line it had reached says nothing about where
    the byte is; the file is read again, line by line, to find it (only on this error path).
    """
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                decode_line(path, line_no, raw)
            except BadRow as err:
                return err
    return BadRow(path, 1, f"not UTF-8 ({exc.reason})")  # e.g. a sequence cut at the end of the file


class _KeysRepeated(dict):  # type: ignore[type-arg]
    """A JSON object one of whose keys repeats, as json builds it (the last value), with its keys in order."""

    order: tuple[str, ...] = ()


def _keep_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object as json builds it; one whose keys repeat (rarely) carries them in order."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    repeated = _KeysRepeated(obj)
    repeated.order = tuple(k for k, _ in pairs)
    return repeated


# one decoder: json.loads with a hook built one per call took 2.5x the time of a row
_DECODER = json.JSONDecoder(object_pairs_hook=_keep_repeats)


def json_line(line: str, column: ColumnKey = every_column) -> Any:
    """One JSONL line parsed; a ``ValueError`` saying why when it is not JSON. Nesting deeper than
    the parser's stack (``[[[[...``) raised a RecursionError, which no reader caught: "line N:
    invalid JSON" like any other broken line, not a crash naming no line.

    A top-level object naming a key the caller reads twice (``column``, as for a CSV/TSV header:
    ``{"text": "a", "text": "b"}``, or ``user_id`` and ``USER_ID`` where names match
    case-insensitively) raises :class:`RepeatedKey`: json keeps the last value, silently, as a
    dict row kept a header's last same-named column. Keys repeated inside nested values are
    left as json reads them: no reader looks into those by name."""
    if line.startswith("\ufeff"):  # as json.loads says it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", line, 0)
    try:
        value = _DECODER.decode(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(value, dict):
        return value
    keys = value.order if isinstance(value, _KeysRepeated) else None
    if keys is None:
        if column is every_column:  # distinct keys are distinct columns
            return value
        keys = tuple(value)
    repeat = _repeated_key(keys, column)
    if repeat is not None:
        first_n, first_name, n, name = repeat
        where = (f"keys {first_n} and {n}" if name == first_name
                 else f"as {first_name!r} in key {first_n} and {name!r} in key {n}")
        raise RepeatedKey(f"the object names the key {first_name!r} twice ({where}); drop one: "
                          "which of them holds the data is ambiguous")
    return value


@functools.lru_cache(maxsize=1024)
def _repeated_key(keys: tuple[str, ...], column: ColumnKey) -> tuple[int, str, int, str] | None:
    """:func:`_first_repeat` of a row's keys, remembered: a file's rows mostly share one set of keys."""
    return _first_repeat(keys, column)


def json_row(path: str | Path, line_no: int, line: str, column: ColumnKey = every_column) -> dict[str, Any] | BadRow:
    """One JSONL line as a row object, or the :class:`BadRow` saying why it is none."""
    try:
        row = json_line(line, column)
    except RepeatedKey as exc:
        return BadRow(path, line_no, str(exc))
    except ValueError as exc:
        return BadRow(path, line_no, f"invalid JSON ({exc})")
    if not isinstance(row, dict):
        return BadRow(path, line_no, "expected a JSON object")
    return row


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of a plain text file, line ending dropped. Read as every row reader
    reads: a BOM is no part of the first line, and a byte that is not UTF-8 is a
    :class:`BadRow` naming its line (not a codec message with a byte offset in the file)."""
    path = check_file(path)
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            yield line_no, decode_line(path, line_no, raw).rstrip("\r\n")


def _open_text(path: Path) -> io.TextIOWrapper:
    # utf-8-sig: files saved on Windows start with a BOM, which plain utf-8 hands to json/csv
    return open(check_file(path), encoding="utf-8-sig", errors="strict", newline="")


def first_line(path: str | Path, skip_blank: bool = False) -> str:
    """The file's first line (or first non-blank one), without its line ending, for sniffing a
    format; "" when it cannot be read (the reader proper then names the problem). A path that is
    no regular file is :func:`check_file`'s error first: opening a FIFO no one writes to waited forever."""
    try:
        with open(check_file(path), encoding="utf-8-sig", errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\r\n")
                if line.strip() or not skip_blank:
                    return line
    except OSError:
        pass
    return ""


SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
                  ".tsv": "tsv", ".tab": "tsv"}


def detect_format(path: str | Path) -> str:
    """From the suffix; a file named otherwise (MovieLens' ``u.data``) by its first line:
    JSON when it opens with ``{``, else TSV with a tab in it, CSV with a comma. Any other first line
    is none of them (MovieLens-1M's ``::``, a semicolon CSV): a BadRow saying so, where reading it
    as JSONL had answered "invalid JSON (Extra data ...)"."""
    fmt = SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt:
        return fmt
    first = first_line(path, skip_blank=True).strip()
    if not first or first.startswith("{"):
        return "jsonl"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    if "\ufffd" in first:  # not text (a .gz, a spreadsheet): the reader names the undecodable byte
        return "jsonl"
    raise BadRow(path, 1, "not TSV, CSV or JSONL: the first line has no tab or comma and is no JSON object "
                          "(separate the columns with tabs, e.g. sed 's/::/\\t/g' for MovieLens-1M's ratings.dat)")


def iter_rows(path: str | Path, fmt: str | None = None, fieldnames: Sequence[str] | None = None, *,
              column: ColumnKey = every_column) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)`` from a JSONL, CSV or TSV file (format from the suffix);
    ``fieldnames`` names the columns of a CSV/TSV without a header line. The first bad row
    raises its :class:`BadRow` (:func:`iter_rows_or_bad` reads past it). ``column``: the columns
    the caller reads (by default every named one: the caller keeps whole rows), a CSV/TSV header
    naming one twice being a :class:`BadHeader` (:func:`repeated_column`) and a JSON object a
    bad row (:func:`json_line`)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt != "jsonl":
        for line_no, row in iter_rows_or_bad(path, fmt, fieldnames, column=column):
            if isinstance(row, BadRow):
                raise row
            yield line_no, row
        return
    fh = _open_text(path)
    try:
        mended = []
        for line_no, line in _lines(path, fh):
            if not line.strip():
                continue
            row = json_row(path, line_no, line, column)
            if isinstance(row, BadRow):
                raise row
            clean = without_lone_surrogates(row)
            if clean is not row:
                mended.append(line_no)
            yield line_no, clean
        _say_mended(path, mended)
    finally:
        fh.close()


def iter_rows_or_bad(path: str | Path, fmt: str | None = None, fieldnames: Sequence[str] | None = None, *,
                     column: ColumnKey = every_column) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    """:func:`iter_rows` for the readers that count and skip bad rows (``--skip-bad``): a bad row
    comes back as ``(line, BadRow)`` and reading goes on after it (JSONL rows come mended, as
    :func:`iter_jsonl_objects` with ``mend`` gives them).

    A CSV/TSV line is decoded on its own, so a byte that is not UTF-8 spoils its row (the CSV
    record holding that line) alone. Read through a text stream, the decoder failed on the whole
    chunk (8 KiB) around it and the reader stopped: with ``--skip-bad`` the rows before it in that
    chunk and every row after it were dropped, reported as "skipped 1 bad row"; so were all rows
    after a CSV/TSV row with more fields than the header. What the reader cannot read past is
    still raised: a header it cannot decode, a UTF-16 file, a quote never closed, a ``csv.Error``,
    a header naming twice a column the caller reads (``column``, see :func:`repeated_column`; a
    JSON object naming one twice is a bad row).
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        yield from iter_jsonl_objects(path, mend=True, column=column)
        return
    bad: dict[int, BadRow] = {}  # line -> its decoding error, filled as the lines are read
    lines = _decoded_lines(path, bad)
    if fmt == "tsv":
        yield from _tsv_rows(path, lines, bad, fieldnames, column)
        return
    for line_no, row in _csv_rows(path, (line for _, line in lines), bad, fieldnames, column):
        if not isinstance(row, BadRow) and None in row:
            row = BadRow(path, line_no, "more fields than the header")
        yield line_no, row


def _decoded_lines(path: Path, bad: dict[int, BadRow]) -> Iterator[tuple[int, str]]:
    """``(number, line)`` of a CSV/TSV file from 1, line endings kept (lines split as ``newline=""``
    splits them: at ``\n``, ``\r\n`` and a lone ``\r``). A line that is not UTF-8 comes with the
    bad bytes replaced and its :class:`BadRow` in ``bad``; a UTF-16 file is refused at line 1."""
    path = check_file(path)
    line_no = 0
    with open(path, "rb") as fh:
        for chunk in fh:
            for raw in chunk.splitlines(keepends=True):
                line_no += 1
                try:
                    yield line_no, decode_line(path, line_no, raw)
                except BadRow as err:
                    if line_no == 1 and raw.startswith(UTF16_BOMS):
                        raise
                    bad[line_no] = err
                    yield line_no, raw.decode("utf-8-sig" if line_no == 1 else "utf-8", "replace")


def _tsv_rows(path: Path, lines: Iterable[tuple[int, str]], bad: dict[int, BadRow],
              fieldnames: Sequence[str] | None, column: ColumnKey | None = None
              ) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    """Plain TSV (IANA text/tab-separated-values): a line is a row and quotes are text.

    Read as CSV, a text opening with an unclosed quote (a cut-off tweet) swallowed every line
    after it into one row, silently or with an error naming the last line. A field a CSV
    writer quoted whole (in quotes, inner quotes doubled, as pandas writes a text holding
    quotes or a tab) is unquoted. A bad row is yielded as its :class:`BadRow`; a header line
    that is not UTF-8 is raised (no row can be read without it).
    """
    header = list(fieldnames) if fieldnames else None
    for line_no, line in lines:
        if line_no in bad:
            if header is None:
                raise bad[line_no]
            yield line_no, bad[line_no]
            continue
        line = line.rstrip("\r\n")
        if not line.strip():  # blank, or only spaces and tabs: no row (as JSONL readers skip it)
            continue
        fields = _tsv_fields(line)
        if header is None:
            header = [name.strip() for name in fields]  # "id\t text": the column is "text"
            if column is not None and (err := repeated_column(path, line_no, header, column)) is not None:
                raise err
            continue
        if len(fields) > len(header):
            yield line_no, BadRow(path, line_no, "more fields than the header")
            continue
        yield line_no, dict(zip(header, fields + [None] * (len(header) - len(fields)), strict=True))


# csv refuses a field over 128 KiB by default, yet a valid file may quote a whole article or
# filing in one (a JSONL row has no such limit); raised once, for every CSV read (csv_rows)
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def csv_rows(path: str | Path, lines: Iterable[str], fieldnames: Sequence[str] | None = None,
             column: ColumnKey = every_column) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, row)`` of CSV text, as :class:`csv.DictReader` reads it (extra fields under the
    key None, missing ones None): the one CSV reader of the connectors.

    A line of only spaces or tabs is skipped as a blank line is (it was a row whose first
    field was the spaces). A :class:`csv.Error` is a :class:`BadRow` naming the line it is on:
    ``DictReader.line_num`` is only set once a row is read, so it named the line before.
    A quote never closed is one too, on the line it opens: the lenient reader otherwise took
    the rest of the file as that one field, silently. A header naming twice a column the caller
    reads (``column``) is a :class:`BadHeader` (:func:`repeated_column`).
    """
    yield from _csv_rows(path, lines, {}, fieldnames, column)  # type: ignore[misc]  # no bad lines: no BadRow


def _csv_rows(path: str | Path, lines: Iterable[str], bad: dict[int, BadRow],
              fieldnames: Sequence[str] | None = None, column: ColumnKey | None = None
              ) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    """:func:`csv_rows`, where ``bad`` maps lines that were not UTF-8 (filled as ``lines`` is read)
    to their :class:`BadRow`: a record holding one is yielded as that BadRow (raised for the header)."""
    tap = _Tap(lines)
    reader = csv.reader(tap)
    header = list(fieldnames) if fieldnames else None
    try:
        for record in reader:
            raw, tap.taken = tap.taken, []  # the reader reads no further than the record it returns
            first = reader.line_num - len(raw) + 1
            broken = next((bad[n] for n in range(first, reader.line_num + 1) if n in bad), None) if bad else None
            if broken is not None:
                if header is None:
                    raise broken
                yield reader.line_num, broken
                continue
            if tap.done and _runs_off_the_end(raw):
                raise BadRow(path, first, "unclosed quote: this field runs to the end of the file")
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if header is None:
                header = [name.strip() for name in record]  # "id, text" (a space after each comma): "text"
                if column is not None and (err := repeated_column(path, first, header, column)) is not None:
                    raise err
                continue
            row: dict[Any, Any] = dict(zip(header, record, strict=False))
            if len(record) > len(header):
                row[None] = record[len(header):]
            for name in header[len(record):]:
                row[name] = None
            yield reader.line_num, row
    except csv.Error as exc:
        raise BadRow(path, reader.line_num, f"malformed CSV ({exc})") from None


class _Tap:
    """Lines for :func:`csv.reader`, keeping those taken since the last record and whether it ran out."""

    def __init__(self, lines: Iterable[str]):
        self.lines, self.taken, self.done = iter(lines), [], False

    def __iter__(self) -> _Tap:
        return self

    def __next__(self) -> str:
        try:
            line = next(self.lines)
        except StopIteration:
            self.done = True
            raise
        self.taken.append(line)
        return line


def _runs_off_the_end(raw: list[str]) -> bool:
    """Whether the record of ``raw`` lines ended only because the file did (a quote left open)."""
    try:
        list(csv.reader(raw, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _lines(path: Path, fh: io.TextIOWrapper) -> Iterator[tuple[int, str]]:
    """``(number, line)`` from 1; bytes that are not UTF-8 name the file and line."""
    line_no = 0
    while True:
        try:
            line = fh.readline()
        except UnicodeDecodeError as exc:
            raise not_utf8(path, exc) from None
        if not line:
            return
        line_no += 1
        yield line_no, line


# a TSV field: quoted whole by a CSV writer (inner quotes doubled, tabs inside), else up to the next tab
_TSV_FIELD = re.compile(r'"((?:[^"]|"")*)"(?=\t|$)|([^\t]*)')


def _tsv_fields(line: str) -> list[str]:
    """The fields of one TSV line; a tab inside a whole-quoted field is the field's (csv.writer
    with a tab delimiter writes `"has\ttab"`: split at every tab, it was one field too many)."""
    fields, pos = [], 0
    while True:
        m = _TSV_FIELD.match(line, pos)
        assert m is not None  # the second alternative matches anywhere, if only the empty string
        quoted, plain = m.groups()
        fields.append(quoted.replace('""', '"') if quoted is not None else plain)
        if m.end() >= len(line):
            return fields
        pos = m.end() + 1  # past the tab


def _say_mended(path: Path, lines: list[int]) -> None:
    if lines:
        print(f"warning: {path}: {len(lines)} row(s) held lone UTF-16 surrogates (JSON \\ud800-\\udfff "
              f"escapes that are no character; first on line {lines[0]}): replaced with U+FFFD", file=sys.stderr)


def without_lone_surrogates(value: Any) -> Any:
    """``value`` (a row, a string, a list) with every lone UTF-16 surrogate replaced by U+FFFD;
    ``value`` itself when it holds none.

    JSON may escape half a surrogate pair (``"x\\ud800y"``); Python reads it into a string
    that is no Unicode text: tokenizers refused the whole file with a TypeError (``predict``
    after the model had loaded, ``kb build``), and no output row or database column can hold it. A
    complete pair, even as two separate escapes, stays the one character it encodes.
    """
    mended, changed = _mend(value)
    return mended if changed else value


def _mend(value: Any) -> tuple[Any, bool]:
    """(``value`` mended, whether anything in it changed)."""
    if isinstance(value, str):
        if value.isascii():
            return value, False
        try:
            value.encode("utf-8")
            return value, False
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), True
    if isinstance(value, dict):
        pairs = [(_mend(k), _mend(v)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in pairs}, any(ck or cv for (_, ck), (_, cv) in pairs)
    if isinstance(value, list):
        items = [_mend(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


def iter_jsonl_objects(path: str | Path, mend: bool = False, column: ColumnKey = every_column
                       ) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    """JSONL lines as ``(line, object)``, or ``(line, BadRow)`` for a line that is not one: the
    readers that count and skip bad rows (``--skip-bad``) read on after it.

    Decoded per line, strictly: a file that is not text (``ratings.tsv.gz``, read as JSONL by its
    first line) is "line 1: not UTF-8", as every reader says, not "invalid JSON" about a
    replacement character; and a bad byte is never read as U+FFFD. A lone surrogate escape
    (``"a\\ud800"``) crashed a recommender fit, and a training text's crashed the tokenizer after
    the transfer stage had run, naming no line: with ``mend`` (texts) the row comes back with
    U+FFFD in its place and one warning counts such rows, as :func:`iter_rows` does; without (ids,
    which mended could become another row's) the row is bad. An object naming a key the caller
    reads (``column``) twice is a bad row too (:func:`json_line`).
    """
    path = check_file(path)
    mended: list[int] = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = decode_line(path, n, raw)
            except BadRow as err:
                yield n, err
                continue
            if not line.strip():
                continue
            row = json_row(path, n, line, column)
            if isinstance(row, BadRow):
                yield n, row
                continue
            clean = without_lone_surrogates(row)
            if clean is row:
                yield n, row
            elif mend:
                mended.append(n)
                yield n, clean
            else:
                yield n, BadRow(path, n, "holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape, no character)")
    _say_mended(path, mended)


def missing_field(row: dict[str, Any], field: str, option: str) -> str:
    """The message for a row without ``field``, naming the column it most likely meant: a header
    of ``Text,Label`` said only "use --text-field", leaving the user to guess it is case-sensitive."""
    alike = [k for k in row if isinstance(k, str) and k.strip().casefold() == field.casefold()]
    hint = f"this row has {alike[0]!r}: pass {option} {alike[0]}" if alike else f"use {option} to map another column"
    return f"missing field {field!r} ({hint})"


def text_field_of(path: str | Path, line: int, row: dict[str, Any], text_field: str) -> str:
    """The string in ``row[text_field]``; else a :class:`BadRow` saying which way it is missing.

    A CSV/TSV row short of the column reads it as None: a TSV text holding a line break (a TSV
    line is one row) showed up as "text ... is not a string (NoneType)" on the line after it.
    """
    if text_field not in row:
        raise BadRow(path, line, missing_field(row, text_field, "--text-field"))
    text = row[text_field]
    if text is None:
        raise BadRow(path, line, f"no value in field {text_field!r} (null, or fewer fields than the header; "
                                 "in a TSV a line is one row)")
    if not isinstance(text, str):
        raise BadRow(path, line, f"text in field {text_field!r} is not a string ({type(text).__name__})")
    return text


def empty_text(path: str | Path, line: int, text_field: str) -> BadRow:
    """The bad row of a text that is empty or only white space: nothing to train on or to score
    (``predict`` gave it a label, of no text, in among the real rows' labels)."""
    return BadRow(path, line, f"empty text in field {text_field!r}")


def read_texts(path: str | Path, text_field: str = "text") -> list[str]:
    """Unlabelled text for MLM: a ``.txt`` file (a text a line) or JSONL/CSV/TSV rows' ``text_field``."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        texts = [line.strip() for _, line in iter_lines(path) if line.strip()]
    else:
        texts = []
        for line, row in iter_rows(path, column=only_columns(text_field)):
            text = row.get(text_field)
            if not isinstance(text, str):
                raise BadRow(path, line, f"no text in field {text_field!r}")
            if text.strip():
                texts.append(text.strip())
    if not texts:
        raise BadInput(f"{path}: no text for domain adaptation")
    return texts
