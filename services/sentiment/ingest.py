"""Article ingest: normalise, reject with reasons, de-duplicate, store, link tickers.

Every row is judged on its own: a bad row is rejected with a reason while the valid rows
of the same batch are stored. Duplicates are found by id, normalised URL and a
normalised-content hash (so syndicated copies count once); posting the same articles
again stores nothing new. A known id or URL with other text (a corrected story, an edited
feed entry) updates the stored article instead: new text, time and tickers, old scores
dropped, unscored again. Requests racing on one id or URL end as if posted one after
another. Rows are committed before the caller answers, and stay ``scored_at IS NULL``
until scored, so a crash loses nothing.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import parser as dateparser
from dateutil import tz
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from data_connectors.news.base import ARTICLE_ID, ARTICLE_ID_RULE
from services.sentiment.language import article_language
from services.sentiment.linking import W_TITLE, Linker, ticker_symbol
from services.sentiment.models import Article, ArticleTicker, Score, as_utc, utcnow
from shared.db import lost_a_race
from shared.text import is_blank

_WORDS = re.compile(r"[^\w]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
DUPLICATE_ID, DUPLICATE_URL = "duplicate id", "duplicate url"
SYNDICATED = "duplicate content (syndicated copy)"


class Rejected(ValueError):
    """A row that cannot be stored; the message is the reason shown to the caller."""


@dataclass
class NewsItem:
    id: str
    source: str
    published_at: datetime
    title: str
    body: str
    url: str | None
    tickers: dict[str, float]
    content_hash: str
    # ticker -> where it came from ('text', 'tag' or 'given'): stored, so ``news relink`` knows
    # which links the linker may change
    origins: dict[str, str] = field(default_factory=dict)
    language: str = "en"  # ISO 639-1, "en" also when in doubt (services.sentiment.language)


@dataclass
class IngestReport:
    """What a batch did: stored and updated ids, duplicates and rejected rows with their reasons.

    ``row_ids`` maps each row's index to the id it is stored under (new, updated or the earlier
    copy it duplicates; None when rejected), so a client that retries still learns every id.
    ``vacated``: ticker -> event times an updated article no longer counts at (a ticker it
    lost, or its old time), whose alerts are judged again now; its new tickers and time are
    judged when it is scored again, like a new article's.
    ``superseded``: stored syndicated copies that an earlier-published copy in this batch replaced
    (``{"id", "duplicate_of"}``): removed, their tickers and time in ``vacated``.
    """

    stored: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    row_ids: dict[int, str | None] = field(default_factory=dict)
    vacated: dict[str, list[datetime]] = field(default_factory=dict)
    superseded: list[dict[str, str]] = field(default_factory=list)

    @property
    def to_score(self) -> list[str]:
        """New and updated articles: both are unscored now."""
        return self.stored + self.updated

    def merge(self, other: IngestReport, offset: int = 0) -> None:
        self.stored += other.stored
        self.updated += other.updated
        self.duplicates += [{**d, "index": d["index"] + offset} for d in other.duplicates]
        self.rejected += [{**r, "index": r["index"] + offset} for r in other.rejected]
        self.row_ids.update({i + offset: aid for i, aid in other.row_ids.items()})
        self.superseded += other.superseded
        for ticker, times in other.vacated.items():
            self.vacated.setdefault(ticker, []).extend(times)

    def to_dict(self) -> dict[str, Any]:
        """``ids``: newly stored ids (as before); ``updated``: ids whose text changed;
        ``superseded``: stored copies replaced by an earlier-published one; ``article_ids``: every
        row's stored id, in order."""
        return {"ids": self.stored, "stored": len(self.stored), "updated": self.updated,
                "duplicates": self.duplicates, "rejected": self.rejected, "superseded": self.superseded,
                "article_ids": [self.row_ids.get(i) for i in range(max(self.row_ids, default=-1) + 1)]}


