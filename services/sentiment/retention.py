"""Retention of the sentiment service's tables (``finpulse prune --only news``).

An article goes, with its linked tickers and its scores, when it is older than the limit by both
of its clocks: by event time (``published_at``, what every series, alert and window reads: the
window kept is whole), cut at a UTC midnight so no alert bucket is split; and by arrival
(``ingested_at``), so a backfill of old history is scored, and its alerts judged, before it goes.
An alert goes when its bucket (``at``) lies before that same midnight and no article of its ticker
from its bucket on (up to the midnight) is left: an alert that stays never names a pruned article,
one whose bucket's articles were pruned goes with them, and one over a backfill whose articles
stay (they arrived recently) stays too, or the next article in its bucket would raise it anew. A limit must
exceed ``FINPULSE_SENTIMENT_BASELINE_DAYS``: live alerts judge each bucket against that many days
before it. Feed state (``news_feed_state``) is a row per feed and is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import exists

from services.sentiment.aggregate import floor_time
from services.sentiment.models import Alert, Article, ArticleTicker, Score
from shared.retention import Batches, Kind

if TYPE_CHECKING:
    from shared.db import Database
    from shared.settings import Settings

DAY_S = 86_400  # a day boundary is a bucket boundary of every bucket size (1h, 1d)


def prune_news(db: Database, cutoff: datetime, _settings: Settings, batches: Batches) -> dict[str, int]:
    """Articles (tickers and scores first) and alerts older than ``cutoff``'s UTC midnight."""
    midnight = floor_time(cutoff, DAY_S)
    articles, alerts = Article.__table__.c, Alert.__table__.c
    old = [articles.published_at < midnight, articles.ingested_at < cutoff]
    counts = batches.delete(db, articles.id, old,
                            children=[ArticleTicker.__table__.c.article_id, Score.__table__.c.article_id])
    tickers = ArticleTicker.__table__.c
    # an article "left" is one this prune keeps: a dry run deletes none, and counted every old
    # alert as kept (0 "would delete") that the prune itself then deleted
    kept = ~exists().where(articles.id == tickers.article_id, *old)
    left = exists().where(tickers.ticker == alerts.ticker, tickers.published_at >= alerts.at,
                          tickers.published_at < midnight, kept)
    counts |= batches.delete(db, alerts.id, [alerts.at < midnight, ~left])
    return counts


def check_news(settings: Settings, days: int) -> str | None:
    """A limit at or under the alert baseline would starve every live alert of its baseline."""
    baseline = settings.sentiment_baseline_days
    if days <= baseline:
        return (f"news retention of {days} days must exceed the {baseline}-day alert baseline "
                f"(FINPULSE_SENTIMENT_BASELINE_DAYS): keep at least {baseline + 1} days")
    return None


NEWS = Kind("news", ("news_article_tickers", "news_scores", "news_articles", "news_alerts"), prune_news,
            check_news)
