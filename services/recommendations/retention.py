"""Retention of the recommender's posted interactions (``finpulse prune --only interactions``).

An interaction goes when it is older than the limit by its event time (``ts``) and by its
arrival (``created_at``), like news: a late-posted old event is folded in and refitted before it
goes. The newest row is always kept: services fold in, and refits pick up, rows above the last id
they read, and SQLite hands a deleted top id out again. A refit keeps the events its production
version was trained on (stored with that version); pruning limits what the table holds and what
later refits add, not what a registered version learned.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from services.recommendations.models import RecsInteraction
from shared.retention import Batches, Kind

if TYPE_CHECKING:
    from shared.db import Database
    from shared.settings import Settings


def prune_interactions(db: Database, cutoff: datetime, _settings: Settings, batches: Batches) -> dict[str, int]:
    """Interactions older than ``cutoff`` (both clocks), all but the newest row."""
    rows = RecsInteraction.__table__.c
    newest = select(func.max(rows.id)).scalar_subquery()
    return batches.delete(db, rows.id, [rows.ts < int(cutoff.timestamp()), rows.created_at < cutoff,
                                        rows.id < newest])


INTERACTIONS = Kind("interactions", ("recs_interactions",), prune_interactions)
