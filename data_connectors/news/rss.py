"""RSS and Atom feeds (feedparser) from a URL or a file, with ETag/Last-Modified."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
from bs4 import BeautifulSoup

from data_connectors.news.base import NewsBatch, NewsSource, is_url
from shared.errors import BadInput


def _plain(html: str) -> str:
    """Feed summaries are HTML; keep the text only."""
    if "<" not in html:
        return html.strip()
    return BeautifulSoup(html, "html.parser").get_text(" ", strip=True)


def _when(entry: Any) -> str | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        st = entry.get(key)
        if st:
            return datetime.fromtimestamp(calendar.timegm(st), UTC).isoformat()
    return entry.get("published") or entry.get("updated")  # unparsed: the normaliser says why


class FeedSource(NewsSource):
    """An RSS 2.0 / Atom feed; conditional GET when ``etag``/``modified`` are known."""

    def __init__(self, target: str, source: str | None = None, etag: str | None = None,
                 modified: str | None = None):
        super().__init__(target, source)
        self.etag, self.modified = etag, modified

    def read(self) -> NewsBatch:
        kwargs: dict[str, Any] = {}
        if not is_url(self.target) and not Path(self.target).is_file():
            raise BadInput(f"{self.target}: no such file")
        if is_url(self.target):
            kwargs = {"etag": self.etag, "modified": self.modified, "agent": "FinPulse/1.0"}
        parsed = feedparser.parse(self.target, **kwargs)
        batch = NewsBatch(etag=parsed.get("etag"), modified=parsed.get("modified"))
        if parsed.get("status") == 304:
            batch.not_modified = True
            return batch
        if parsed.get("bozo") and not parsed.entries:
            exc = parsed.get("bozo_exception")
            raise BadInput(f"{self.target}: not a readable RSS/Atom feed ({exc})")
        feed_title = parsed.feed.get("title") or (urlsplit(self.target).netloc if is_url(self.target) else None)
        source = self.source or feed_title or "feed"
        for i, e in enumerate(parsed.entries, start=1):
            body = _plain(e.get("summary") or (e.get("content") or [{}])[0].get("value", ""))
            tags = [t.get("term") for t in e.get("tags") or [] if t.get("term", "").startswith("$")]
            row = {"id": e.get("id") or e.get("link"), "source": source, "published_at": _when(e),
                   "title": _plain(e.get("title", "")), "body": body, "url": e.get("link"), "_line": i}
            if tags:  # added to the tickers linked from the text (``tickers`` would replace them)
                row["cashtags"] = tags
            batch.rows.append(row)
        return batch
