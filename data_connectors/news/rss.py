"""RSS and Atom feeds (feedparser) from a URL or a file, with ETag/Last-Modified."""

from __future__ import annotations

import calendar
import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
from bs4 import BeautifulSoup

from data_connectors.news.base import NewsBatch, NewsSource, feed_id, is_url
from shared.errors import BadInput


def _plain(text: str, kind: str | None = "text/html") -> str:
    """Feed text as the reader sees it. RSS text and Atom ``type="html"`` are HTML: tags go and
    entities are read (``AT&amp;T`` is AT&T, tags or not); Atom ``type="text"`` is literal."""
    if kind == "text/plain":
        return text.strip()
    if "<" not in text:
        return html.unescape(text).strip()
    return BeautifulSoup(text, "html.parser").get_text(" ", strip=True)


def _detail(entry: Any, key: str) -> str | None:
    return (entry.get(f"{key}_detail") or {}).get("type")


def _parsed_time(item: Any, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        st = item.get(key)
        if st:
            return datetime.fromtimestamp(calendar.timegm(st), UTC).isoformat()
    return None


def _when(entry: Any, fallback: str) -> str:
    """The entry's pubDate, else its updated (or created) date; a date given but unreadable goes to
    the normaliser, which says why. An entry with no date at all takes ``fallback`` (the feed's
    lastBuildDate/updated, else the fetch time): undated items are common and are news all the same."""
    return (_parsed_time(entry, ("published_parsed", "updated_parsed", "created_parsed"))
            or entry.get("published") or entry.get("updated") or fallback)


def _link(entry: Any, base: str | None) -> str | None:
    """The entry's link as an absolute http(s) URL: a relative one (``/a/3``) is resolved against
    ``base``; anything else (feedparser's fallback to a ``tag:`` id, no link) is None."""
    link = (entry.get("link") or "").strip()
    if link and base and not is_url(link):
        link = urljoin(base, link)
    return link if is_url(link) else None


FETCH_TIMEOUT_S = 30.0  # a feed server that accepts and never answers must not hang a poll
MAX_FEED_BYTES = 20 << 20


def fetch(url: str, etag: str | None = None, modified: str | None = None,
          timeout: float = FETCH_TIMEOUT_S) -> tuple[bytes, dict[str, str]] | None:
    """GET a feed: its bytes and lower-cased headers, or None for 304 Not Modified.

    feedparser fetches with no timeout and turns an HTTP error into an empty feed (a 404 was
    "read 0, stored 0", exit 0); any status but 200/304 is a BadInput naming it here.
    """
    import http.client
    import urllib.error
    import urllib.request

    headers = {"User-Agent": "FinPulse/1.0", "Accept": "application/rss+xml, application/atom+xml, */*"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            body = resp.read(MAX_FEED_BYTES + 1)
            got = {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None
        raise BadInput(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # refused, DNS, timeout, a server that closed without answering, a bad URL
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        raise BadInput(f"{url}: cannot fetch the feed ({reason})") from None
    if len(body) > MAX_FEED_BYTES:
        raise BadInput(f"{url}: the feed is larger than {MAX_FEED_BYTES >> 20} MB")
    return body, got


class FeedSource(NewsSource):
    """An RSS 2.0 / Atom feed; conditional GET when ``etag``/``modified`` are known."""

    def __init__(self, target: str, source: str | None = None, etag: str | None = None,
                 modified: str | None = None):
        super().__init__(target, source)
        self.etag, self.modified = etag, modified

    def read(self) -> NewsBatch:
        if not is_url(self.target):
            if not Path(self.target).is_file():
                raise BadInput(f"{self.target}: no such file")
            parsed = feedparser.parse(self.target)
        else:
            fetched = fetch(self.target, self.etag, self.modified)
            if fetched is None:
                return NewsBatch(etag=self.etag, modified=self.modified, not_modified=True)
            body, headers = fetched
            parsed = feedparser.parse(body, response_headers=headers)
            parsed["etag"], parsed["modified"] = headers.get("etag"), headers.get("last-modified")
        batch = NewsBatch(etag=parsed.get("etag"), modified=parsed.get("modified"))
        if parsed.get("bozo") and not parsed.entries:
            exc = parsed.get("bozo_exception")
            raise BadInput(f"{self.target}: not a readable RSS/Atom feed ({exc})")
        if parsed.get("bozo"):  # read on (feeds in the wild are often a little broken), but say so
            batch.warnings.append(f"{self.target}: malformed feed, read leniently "
                                  f"({parsed.get('bozo_exception')})")
        feed_title = parsed.feed.get("title") or (urlsplit(self.target).netloc if is_url(self.target) else None)
        source = self.source or feed_title or "feed"
        # relative links resolve against the feed's own URL; a file's against the site it names
        site = parsed.feed.get("link")
        base = self.target if is_url(self.target) else (site if site and is_url(site) else None)
        feed_time = _parsed_time(parsed.feed, ("updated_parsed", "published_parsed"))
        fallback = feed_time or datetime.now(UTC).isoformat()
        undated = 0
        for i, e in enumerate(parsed.entries, start=1):
            content = (e.get("content") or [{}])[0]
            body = (_plain(e["summary"], _detail(e, "summary")) if e.get("summary")
                    else _plain(content.get("value", ""), content.get("type")))
            tags = [t.get("term") for t in e.get("tags") or [] if t.get("term", "").startswith("$")]
            url = _link(e, base)
            guid = e.get("id") or url
            when = _when(e, fallback)
            undated += when is fallback
            row = {"id": feed_id(guid) if guid else None, "source": source, "published_at": when,
                   "title": _plain(e.get("title", ""), _detail(e, "title")), "body": body,
                   "url": url, "_line": i}
            if tags:  # added to the tickers linked from the text (``tickers`` would replace them)
                row["cashtags"] = tags
            batch.rows.append(row)
        if undated:
            batch.warnings.append(f"{self.target}: {undated} entries without a date, dated "
                                  + (f"by the feed's lastBuildDate/updated ({fallback})" if feed_time
                                     else f"by the fetch time ({fallback})"))
        return batch
