"""Sentiment tables: articles, their linked tickers, scores (with model version), alerts, feeds.

Datetimes are stored as UTC; SQLite hands them back naive, so readers go through
:func:`as_utc`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Stored datetimes are UTC; SQLite drops the zone, so put it back."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Article(Base):
    __tablename__ = "news_articles"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True, unique=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    # When this text arrived (a re-post with changed text is a new arrival): the scoring backlog's age.
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # NULL until scored: the sweep picks these up again after a crash.
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    # Its language (ISO 639-1) as ingest detected it: "en" also when in doubt; None: stored before sentiment_0006.
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # Why it was left unscored (no scores, scored_at set: a language the model does not read); None: scored.
    skip_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)

    # /metrics reads the backlog's size and oldest arrival from this index alone.
    __table_args__ = (Index("ix_news_articles_unscored", "scored_at", "ingested_at"),)


class ArticleTicker(Base):
    __tablename__ = "news_article_tickers"

    article_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("news_articles.id", ondelete="CASCADE"), primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16), primary_key=True)
    relevance: Mapped[float] = mapped_column(Float, default=1.0)
    # Copy of the article's event time, so per-ticker series need no join.
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Where the link came from: 'text' (the linker), 'tag' (a feed's category tag) or 'given' (the
    # row's ``tickers``); None: stored before sentiment_0005. ``news relink`` changes 'text' links only.
    origin: Mapped[str | None] = mapped_column(String(8), nullable=True)

    __table_args__ = (Index("ix_news_article_tickers_ticker_time", "ticker", "published_at"),)


class Score(Base):
    """One score per (article, ticker); ticker '' scores an article with no linked ticker."""

    __tablename__ = "news_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("news_articles.id", ondelete="CASCADE"), index=True)
    ticker: Mapped[str] = mapped_column(String(16), default="")
    model_version: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(20))
    negative: Mapped[float] = mapped_column(Float)
    neutral: Mapped[float] = mapped_column(Float)
    positive: Mapped[float] = mapped_column(Float)
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("article_id", "ticker", name="uq_news_scores_article_ticker"),)


class Alert(Base):
    """One alert per ticker and bucket (``at`` is the bucket start, event time).

    A retracted alert stays as a tombstone (``retracted_at`` set) so the stream can send the
    retraction, also on a ``Last-Event-ID`` replay; raised again, the same row comes back.
    A ``quiet`` one (raised, changed or retracted by a backfill) is never sent on the stream.
    """

    __tablename__ = "news_alerts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    value: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    article_ids: Mapped[list] = mapped_column(JSON, default=list)  # at most alerts.MAX_ARTICLE_IDS of them
    # Articles in its bucket, all of them (article_ids is capped); None: stored before sentiment_0004.
    article_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # When last raised, changed in kind or severity, updated in its numbers, or retracted: the stream's order.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # When last raised or changed in kind or severity, once an update has moved created_at past it
    # (None: at created_at). The stream sends an update as an alert to a client that missed the raise.
    raised_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retracted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Its last change came from a backfill: listed, but the live stream (and its replay) leave it out.
    quiet: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (UniqueConstraint("ticker", "at", name="uq_news_alerts_ticker_at"),)


class FeedState(Base):
    """Conditional-GET state of a polled feed (ETag / Last-Modified)."""

    __tablename__ = "news_feed_state"

    url: Mapped[str] = mapped_column(String(2000), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(500), nullable=True)
    modified: Mapped[str | None] = mapped_column(String(100), nullable=True)
    polled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[str | None] = mapped_column(Text, nullable=True)
