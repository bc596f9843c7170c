"""PII masking, transcripts, handoff tickets and feedback in the database."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from services.chatbot.models import ChatFeedback, ChatMessage, HandoffTicket
from shared import webhooks
from shared.db import utc_iso
from shared.errors import NotFound
from shared.text import is_blank

if TYPE_CHECKING:
    from data_connectors.faq import FaqEntry

# QA: GET /v1/handoffs sent every open ticket with its whole transcript (217 KB at 153 tickets): the
# agents' list pages its tickets and carries each one's last TRANSCRIPT_TAIL turns with their total
TRANSCRIPT_TAIL = 50

# \d and \w are Unicode (full-width, Arabic-Indic digits); separators are too: i18n QA found numbers
# typed with NBSP, narrow NBSP, thin or ideographic spaces, zero-width spaces and en/em dashes stored as typed
_SPACES = "\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\u00ad\u200b-\u200d\u2060\ufeff"
_DASHES = "\\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d"
# ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ too. Each run of address characters is matched once, whole (possessive), and is
# an address only with the domain part (_email): "[\w.+-]+@..." was tried again from every character of a
# run with no "@" after it, quadratic (20k digits: 10 s of a chat worker's CPU).
_EMAIL = re.compile(r"[\w.+-]++([@\uff20][\w-]++(?:[.\uff0e][\w-]++)+)?")
# digits, not word, boundaries: "pan4111111111111111" and "4111111111111111exp1227" were stored as typed
_CARD = re.compile(rf"(?<!\d)(?:\d[{_SPACES}{_DASHES}]?){{12,18}}\d(?!\d)")
# "(415) 555-0123" whole, not "([phone]"; a full-width "＋" inside the mask; "030/1234567" too. Linear as it
# is: it starts only after a non-word character, and the first start in a run of digits and separators
# either takes the run or shows that no later start in it can match.
_PHONE = re.compile(rf"(?<![\w(\uff08])[+\uff0b(\uff08]?\d[\d{_SPACES}{_DASHES}()./\uff08\uff09]{{6,}}\d(?!\w)")
# what the phone pattern also reads but is ordinary text: dates (2024-03-07, 07.03.2024, 2024/03/07) and
# dot-grouped amounts (1.000.000); space-grouped ones stay masked, as they read like "612 345 678"
_DAY, _MONTH = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])"
_ORDINARY = re.compile(rf"\d{{4}}([-/.]){_MONTH}\1{_DAY}|{_DAY}([-/.]){_MONTH}\2(?:\d{{4}}|\d\d)"
                       r"|[1-9]\d{0,2}(?:\.\d{3}){2,}")


def _email(match: re.Match[str]) -> str:
    return "[email]" if match.group(1) else match.group()


def _phone(match: re.Match[str]) -> str:
    return match.group() if _ORDINARY.fullmatch(match.group()) else "[phone]"


def mask_pii(text: str) -> str:
    """Card numbers, e-mails and phone numbers replaced before anything is stored or logged."""
    if "@" in text or "\uff20" in text:  # no address without one: words are not matched one by one
        text = _EMAIL.sub(_email, text)
    text = _CARD.sub("[card]", text)
    return _PHONE.sub(_phone, text)


def record_turns(db: Any, session_id: str, turns: list[tuple[str, str, dict[str, Any] | None]]) -> None:
    """Append (role, text, meta) turns to the transcript, masked.

    One bulk INSERT rather than ORM objects: every chat turn pays this, and nothing reads
    the new rows back (the unit of work's flush was ~8% of a chat request's CPU).
    """
    rows = [{"session_id": session_id, "role": role, "text": mask_pii(text), "meta": meta}
            for role, text, meta in turns]
    if not rows:  # an empty parameter list would be one INSERT of defaults only
        return
    with db.session() as s:
        s.execute(insert(ChatMessage), rows)


def transcript(db: Any, session_id: str) -> list[dict[str, Any]]:
    """The session's stored turns (masked), oldest first."""
    return transcripts(db, [session_id]).get(session_id, [])


