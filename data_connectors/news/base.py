"""The small base every news source shares: read raw article dicts plus per-row rejections.

Sources only parse their format; normalisation (dates, text, dedup) happens once in
``services.sentiment.ingest`` so every source is judged by the same rules.
"""

from __future__ import annotations

import hashlib
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from data_connectors.base import check_file
from shared.errors import BadInput

# What an article id may be: up to 128 letters, digits and URI characters, so a feed's permalink
# guid (``https://w.example/a/2?id=2&ref=home``) or an RFC 4151 tag (``tag:w.example,2024:a-1``)
# is its own id. Ids travel in JSON only (never in a path or an SSE id), so "?&#" are harmless.
# A letter or digit may carry combining marks (\p{M}, which \w leaves out): समाचार-1, ข่าว-1, عَرَبِيّ-1
# and an NFD café-1 were refused; a mark opening the id, or after a URI character, still is.
ARTICLE_ID = regex.compile(r"^(?=.{1,128}$)(?:[\p{L}\p{N}_]\p{M}*|[\-.~:/?#\[\]@!$&'()*+,;=%])+$")
ARTICLE_ID_RULE = "1-128 letters (with their combining marks), digits and URI characters -._~:/?#[]@!$&'()*+,;=%"


def feed_id(guid: str) -> str:
    """A feed entry's id: its guid when that is a valid :data:`ARTICLE_ID`, else a stable hash of it
    (a guid over 128 characters or with spaces): the same entry keeps its id across polls."""
    guid = unicodedata.normalize("NFC", guid.strip())  # one id whether the feed composes accents or not
    if ARTICLE_ID.match(guid):
        return guid
    return "g" + hashlib.sha256(guid.encode("utf-8", "surrogatepass")).hexdigest()[:23]


@dataclass
class NewsBatch:
    """Raw rows (``id?, source, published_at, title, body?, url?, tickers?, cashtags?``) and rejected lines.

    ``tickers`` replace linking from the text; ``cashtags`` (a feed item's ``$TICKER`` tags) add to it.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"line", "reason"}
    not_modified: bool = False
    etag: str | None = None
    modified: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. a malformed feed read leniently


class NewsSource(ABC):
    """A place articles come from; ``read`` never raises for one bad row."""

    def __init__(self, target: str | Path, source: str | None = None):
        self.target = local_path(target)
        self.source = source

    @abstractmethod
    def read(self) -> NewsBatch: ...


def is_url(target: str) -> bool:
    return str(target).lower().startswith(("http://", "https://"))


def local_path(target: str | Path) -> str:
    """``file:///srv/wire.xml`` as the file ``/srv/wire.xml``; any other target as it is. In every
    source: a `file://` feed in FINPULSE_SENTIMENT_FEEDS was "no such file" at each poll."""
    target = str(target)
    if target.lower().startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(target).path)
    return target


def open_source(target: str | Path, source: str | None = None, fmt: str | None = None) -> NewsSource:
    """Pick the connector: URLs and .xml/.rss/.atom are feeds, .jsonl/.json and .csv are files."""
    from data_connectors.news.files import CsvSource, JsonlSource
    from data_connectors.news.rss import FeedSource

    target = local_path(target)
    if fmt is None:
        suffix = Path(target).suffix.lower()
        if is_url(target) or suffix in (".xml", ".rss", ".atom"):
            fmt = "rss"
        elif suffix == ".csv":
            fmt = "csv"
        elif suffix in (".jsonl", ".ndjson", ".json"):
            fmt = "jsonl"
        else:
            fmt = _sniff(target)
    if fmt != "rss":
        check_file(target)
    classes = {"rss": FeedSource, "csv": CsvSource, "jsonl": JsonlSource}
    if fmt not in classes:
        raise BadInput(f"unknown news format {fmt!r}; use rss, csv or jsonl")
    return classes[fmt](target, source=source)


def _sniff(target: str) -> str:
    try:
        head = check_file(target).read_bytes()[:512].lstrip()
    except OSError as exc:
        raise BadInput(f"{target}: cannot read ({exc.strerror})") from None
    if head.startswith(b"<"):
        return "rss"
    return "jsonl" if head.startswith(b"{") else "csv"
