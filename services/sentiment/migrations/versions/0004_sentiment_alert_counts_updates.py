"""sentiment: an alert's true article count, and when it was raised apart from its updates

Revision ID: sentiment_0004
Revises: sentiment_0003
Create Date: 2026-12-06

``article_ids`` keeps at most 50 ids, so a dashboard counting them showed "50 articles" under
an alert whose message said 87: ``article_count`` holds them all (null on alerts stored
before; they are served with the number of their ids until re-judged). An alert whose
numbers change (same kind and severity) is now sent on the stream as ``event: update``;
``raised_at`` keeps when it was raised once an update has moved ``created_at`` (its stream
position) on, so a client that missed the raise still gets ``event: alert``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0004"
down_revision = "sentiment_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("news_alerts", sa.Column("article_count", sa.Integer(), nullable=True))
    op.add_column("news_alerts", sa.Column("raised_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops an unindexed column in place
    op.drop_column("news_alerts", "raised_at")
    op.drop_column("news_alerts", "article_count")
