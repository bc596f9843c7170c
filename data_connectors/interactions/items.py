"""Item catalogues: id, title, text and categories, for content embeddings of cold items.

Reads JSONL/CSV/TSV rows (``item_id``/``id``, ``title``, ``text``/``body``/``abstract``,
``categories`` as a list or ``|``-separated string), knowledge-base rows (``question`` or
``questions`` as the title, ``answer`` as the text, the chatbot's id when a row has none),
MovieLens ``u.item``/``items.psv`` (pipe-separated, genre flags) and MIND ``news.tsv``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_connectors.base import BadRow, ReadReport, iter_rows
from shared.errors import BadInput

ML_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
             "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclass(frozen=True)
class Item:
    """A catalogue entry; ``content`` is the text the encoder sees."""

    item_id: str
    title: str = ""
    text: str = ""
    categories: tuple[str, ...] = field(default_factory=tuple)

    @property
    def content(self) -> str:
        cats = ", ".join(self.categories)
        return ". ".join(p for p in (self.title, cats, self.text[:500]) if p)


def iter_movielens_items(path: str | Path, report: ReadReport) -> Iterator[Item]:
    """MovieLens ``u.item``: ``id|title|date|video date|url|19 genre flags``."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            cols = line.rstrip("\n").split("|")
            if len(cols) < 5 or not cols[0].strip():
                report.skip(BadRow(path, n, f"expected id|title|date|...; found {len(cols)} fields"))
                continue
            flags = cols[5:5 + len(ML_GENRES)]
            genres = tuple(g for g, f in zip(ML_GENRES, flags, strict=False) if f.strip() == "1")
            report.rows += 1
            yield Item(cols[0].strip(), cols[1].strip(), "", genres)


def _categories(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if str(v).strip())
    if isinstance(value, str) and value.strip():
        return tuple(v.strip() for v in value.replace(",", "|").split("|") if v.strip())
    return ()


def iter_item_rows(path: str | Path, report: ReadReport) -> Iterator[Item]:
    from data_connectors.faq.entry import entry_from_row
    from data_connectors.interactions.records import ITEM_KEYS, id_text

    reads = {"item_id", "id", *ITEM_KEYS, "title", "text", "body", "abstract", "description", "question",
             "questions", "answer", "categories", "category", "genres"}

    def column(name: str) -> str | None:  # names match case-insensitively: Title and title are one column
        key = name.strip().lower()
        return key if key in reads else None

    for line, row in iter_rows(path, column=column):
        row = {str(k).strip().lower(): v for k, v in row.items()}  # as interactions' columns are read
        # the interactions' id columns (movie_id, itemId, ...) name the same items here
        item_id = next((row[k] for k in ("item_id", "id", *ITEM_KEYS) if row.get(k) not in (None, "")), None)
        title = str(row.get("title") or "")
        text = row.get("text") or row.get("body") or row.get("abstract") or row.get("description") or ""
        if row.get("question") not in (None, "") or row.get("questions") not in (None, ""):
            # a knowledge-base file is a catalogue of FAQ items: read it as the chatbot does, so
            # an id-less row gets the id the chatbot derives and clicks on its answers match
            try:
                entry = entry_from_row(row, path, line)
            except BadRow as err:
                report.skip(err)
                continue
            item_id = item_id if item_id is not None else entry.id
            title, text = title or entry.question, text or entry.answer
        if item_id is None:
            report.skip(BadRow(path, line, "missing item_id"))
            continue
        try:  # the same item the interactions name: 1.0 is 1, an object no id
            item_id = id_text(item_id, "item_id")
        except ValueError as exc:
            report.skip(BadRow(path, line, str(exc)))
            continue
        cats = _categories(row.get("categories") or row.get("category") or row.get("genres"))
        report.rows += 1
        yield Item(item_id.strip(), title, str(text), cats)


def textless_note(items: list[Item], path: str | Path) -> list[str]:
    """One line when most items have no title or text: their content embeddings would be
    nearly empty, which a catalogue with unrecognised text columns used to do silently."""
    bare = sum(1 for item in items if not (item.title.strip() or item.text.strip()))
    if not items or bare * 2 <= len(items):
        return []
    return [f"{path}: warning: {bare} of {len(items)} items have no title or text (expected title, "
            f"text/body/abstract/description, or question/answer); content features will be weak"]


def read_items(path: str | Path) -> tuple[list[Item], ReadReport]:
    """Read a catalogue in any supported format (chosen from the name and first line); one
    without a usable item is a :class:`BadInput`."""
    from data_connectors.interactions.msnews_clicks import iter_mind_news

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    report = ReadReport()
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    if path.suffix.lower() in (".psv", ".item") or (first.count("|") >= 5 and "\t" not in first):
        items = list(iter_movielens_items(path, report))
    elif path.name == "news.tsv" or (first.startswith("N") and first.count("\t") >= 4
                                     and "item_id" not in first):
        items = list(iter_mind_news(path, report))
    else:
        items = list(iter_item_rows(path, report))
    if not items:
        # a catalogue was asked for: training on without one would silently drop content features
        detail = f" ({len(report.skipped)} bad rows, first: line {report.skipped[0]['line']}: " \
                 f"{report.skipped[0]['reason']})" if report.skipped else ""
        raise BadInput(f"{path}: no usable items; expected item_id (or id) with title, text, "
                       f"categories{detail}")
    return items, report
