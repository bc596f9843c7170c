"""Read-side queries the API and dashboard need beyond series and alerts."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from services.sentiment.alerts import alert_id as alert_id_of
from services.sentiment.alerts import list_alerts, to_json
from services.sentiment.models import Alert, Article, ArticleTicker, Score, as_utc


def _iso(dt: datetime) -> str:
    return as_utc(dt).isoformat().replace("+00:00", "Z")


def tickers(db: Any, limit: int = 200) -> dict[str, Any]:
    with db.session() as s:
        rows = s.execute(select(ArticleTicker.ticker, func.count(), func.max(ArticleTicker.published_at))
                         .group_by(ArticleTicker.ticker)
                         .order_by(func.count().desc(), ArticleTicker.ticker)  # ties alike on every backend
                         .limit(limit)).all()
        sources = [r[0] for r in s.execute(select(Article.source).distinct().order_by(Article.source).limit(200))]
    return {"tickers": [{"ticker": t, "articles": n, "last_at": _iso(last)} for t, n, last in rows],
            "sources": sources}


def articles(db: Any, ticker: str, *, start: datetime | None, end: datetime | None, source: str | None,
             limit: int = 100) -> list[dict[str, Any]]:
    q = (select(Article, ArticleTicker.relevance, Score)
         .join(ArticleTicker, ArticleTicker.article_id == Article.id)
         .outerjoin(Score, and_(Score.article_id == Article.id, Score.ticker == ArticleTicker.ticker))
         .where(ArticleTicker.ticker == ticker).order_by(ArticleTicker.published_at.desc()).limit(limit))
    if start is not None:
        q = q.where(ArticleTicker.published_at >= start)
    if end is not None:
        q = q.where(ArticleTicker.published_at < end)
    if source:
        q = q.where(Article.source == source)
    out = []
    with db.session() as s:
        for art, rel, sc in s.execute(q):
            out.append({"id": art.id, "source": art.source, "published_at": _iso(art.published_at),
                        "title": art.title, "url": art.url, "relevance": rel,
                        "label": sc.label if sc else None,
                        "scores": {"negative": sc.negative, "neutral": sc.neutral, "positive": sc.positive}
                        if sc else None, "model_version": sc.model_version if sc else None,
                        # unscored and why: a language the model does not read (still linked, listed here)
                        "language": art.language, "scored": sc is not None, "skip_reason": art.skip_reason})
    return out


def _event(a: Alert) -> dict[str, Any]:
    """A stream event: the alert, its stream time, whether it was retracted (a tombstone), and
    when it was last raised (before its stream time when its last change was an update)."""
    return {"alert": to_json(a), "created_at": as_utc(a.created_at), "retracted": a.retracted_at is not None,
            "raised_at": as_utc(a.raised_at or a.created_at)}


def alerts_created_after(db: Any, after: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts raised, changed, updated or retracted after ``after``, in that order; not the quiet ones
    (a backfill's: it pushes nothing to live channels)."""
    with db.session() as s:
        rows = s.scalars(select(Alert).where(Alert.created_at > after, Alert.quiet.is_(False))
                         .order_by(Alert.created_at).limit(limit))
        return [_event(a) for a in rows]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stream_id(created_at: datetime, alert_id: str) -> str:
    """An event's SSE id: its alert id and stream time (µs since the epoch). A reconnect resumes
    at the position the client saw even when that alert has changed or been retracted since."""
    return f"{alert_id}@{(as_utc(created_at) - EPOCH) // timedelta(microseconds=1)}"


def resume_position(db: Any, last_event_id: str) -> tuple[datetime, str] | None:
    """The stream position a ``Last-Event-ID`` names: read from a :func:`stream_id`, or looked up
    for a bare alert id (what ids were before they carried a position); None if unknown."""
    alert_id, sep, micros = last_event_id.rpartition("@")
    # ASCII digits: isdigit() also holds for "²" (int() then raised: a 500) and "１２"
    if sep and alert_id and micros.isascii() and micros.isdigit() and len(micros) <= 18:
        return EPOCH + timedelta(microseconds=int(micros)), alert_id
    return alert_position(db, last_event_id)


def alert_position(db: Any, alert_id: str | None = None) -> tuple[datetime, str] | None:
    """``(created_at, id)`` of alert ``alert_id``, or of the newest alert when None; None if absent.

    The stream orders alerts (and retractions: tombstones keep their row) by this pair, so
    it is where a reconnect resumes.
    """
    q = select(Alert.created_at, Alert.id)
    q = q.where(Alert.id == alert_id) if alert_id is not None else q.order_by(Alert.created_at.desc(),
                                                                               Alert.id.desc()).limit(1)
    with db.session() as s:
        row = s.execute(q).first()
    return (as_utc(row[0]), row[1]) if row else None


def alerts_to_replay(db: Any, *, after: tuple[datetime, str], limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` alerts and retractions past stream position ``after``, oldest first
    (what a reconnecting stream client missed, bounded); quiet ones were never live, so not these."""
    q = (select(Alert).where(or_(Alert.created_at > after[0],
                                 and_(Alert.created_at == after[0], Alert.id > after[1])), Alert.quiet.is_(False))
         .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit))
    with db.session() as s:
        rows = [_event(a) for a in s.scalars(q)]
    return rows[::-1]


def alert_cursor(at: datetime, alert_id: str) -> str:
    """The opaque ``next`` of an alerts page: the last alert's event time and id, so the next
    page starts right after it whatever was raised since (an offset would shift under new alerts)."""
    raw = f"{as_utc(at).isoformat()}|{alert_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def cursor_position(db: Any, cursor: str) -> tuple[datetime, str] | None:
    """``(at, id)`` a ``before`` names: an :func:`alert_cursor`, or a bare alert id (looked up,
    retracted ones too, so "older than this alert" works from any alert a client holds); None if neither."""
    if not cursor or len(cursor) > 200:
        return None
    try:
        at_text, sep, alert_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        at = datetime.fromisoformat(at_text)
        if alert_id.isprintable() and 0 < len(alert_id) <= 64 and at.tzinfo is not None:  # no NUL for the DB
            return as_utc(at), alert_id
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        pass  # not a cursor: maybe an alert id
    with db.session() as s:
        row = s.execute(select(Alert.at, Alert.id).where(Alert.id == cursor)).first()
    if row:
        return as_utc(row[0]), row[1]
    # an id no longer stored (pruned) still holds its position, as it does for the stream's resume
    ticker, _, stamp = cursor.rpartition("-")
    try:
        at = datetime.strptime(stamp, "%Y%m%dT%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None
    return (at, cursor) if ticker and len(cursor) <= 64 and cursor.isprintable() and alert_id_of(ticker, at) == cursor \
        else None


def alerts_page(db: Any, *, since: datetime | None = None, ticker: str | None = None, limit: int = 100,
                bucket_s: int = 0, before: tuple[datetime, str] | None = None,
                ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of :func:`~services.sentiment.alerts.list_alerts`, and the cursor of the next (older)
    page, None on the last: a page starts strictly after ``before`` in a total order, so no alert is
    skipped or repeated across pages, on any backend, however many share a time."""
    rows = list_alerts(db, since=since, ticker=ticker, limit=limit + 1, bucket_s=bucket_s, before=before)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, alert_cursor(datetime.fromisoformat(rows[-1]["at"]), rows[-1]["id"])
