"""Interaction retention (``finpulse prune --only interactions``) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from services.recommendations.models import RecsInteraction
from shared.db import Database
from shared.retention import prune

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _rows(db: Database) -> list[tuple[int, str]]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(select(RecsInteraction.id, RecsInteraction.item_id)
                                            .order_by(RecsInteraction.id))]


def test_old_interactions_go_but_the_newest_row_keeps_ids_from_being_reused(any_db_url, settings) -> None:
    db = Database(any_db_url)
    old = NOW - timedelta(days=100)
    rows = [{"domain": "default", "user_id": "u1", "item_id": f"old-{i}", "rating": 1.0, "event": "view",
             "ts": int(old.timestamp()), "created_at": old} for i in range(5)]
    # an old event posted yesterday waits for its arrival to age too
    rows.append({**rows[0], "item_id": "late", "created_at": NOW - timedelta(days=1)})
    rows.append({**rows[0], "item_id": "old-last"})
    with db.session() as s:
        s.execute(insert(RecsInteraction), rows)

    assert prune(db, settings, {"interactions": 30}, batch_size=2, now=NOW) == [
        ("interactions", 30, "recs_interactions", 5)]
    kept = _rows(db)
    assert [item for _, item in kept] == ["late", "old-last"]
    with db.session() as s:  # a new row still gets an id above every id a refit or service has read
        s.execute(insert(RecsInteraction), [{**rows[0], "item_id": "new"}])
    assert _rows(db)[-1][0] > kept[-1][0]
