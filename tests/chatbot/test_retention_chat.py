"""Transcript and feedback retention (``finpulse prune --only chat,feedback``) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from services.chatbot import handoff
from services.chatbot.models import ChatFeedback, ChatMessage, HandoffTicket
from shared.db import Database
from shared.retention import prune

NOW = datetime(2025, 6, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=100)


def _age(db: Database, model, session_id: str, when: datetime) -> None:
    with db.session() as s:
        s.execute(update(model).where(model.session_id == session_id).values(created_at=when))


def _count(db: Database, model, session_id: str) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(model.session_id == session_id)))


def test_old_transcripts_go_in_batches_but_open_handoffs_keep_theirs(any_db_url, settings) -> None:
    db = Database(any_db_url)
    turns = [("user", f"question {i} card 4111 1111 1111 1111", None) for i in range(5)]
    for sid in ("old", "waiting", "released", "recent"):
        handoff.record_turns(db, sid, turns)
    handoff.open_ticket(db, "waiting", "asked_for_agent")
    handoff.open_ticket(db, "released", "low_confidence")
    handoff.release_ticket(db, "released", "agent-1")
    for sid in ("old", "waiting", "released"):
        _age(db, ChatMessage, sid, OLD)
        _age(db, HandoffTicket, sid, OLD)
    with db.session() as s:
        s.execute(update(HandoffTicket).values(released_at=OLD).where(HandoffTicket.status == "released"))

    dry = prune(db, settings, {"chat": 30}, dry_run=True, batch_size=2, now=NOW)
    assert dry == [("chat", 30, "chat_messages", 10), ("chat", 30, "chat_handoffs", 1)]
    assert _count(db, ChatMessage, "old") == 5  # a dry run deletes nothing

    done = prune(db, settings, {"chat": 30}, batch_size=2, now=NOW)
    assert done == dry
    assert [_count(db, ChatMessage, sid) for sid in ("old", "waiting", "released", "recent")] == [0, 5, 0, 5]
    # the open ticket, however old, and its conversation stay for the agent
    assert [t["session_id"] for t in handoff.open_tickets(db)] == ["waiting"]
    assert len(handoff.open_tickets(db)[0]["transcript"]) == 5
    assert _count(db, HandoffTicket, "released") == 0
    assert prune(db, settings, {"chat": 30}, batch_size=2, now=NOW)[0][3] == 0  # nothing left to do


def test_old_feedback_leaves_the_training_pairs_export(any_db_url, settings) -> None:
    db = Database(any_db_url)
    handoff.add_feedback(db, "old", 1, "open-account", "how do I open an account", None)
    handoff.add_feedback(db, "new", 1, "close-account", "how do I close my account", None)
    handoff.add_feedback(db, "old", -1, None, None, "useless")
    _age(db, ChatFeedback, "old", OLD)

    assert prune(db, settings, {"feedback": 30}, now=NOW) == [("feedback", 30, "chat_feedback", 2)]
    assert handoff.feedback_pairs(db) == [{"text": "how do I close my account", "id": "close-account"}]
