"""The recommendations service's domain logic: the live model, stored events, fold-in.

The served model is the registry's ``production`` version of ``<domain>/recommendations``
(:mod:`services.recommendations.versions`). It is loaded lazily, once per process, and
reloaded when the ``production.json`` pointer is replaced (promote, rollback, a retrain
job): one ``stat`` per request, like the sentiment service's per-call resolution of the
pointer, so no reload message (``shared.reload``) is needed and a process that missed one
cannot serve a stale version. Posted interactions go to the ``recs_interactions`` table
and into the in-memory histories; each request first folds in rows other processes
stored since, so every process sees every new event without a retrain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from data_connectors.interactions import Interaction
from services.recommendations.models import restarted_below
from services.recommendations.pipeline import TrainedModel
from services.recommendations.recommenders.data import is_positive
from services.recommendations.versions import TASK, import_legacy, registry
from shared.errors import BadInput, Unavailable

MAX_K = 100
SYNC_INTERVAL_S = 0.5  # how stale another process's posted events may be on this one
POST_LOCK_KEY = 0x46505243  # "FPRC": with the domain's hash, the advisory lock its interaction posts take turns on
log = logging.getLogger(__name__)


def serialise_posts(session: Any, domain: str) -> None:
    """Make ``domain``'s interaction posts commit in the order of their row ids (call first in the
    transaction that inserts them). Readers (a service's fold-in, a refit's ``db_max_id``) go on
    from the newest id they saw; PostgreSQL takes an id when a row is written and shows the row when
    its transaction commits, so a post still committing appeared behind a newer one already read
    past, and that click was never read by any process or refit. One post at a time per domain (an
    advisory lock until commit) gives the ids out in commit order. SQLite writes one at a time anyway."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key, hashtext(:domain))"),
                        {"key": POST_LOCK_KEY, "domain": domain})


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
        self.registry = registry(settings)
        self.pointer = self.registry.pointer_path(self.domain, TASK)
        self._lock = threading.RLock()
        self._model: TrainedModel | None = None
        self._stamp: tuple[int, int] | None = None
        self._synced_id = 0
        self._synced_at = 0.0
        self._retired: set[str] = set()  # retired item ids (the table's, read every SYNC_INTERVAL_S)
        self._retired_at = float("-inf")

    # -- the model ------------------------------------------------------------------------
    def _pointer_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.pointer.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def model(self) -> TrainedModel:
        """The production model, loaded on first use and again whenever production moved."""
        stamp = self._pointer_stamp()
        if stamp is None and import_legacy(self.settings, self.domain) is not None:
            stamp = self._pointer_stamp()
        if stamp is None:
            raise Unavailable(f"no production recommender for {self.domain}/{TASK} yet; `finpulse up` "
                              "prepares one, or POST /v1/admin/retrain with an interactions file")
        if self._model is None or stamp != self._stamp:
            with self._lock:
                if self._model is None or stamp != self._stamp:
                    self._load(stamp)
        self._sync()
        assert self._model is not None
        return self._model

    def _load(self, stamp: tuple[int, int]) -> None:
        mv = self.registry.production(self.domain, TASK)
        if mv is None:
            raise Unavailable(f"{self.pointer} names a version that is not in the registry; "
                              f"promote one with `finpulse models promote {self.domain}/{TASK}@vN`")
        model = TrainedModel(mv.path, ref=mv.ref)
        self._synced_id = int(model.config.get("db_max_id") or 0)
        self._model, self._stamp = model, stamp
        self._synced_at = 0.0
        log.info("recommendations: serving %s", mv.ref)

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

        with self._lock:
            model, after = self._model, self._synced_id
        try:
            with self.db.session() as s:
                rows = s.execute(select(RecsInteraction.id, RecsInteraction.user_id, RecsInteraction.item_id,
                                        RecsInteraction.ts, RecsInteraction.rating, RecsInteraction.event)
                                 .where(RecsInteraction.domain == self.domain,
                                        RecsInteraction.id > after)
                                 .order_by(RecsInteraction.id)).all()
                restarted = not rows and restarted_below(s, after)
        except SQLAlchemyError as exc:
            # serving goes on from memory; readiness reports the database separately
            log.warning("recommendations: cannot read stored interactions: %s", exc)
            return
        if restarted:
            with self._lock:
                if self._model is not model or self._synced_id != after:
                    return
                log.warning("recommendations: the interactions table holds no row from %d on (made again, or "
                            "another database): folding it in from its first row", after)
                self._synced_id = 0
            self._sync(force=True)
            return
        if not rows:
            return
        with self._lock:
            if self._model is not model:  # production moved while this read: the rows read were
                # the old model's, and moving the new one's mark past them lost its earlier rows
                return  # (a rollback's model starts lower); the new model's own sync reads them
            fresh = [(user, item, ts, is_positive(rating, event))
                     for row_id, user, item, ts, rating, event in rows if row_id > self._synced_id]
            self._model.add_many(fresh)
            self._synced_id = max(self._synced_id, rows[-1][0])

    def add_interactions(self, events: Sequence[Interaction]) -> dict[str, Any]:
        """Store events and fold them into the users' histories; unknown items wait for a retrain.

        Storing needs no model: clicks posted before the first one is promoted (``finpulse up``'s
        first-run preparation) are kept, and the model folds them in when it loads. A database
        that cannot be written raises here, for the shared handler's 503 (driver text logged, not
        sent).
        """
        if self.db is None:  # nowhere to keep them but the live model's histories
            model = self.model()
            with self._lock:
                known = model.add_many((e.user_id, e.item_id, e.timestamp, is_positive(e.rating, e.event))
                                       for e in events)
            return {"stored": len(events), "folded_in": known, "unknown_items": len(events) - known,
                    "model_version": model.ref}
        from services.recommendations.models import RecsInteraction

        now = datetime.now(UTC)
        with self.db.session() as s:
            serialise_posts(s, self.domain)
            s.add_all([RecsInteraction(domain=self.domain, user_id=e.user_id, item_id=e.item_id,
                                       rating=e.rating, event=e.event,
                                       ts=e.timestamp, created_at=now)
                       for e in events])
        try:
            model = self.model()
        except Unavailable as exc:  # stored: the first model to load folds them in
            log.info("recommendations: %d interactions stored before a model is served (%s)",
                     len(events), exc.message)
            return {"stored": len(events), "folded_in": 0, "unknown_items": 0, "model_version": None}
        self._sync(force=True)
        known = sum(1 for e in events if e.item_id in model.item_index)
        return {"stored": len(events), "folded_in": known, "unknown_items": len(events) - known,
                "model_version": model.ref}

    # -- retired items --------------------------------------------------------------------
    def retire(self, item_id: str, actor: str) -> dict[str, Any]:
        """Take ``item_id`` out of service: no answer names it again (in any process, within
        ``SYNC_INTERVAL_S``) and refits leave its events out. Retiring it again changes nothing."""
        item_id = str(item_id)
        if self.db is None:  # nowhere to keep it but this process
            self._retired.add(item_id)
            return {"item_id": item_id, "retired": True}
        from services.recommendations.models import RecsRetiredItem

        try:
            with self.db.session() as s:
                if s.get(RecsRetiredItem, (self.domain, item_id)) is None:
                    s.add(RecsRetiredItem(domain=self.domain, item_id=item_id, retired_at=datetime.now(UTC),
                                          actor=actor[:100]))
        except IntegrityError:  # another request retired it meanwhile (its row won): retired all the same
            pass
        self._retired_at = float("-inf")  # this process sees it at once
        return {"item_id": item_id, "retired": True}

    def restore(self, item_id: str) -> dict[str, Any]:
        """Undo :meth:`retire`: answers may name ``item_id`` again (other processes within
        ``SYNC_INTERVAL_S``) and refits keep its events. Events a refit left out while it was
        retired stay out of that version; ``restored`` says whether it was retired at all."""
        item_id = str(item_id)
        if self.db is None:
            restored = item_id in self._retired
            self._retired.discard(item_id)
            return {"item_id": item_id, "retired": False, "restored": restored}
        from services.recommendations.models import RecsRetiredItem

        with self.db.session() as s:
            restored = s.execute(delete(RecsRetiredItem).where(RecsRetiredItem.domain == self.domain,
                                                               RecsRetiredItem.item_id == item_id)).rowcount > 0
        self._retired_at = float("-inf")
        return {"item_id": item_id, "retired": False, "restored": restored}

    def _exclude(self, model: TrainedModel) -> list[int]:
        """Indices of the retired items ``model`` knows, for the recommenders' ``exclude``."""
        if self.db is not None and time.monotonic() - self._retired_at >= SYNC_INTERVAL_S:
            from services.recommendations.models import retired_ids

            try:
                self._retired = retired_ids(self.db, self.domain)
                self._retired_at = time.monotonic()
            except SQLAlchemyError as exc:  # serve on with the last list read
                log.warning("recommendations: cannot read retired items: %s", exc)
        return [model.item_index[i] for i in self._retired if i in model.item_index]

    # -- queries --------------------------------------------------------------------------
    def recommend(self, user_id: str, k: int = 10) -> dict[str, Any]:
        check_k(k)
        model = self.model()
        items = model.recommend([str(user_id)], k, exclude=self._exclude(model))[0]
        return {"user_id": str(user_id), "items": items,
                "strategy": "personalised" if model.has_evidence(user_id) else "popularity",
                "model_version": model.ref}

    def similar(self, item_id: str, k: int = 10) -> dict[str, Any]:
        check_k(k)
        model = self.model()
        items, strategy = model.similar(str(item_id), k, exclude=self._exclude(model))
        return {"item_id": str(item_id), "items": items, "strategy": strategy, "model_version": model.ref}
