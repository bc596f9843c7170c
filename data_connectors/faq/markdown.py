"""Markdown FAQ pages: each heading is a question, the text below it the answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from data_connectors.base import iter_lines
from data_connectors.faq.entry import FaqEntry, entry_from_row


def read_markdown(path: Path) -> Iterator[tuple[int, FaqEntry]]:
    """Yield ``(heading line, entry)``; a heading with no answer below it is a bad row."""
    from markdown_it import MarkdownIt

    # read as every reader reads: a BOM had made the first heading text, losing its entry
    text = "\n".join(line for _, line in iter_lines(path))
    lines = re.split(r"\r\n?|\n", text)  # as markdown-it splits them, so its line numbers index these
    tokens = MarkdownIt().parse(text)
    heads: list[tuple[int, int, str, int]] = []  # (first line, end line, text, level), 0-based
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            heads.append((tok.map[0], tok.map[1], tokens[i + 1].content, int(tok.tag[1:])))
    for n, (start, end, question, level) in enumerate(heads):
        stop = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        answer = "\n".join(lines[end:stop]).strip()
        if not answer and n + 1 < len(heads) and heads[n + 1][3] > level:
            continue  # a section title directly above deeper question headings
        yield start + 1, entry_from_row({"question": question, "answer": answer}, path, start + 1)