# Event times outside these bounds are typos or sentinels (year 0001, 9999), not news; they
# would also overflow the window arithmetic near datetime.min/max. Ingest also refuses
# published_at beyond now + ``sentiment_future_skew_s``.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# dateutil fills what a text lacks from a default date; two different ones reveal the gaps
DEFAULTS = (datetime(2000, 1, 1), datetime(2001, 2, 2))
# epoch seconds or milliseconds written as text, in ASCII digits: ``\d`` (and float()) also took
# "１７３３４０００００" and "٣" as a number, as no numeric query argument does (shared.web.int_arg)
EPOCH = re.compile(r"[0-9]{9,13}(\.[0-9]+)?")
MAX_OFFSET = timedelta(hours=18)  # real zones span -12:00..+14:00; ISO/Java allow up to 18:00
# Zone names a time may carry, in hours east of UTC: RFC 2822's (section 4.3, what feeds and mail
# write; CST is the US one) and the unambiguous European ones wires use. Any other abbreviation is
# refused: IST or BST name several zones, and dateutil read every unknown one as UTC with a warning.
NAMED_ZONES = {"UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
               "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "WET": 0, "WEST": 1, "CET": 1, "CEST": 2,
               "EET": 2, "EEST": 3}
# "... 12:00 America/New_York": matched on the last word alone. A search for "\s+ZONE$" restarted at
# every character of a whitespace run, quadratic: `since=2024-01-01` and 30k "+" (spaces, URL-decoded)
# held a worker, GIL and all, for 15 s.
_IANA_ZONE = re.compile(r"[A-Za-z]+(?:/[A-Za-z0-9_+\-]+)+")
_ZONE_NAME = re.compile(r"[A-Za-z]{1,5}")  # an abbreviation such as UTC, GMT, CEST (or IST, refused by name)
# "07.06.2024": every locale writing dates with dots puts the day first (finance QA: dateutil's
# month-first default read a European wire's 7 June as 6 July); "2024.06.07" and slashes are left be.
_DOTTED_DATE = re.compile(r"(?<![\d.])\d{1,2}\.\d{1,2}\.(?:\d{4}|\d{2})(?![\d.])")  # after a weekday too
# Longer than any real time (RFC 2822 with a comment, an ISO time with an IANA zone: under 80):
# refused before parsing, so no parser's cost depends on what a client sends.
MAX_TIME_CHARS = 100


class _UnknownZone(Exception):
    """A zone name outside :data:`NAMED_ZONES` (not a ValueError: dateutil would call it unparseable)."""


def _zone(name: str | None, offset: int | None) -> tzinfo | None:
    """dateutil's ``tzinfos``: an explicit offset wins, a known name maps to its offset, no zone
    stays naive (UTC), and an unknown name is :class:`_UnknownZone` instead of a silent UTC."""
    if offset is not None:  # tzoffset, not timezone: +25:00 must reach the offset check below
        return tz.tzoffset(name, offset)
    if name is None:
        return None
    hours = NAMED_ZONES.get(name.upper())
    if hours is None:
        raise _UnknownZone(name)
    return tz.tzoffset(name, hours * 3600)


