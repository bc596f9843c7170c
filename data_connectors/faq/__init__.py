"""FAQ knowledge-base loaders: JSONL, CSV/TSV, Markdown and HTML into :class:`FaqEntry` lists.

Every loader yields ``(line, entry)``; :func:`load_faq` picks one by suffix, rejects
duplicate ids with the file and line of both rows, and merges rows that repeat a
derived id (the same question and answer twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from data_connectors.base import BadRow, check_file
from data_connectors.faq.entry import FaqEntry, derived_id, entry_from_row
from data_connectors.faq.html import read_html
from data_connectors.faq.markdown import read_markdown
from data_connectors.faq.rows import read_rows
from shared.errors import BadInput

__all__ = ["FaqEntry", "entry_from_row", "derived_id", "load_faq", "LOADERS"]

Loader = Callable[[Path], Iterator[tuple[int, FaqEntry]]]
LOADERS: dict[str, Loader] = {
    ".jsonl": read_rows, ".ndjson": read_rows, ".json": read_rows, ".csv": read_rows,
    ".tsv": read_rows, ".md": read_markdown, ".markdown": read_markdown,
    ".html": read_html, ".htm": read_html,
}


def load_faq(path: str | Path) -> list[FaqEntry]:
    """Read a knowledge base; errors name ``file:line`` and what was expected."""
    path = check_file(path)  # a folder is "is a directory, not a file", as for every input
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise BadInput(f"{path}: unknown knowledge-base format {path.suffix!r} "
                       f"(expected one of {', '.join(sorted(LOADERS))})")
    entries: dict[str, FaqEntry] = {}
    first_line: dict[str, int] = {}
    explicit: set[str] = set()
    for line, entry in loader(path):
        if entry.id in entries:
            if entry.id in explicit or not entry.id.startswith("faq-"):
                raise BadRow(path, line, f"duplicate id {entry.id!r} (first at line {first_line[entry.id]})")
            old = entries[entry.id]
            old.questions.extend(q for q in entry.questions if q not in old.questions)
            continue
        entries[entry.id] = entry
        first_line[entry.id] = line
        if not entry.id.startswith("faq-"):
            explicit.add(entry.id)
    if not entries:
        raise BadInput(f"{path}: no knowledge-base entries found")
    return list(entries.values())
