"""The recommendations service's table: interactions posted to the API, kept for fold-in and retraining."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Integer, String
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