def _parse_text(value: str, name: str) -> datetime:
    """A date written as text, with a zone offset, an RFC 2822 zone name or an IANA zone
    (``Europe/Berlin``, applied with its daylight-saving rules)."""
    text, area = value.strip(), None
    words = text.rsplit(None, 1)
    if len(words) == 2 and _IANA_ZONE.fullmatch(words[1]):
        try:
            area = ZoneInfo(words[1])
        except (ZoneInfoNotFoundError, ValueError):
            raise Rejected(f"{name} {value[:60]!r} names an unknown time zone {words[1][:40]!r}") from None
        text = words[0]
    dayfirst = bool(_DOTTED_DATE.search(text))  # "Sun, 07.06.2026" as RSS feeds write it (regression QA)
    try:  # parsed against two defaults: a field the text lacks comes out different
        try:
            dt, other = (dateparser.parse(text, default=d, tzinfos=_zone, dayfirst=dayfirst) for d in DEFAULTS)
        except ValueError:
            # dateutil reads a zone name only after a time: "2025-04-01 UTC" is that day's midnight there
            date, zone = (text.rsplit(None, 1) + [""])[:2]
            if not _ZONE_NAME.fullmatch(zone):
                raise
            dt, other = (dateparser.parse(f"{date} 00:00 {zone}", default=d, tzinfos=_zone, dayfirst=dayfirst)
                         for d in DEFAULTS)
    except _UnknownZone as exc:
        raise Rejected(f"{name} {value[:60]!r} names an unknown time zone {str(exc)[:20]!r}; give a UTC "
                       f"offset (+0100) or one of {', '.join(NAMED_ZONES)}") from None
    except (ValueError, OverflowError, TypeError):
        raise Rejected(f"unparseable {name} {value[:60]!r}") from None
    if dt.date() != other.date():  # "March" or "12" became a day of this year
        raise Rejected(f"{name} {value[:60]!r} is not a full date (year, month and day are needed)")
    if area is not None:
        if dt.tzinfo is not None:
            raise Rejected(f"{name} {value[:60]!r} gives both a UTC offset and a time zone")
        dt = dt.replace(tzinfo=area)
    return dt


def parse_time(value: Any, name: str = "published_at") -> datetime:
    """ISO-8601, RFC 2822 or epoch seconds/milliseconds -> aware UTC; naive means UTC.

    The one parser of the service's timestamps (bodies, query arguments, the CLI): an
    offset beyond +-18:00 or a time outside [EARLIEST, LATEST) is :class:`Rejected` with a
    reason naming ``name``, so callers answer 400 instead of overflowing later.
    """
    if value is None or value == "":
        raise Rejected(f"missing {name}")
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, bool):
        raise Rejected(f"unparseable {name} {value!r}")
    elif isinstance(value, str) and len(value) > MAX_TIME_CHARS:
        raise Rejected(f"{name} is {len(value)} characters long; a time is at most {MAX_TIME_CHARS}")
    elif isinstance(value, str) and EPOCH.fullmatch(value.strip()):  # "1733400000" in a query string
        return parse_time(float(value), name)
    elif isinstance(value, int | float):
        try:  # an int past float range overflows already in the division (a 500 before)
            dt = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        except (OverflowError, OSError, ValueError):
            raise Rejected(_out_of_range(name, value)) from None
    elif isinstance(value, str):
        dt = _parse_text(value, name)
    else:
        raise Rejected(f"{name} must be a string or a number, got {type(value).__name__}")
    shown = str(value)[:60]
    try:
        offset = dt.utcoffset()  # raises ValueError for +24:00 and beyond
        if offset is not None and abs(offset) > MAX_OFFSET:
            raise ValueError("offset beyond 18 hours")
    except ValueError:
        raise Rejected(f"{name} {shown!r} has an invalid UTC offset (at most +-18:00)") from None
    try:
        dt = dt.replace(tzinfo=UTC) if offset is None else dt.astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        dt = EARLIEST - timedelta(days=1)
    if not EARLIEST <= dt < LATEST:
        raise Rejected(_out_of_range(name, value))
    return dt


def _out_of_range(name: str, value: Any) -> str:
    return (f"{name} {str(value)[:60]!r} is out of range: must be between {EARLIEST:%Y-%m-%d} "
            f"and {LATEST - timedelta(days=1):%Y-%m-%d}")


