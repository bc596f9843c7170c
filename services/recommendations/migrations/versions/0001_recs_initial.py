"""recommendations: interactions table

Revision ID: recs_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recs_0001"
down_revision = None
branch_labels = ("recommendations",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recs_interactions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("rating", sa.Float, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_recs_interactions_domain", "recs_interactions", ["domain"])
    op.create_index("ix_recs_interactions_user_id", "recs_interactions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_recs_interactions_user_id", "recs_interactions")
    op.drop_index("ix_recs_interactions_domain", "recs_interactions")
    op.drop_table("recs_interactions")
