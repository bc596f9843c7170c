"""sentiment: each article's language, and why one was left unscored

Revision ID: sentiment_0006
Revises: sentiment_0005
Create Date: 2026-12-08

The sentiment model reads English only; feeds also carry German, French, Finnish ... headlines,
whose scores were noise in the series and alerts. Ingest now detects an article's language
(``language``: ISO 639-1, ``en`` also when in doubt) and scoring leaves an article of a language
it does not score without scores, ``scored_at`` set (so the sweep does not take it again) and
``skip_reason`` saying why. Articles stored before this revision keep null: scored as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0006"
down_revision = "sentiment_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("news_articles", sa.Column("language", sa.String(8), nullable=True))
    op.add_column("news_articles", sa.Column("skip_reason", sa.String(200), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops an unindexed column in place
    op.drop_column("news_articles", "skip_reason")
    op.drop_column("news_articles", "language")
