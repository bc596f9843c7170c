"""sentiment: where each article-ticker link came from, so a relink knows which it may change

Revision ID: sentiment_0005
Revises: sentiment_0004
Create Date: 2026-12-07

``finpulse news relink`` runs the linker again over stored articles. It may add and remove the
links the linker made from the text, but never touch tickers a client gave in the row's
``tickers`` (they override linking), and it cannot re-derive a feed item's ``$TICKER`` category
tags (they are not stored). ``origin`` says which: ``text`` (linked from title and body),
``tag`` (a feed's category tag) or ``given`` (the row's ``tickers``). Links stored before this
revision keep null: unknown, so a relink only adds to such an article, never removes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sentiment_0005"
down_revision = "sentiment_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("news_article_tickers", sa.Column("origin", sa.String(8), nullable=True))


def downgrade() -> None:
    op.drop_column("news_article_tickers", "origin")  # SQLite 3.35+ drops an unindexed column in place
