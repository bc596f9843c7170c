"""sentiment tables: articles, article tickers, scores, alerts, feed state

Revision ID: sentiment_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0001"
down_revision = None
branch_labels = ("sentiment",)
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "news_articles",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("source", sa.String(200), nullable=False, index=True),
        sa.Column("published_at", TS, nullable=False, index=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("url", sa.String(2000), nullable=True, unique=True),
        sa.Column("content_hash", sa.String(64), nullable=False, index=True),
        sa.Column("ingested_at", TS, nullable=False),
        sa.Column("scored_at", TS, nullable=True, index=True),
    )
    op.create_table(
        "news_article_tickers",
        sa.Column("article_id", sa.String(128), sa.ForeignKey("news_articles.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("ticker", sa.String(16), primary_key=True),
        sa.Column("relevance", sa.Float, nullable=False),
        sa.Column("published_at", TS, nullable=False),
    )
    op.create_index("ix_news_article_tickers_ticker_time", "news_article_tickers", ["ticker", "published_at"])
    op.create_table(
        "news_scores",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("article_id", sa.String(128), sa.ForeignKey("news_articles.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("label", sa.String(20), nullable=False),
        sa.Column("negative", sa.Float, nullable=False),
        sa.Column("neutral", sa.Float, nullable=False),
        sa.Column("positive", sa.Float, nullable=False),
        sa.Column("scored_at", TS, nullable=False),
        sa.UniqueConstraint("article_id", "ticker", name="uq_news_scores_article_ticker"),
    )
    op.create_table(
        "news_alerts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("ticker", sa.String(16), nullable=False, index=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("baseline", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("article_ids", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.UniqueConstraint("ticker", "at", name="uq_news_alerts_ticker_at"),
    )
    op.create_table(
        "news_feed_state",
        sa.Column("url", sa.String(2000), primary_key=True),
        sa.Column("etag", sa.String(500), nullable=True),
        sa.Column("modified", sa.String(100), nullable=True),
        sa.Column("polled_at", TS, nullable=True),
        sa.Column("last_status", sa.Text, nullable=True),
    )


def downgrade() -> None:
    for table in ("news_feed_state", "news_alerts", "news_scores", "news_article_tickers", "news_articles"):
        op.drop_table(table)