def transcripts(db: Any, session_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The stored turns of each of ``session_ids`` in one query, oldest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not session_ids:
        return out
    with db.session() as s:
        rows = s.scalars(select(ChatMessage).where(ChatMessage.session_id.in_(set(session_ids)))
                         .order_by(ChatMessage.id)).all()
        for r in rows:
            out.setdefault(r.session_id, []).append({"role": r.role, "text": r.text, "at": utc_iso(r.created_at)})
    return out


def last_turns(db: Any, session_id: str, n: int) -> list[dict[str, Any]]:
    """The session's last ``n`` stored turns (``role``, ``text``, ``meta``), oldest first, in one query."""
    with db.session() as s:
        rows = s.execute(select(ChatMessage.role, ChatMessage.text, ChatMessage.meta)
                         .where(ChatMessage.session_id == session_id)
                         .order_by(ChatMessage.id.desc()).limit(n)).all()
    return [{"role": r.role, "text": r.text, "meta": r.meta} for r in reversed(rows)]


def open_ticket(db: Any, session_id: str, reason: str, webhook: str | None = None) -> int:
    """Create a ticket holding the transcript; notify the webhook without blocking the reply.

    A session already handed off keeps its open ticket (its id is returned, nobody is
    notified twice): the unique index on open tickets decides when two turns race.
    """
    try:
        with db.session() as s:
            ticket = HandoffTicket(session_id=session_id, reason=reason, status="open",
                                   transcript=transcript(db, session_id))
            s.add(ticket)
            s.flush()
            ticket_id, payload = ticket.id, {"ticket_id": ticket.id, "session_id": session_id,
                                             "reason": reason, "transcript": ticket.transcript}
    except IntegrityError:
        return open_ticket_id(db, session_id)
    if webhook:
        webhooks.send(webhook, payload)
    return int(ticket_id)


def open_tickets(db: Any, *, after: int = 0, limit: int | None = None,
                 entries: Mapping[str, FaqEntry] | None = None) -> list[dict[str, Any]]:
    """Open tickets after ticket id ``after``, oldest first (who waited longest), each with its
    conversation as it stands now (masked), for the agents: the last :data:`TRANSCRIPT_TAIL` turns
    and ``transcript_total``, how many it holds.

    Not the copy taken at the handoff (that one went to the webhook): what the customer
    wrote after it, and the agents' replies, are in the agents' view too. Each turn carries its
    stored ``meta`` (see :func:`_agent_view`), described with ``entries``, the knowledge base's.
    """
    query = select(HandoffTicket).where(HandoffTicket.status == "open", HandoffTicket.id > after)
    with db.session() as s:
        rows = s.scalars(query.order_by(HandoffTicket.id).limit(limit)).all()
        tickets = [{"id": t.id, "session_id": t.session_id, "reason": t.reason,
                    "created_at": utc_iso(t.created_at)} for t in rows]
    tails = transcript_tails(db, [t["session_id"] for t in tickets], TRANSCRIPT_TAIL)
    out = []
    for t in tickets:
        turns, total = tails.get(t["session_id"], ([], 0))
        out.append({**t, "transcript": [_agent_view(m, entries) for m in turns], "transcript_total": total})
    return out


def open_tickets_page(db: Any, *, after: int, limit: int, entries: Mapping[str, FaqEntry] | None = None,
                      ) -> tuple[list[dict[str, Any]], int | None]:
    """One page of :func:`open_tickets` and the ``after`` of the next page (None on the last): ids
    only grow, so a ticket opened meanwhile lands on a later page, none is skipped or repeated."""
    page = open_tickets(db, after=after, limit=limit + 1, entries=entries)
    if len(page) <= limit:
        return page, None
    return page[:limit], int(page[limit - 1]["id"])


def transcript_tails(db: Any, session_ids: list[str], tail: int) -> dict[str, tuple[list[dict[str, Any]], int]]:
    """The last ``tail`` stored turns of each of ``session_ids`` (oldest first, with their ``meta``)
    and how many it has, in one query: a long conversation is not read whole for its last page."""
    if not session_ids:
        return {}
    numbered = select(ChatMessage,
                      func.row_number().over(partition_by=ChatMessage.session_id,
                                             order_by=ChatMessage.id.desc()).label("n"),
                      func.count().over(partition_by=ChatMessage.session_id).label("total")) \
        .where(ChatMessage.session_id.in_(set(session_ids))).subquery()
    row = aliased(ChatMessage, numbered)
    out: dict[str, tuple[list[dict[str, Any]], int]] = {}
    with db.session() as s:
        for r, total in s.execute(select(row, numbered.c.total).where(numbered.c.n <= tail).order_by(row.id)):
            out.setdefault(r.session_id, ([], int(total)))[0].append(
                {"role": r.role, "text": r.text, "at": utc_iso(r.created_at), "meta": r.meta})
    return out


def _agent_view(turn: dict[str, Any], entries: Mapping[str, FaqEntry] | None) -> dict[str, Any]:
    """A turn as the agents read it: its stored meta kept (QA: a "Did you mean one of these?" showed
    without the suggestions it offered, a rated-down answer without its entry), and the entries it
    names (``sources``, ``picked``; a thumbs-down's ``entry_id``) listed with their questions where
    the knowledge base still holds them. The customer's text stays masked as stored."""
    meta = turn.get("meta")
    if not isinstance(meta, dict):
        return {k: v for k, v in turn.items() if k != "meta"}
    named = [*(meta.get("sources") or []), meta.get("picked"), meta.get("entry_id")]
    ids = list(dict.fromkeys(str(i) for i in named if i is not None))
    if entries is not None:
        meta = {**meta, "entries": [{"id": entries[i].public_id, "question": entries[i].question}
                                    for i in ids if i in entries]}
    return {**turn, "meta": meta}


def find_open_ticket(db: Any, session_id: str) -> int | None:
    """The session's open ticket (the newest), or None."""
    with db.session() as s:
        ticket_id = s.scalar(select(HandoffTicket.id).where(HandoffTicket.session_id == session_id,
                                                            HandoffTicket.status == "open")
                             .order_by(HandoffTicket.id.desc()).limit(1))
    return None if ticket_id is None else int(ticket_id)


def open_ticket_id(db: Any, session_id: str) -> int:
    """The session's open ticket; NotFound when nobody has the conversation."""
    ticket_id = find_open_ticket(db, session_id)
    if ticket_id is None:
        raise NotFound(f"session {session_id!r} has no open handoff")
    return ticket_id


def _message(row: ChatMessage) -> dict[str, Any]:
    return {"id": row.id, "role": row.role, "text": row.text, "at": utc_iso(row.created_at)}


def add_agent_message(db: Any, session_id: str, text: str, actor: str) -> dict[str, Any]:
    """Store an agent's reply in the transcript (masked like every stored turn); returns it."""
    with db.session() as s:
        row = ChatMessage(session_id=session_id, role="agent", text=mask_pii(text), meta={"actor": actor})
        s.add(row)
        s.flush()
        return _message(row)


def agent_messages(db: Any, session_id: str, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """The agent's messages of a session with an id above ``after``, oldest first.

    Only the agent's: the customer's widget already shows its own turns and the bot's.
    """
    with db.session() as s:
        rows = s.scalars(select(ChatMessage).where(ChatMessage.session_id == session_id,
                                                   ChatMessage.role == "agent", ChatMessage.id > after)
                         .order_by(ChatMessage.id).limit(limit)).all()
        return [_message(r) for r in rows]


def release_ticket(db: Any, session_id: str, actor: str) -> int:
    """Close the session's open tickets; returns how many were open."""
    with db.session() as s:
        rows = s.scalars(select(HandoffTicket).where(HandoffTicket.session_id == session_id,
                                                     HandoffTicket.status == "open")).all()
        if not rows:
            raise NotFound(f"session {session_id!r} has no open handoff")
        for t in rows:
            t.status, t.released_at, t.released_by = "released", datetime.now(UTC), actor
        return len(rows)


def agent_replied(db: Any, session_id: str) -> bool:
    """Whether an agent has written in the session since its open ticket was opened."""
    with db.session() as s:
        opened = s.scalar(select(HandoffTicket.created_at).where(HandoffTicket.session_id == session_id,
                                                                 HandoffTicket.status == "open")
                          .order_by(HandoffTicket.id.desc()).limit(1))
        if opened is None:
            return False
        return s.scalar(select(ChatMessage.id).where(ChatMessage.session_id == session_id, ChatMessage.role == "agent",
                                                     ChatMessage.created_at >= opened).limit(1)) is not None


def has_conversation(db: Any, session_id: str) -> bool:
    """Whether ``session_id`` ever chatted (its transcript outlives the Redis state)."""
    with db.session() as s:
        return s.scalar(select(ChatMessage.id).where(ChatMessage.session_id == session_id).limit(1)) is not None


def was_offered(db: Any, session_id: str, entry_id: str) -> bool:
    """Whether the bot gave or suggested ``entry_id`` in this session (its transcript says so).

    An entry deleted or replaced by a ``kb load`` since is no made-up id for this customer:
    the widget still shows its answer and its "Did you mean" button.
    """
    with db.session() as s:
        metas = s.scalars(select(ChatMessage.meta).where(ChatMessage.session_id == session_id,
                                                         ChatMessage.role == "bot")).all()
    return any(isinstance(m, dict) and (entry_id in (m.get("sources") or []) or m.get("picked") == entry_id)
               for m in metas)


def add_feedback(db: Any, session_id: str, rating: int, entry_id: str | None, query: str | None,
                 comment: str | None) -> int:
    with db.session() as s:
        fb = ChatFeedback(session_id=session_id, rating=rating, entry_id=entry_id,
                          query=mask_pii(query) if query else None,
                          comment=mask_pii(comment) if comment else None)
        s.add(fb)
        s.flush()
        return int(fb.id)


def feedback_pairs(db: Any, entries: Mapping[str, FaqEntry] | None = None) -> list[dict[str, Any]]:
    """Thumbs-up (query, entry) pairs in the ``train embeddings --pairs`` format.

    ``entries``: the current knowledge base's; pairs naming an entry deleted since are left
    out, as a retrain fails on a pair whose id is not in the knowledge base, and an id goes
    out as the base gave it (``5``, not ``"5"``), as in ``sources``. A session's latest rating
    of an entry is the one that counts (QA: rated three times, a pair went out three times, and a
    thumbs-down after a thumbs-up still exported it).
    """
    with db.session() as s:
        rows = s.scalars(select(ChatFeedback).where(ChatFeedback.entry_id.is_not(None))
                         .order_by(ChatFeedback.id)).all()
        latest = list({(r.session_id, r.entry_id): r for r in rows}.values())  # each key at its latest row
        latest.sort(key=lambda r: r.id)
        # a blank question ("   " rated up) made the file `train embeddings --pairs` refuses
        return [{"text": r.query, "id": entries[r.entry_id].public_id if entries is not None else r.entry_id}
                for r in latest if r.rating > 0 and r.entry_id is not None and r.query is not None
                and not is_blank(r.query) and (entries is None or r.entry_id in entries)]
