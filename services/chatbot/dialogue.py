"""Turn-level decisions: answer, clarify ("Did you mean…") or hand off to a person.

Pure functions over retrieval hits and a small conversation state, so the policy is
tested without Flask, Redis or a model. The service keeps the state in Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from services.chatbot.kb import Hit

# A request for a person, not a question that mentions one ("at what age can a person open a
# savings account?", "which mobile operator...", "I sent money to a person"): a verb of asking
# with a person after it, a real/live/human one, or a message that is only that.
_NOUN = (r"(?:human(?: being)?|person|people|agent|representative|rep|operator|someone|somebody|"
         r"staff(?: member)?|advis[eo]r|manager|customer (?:service|support|care))")
_DET = r"(?:(?:a|an|the|some|your|one of your|real|live|actual|human|bank)\s+)*"
_HUMAN = re.compile(
    r"\b(?:real|live|actual) (?:person|human|agent|people|representative)\b"
    r"|\bhuman (?:agent|representative|rep|being|support)\b"
    rf"|\b(?:speak|talk|chat|(?:connect|transfer|put) me(?: through)?) (?:to|with) {_DET}{_NOUN}s?\b"
    rf"|\b(?:get|give|want|need|see|find) (?:me )?{_DET}(?:human|agent|representative|operator|advis[eo]r)s?\b"
    r"|\bcall me back\b"
    rf"|^(?:{_DET}{_NOUN}|human|agent)(?: please| pls| now)?$", re.I)
# "do I need to speak to a representative to change my PIN?" is a question for the FAQ
_ASKS_IF_NEEDED = re.compile(r"\b(?:do|does|would|will|must|should) (?:i|we|you) (?:need|have) to "
                             r"(?:speak|talk|chat)\b", re.I)
_MARKS = re.compile(r"[^\w'\s]+")
# Short follow-ups ("and for credit cards?", "what about savings?") lean on the previous turn.
_FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|also|same for|what if|or)\b", re.I)

HANDOFF_ANSWER = ("I'm handing this conversation to a member of our team; "
                  "an agent will reply here shortly.")
SILENT_ANSWER = "An agent has this conversation and will reply here."  # said once per handoff
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
    notified: bool = False  # the "an agent has this conversation" notice was given this handoff

    def to_dict(self) -> dict[str, Any]:
        return {"turns": self.turns[-10:], "unsure": self.unsure, "handoff": self.handoff,
                "ticket_id": self.ticket_id, "notified": self.notified}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> State:
        data = data or {}
        return cls(list(data.get("turns", [])), int(data.get("unsure", 0)), bool(data.get("handoff")),
                   data.get("ticket_id"), bool(data.get("notified")))


@dataclass
class Decision:
    kind: str  # answer | clarify | handoff | silent
    answer: str
    confidence: float
    hits: list[Hit]


def wants_human(text: str) -> bool:
    words = " ".join(_MARKS.sub(" ", text).split())  # "talk to a *human* agent!" reads as its words
    return bool(_HUMAN.search(words)) and not _ASKS_IF_NEEDED.search(words)


def is_follow_up(text: str) -> bool:
    return bool(_FOLLOW_UP.match(text)) and len(text.split()) <= 8


def follow_up_context(message: str, state: State) -> str | None:
    """The previous question when ``message`` is a short follow-up ("and for credit cards?")."""
    last_user = next((t["text"] for t in reversed(state.turns) if t.get("role") == "user"), None)
    return last_user if last_user and is_follow_up(message) else None


def _norm(text: str) -> str:
    """Case, spacing and end punctuation ignored: "Withdraw cash?" and "withdraw  cash" match."""
    return " ".join(text.casefold().split()).rstrip("?.! ")


def same_entry_text(a: Hit, b: Hit, answers: dict[str, str]) -> bool:
    """Two entries a customer could not tell apart: the same question, or the same answer.

    FAQs often hold one question twice (different wording of the answer, or a copy);
    asking "which of these?" with two identical buttons only loops.
    """
    if _norm(a.question) == _norm(b.question):
        return True
    ans_a, ans_b = answers.get(a.id), answers.get(b.id)
    return ans_a is not None and ans_b is not None and _norm(ans_a) == _norm(ans_b)


def is_ambiguous(hits: list[Hit], answers: dict[str, str], margin: float) -> bool:
    """A distinct entry scores within ``margin`` of the top one (duplicates of it do not count)."""
    if not hits:
        return False
    top = hits[0]
    return any(top.score - h.score < margin and not same_entry_text(top, h, answers) for h in hits[1:])


def distinct_suggestions(hits: list[Hit], answers: dict[str, str], n: int) -> list[Hit]:
    """Up to ``n`` hits, best first, leaving out any a customer could not tell from an earlier one."""
    out: list[Hit] = []
    for h in hits:
        if not any(same_entry_text(o, h, answers) for o in out):
            out.append(h)
        if len(out) == n:
            break
    return out


def silent(state: State) -> Decision:
    """While an agent has the conversation: say so once, then stay quiet (empty answer)."""
    if state.notified:
        return Decision("silent", "", 0.0, [])
    state.notified = True
    return Decision("silent", SILENT_ANSWER, 0.0, [])


def decide(message: str, hits: list[Hit], confidence: float, answers: dict[str, str],
           state: State, policy: Policy) -> Decision:
    """Choose this turn's reply and update ``state`` in place."""
    if state.handoff:
        return silent(state)
    if wants_human(message):
        state.handoff, state.notified = True, False
        return Decision("handoff", HANDOFF_ANSWER, confidence, hits[: policy.suggestions])
    ambiguous = is_ambiguous(hits, answers, policy.ambiguity_margin)
    if hits and confidence >= policy.answer_threshold and not ambiguous:
        state.unsure = 0
        return Decision("answer", answers[hits[0].id], confidence, hits[: policy.suggestions])
    state.unsure += 1
    if state.unsure > policy.max_unsure or not hits:
        state.handoff, state.notified = True, False
        return Decision("handoff", HANDOFF_ANSWER, confidence, hits[: policy.suggestions])
    return Decision("clarify", CLARIFY_ANSWER, confidence, distinct_suggestions(hits, answers, policy.suggestions))


def chosen(entry_id: str, question: str, answer: str, state: State) -> Decision:
    """The customer picked a suggested entry: answer it outright, a resolved turn (not unsure)."""
    state.unsure = 0
    return Decision("answer", answer, 1.0, [Hit(entry_id, 1.0, question)])
