"""HTML FAQ pages: headings, ``<dt>/<dd>`` pairs or ``<details>/<summary>`` blocks.

Answers become Markdown (markdownify), the form the widget renders: a page's lists, bold text
and links survive as such instead of running together into one line of words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from data_connectors.base import not_utf8
from data_connectors.faq.entry import FaqEntry, entry_from_row

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_OTHER_QUESTIONS = (*_HEADINGS, "dl", "details")  # where a heading's answer ends
_SPACE_BEFORE_MARK = re.compile(r"\s+(?=[.,;:!?)])")


def _text(tag: object) -> str:
    """The tag's text, elements apart by a space, but none before punctuation ("with <b>Pay</b>.")."""
    return _SPACE_BEFORE_MARK.sub("", tag.get_text(" ", strip=True))  # type: ignore[attr-defined]


def _markdown(nodes: list[object]) -> str:
    """The nodes, converted together, as one Markdown answer. Underscores stay bare ("snake_case"):
    the widget does not italicise inside words, and API users read the answer as typed."""
    from markdownify import markdownify

    md = markdownify("".join(map(str, nodes)), bullets="-", heading_style="ATX", strip=["img"],
                     escape_underscores=False)
    return re.sub(r"\n{3,}", "\n\n", md).strip()


def _line(tag: object) -> int:
    return int(getattr(tag, "sourceline", None) or 1)


def read_html(path: Path) -> Iterator[tuple[int, FaqEntry]]:
    """Yield ``(source line, entry)`` for each question found on the page."""
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from None
    for tag in soup(["script", "style"]):
        tag.decompose()
    for details in soup.find_all("details"):
        summary = details.find("summary")
        if summary is None:
            continue
        question = _text(summary)
        summary.extract()
        answer = _markdown(details.contents)
        yield _line(details), entry_from_row({"question": question, "answer": answer}, path, _line(details))
    for dt in soup.find_all("dt"):
        dd = dt.find_next_sibling("dd")
        answer = _markdown(dd.contents) if dd else ""
        yield _line(dt), entry_from_row({"question": _text(dt), "answer": answer}, path, _line(dt))
    for head in soup.find_all(_HEADINGS):
        parts = []
        for sib in head.find_next_siblings():
            # a block holding other questions (<div class="faq-item"><h3>…) ends this answer:
            # else a page title took the whole page's text as its answer
            if sib.name in _OTHER_QUESTIONS or sib.find(_OTHER_QUESTIONS) is not None:
                break
            parts.append(sib)
        answer = _markdown(parts)
        if not answer:
            continue  # a page or section title, not a question
        yield _line(head), entry_from_row({"question": _text(head), "answer": answer}, path, _line(head))
