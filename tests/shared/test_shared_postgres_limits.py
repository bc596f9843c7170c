"""What PostgreSQL enforces and SQLite does not: column widths and 32-bit ids (each was a 500)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, select, text


@pytest.mark.postgres
def test_long_audit_values_and_a_huge_message_cursor_fit_postgres(postgres_url: str) -> None:
    from services.chatbot import handoff
    from shared.auth import audit
    from shared.db import Database, upgrade
    from shared.models import AuditLog

    name = f"fp_lim_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        db = Database(url)
        try:
            # a promote of "v999...9" (400 digits) failed its audit row: varchar(300)
            audit(db, "ops", "model.promote", "news/sentiment@v" + "9" * 400, "error", {"error": "x"})
            with db.session() as s:
                assert len(s.scalars(select(AuditLog.target)).one()) == 300
            # the widget's poll cursor is clamped by the API to the 32-bit id range
            assert handoff.agent_messages(db, "s1", 2**31 - 1) == []
        finally:
            db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
