"""Retention of the chatbot's tables (``finpulse prune --only chat,feedback``).

``chat``: transcript turns by their own ``created_at``, except every turn of a session whose
handoff is still open (the agent reads the conversation as it stands, see
:func:`services.chatbot.handoff.open_tickets`); released tickets (each holds a copy of its
transcript) by when they were released. An open ticket is never pruned, however old.

``feedback``: rows by ``created_at``. Thumbs-up rows are the training pairs
``GET /v1/feedback/pairs`` exports: a pruned pair leaves that export, while files already
exported (and the data hashes a trained version records) stay as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from services.chatbot.models import ChatFeedback, ChatMessage, HandoffTicket
from shared.retention import Batches, Kind

if TYPE_CHECKING:
    from shared.db import Database
    from shared.settings import Settings


def prune_chat(db: Database, cutoff: datetime, _settings: Settings, batches: Batches) -> dict[str, int]:
    """Turns older than ``cutoff`` outside open handoffs, and tickets released before it."""
    msgs, tickets = ChatMessage.__table__.c, HandoffTicket.__table__.c
    waiting = select(tickets.session_id).where(tickets.status == "open")
    counts = batches.delete(db, msgs.id, [msgs.created_at < cutoff, msgs.session_id.not_in(waiting)])
    released = func.coalesce(tickets.released_at, tickets.created_at)
    counts |= batches.delete(db, tickets.id, [tickets.status != "open", released < cutoff])
    return counts


def prune_feedback(db: Database, cutoff: datetime, _settings: Settings, batches: Batches) -> dict[str, int]:
    """Feedback rows (and so training pairs) older than ``cutoff``."""
    feedback = ChatFeedback.__table__.c
    return batches.delete(db, feedback.id, [feedback.created_at < cutoff])


CHAT = Kind("chat", ("chat_messages", "chat_handoffs"), prune_chat)
FEEDBACK = Kind("feedback", ("chat_feedback",), prune_feedback)
