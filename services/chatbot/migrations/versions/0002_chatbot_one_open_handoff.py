"""chatbot: at most one open handoff ticket per session

Revision ID: chatbot_0002
Revises: chatbot_0001
Create Date: 2026-11-28

Two "talk to a person" turns of one session handled at the same time each opened a
ticket. A partial unique index (SQLite and PostgreSQL both have them) makes the database
refuse the second; duplicates already open are closed first, keeping the oldest (the one
an agent was notified of first).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "chatbot_0002"
down_revision = "chatbot_0001"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.execute(
        "UPDATE chat_handoffs SET status = 'released', released_at = created_at, "
        "released_by = 'migration:duplicate' WHERE status = 'open' AND id NOT IN "
        "(SELECT MIN(id) FROM chat_handoffs WHERE status = 'open' GROUP BY session_id)")
    op.create_index("uq_chat_handoffs_open_session", "chat_handoffs", ["session_id"], unique=True,
                    sqlite_where=OPEN, postgresql_where=OPEN)


def downgrade() -> None:
    op.drop_index("uq_chat_handoffs_open_session", table_name="chat_handoffs")
