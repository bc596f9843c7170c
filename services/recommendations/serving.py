"""The recommendations service's domain logic: the live model, stored events, fold-in, retrain.

The served model lives in ``FINPULSE_HOME/recs/<domain>/current`` (a directory written
by :func:`services.recommendations.pipeline.train`, swapped atomically). It is loaded
lazily, once per process, and reloaded when the directory is replaced (a retrain).
Posted interactions go to the ``recs_interactions`` table and into the in-memory
histories; each request first folds in rows other processes stored since, so every
process sees every new event without a retrain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from data_connectors.interactions import Interaction
from services.recommendations.pipeline import TrainedModel
from shared.errors import BadInput, Unavailable

MAX_K = 100
SYNC_INTERVAL_S = 0.5  # how stale another process's posted events may be on this one
log = logging.getLogger(__name__)


def model_dir(settings: Any, domain: str | None = None) -> Path:
    """Where the served model of ``domain`` lives."""
    return Path(settings.home) / "recs" / (domain or settings.recommendations_domain) / "current"


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise BadInput(f"k must be between 1 and {MAX_K}, got {k}", code="bad_k")
    return k


class RecsService:
    """One per process (``app.extensions['recs']``); thread-safe."""

    def __init__(self, settings: Any, db: Any = None, domain: str | None = None):
        self.settings = settings
        self.db = db
        self.domain = domain or settings.recommendations_domain
        self.path = model_dir(settings, self.domain)
        self._lock = threading.RLock()
        self._model: TrainedModel | None = None
        self._stamp: tuple[int, float] | None = None
        self._synced_id = 0
        self._synced_at = 0.0

    # -- the model ------------------------------------------------------------------------
    def _dir_stamp(self) -> tuple[int, float] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime)

    def model(self) -> TrainedModel:
        """The current model, loaded on first use and after a retrain replaced the directory."""
        stamp = self._dir_stamp()
        if stamp is None:
            raise Unavailable(f"no recommendations model for domain {self.domain!r} yet ({self.path}); "
                              f"train one with `finpulse recs train --output {self.path}` or wait for "
                              f"`finpulse up` to prepare it")
        if self._model is None or stamp != self._stamp:
            with self._lock:
                if self._model is None or stamp != self._stamp:
                    model = TrainedModel(self.path)
                    self._synced_id = int(model.config.get("db_max_id") or 0)
                    self._model, self._stamp = model, stamp
                    self._synced_at = 0.0
        self._sync()
        assert self._model is not None
        return self._model

    def ready(self) -> None:
        """Readiness check: raises :class:`Unavailable` naming what is missing."""
        self.model()

    # -- stored interactions ------------------------------------------------------------
    def _sync(self, force: bool = False) -> None:
        """Fold in rows stored (by any process) since the last sync.

        At most every ``SYNC_INTERVAL_S`` on the read path (a query per request would be most
        of the latency budget); a process's own posts sync at once (``force``).
        """
        if self.db is None or self._model is None:
            return
        now = time.monotonic()
        if not force and now - self._synced_at < SYNC_INTERVAL_S:
            return
        self._synced_at = now
        from services.recommendations.models import RecsInteraction

        try:
            with self.db.session() as s:
                rows = s.execute(select(RecsInteraction.id, RecsInteraction.user_id, RecsInteraction.item_id,
                                        RecsInteraction.ts)
                                 .where(RecsInteraction.domain == self.domain,
                                        RecsInteraction.id > self._synced_id)
                                 .order_by(RecsInteraction.id)).all()
        except SQLAlchemyError as exc:
            # serving goes on from memory; readiness reports the database separately
            log.warning("recommendations: cannot read stored interactions: %s", exc)
            return
        if not rows:
            return
        with self._lock:
            for row_id, user, item, ts in rows:
                if row_id > self._synced_id:
                    self._model.add(user, item, ts)
                    self._synced_id = row_id

    def add_interactions(self, events: Sequence[Interaction]) -> dict[str, Any]:
        """Store events and fold them into the users' histories; unknown items wait for a retrain."""
        model = self.model()
        now = datetime.now(UTC)
        if self.db is not None:
            from services.recommendations.models import RecsInteraction

            try:
                with self.db.session() as s:
                    s.add_all([RecsInteraction(domain=self.domain, user_id=e.user_id, item_id=e.item_id,
                                               rating=e.rating, event=e.event,
                                               ts=e.timestamp or int(time.time()), created_at=now)
                               for e in events])
            except SQLAlchemyError as exc:
                raise Unavailable(f"cannot store interactions: {str(exc).splitlines()[0]}") from None
            self._sync(force=True)
            known = sum(1 for e in events if e.item_id in model.item_index)
        else:
            with self._lock:
                known = sum(model.add(e.user_id, e.item_id, e.timestamp) for e in events)
        return {"stored": len(events), "folded_in": known, "unknown_items": len(events) - known}

    # -- queries --------------------------------------------------------------------------
    def recommend(self, user_id: str, k: int = 10) -> dict[str, Any]:
        check_k(k)
        model = self.model()
        known = str(user_id) in model.histories
        items = model.recommend([str(user_id)], k)[0]
        return {"user_id": str(user_id), "items": items,
                "strategy": "personalised" if known else "popularity"}

    def similar(self, item_id: str, k: int = 10) -> dict[str, Any]:
        check_k(k)
        model = self.model()
        known = str(item_id) in model.item_index
        return {"item_id": str(item_id), "items": model.similar(str(item_id), k),
                "strategy": "similar" if known else "popularity"}

    def max_stored_id(self) -> int:
        if self.db is None:
            return 0
        from services.recommendations.models import RecsInteraction

        with self.db.session() as s:
            return int(s.execute(select(func.max(RecsInteraction.id))
                                 .where(RecsInteraction.domain == self.domain)).scalar() or 0)


def retrain(settings: Any, db: Any = None, domain: str | None = None) -> dict[str, Any]:
    """Refit the served model on its own training events plus every stored one; swap it in."""
    import json

    import numpy as np

    from data_connectors.interactions import read_items
    from services.recommendations.pipeline import RecsConfig, train

    service = RecsService(settings, db, domain)
    path = service.path
    if not (path / "ids.json").is_file():
        raise Unavailable(f"nothing to retrain: no model in {path}")
    ids = json.loads((path / "ids.json").read_text())
    old = json.loads((path / "train_config.json").read_text())
    with np.load(path / "interactions.npz") as npz:
        users, items, times, ratings = npz["users"], npz["items"], npz["times"], npz["ratings"]
    events = [Interaction(ids["user_ids"][u], ids["item_ids"][i], float(r), int(t))
              for u, i, t, r in zip(users, items, times, ratings, strict=True)]
    max_id = service.max_stored_id()
    if db is not None:
        from services.recommendations.models import RecsInteraction

        with db.session() as s:
            already = int(old.get("db_max_id") or 0)  # rows up to here are in interactions.npz
            query = select(RecsInteraction).where(RecsInteraction.domain == service.domain,
                                                  RecsInteraction.id > already, RecsInteraction.id <= max_id)
            for r in s.execute(query).scalars():
                events.append(Interaction(r.user_id, r.item_id, r.rating, r.ts, r.event))
    catalogue = read_items(path / "items.jsonl")[0] if (path / "items.jsonl").is_file() else None
    config = RecsConfig(**{k: v for k, v in old.get("config", {}).items() if k in RecsConfig.__dataclass_fields__})
    train(events, path, items=catalogue, config=config,
          lineage={"retrained_from": str(path), "db_max_id": max_id})
    return {"domain": service.domain, "interactions": len(events), "db_max_id": max_id, "path": str(path)}
