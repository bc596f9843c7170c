"""News retention: articles go with their tickers and scores, alerts with their buckets (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.sentiment.models import Alert, Article, ArticleTicker, Score
from shared.db import Database
from shared.errors import BadInput
from shared.retention import plan, prune

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def _article(s, aid: str, published: datetime, ingested: datetime) -> None:
    s.add(Article(id=aid, source="wire", published_at=published, title=f"ACME {aid}", body="",
                  url=f"https://news.example/{aid}", content_hash=aid, ingested_at=ingested, scored_at=ingested))
    s.flush()  # the article before its children: PostgreSQL checks the foreign keys per statement
    s.add(ArticleTicker(article_id=aid, ticker="ACME", relevance=1.0, published_at=published))
    s.add(Score(article_id=aid, ticker="ACME", model_version="news/sentiment@1", label="negative",
                negative=0.9, neutral=0.05, positive=0.05, scored_at=ingested))


def _alert(s, aid: str, at: datetime, article_ids: list[str]) -> None:
    s.add(Alert(id=aid, ticker="ACME", kind="negative_burst", severity="warn", at=at, value=5, baseline=1,
                message="burst", article_ids=article_ids, article_count=len(article_ids), created_at=at))


def _ids(db: Database, model) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(model.id)))


def test_old_news_goes_whole_and_no_kept_alert_names_a_pruned_article(any_db_url, settings) -> None:
    db = Database(any_db_url)
    cutoff = NOW - timedelta(days=40)  # 2025-04-22 12:00; its midnight 2025-04-22 00:00
    midnight = datetime(2025, 4, 22, tzinfo=UTC)
    with db.session() as s:
        _article(s, "old", midnight - timedelta(days=5), midnight - timedelta(days=5))
        _article(s, "edge", midnight + timedelta(hours=3), midnight + timedelta(hours=3))  # cutoff's own day
        _article(s, "backfilled", midnight - timedelta(days=300), NOW - timedelta(days=1))  # arrived yesterday
        _article(s, "fresh", NOW - timedelta(days=1), NOW - timedelta(days=1))
        _alert(s, "a-old", midnight - timedelta(days=5), ["old"])
        _alert(s, "a-edge", midnight, ["edge"])
    assert cutoff > midnight + timedelta(hours=3)  # "edge" is older than the cutoff, yet its bucket is split

    assert prune(db, settings, {"news": 40}, batch_size=1, now=NOW) == [
        ("news", 40, "news_article_tickers", 1), ("news", 40, "news_scores", 1),
        ("news", 40, "news_articles", 1), ("news", 40, "news_alerts", 1)]
    assert _ids(db, Article) == {"edge", "backfilled", "fresh"}
    assert _ids(db, Alert) == {"a-edge"}
    with db.session() as s:
        kept_alert_articles = {i for ids in s.scalars(select(Alert.article_ids)) for i in ids}
        orphans = s.scalar(select(func.count()).select_from(Score).where(Score.article_id.not_in(select(Article.id))))
    assert kept_alert_articles <= _ids(db, Article) and orphans == 0


def test_news_retention_must_exceed_the_alert_baseline(settings) -> None:
    with pytest.raises(BadInput, match="must exceed the 30-day alert baseline"):
        plan(settings, ["news"], 30)
    assert plan(settings, ["news"], 31) == {"news": 31}


def test_an_alert_over_a_backfill_that_stays_is_kept_until_its_articles_go(any_db_url, settings) -> None:
    """A backfill's articles arrived recently and stay; pruning their alert made the next article
    in that old bucket raise it again as a brand-new alert."""
    db = Database(any_db_url)
    bucket = datetime(2024, 8, 1, tzinfo=UTC)
    with db.session() as s:
        _article(s, "bf1", bucket + timedelta(hours=2), NOW - timedelta(days=1))
        _article(s, "bf2", bucket + timedelta(hours=5), NOW - timedelta(days=1))
        _alert(s, "a-bf", bucket, ["bf1", "bf2"])
    prune(db, settings, {"news": 40}, now=NOW)
    assert _ids(db, Article) == {"bf1", "bf2"} and _ids(db, Alert) == {"a-bf"}
    # once the backfill itself is old by arrival too, article and alert go together
    prune(db, settings, {"news": 40}, now=NOW + timedelta(days=60))
    assert _ids(db, Article) == set() and _ids(db, Alert) == set()


def test_a_dry_run_counts_the_alerts_the_prune_then_deletes(any_db_url, settings) -> None:
    """A dry run deletes no articles, so every old alert still had its bucket's articles "left" and
    `prune --dry-run` said 0 alerts would go where the prune itself then deleted them."""
    db = Database(any_db_url)
    bucket = datetime(2025, 3, 1, tzinfo=UTC)
    with db.session() as s:
        _article(s, "old1", bucket + timedelta(hours=2), bucket + timedelta(hours=2))
        _article(s, "old2", bucket + timedelta(hours=5), bucket + timedelta(hours=5))
        _alert(s, "a-old", bucket, ["old1", "old2"])
        _article(s, "bf", bucket - timedelta(days=10), NOW - timedelta(days=1))  # a backfill that stays
        _alert(s, "a-bf", bucket - timedelta(days=10), ["bf"])
    dry = prune(db, settings, {"news": 40}, dry_run=True, now=NOW)
    assert _ids(db, Article) == {"old1", "old2", "bf"} and _ids(db, Alert) == {"a-old", "a-bf"}
    assert dry == [("news", 40, "news_article_tickers", 2), ("news", 40, "news_scores", 2),
                   ("news", 40, "news_articles", 2), ("news", 40, "news_alerts", 1)]
    assert prune(db, settings, {"news": 40}, now=NOW) == dry
    assert _ids(db, Article) == {"bf"} and _ids(db, Alert) == {"a-bf"}
