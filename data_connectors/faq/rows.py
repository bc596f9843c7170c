"""JSONL / CSV / TSV knowledge bases (one entry per row)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_connectors.base import iter_rows
from data_connectors.faq.entry import FaqEntry, entry_from_row


def read_rows(path: Path) -> Iterator[tuple[int, FaqEntry]]:
    for line, row in iter_rows(path):
        yield line, entry_from_row(row, path, line)
