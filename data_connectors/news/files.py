"""JSONL and CSV news files; every line is judged alone (bad JSON or bytes reject one row)."""

from __future__ import annotations

import io
from pathlib import Path

from data_connectors.base import BadRow, RepeatedKey, csv_rows, json_line, refuse_utf16
from data_connectors.news.base import NewsBatch, NewsSource
from shared.errors import BadInput


def _read_text(path: str) -> str:
    """The file as text; invalid UTF-8 becomes surrogates the normaliser rejects per row.
    A leading BOM (files saved on Windows) is dropped: json and csv would choke on it. A
    UTF-16 file is an error at line 1 (each of its lines was "invalid JSON" or "not UTF-8")."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    refuse_utf16(path, data[:2])
    return data.decode("utf-8-sig", errors="surrogateescape")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


class JsonlSource(NewsSource):
    """One JSON object per line."""

    def read(self) -> NewsBatch:
        batch = NewsBatch()
        for line_no, line in enumerate(_read_text(self.target).splitlines(), start=1):
            if not line.strip():
                continue
            if _has_surrogates(line):
                batch.rejected.append({"line": line_no, "reason": "not valid UTF-8"})
                continue
            try:
                row = json_line(line)  # every key is kept, so none may be named twice
            except RepeatedKey as exc:
                batch.rejected.append({"line": line_no, "reason": str(exc)})
                continue
            except ValueError as exc:
                batch.rejected.append({"line": line_no, "reason": f"invalid JSON ({getattr(exc, 'msg', exc)})"})
                continue
            if not isinstance(row, dict):
                batch.rejected.append({"line": line_no, "reason": "expected a JSON object"})
                continue
            if self.source and not row.get("source"):
                row["source"] = self.source
            row["_line"] = line_no
            batch.rows.append(row)
        return batch


class CsvSource(NewsSource):
    """A header row naming ``id, source, published_at, title, body, url, tickers`` (any order)."""

    def read(self) -> NewsBatch:
        batch = NewsBatch()
        rows = csv_rows(self.target, io.StringIO(_read_text(self.target), newline=""))
        try:
            for line, row in rows:
                if None in row:
                    batch.rejected.append({"line": line, "reason": "more fields than the header"})
                    continue
                if any(isinstance(v, str) and _has_surrogates(v) for v in row.values()):
                    batch.rejected.append({"line": line, "reason": "not valid UTF-8"})
                    continue
                clean = {k.strip(): v for k, v in row.items() if k and v not in (None, "")}
                if self.source and not clean.get("source"):
                    clean["source"] = self.source
                clean["_line"] = line
                batch.rows.append(clean)
        except BadRow as exc:  # the rest of the file cannot be read: storing the rows before it hid that
            raise BadInput(f"{exc}; nothing was ingested") from None
        return batch
