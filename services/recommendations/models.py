"""The recommendations service's tables: interactions posted to the API, kept for fold-in and
retraining, and the items retired from service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class RecsInteraction(Base):
    """One posted event; ``ts`` is its Unix time (event time), ``created_at`` when it arrived."""

    __tablename__ = "recs_interactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    item_id: Mapped[str] = mapped_column(String(200))
    rating: Mapped[float] = mapped_column(Float, default=1.0)
    event: Mapped[str] = mapped_column(String(32), default="view")
    ts: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RecsRetiredItem(Base):
    """An item taken out of service (a deleted FAQ entry, a superseded article): its id is never
    served again and refits leave its events out. One row per domain and item, so retiring twice is
    a no-op."""

    __tablename__ = "recs_retired_items"

    domain: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    retired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))


def restarted_below(session: Any, mark: int) -> bool:
    """Whether the interactions table restarted below row ``mark`` (a reader's last row read, or a
    version's ``db_max_id``): it holds no row at or above it. Ids only grow (retention keeps the
    newest row), so this is a table dropped and made again (``finpulse db downgrade`` and upgrade)
    or another database (``DATABASE_URL`` moved from SQLite to PostgreSQL): its first ``mark``
    posts were read past, folded in by no process and left out of every refit."""
    if mark <= 0:
        return False
    return int(session.execute(select(func.max(RecsInteraction.id))).scalar() or 0) < mark


def retired_ids(db: Any, domain: str) -> set[str]:
    """The ids retired in ``domain`` (none without a database)."""
    if db is None:
        return set()
    from sqlalchemy import select

    with db.session() as s:
        return set(s.execute(select(RecsRetiredItem.item_id).where(RecsRetiredItem.domain == domain)).scalars())