# Query parameters that say where a reader came from, not which story: one story posted with
# several of them was stored several times (finance QA: cnbc.com/x?__source=rss beside cnbc.com/x).
# Only keys no site uses for its content: "ref", "src", "mod" name the page on many sites (a forum's
# ?t=100&src=111), and two articles merged into one, the second dropped as a duplicate (regression QA).
_TRACKING = frozenset({"__source", "ncid", "cmpid", "mc_cid", "mc_eid", "_ga", "igshid"})
_TRACKING_PREFIXES = ("utm_", "fbclid", "gclid")


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, drop a leading ``www.``, the fragment, tracking parameters and a
    trailing slash."""
    parts = urlsplit(url.strip())
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not (k.lower().startswith(_TRACKING_PREFIXES) or k.lower() in _TRACKING)])
    path = parts.path.rstrip("/") or "/"
    host = parts.netloc.lower().removeprefix("www.")
    return urlunsplit((parts.scheme.lower(), host, path, query, ""))


def stored_url_forms(url: str) -> list[str]:
    """The forms a normalised ``url`` may be stored under, its own first: articles stored before
    ``www.`` was dropped keep it, and a re-post of one must still find it (not store it again)."""
    parts = urlsplit(url)
    return [url, urlunsplit(parts._replace(netloc="www." + parts.netloc))] if parts.netloc else [url]


def content_hash(title: str, body: str) -> str:
    """Hash of the words of title and body: syndicated copies with other markup collide."""
    norm = _WORDS.sub(" ", unicodedata.normalize("NFKC", f"{title} {body}").casefold()).strip()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def derived_id(url: str | None, digest: str, published: datetime) -> str:
    """The id of an article posted without one: from its URL, which names the story across
    edits, else from its text and time. Not from the text alone: another URL with the same
    words, or the same headline days later, is another article, and a story whose text was
    edited would still own its first text's id."""
    key = f"url {url}" if url else f"text {digest} {published.isoformat()}"
    return ("u" if url else "h") + hashlib.sha256(key.encode("utf-8")).hexdigest()[:23]


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected(f"{key} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected(f"{key} is not valid UTF-8 text") from None
    value = _CONTROL.sub("", unicodedata.normalize("NFC", value)).strip()
    # only invisible characters ("\u200b", a BOM, a word joiner) is no text: strip() keeps them, and an
    # article of a zero-width space was stored (shared rule: the chat, recommendations and /v1/score)
    return "" if is_blank(value) else value


def _cashtags(value: Any) -> list[str]:
    """A feed item's ``$TICKER`` category tags; anything else among them is not a ticker, skipped."""
    if not isinstance(value, list):
        return []
    tags = [ticker_symbol(v) for v in value if isinstance(v, str)]
    return [t for t in dict.fromkeys(tags) if t]


# Tickers one article may carry: each is scored and counted on its own, so a row listing thousands
# cost seconds of scoring CPU. Given ones beyond it reject the row (the client can fix it); linked
# ones keep the most relevant (see :func:`_top`).
MAX_TICKERS = 50


def _tickers(value: Any) -> list[str] | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s;|]+", value) if v]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Rejected("tickers must be a list of strings")
    out = [ticker_symbol(v) for v in value]
    bad = [v for v, t in zip(value, out, strict=True) if not t]
    if bad:
        raise Rejected(f"invalid ticker {bad[0].strip().lstrip('$').upper()[:20]!r}")
    out = list(dict.fromkeys(out))
    if len(out) > MAX_TICKERS:
        raise Rejected(f"too many tickers: {len(out)} (limit {MAX_TICKERS} per article)")
    return out


def linked_tickers(linker: Linker, title: str, body: str, tags: list[str]) -> dict[str, float]:
    """Ticker -> relevance of an article without given tickers: what the text names, plus a feed's
    ``$TICKER`` category ``tags`` (editors' tags weigh like a title mention), the most relevant
    :data:`MAX_TICKERS`. The one linking rule of ingest and ``news relink``."""
    return _top({**linker.link(title, body), **dict.fromkeys(tags, W_TITLE)})


def _top(tickers: dict[str, float]) -> dict[str, float]:
    """The :data:`MAX_TICKERS` most relevant linked tickers (title and explicit mentions first, then
    in the order linked). Silently: the row is no client's mistake (a market wrap naming a whole
    index, a feed's tags), and rejecting it would lose the news for the tickers it is about."""
    if len(tickers) <= MAX_TICKERS:
        return tickers
    return dict(sorted(tickers.items(), key=lambda kv: -kv[1])[:MAX_TICKERS])


