"""Turn-level decisions: answer, clarify ("Did you mean…") or hand off to a person.

Pure functions over retrieval hits and a small conversation state, so the policy is
tested without Flask, Redis or a model. The service keeps the state in Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from services.chatbot.kb import Hit

_HUMAN = re.compile(
    r"\b(human|real person|a person|someone real|(live |human |customer service )?agent|representative|"
    r"operator|speak to (someone|somebody)|talk to (someone|somebody)|call me)\b", re.I)
# Short follow-ups ("and for credit cards?", "what about savings?") lean on the previous turn.
_FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|also|same for|what if|or)\b", re.I)

HANDOFF_ANSWER = ("I'm handing this conversation to a member of our team; "
                  "an agent will reply here shortly.")
SILENT_ANSWER = "An agent has this conversation and will reply here."
CLARIFY_ANSWER = "I'm not sure I understood. Did you mean one of these?"


@dataclass
class Policy:
    """Thresholds of the unsure → clarify → handoff path."""

    answer_threshold: float = 0.5  # calibrated confidence needed to answer outright
    ambiguity_margin: float = 0.02  # top two entries closer than this → ask which
    max_unsure: int = 2  # consecutive unsure turns before a handoff
    suggestions: int = 3


@dataclass
class State:
    """What Redis remembers of a conversation between turns."""

    turns: list[dict[str, str]] = field(default_factory=list)
    unsure: int = 0
    handoff: bool = False
    ticket_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"turns": self.turns[-10:], "unsure": self.unsure, "handoff": self.handoff,
                "ticket_id": self.ticket_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> State:
        data = data or {}
        return cls(list(data.get("turns", [])), int(data.get("unsure", 0)), bool(data.get("handoff")),
                   data.get("ticket_id"))


@dataclass
class Decision:
    kind: str  # answer | clarify | handoff | silent
    answer: str
    confidence: float
    hits: list[Hit]


def wants_human(text: str) -> bool:
    return bool(_HUMAN.search(text))


def is_follow_up(text: str) -> bool:
    return bool(_FOLLOW_UP.match(text)) and len(text.split()) <= 8


def follow_up_context(message: str, state: State) -> str | None:
    """The previous question when ``message`` is a short follow-up ("and for credit cards?")."""
    last_user = next((t["text"] for t in reversed(state.turns) if t.get("role") == "user"), None)
    return last_user if last_user and is_follow_up(message) else None


def decide(message: str, hits: list[Hit], confidence: float, answers: dict[str, str],
           state: State, policy: Policy) -> Decision:
    """Choose this turn's reply and update ``state`` in place."""
    if state.handoff:
        return Decision("silent", SILENT_ANSWER, 0.0, [])
    if wants_human(message):
        state.handoff = True
        return Decision("handoff", HANDOFF_ANSWER, confidence, hits[: policy.suggestions])
    ambiguous = len(hits) > 1 and hits[0].score - hits[1].score < policy.ambiguity_margin
    if hits and confidence >= policy.answer_threshold and not ambiguous:
        state.unsure = 0
        return Decision("answer", answers[hits[0].id], confidence, hits[: policy.suggestions])
    state.unsure += 1
    if state.unsure > policy.max_unsure or not hits:
        state.handoff = True
        return Decision("handoff", HANDOFF_ANSWER, confidence, hits[: policy.suggestions])
    return Decision("clarify", CLARIFY_ANSWER, confidence, hits[: policy.suggestions])
