"""One chat turn end to end: state from Redis, retrieval, the dialogue policy, the DB.

:class:`ChatEngine` is what the API calls; it imports no Flask, so tests drive it
directly with a real Redis, SQLite and any :class:`~services.chatbot.retriever.Encoder`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from redis.exceptions import LockError, RedisError

from services.chatbot import handoff
from services.chatbot.dialogue import (
    HANDOFF_CANCELLED_ANSWER,
    MAX_TURNS,
    Decision,
    Policy,
    State,
    cancels_handoff,
    chosen,
    decide,
    follow_up_context,
    handed_back,
    handoff_kept,
    rejects_answer,
    silent,
    suggestion_labels,
    topic_question,
    wants_human,
)
from services.chatbot.kb import KbHandle
from services.chatbot.retriever import BatchingEncoder, Encoder, get_encoder, unreadable
from shared.db import utc_iso
from shared.errors import BadInput, FinPulseError, NotFound

log = logging.getLogger(__name__)
CONTEXT_WEIGHT = 0.6  # weight of the previous question's vector in a follow-up's query
# A session's turns take its lock one at a time; a holder that died frees it after LOCK_TTL_S.
LOCK_TTL_S = 60.0
LOCK_WAIT_S = 30.0  # a turn queued longer than this behind its session's others is refused (429)
CUSTOMER = "customer"  # who released a ticket the customer took back (its released_by)
# A thumbs-down on the last answer is this message (the widget's button label), which rejects_answer reads
# as "that didn't help": the transcript shows it as the customer's turn, its meta saying it was a rating.
THUMBS_DOWN = "Not helpful"
# A state gone from Redis is rebuilt from the transcript's last REBUILD_ROWS turns: the MAX_TURNS the state
# keeps, and the bot turns before them that may name the last answer (small talk since pushed it out).
REBUILD_ROWS = 2 * MAX_TURNS
# How long the agents' queue remembers a waiting customer's last poll (a ticket may wait for days).
SEEN_TTL_S = 7 * 24 * 3600


@dataclass
class ChatEngine:
    handle: KbHandle
    redis: Any
    db: Any
    domain: str
    ttl_s: int = 1800
    policy: Policy = field(default_factory=Policy)
    webhook: str | None = None
    encoder: Encoder | None = None  # None: the encoder named in the index's meta
    watch: Any = None  # an EncoderWatch: re-embeds the index when production's encoder changes
    _batchers: dict[str, BatchingEncoder] = field(default_factory=dict, repr=False)

    def query_encoder(self, model: str) -> BatchingEncoder:
        """The index's encoder behind a batcher: concurrent chats share one forward pass."""
        if model not in self._batchers:
            self._batchers[model] = BatchingEncoder(self.encoder or get_encoder(model))
        return self._batchers[model]

    def _key(self, session_id: str) -> str:
        return f"finpulse:chat:{self.domain}:{session_id}"

    def _agent_text_key(self, session_id: str, message_id: int) -> str:
        return f"{self._key(session_id)}:agent:{message_id}"

    def _seen_key(self, session_id: str) -> str:
        return f"{self._key(session_id)}:seen"

    def with_customer_seen(self, tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each ticket with ``customer_seen_at``: the later of its customer's last poll for the agents'
        messages (the widget polls every 3-60 s while handed off) and last message, or None.

        QA: a customer who closed the tab left the ticket at the head of the queue (oldest first) looking
        like one still waiting, and agents wrote into conversations nobody read. Redis down or the key gone:
        the last message alone (the queue needs only the database).
        """
        polled: list[Any] = [None] * len(tickets)
        if tickets:
            try:
                polled = self.redis.mget([self._seen_key(t["session_id"]) for t in tickets])
            except RedisError as exc:
                log.warning("handoffs: customers' last polls unknown (%s)", exc)
        out = []
        for t, raw in zip(tickets, polled, strict=True):
            times = [m["at"] for m in t.get("transcript", []) if m.get("role") == "user" and m.get("at")]
            if raw is not None:
                times.append(raw.decode() if isinstance(raw, bytes) else str(raw))
            out.append({**t, "customer_seen_at": max(times, key=datetime.fromisoformat, default=None)})
        return out

    def load_state(self, session_id: str) -> State:
        """The session's state; once gone from Redis, rebuilt from its transcript and open ticket.

        The state's TTL runs out (or Redis is flushed) while the widget still shows the chat: QA saw
        "that didn't help" get "couldn't find anything", a follow-up lose its topic, and a waiting
        customer's poll read "no handoff" and never showed the agent's reply. A session with no
        transcript is new: one query, and no ticket to look for (retention keeps an open one's turns).
        """
        raw = self.redis.get(self._key(session_id))
        if raw:
            return State.from_dict(json.loads(raw))
        rows = handoff.last_turns(self.db, session_id, REBUILD_ROWS)
        if not rows:
            return State()
        return state_from_transcript(rows, handoff.find_open_ticket(self.db, session_id))

    def save_state(self, session_id: str, state: State) -> None:
        self.redis.set(self._key(session_id), json.dumps(state.to_dict()), ex=self.ttl_s)

    @contextmanager
    def session_lock(self, session_id: str) -> Iterator[None]:
        """Hold ``session_id``'s conversation from reading its state to saving it (across processes).

        Parallel turns of one session each read the state, decided and saved it: a turn that
        read it before a handoff was saved wrote "no handoff" back over it, and the bot went on
        answering beside an open ticket. A conversation is answered one message at a time.
        """
        lock = self.redis.lock(f"{self._key(session_id)}:lock", timeout=LOCK_TTL_S, sleep=0.01,
                               blocking_timeout=LOCK_WAIT_S, thread_local=False)
        if not lock.acquire():
            raise FinPulseError(f"session {session_id!r} is still busy with earlier messages; "
                                "send this one again in a moment", code="session_busy", status=429)
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:  # held past LOCK_TTL_S: it expired, and another turn may hold it now
                log.warning("chat %s: the session lock expired during a turn", session_id[:8])

    def chat(self, message: str, session_id: str | None = None, entry_id: str | None = None) -> dict[str, Any]:
        """Answer one message; returns the ``POST /v1/chat`` response body.

        ``entry_id`` is the suggestion the customer picked after a clarify: that entry is
        answered as is, since its question text may be shared by another entry and searching
        the text again would only ask again. An entry this session was offered but that is gone
        since (a ``DELETE /v1/kb``, a ``kb load``) answers ``message`` by retrieval instead:
        ops' edit is no error of the customer's. An id the session was never offered is a 400.
        """
        session_id = session_id or uuid.uuid4().hex
        with self.session_lock(session_id):
            return self._turn(message, session_id, entry_id)

    def rate_down(self, session_id: str, entry_id: str) -> dict[str, Any] | None:
        """A thumbs-down on the session's last answered entry: the bot's next turn, as if the customer
        had typed "that didn't help" (the topic's other entries, or a hand-off after enough unsure
        turns); None for an older answer, or while a person has the conversation (the rating only).

        QA: "Not helpful" changed nothing; asking again gave the same answer.
        """
        with self.session_lock(session_id):
            state = self.load_state(session_id)
            if state.handoff or state.answered != entry_id:
                return None
            return self._turn(THUMBS_DOWN, session_id, None, {"feedback": "down", "entry_id": entry_id})

    def _turn(self, message: str, session_id: str, entry_id: str | None,
              user_meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """One turn, under the session's lock: read the state, decide, record, save."""
        state = self.load_state(session_id)
        if entry_id is not None and not self.current_entry(session_id, entry_id):
            entry_id = None  # the offer outlived its entry: the suggestion's question is asked instead
        if entry_id is not None:
            decision = self._pick(entry_id, state)
        else:
            decision = self._handed_back(session_id, message, state) or self._decide(message, state)
        state.turns.append({"role": "user", "text": handoff.mask_pii(message)})
        if decision.kind != "silent":
            state.turns.append({"role": "bot", "text": decision.answer})
        meta = {"kind": decision.kind, "confidence": round(decision.confidence, 4),
                "sources": [h.id for h in decision.hits]}
        if entry_id is not None:
            meta["picked"] = entry_id
        turns = [("user", message, user_meta)] + ([("bot", decision.answer, meta)] if decision.kind != "silent" else [])
        handoff.record_turns(self.db, session_id, turns)
        if decision.kind == "handoff":
            reason = "asked_for_person" if wants_human(message) else "low_confidence"
            state.ticket_id = handoff.open_ticket(self.db, session_id, reason, self.webhook)
        self.save_state(session_id, state)
        log.info("chat %s %s conf=%.3f", session_id[:8], decision.kind, decision.confidence)
        kb = self.handle.get()
        # entries sharing a question (one per card) are told apart by their label, the widget's button text
        found = {h.id: kb.entries[h.id] for h in decision.hits if h.id in kb.entries}
        labels = suggestion_labels(decision.hits, {i: e.answer for i, e in found.items()},
                                   {i: e.extra.get("category") for i, e in found.items()})
        return {"session_id": session_id, "answer": decision.answer,
                "confidence": round(decision.confidence, 4),
                "sources": [{"id": kb.public_id(h.id), "question": h.question, "score": h.score, "label": label}
                            for h, label in zip(decision.hits, labels, strict=True)],
                "handoff": decision.kind in ("handoff", "silent"), "kind": decision.kind}

    def current_entry(self, session_id: str, entry_id: str) -> bool:
        """Whether ``entry_id`` is in the knowledge base (True) or was given or suggested to this
        session and deleted since (False: ops' edit is no error of the customer's); an id the
        session was never offered is a 400, for chat and feedback alike."""
        if entry_id in self.handle.get().entries:
            return True
        if handoff.was_offered(self.db, session_id, entry_id):
            return False
        raise BadInput(f"no knowledge-base entry with id {entry_id!r}", code="unknown_entry")

    def _handed_back(self, session_id: str, message: str, state: State) -> Decision | None:
        """The customer takes back a hand-off no agent has answered yet ("cancel", "never mind"): its
        ticket is closed as an agent's release closes it. Once an agent writes, the words are the agent's:
        the turn stays silent, with a line telling the customer that the agent keeps the chat."""
        if not state.handoff or not cancels_handoff(message):
            return None
        if handoff.agent_replied(self.db, session_id):
            return handoff_kept(state)
        with contextlib.suppress(NotFound):  # released meanwhile by an agent: back with the bot either way
            handoff.release_ticket(self.db, session_id, CUSTOMER)
        return handed_back(state)

    def _pick(self, entry_id: str, state: State) -> Decision:
        kb = self.handle.get()
        entry = kb.entries.get(entry_id)
        if entry is None:  # deleted between the check in _turn and here
            raise BadInput(f"no knowledge-base entry with id {entry_id!r}", code="unknown_entry")
        if state.handoff:
            return silent(state)
        return chosen(entry.id, entry.question, entry.answer, state)

    def _decide(self, message: str, state: State) -> Decision:
        if state.handoff:
            return decide(message, [], 0.0, {}, state, self.policy)
        kb = self.handle.get()
        if self.watch is not None:
            self.watch.poke(kb.meta)
        encoder = self.query_encoder(kb.meta["model"])
        # "that didn't help": the question it answered is looked up again, its other entries offered
        topic = topic_question(state) if rejects_answer(message) else None
        query = kb.correct(topic if topic is not None else message)  # "my crad" asks about a card
        # an entry's own question asks that entry: never a follow-up read with the last turn
        exact = kb.exact_entry(message) if topic is None else None
        context = follow_up_context(message, state) if topic is None and exact is None else None
        if context is None:
            vec = encoder.encode([query])
        else:  # the new words lead, the previous question fills in the topic
            pair = encoder.encode([kb.correct(message), context])
            vec = pair[:1] + CONTEXT_WEIGHT * pair[1:]
            vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        # a follow-up whose best entry is the one just answered is offered the others: one more of them
        k = max(self.policy.suggestions, 2) + (context is not None or topic is not None)
        ranked = kb.rank(kb.search(vec, k, texts=[query])[0], exact, unreadable(encoder, [query])[0])
        answers = {h.id: kb.entries[h.id].answer for h in ranked.hits if h.id in kb.entries}
        return decide(message, ranked.hits, ranked.confidence, answers, state, self.policy,
                      follow_up=context is not None, rejected=topic is not None, unrivalled=ranked.unrivalled,
                      no_match=ranked.no_match)

    def release(self, session_id: str, actor: str) -> int:
        """An agent hands the conversation back to the bot."""
        with self.session_lock(session_id):
            n = handoff.release_ticket(self.db, session_id, actor)
            state = self.load_state(session_id)
            state.hand_back()
            self.save_state(session_id, state)
        return n

    def agent_reply(self, session_id: str, text: str, actor: str) -> dict[str, Any]:
        """An agent writes into a handed-off conversation; the widget fetches it with :meth:`messages`.

        Only while a ticket is open (404 otherwise). The Redis state is refreshed so the bot
        stays silent while the agent is talking, even after the state's TTL ran out.
        """
        with self.session_lock(session_id):
            ticket_id = handoff.open_ticket_id(self.db, session_id)
            message = handoff.add_agent_message(self.db, session_id, text, actor)
            # the transcript keeps the masked text; the customer gets what the agent wrote (the bank's
            # phone number, a mailto: link) for as long as the conversation's state lives
            self.redis.set(self._agent_text_key(session_id, message["id"]), text, ex=self.ttl_s)
            state = self.load_state(session_id)
            state.handoff, state.ticket_id = True, ticket_id
            state.turns.append({"role": "agent", "text": message["text"]})
            self.save_state(session_id, state)
        return message

    def messages(self, session_id: str, after: int = 0) -> dict[str, Any]:
        """Agent messages of ``session_id`` after the cursor ``after`` (a message id), for the widget's poll.

        ``handoff`` is the open ticket's word, not the Redis state's: the ticket is what the
        agents work from, and it outlives the state.
        """
        rows = handoff.agent_messages(self.db, session_id, after)
        if rows:
            exact = self.redis.mget([self._agent_text_key(session_id, r["id"]) for r in rows])
            rows = [{**r, "text": t.decode() if isinstance(t, bytes) else t} if t is not None else r
                    for r, t in zip(rows, exact, strict=True)]
        waiting = handoff.find_open_ticket(self.db, session_id) is not None
        if waiting:  # the agents' queue tells a customer still there from one who left (with_customer_seen)
            self.redis.set(self._seen_key(session_id), utc_iso(datetime.now(UTC)), ex=SEEN_TTL_S)
        return {"session_id": session_id, "messages": rows,
                "cursor": rows[-1]["id"] if rows else after, "handoff": waiting}


def state_from_transcript(rows: list[dict[str, Any]], ticket_id: int | None) -> State:
    """The state ``_turn`` would have saved, from the session's last stored turns (oldest first) and
    its open ticket: the turns the state keeps, the last answered entry, the unsure count and the handoff."""
    state = State(turns=[{"role": r["role"], "text": r["text"]} for r in rows[-MAX_TURNS:]],
                  unsure=_unsure_count(rows), answered=_last_answered(rows))
    if ticket_id is not None:
        state.handoff, state.ticket_id = True, ticket_id
        # the first message after the handoff turn was told "an agent has this conversation": once is enough
        last_bot = max((i for i, r in enumerate(rows) if r["role"] == "bot"), default=-1)
        state.notified = any(r["role"] == "user" for r in rows[last_bot + 1:])
    return state


def _bot_meta(row: dict[str, Any]) -> dict[str, Any] | None:
    meta = row.get("meta")
    return meta if row["role"] == "bot" and isinstance(meta, dict) else None


def _last_answered(rows: list[dict[str, Any]]) -> str | None:
    """The entry of the last answer (its ``sources[0]``, a picked suggestion's too), as :func:`decide` keeps
    it: through clarifies and small talk (no sources), not past a handoff the customer asked for."""
    for i in range(len(rows) - 1, -1, -1):
        meta = _bot_meta(rows[i])
        if meta is None:
            continue
        if meta.get("kind") == "answer" and meta.get("sources"):
            return str(meta["sources"][0])
        if meta.get("kind") == "handoff" and i > 0 and wants_human(rows[i - 1]["text"]):
            return None
    return None


def _unsure_count(rows: list[dict[str, Any]]) -> int:
    """Clarifies since the last answer, handoff or taken-back handoff (each resets it; small talk does not)."""
    unsure = 0
    for row in reversed(rows):
        meta = _bot_meta(row)
        if meta is None:
            continue
        kind = meta.get("kind")
        if kind == "clarify":
            unsure += 1
        elif kind == "handoff" or meta.get("sources") or row["text"] == HANDOFF_CANCELLED_ANSWER:
            break
    return unsure