def normalise(row: Any, linker: Linker, *, now: datetime, max_chars: int, skew_s: float) -> NewsItem:
    """One raw row -> a :class:`NewsItem`, or :class:`Rejected` with the reason."""
    if not isinstance(row, dict):
        raise Rejected("expected a JSON object")
    published = parse_time(row.get("published_at"))
    if published > now + timedelta(seconds=skew_s):
        raise Rejected(f"published_at {published.isoformat()} is in the future")
    title, body = _text(row, "title"), _text(row, "body")
    if not title and not body:
        raise Rejected("empty text: title and body are both empty")
    if len(title) + len(body) > max_chars:
        raise Rejected(f"oversize text: {len(title) + len(body)} characters (limit {max_chars})")
    if not title:
        title = body.split(". ", 1)[0][:300]
    source = _text(row, "source")[:200] or "unknown"
    url = _text(row, "url") or None
    if url:
        if not url.lower().startswith(("http://", "https://")) or len(url) > 2000:
            raise Rejected("url must be an http(s) URL of at most 2000 characters")
        url = normalise_url(url)
    digest = content_hash(title, body)
    raw_id = row.get("id")
    if raw_id is None or raw_id == "":
        art_id = derived_id(url, digest, published)
    else:
        art_id = str(raw_id).strip() if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else ""
        art_id = unicodedata.normalize("NFC", art_id)  # "café-1" typed with a combining accent is the same id
        if not ARTICLE_ID.fullmatch(art_id):
            raise Rejected(f"id must be {ARTICLE_ID_RULE}")
    given = _tickers(row.get("tickers"))
    if given:  # explicit tickers override linking
        tickers, origins = dict.fromkeys(given, 1.0), dict.fromkeys(given, "given")
    else:  # a feed's $TICKER tags add to what the text names
        tags = _cashtags(row.get("cashtags"))
        tickers = linked_tickers(linker, title, body, tags)
        origins = {t: "tag" if t in tags else "text" for t in tickers}
    return NewsItem(art_id, source, published, title, body, url, tickers, digest, origins,
                    article_language(title, body))


