"""HTML FAQ pages: headings, ``<dt>/<dd>`` pairs or ``<details>/<summary>`` blocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from data_connectors.base import BadRow
from data_connectors.faq.entry import FaqEntry, entry_from_row

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def _line(tag: object) -> int:
    return int(getattr(tag, "sourceline", None) or 1)


def read_html(path: Path) -> Iterator[tuple[int, FaqEntry]]:
    """Yield ``(source line, entry)`` for each question found on the page."""
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    except UnicodeDecodeError as exc:
        raise BadRow(path, 1, f"not UTF-8 ({exc.reason})") from None
    for tag in soup(["script", "style"]):
        tag.decompose()
    for details in soup.find_all("details"):
        summary = details.find("summary")
        if summary is None:
            continue
        question = summary.get_text(" ", strip=True)
        summary.extract()
        yield _line(details), entry_from_row(
            {"question": question, "answer": details.get_text(" ", strip=True)}, path, _line(details))
    for dt in soup.find_all("dt"):
        dd = dt.find_next_sibling("dd")
        answer = dd.get_text(" ", strip=True) if dd else ""
        yield _line(dt), entry_from_row({"question": dt.get_text(" ", strip=True), "answer": answer},
                                        path, _line(dt))
    for head in soup.find_all(_HEADINGS):
        parts = []
        for sib in head.find_next_siblings():
            if sib.name in _HEADINGS or sib.name in ("dl", "details"):
                break
            parts.append(sib.get_text(" ", strip=True))
        answer = " ".join(p for p in parts if p)
        if not answer:
            continue  # a page or section title, not a question
        yield _line(head), entry_from_row({"question": head.get_text(" ", strip=True), "answer": answer},
                                          path, _line(head))
