"""sentiment: quiet alerts, which a backfill raised and the live stream leaves out

Revision ID: sentiment_0003
Revises: sentiment_0002
Create Date: 2026-12-06

``news ingest --backfill`` pushes nothing to Redis or the webhook, but the SSE stream reads
``news_alerts.created_at`` and sent every backfilled alert live. ``quiet`` marks an alert
whose last change (raised, changed or retracted) came from a backfill: ``GET /v1/alerts``
lists it, the stream and its replay do not send it. Existing alerts stay loud (false).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0003"
down_revision = "sentiment_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("news_alerts", sa.Column("quiet", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("news_alerts", "quiet")  # SQLite 3.35+ drops an unindexed column in place
