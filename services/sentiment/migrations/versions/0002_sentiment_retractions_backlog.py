"""sentiment: alert tombstones for stream retractions, an index for the scoring backlog

Revision ID: sentiment_0002
Revises: sentiment_0001
Create Date: 2026-11-28

An alert that re-evaluation no longer supports was deleted, so an open dashboard never
learned of it; it is now kept with ``retracted_at`` set and the stream sends a retraction
(``Last-Event-ID`` replay included). ``/metrics`` reads the number and the oldest arrival
of unscored articles from ``(scored_at, ingested_at)``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0002"
down_revision = "sentiment_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("news_alerts", sa.Column("retracted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_news_articles_unscored", "news_articles", ["scored_at", "ingested_at"])


def downgrade() -> None:
    op.drop_index("ix_news_articles_unscored", table_name="news_articles")
    op.execute("DELETE FROM news_alerts WHERE retracted_at IS NOT NULL")  # tombstones are not alerts
    op.drop_column("news_alerts", "retracted_at")  # SQLite 3.35+ drops an unindexed column in place
