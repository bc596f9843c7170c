"""One chat turn end to end: state from Redis, retrieval, the dialogue policy, the DB.

:class:`ChatEngine` is what the API calls; it imports no Flask, so tests drive it
directly with a real Redis, SQLite and any :class:`~services.chatbot.retriever.Encoder`.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.chatbot import handoff
from services.chatbot.dialogue import Decision, Policy, State, decide, follow_up_context, wants_human
from services.chatbot.kb import KbHandle
from services.chatbot.retriever import BatchingEncoder, Encoder, get_encoder

log = logging.getLogger(__name__)
CONTEXT_WEIGHT = 0.6  # weight of the previous question's vector in a follow-up's query


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

    def load_state(self, session_id: str) -> State:
        raw = self.redis.get(self._key(session_id))
        return State.from_dict(json.loads(raw) if raw else None)

    def save_state(self, session_id: str, state: State) -> None:
        self.redis.set(self._key(session_id), json.dumps(state.to_dict()), ex=self.ttl_s)

    def chat(self, message: str, session_id: str | None = None) -> dict[str, Any]:
        """Answer one message; returns the ``POST /v1/chat`` response body."""
        session_id = session_id or uuid.uuid4().hex
        state = self.load_state(session_id)
        decision = self._decide(message, state)
        state.turns.append({"role": "user", "text": handoff.mask_pii(message)})
        if decision.kind != "silent":
            state.turns.append({"role": "bot", "text": decision.answer})
        meta = {"kind": decision.kind, "confidence": round(decision.confidence, 4),
                "sources": [h.id for h in decision.hits]}
        turns = [("user", message, None)] + ([("bot", decision.answer, meta)] if decision.kind != "silent" else [])
        handoff.record_turns(self.db, session_id, turns)
        if decision.kind == "handoff":
            reason = "asked_for_person" if wants_human(message) else "low_confidence"
            state.ticket_id = handoff.open_ticket(self.db, session_id, reason, self.webhook)
        self.save_state(session_id, state)
        log.info("chat %s %s conf=%.3f", session_id[:8], decision.kind, decision.confidence)
        return {"session_id": session_id, "answer": decision.answer,
                "confidence": round(decision.confidence, 4),
                "sources": [{"id": h.id, "question": h.question, "score": h.score} for h in decision.hits],
                "handoff": decision.kind in ("handoff", "silent"), "kind": decision.kind}

    def _decide(self, message: str, state: State) -> Decision:
        if state.handoff:
            return decide(message, [], 0.0, {}, state, self.policy)
        kb = self.handle.get()
        if self.watch is not None:
            self.watch.poke(kb.meta)
        encoder = self.query_encoder(kb.meta["model"])
        context = follow_up_context(message, state)
        if context is None:
            vec = encoder.encode([message])
        else:  # the new words lead, the previous question fills in the topic
            pair = encoder.encode([message, context])
            vec = pair[:1] + CONTEXT_WEIGHT * pair[1:]
            vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        hits = kb.search(vec, max(self.policy.suggestions, 2), texts=[message])[0]
        answers = {h.id: kb.entries[h.id].answer for h in hits if h.id in kb.entries}
        return decide(message, hits, kb.confidence(hits), answers, state, self.policy)

    def release(self, session_id: str, actor: str) -> int:
        """An agent hands the conversation back to the bot."""
        n = handoff.release_ticket(self.db, session_id, actor)
        state = self.load_state(session_id)
        state.handoff, state.unsure, state.ticket_id = False, 0, None
        self.save_state(session_id, state)
        return n