def _lock_contents(session: Any, items: list[NewsItem]) -> None:
    """Lock the content hashes of ``items`` for the transaction before they are looked up:
    concurrent posts of one story under other ids each found no copy stored and each stored theirs
    (10 parallel copies left 3). PostgreSQL: an advisory lock per hash, taken in one order so two
    batches never deadlock. SQLite: the database's write lock (a write statement that changes
    nothing), as it has one writer at a time anyway; its reads ran outside any transaction."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(text(f"UPDATE {Article.__tablename__} SET id = id WHERE 0"))
    elif dialect == "postgresql":
        keys = sorted({int(i.content_hash[:15], 16) for i in items})  # 60 bits: a bigint
        session.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                        {"keys": keys}).all()


def _existing(session: Any, items: list[NewsItem]) -> dict[str, dict[str, Any]]:
    """Which ids, urls and content hashes of ``items`` are already stored (-> stored article id);
    ``text``: the stored content hash of each article found by id or url."""
    ids = [i.id for i in items]
    forms = {form: i.url for i in items if i.url for form in stored_url_forms(i.url)}
    urls = list(forms)
    hashes = list({i.content_hash for i in items})
    found: dict[str, dict[str, Any]] = {"id": {}, "url": {}, "hash": {}, "text": {}}
    for start in range(0, len(ids), 500):
        for aid, h in session.execute(select(Article.id, Article.content_hash)
                                      .where(Article.id.in_(ids[start:start + 500]))):
            found["id"][aid] = aid
            found["text"][aid] = h
    for start in range(0, len(hashes), 500):
        for aid, h, at in session.execute(select(Article.id, Article.content_hash, Article.published_at)
                                          .where(Article.content_hash.in_(hashes[start:start + 500]))):
            found["hash"].setdefault(h, []).append((as_utc(at), aid))
    for start in range(0, len(urls), 500):
        for aid, u, h in session.execute(select(Article.id, Article.url, Article.content_hash)
                                         .where(Article.url.in_(urls[start:start + 500]))):
            if u == forms[u] or forms[u] not in found["url"]:  # the url as normalised now wins
                found["url"][forms[u]] = aid
            found["text"][aid] = h
    return found


def _copies(item: NewsItem, seen: dict[str, dict[str, Any]], window: timedelta) -> list[tuple[datetime, str]]:
    """``(published_at, id)`` of the known copies of ``item``'s text within ``window`` of it
    (stored, or new earlier in this batch), earliest first; the same text days apart is news again."""
    return sorted((at, aid) for at, aid in seen["hash"].get(item.content_hash, [])
                  if abs(at - item.published_at) <= window and aid != item.id)


def _duplicate_of(item: NewsItem, seen: dict[str, dict[str, Any]], window: timedelta) -> tuple[str, str] | None:
    if item.id in seen["id"]:
        return DUPLICATE_ID, seen["id"][item.id]
    if item.url and item.url in seen["url"]:
        return DUPLICATE_URL, seen["url"][item.url]
    copies = _copies(item, seen, window)
    # the earliest published copy counts (ties: the smaller id), not the first to arrive: a
    # backfill in event order and live posts in arrival order must count the same copy
    if copies and copies[0] <= (item.published_at, item.id):
        return SYNDICATED, copies[0][1]
    return None


def _add(session: Any, item: NewsItem) -> None:
    session.add(Article(id=item.id, source=item.source, published_at=item.published_at, title=item.title,
                        body=item.body, url=item.url, content_hash=item.content_hash, language=item.language))
    for ticker, rel in item.tickers.items():
        session.add(ArticleTicker(article_id=item.id, ticker=ticker, relevance=rel,
                                  published_at=item.published_at, origin=item.origins.get(ticker)))


def _update(session: Any, aid: str, item: NewsItem) -> dict[str, list[datetime]] | None:
    """Give stored article ``aid`` the text, time and tickers of ``item``, drop its scores and
    leave it unscored; returns the (ticker -> times) it no longer counts at, or None when it
    holds ``item``'s text already (a concurrent request stored it since this one read).

    Its id, url and source stay: they name the story, the text is what changed.
    """
    # lock first (PostgreSQL's row lock, SQLite's write lock): concurrent updates queue, and each
    # reads the version the one before it left (on SQLite a read before the lock may be stale);
    # the text is compared under the lock, so two posts of one revision update it once
    locked = session.execute(update(Article).where(Article.id == aid, Article.content_hash != item.content_hash)
                             .values(scored_at=None).execution_options(synchronize_session=False))
    if locked.rowcount == 0:
        return None
    art = session.get(Article, aid, populate_existing=True)
    old_at, relanguaged = as_utc(art.published_at), art.language != item.language
    old = list(session.scalars(select(ArticleTicker.ticker).where(ArticleTicker.article_id == aid)))
    session.execute(delete(Score).where(Score.article_id == aid))
    session.execute(delete(ArticleTicker).where(ArticleTicker.article_id == aid))
    art.title, art.body, art.content_hash = item.title, item.body, item.content_hash
    art.language, art.skip_reason = item.language, None  # judged again when scored
    art.published_at, art.ingested_at = item.published_at, utcnow()
    for ticker, rel in item.tickers.items():
        session.add(ArticleTicker(article_id=aid, ticker=ticker, relevance=rel, published_at=item.published_at,
                                  origin=item.origins.get(ticker)))
    # a new language may leave it unscored (not counted where its old text was): judged again now
    return {t: [old_at] for t in old if t not in item.tickers or old_at != item.published_at or relanguaged}


def _drop(session: Any, aid: str) -> dict[str, list[datetime]]:
    """Remove stored article ``aid`` (a syndicated copy an earlier-published one replaces) with
    its tickers and scores; returns the (ticker -> time) it no longer counts at."""
    art = session.get(Article, aid)
    if art is None:  # a concurrent request removed it first
        return {}
    at = as_utc(art.published_at)
    tickers = list(session.scalars(select(ArticleTicker.ticker).where(ArticleTicker.article_id == aid)))
    session.execute(delete(Score).where(Score.article_id == aid))
    session.execute(delete(ArticleTicker).where(ArticleTicker.article_id == aid))
    session.delete(art)
    return {t: [at] for t in tickers}


def _record_update(report: IngestReport, aid: str, index: int, vacated: dict[str, list[datetime]]) -> None:
    report.updated.append(aid)
    report.row_ids[index] = aid
    for ticker, times in vacated.items():
        report.vacated.setdefault(ticker, []).extend(times)


Sorted = tuple[list[tuple[int, NewsItem]], list[tuple[int, str, NewsItem]], list[tuple[str, str]]]


def _sort_out(items: list[tuple[int, NewsItem]], seen: dict[str, dict[str, Any]], window: timedelta,
              report: IngestReport) -> Sorted:
    """Split ``items`` into new articles, new versions of stored ones ``(row, stored id, item)``,
    stored syndicated copies a new earlier-published copy replaces ``(stored id, new id)``, and
    duplicates (recorded in ``report``).

    A new copy published before the copy that counts so far takes the count over: one new in this
    batch becomes its duplicate, a stored one is removed (and its bucket judged again), so the
    articles counted never depend on which copy arrived first.
    """
    fresh: dict[str, tuple[int, NewsItem]] = {}
    changed: list[tuple[int, str, NewsItem]] = []
    superseded: list[tuple[str, str]] = []
    for index, item in items:
        dup = _duplicate_of(item, seen, window)
        # the first row naming a stored article decides; later ones in this batch are duplicates
        known = seen["text"].pop(dup[1], None) if dup and dup[0] in (DUPLICATE_ID, DUPLICATE_URL) else None
        if known is not None and known != item.content_hash:
            seen["hash"].setdefault(item.content_hash, []).append((item.published_at, dup[1]))
            changed.append((index, dup[1], item))
        elif dup:
            report.duplicates.append({"index": index, "id": item.id, "reason": dup[0], "duplicate_of": dup[1]})
            report.row_ids[index] = dup[1]
        else:
            updating = {aid for _, aid, _ in changed}
            for at, aid in _copies(item, seen, window):  # all published after it: it counts instead
                if aid in updating:
                    continue
                _forget(seen, item.content_hash, at, aid)
                if aid in fresh:
                    later, _ = fresh.pop(aid)
                    report.duplicates.append({"index": later, "id": aid, "reason": SYNDICATED,
                                              "duplicate_of": item.id})
                    report.row_ids[later] = item.id
                    superseded = [(gone, item.id if by == aid else by) for gone, by in superseded]
                else:
                    superseded.append((aid, item.id))
                for d in report.duplicates:  # rows that named the replaced copy now name this one
                    if d["duplicate_of"] == aid:
                        d["duplicate_of"] = report.row_ids[d["index"]] = item.id
            seen["id"][item.id] = item.id
            seen["hash"].setdefault(item.content_hash, []).append((item.published_at, item.id))
            if item.url:
                seen["url"][item.url] = item.id
            fresh[item.id] = (index, item)
    return list(fresh.values()), changed, superseded


def _forget(seen: dict[str, dict[str, Any]], digest: str, at: datetime, aid: str) -> None:
    """Drop article ``aid`` from ``seen``: a later row with its id or url is judged as new."""
    seen["hash"][digest].remove((at, aid))
    seen["id"].pop(aid, None)
    seen["text"].pop(aid, None)
    for url in [u for u, a in seen["url"].items() if a == aid]:
        del seen["url"][url]


def _write(session: Any, fresh: list[tuple[int, NewsItem]], changed: list[tuple[int, str, NewsItem]],
           superseded: list[tuple[str, str]], report: IngestReport) -> None:
    """Remove ``superseded``, insert ``fresh``, update ``changed`` and record all in ``report``;
    an error :func:`shared.db.lost_a_race` recognises when a concurrent request stored one of their
    ids or urls first or won a deadlock (nothing is recorded then)."""
    # rows are locked in id order: two requests writing overlapping articles in their own orders
    # each held a row the other waited for, and PostgreSQL failed one as a deadlock
    dropped = [(aid, by, _drop(session, aid)) for aid, by in sorted(superseded)]
    session.flush()
    for _, item in sorted(fresh, key=lambda row: row[1].id):
        _add(session, item)
    session.flush()
    vacated, same = [], []
    for index, aid, item in sorted(changed, key=lambda row: row[1]):
        gone = _update(session, aid, item)
        if gone is None:  # a concurrent request stored this very text first: this row came after it
            same.append({"index": index, "id": item.id, "duplicate_of": aid,
                         "reason": DUPLICATE_ID if item.id == aid else DUPLICATE_URL})
        else:
            vacated.append((index, aid, gone))
    session.flush()
    report.stored += [i.id for _, i in fresh]
    report.row_ids.update({index: i.id for index, i in fresh})
    report.duplicates += same
    report.row_ids.update({d["index"]: d["duplicate_of"] for d in same})
    for index, aid, gone in vacated:
        _record_update(report, aid, index, gone)
    for aid, by, gone in dropped:
        report.superseded.append({"id": aid, "duplicate_of": by})
        for ticker, times in gone.items():
            report.vacated.setdefault(ticker, []).extend(times)


def ingest(db: Any, rows: list[Any], linker: Linker, *, max_chars: int = 100_000, skew_s: float = 300.0,
           syndication_h: float = 72.0, now: datetime | None = None) -> IngestReport:
    """Normalise, de-duplicate, store and update ``rows``; returns what happened to each row.

    Copies of the same text within ``syndication_h`` hours are one article (syndication).
    Within one batch the first row of an id or url counts (later ones are duplicates), so
    posting the same batch again is a no-op even when it holds two versions of a story.
    """
    window = timedelta(hours=syndication_h)
    now = now or datetime.now(UTC)
    report = IngestReport()
    items: list[tuple[int, NewsItem]] = []
    for index, row in enumerate(rows):
        try:
            items.append((index, normalise(row, linker, now=now, max_chars=max_chars, skew_s=skew_s)))
        except Rejected as exc:
            rid = row.get("id") if isinstance(row, dict) and isinstance(row.get("id"), str | int) else None
            report.rejected.append({"index": index, "id": rid, "reason": str(exc)})
            report.row_ids[index] = None
    if not items:
        return report
    with db.session() as session:
        _lock_contents(session, [i for _, i in items])
        fresh, changed, superseded = _sort_out(items, _existing(session, [i for _, i in items]), window, report)
        try:
            _write(session, fresh, changed, superseded, report)
            return report
        except DBAPIError as exc:  # a concurrent request stored some of them first, or won a deadlock
            if not lost_a_race(exc):
                raise
            session.rollback()
    pending = sorted([*fresh, *((index, item) for index, _, item in changed)], key=lambda row: row[0])
    return _ingest_one_by_one(db, pending, report, window)


def _ingest_one_by_one(db: Any, rows: list[tuple[int, NewsItem]], report: IngestReport,
                       window: timedelta) -> IngestReport:
    """Store ``rows`` (row index, item) in row order, each in a transaction of its own."""
    for index, item in rows:
        _ingest_row(db, index, item, report, window)
    return report


def _ingest_row(db: Any, index: int, item: NewsItem, report: IngestReport, window: timedelta,
                tries: int = 3) -> None:
    """Judge one row against what is stored now and store it.

    A unique-key conflict means a concurrent request stored its id or url between the read and
    the write: judged again, the row ends as if posted after that one (the same text a duplicate,
    other text a new version), never dropped as a duplicate unseen; a deadlock PostgreSQL broke
    on this side is tried again alike. Still conflicting after ``tries``, the error is the answer.
    """
    for attempt in range(tries):
        outcome = IngestReport()
        try:
            with db.session() as session:
                _lock_contents(session, [item])
                fresh, changed, superseded = _sort_out([(index, item)], _existing(session, [item]), window, outcome)
                _write(session, fresh, changed, superseded, outcome)
        except DBAPIError as exc:
            if not lost_a_race(exc) or attempt == tries - 1:
                raise
            continue
        report.merge(outcome)
        return
