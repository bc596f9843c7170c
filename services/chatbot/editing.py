"""Versioned knowledge-base edits: change the live index in place, persist, record the change."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select

from data_connectors.base import BadRow
from data_connectors.faq import entry_from_row
from services.chatbot.kb import edit_lock
from services.chatbot.models import KbChange
from services.chatbot.retriever import get_encoder
from shared.errors import BadInput


def upsert_entry(engine: Any, db: Any, entry_id: str, fields: dict[str, Any], actor: str) -> tuple[bool, int]:
    """Add or replace ``entry_id``; returns (created, new KB version).

    Under :func:`edit_lock` from the freshly read index to the logged change, so concurrent
    edits (any process) each start from the previous one's result and the change log
    replays: every ``before`` is the previous ``after``, versions rise in log order.
    """
    try:
        entry = entry_from_row({**fields, "id": entry_id}, "request body", 0)
    except BadRow as exc:  # a request has no file, line or row ("request body:0: id 'a b' ..."): the id is the URL's
        raise BadInput(exc.reason.replace("id ", "the URL's id ", 1) if exc.reason.startswith("id ")
                       else exc.reason) from None
    with edit_lock(engine.handle.directory):
        kb = engine.handle.get(fresh=True)
        _past_the_log(db, engine.domain, kb)
        before = kb.entries[entry_id].to_dict() if entry_id in kb.entries else None
        encoder = engine.encoder or get_encoder(kb.meta["model"])
        with _logged(db, engine.domain, kb, entry_id, "upsert", before, entry.to_dict(), actor):
            created = kb.upsert(entry, encoder)
            engine.handle.persist()
    return created, int(kb.meta["version"])


def delete_entry(engine: Any, db: Any, entry_id: str, actor: str) -> int:
    """Remove ``entry_id`` (NotFound if absent); returns the new KB version. Serialised like upserts."""
    with edit_lock(engine.handle.directory):
        kb = engine.handle.get(fresh=True)
        _past_the_log(db, engine.domain, kb)
        old = kb.entry(entry_id)
        with _logged(db, engine.domain, kb, entry_id, "delete", old.to_dict(), None, actor):
            kb.delete(entry_id)
            engine.handle.persist()
    return int(kb.meta["version"])


def _past_the_log(db: Any, domain: str, kb: Any) -> None:
    """Raise the index's version to the change log's highest, so this edit's number is new.

    An index re-embedded by a FinPulse before 2026-12-06 was set back to version 1: the next
    edits then logged numbers the log already held (two edits named version 3).
    """
    with db.session() as s:
        logged = s.scalar(select(func.max(KbChange.kb_version)).where(KbChange.domain == domain))
    if logged is not None and logged > int(kb.meta.get("version", 1)):
        kb.meta["version"] = int(logged)


@contextlib.contextmanager
def _logged(db: Any, domain: str, kb: Any, entry_id: str, action: str, before: dict[str, Any] | None,
            after: dict[str, Any] | None, actor: str) -> Iterator[None]:
    """The change's log row, taken by the database before the index is saved, committed after.

    Logged after the save, an edit whose insert waited on a locked table and never ended
    (the service killed meanwhile) was served with no row: the log no longer replayed. Now a
    database that refuses the row refuses the edit, and only the commit follows the save.
    """
    with db.session() as s:
        s.add(KbChange(domain=domain, entry_id=entry_id, action=action, before=before, after=after,
                       kb_version=int(kb.meta.get("version", 1)) + 1, actor=actor))  # as the edit counts it
        s.flush()
        yield
