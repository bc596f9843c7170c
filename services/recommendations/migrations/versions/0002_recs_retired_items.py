"""recommendations: retired items

Revision ID: recs_0002
Revises: recs_0001
Create Date: 2026-12-06

``DELETE /v1/items/{id}`` (ops) records the item here: serving leaves it out of every answer
and refits leave its events out, so a deleted FAQ entry or a superseded article stops coming back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recs_0002"
down_revision = "recs_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recs_retired_items",
        sa.Column("domain", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.String(200), primary_key=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("recs_retired_items")
