"""The unsure → clarify → handoff policy and follow-up reading, without any service."""

from __future__ import annotations

import pytest

from services.chatbot.dialogue import SILENT_ANSWER, Policy, State, chosen, decide, follow_up_context, wants_human
from services.chatbot.handoff import mask_pii
from services.chatbot.kb import Hit

HITS = [Hit("a", 0.9, "qa"), Hit("b", 0.5, "qb")]
ANSWERS = {"a": "answer a", "b": "answer b"}


def test_confident_answer_resets_unsure() -> None:
    state = State(unsure=1)
    d = decide("q", HITS, 0.9, ANSWERS, state, Policy())
    assert (d.kind, d.answer, state.unsure) == ("answer", "answer a", 0)


def test_low_confidence_clarifies_then_hands_off() -> None:
    state, policy = State(), Policy(max_unsure=2)
    kinds = [decide("q", HITS, 0.1, ANSWERS, state, policy).kind for _ in range(3)]
    assert kinds == ["clarify", "clarify", "handoff"] and state.handoff
    assert decide("hello?", HITS, 0.99, ANSWERS, state, policy).kind == "silent"


def test_ambiguous_top_two_clarify_even_when_confident() -> None:
    close = [Hit("a", 0.80, "qa"), Hit("b", 0.795, "qb")]
    assert decide("q", close, 0.95, ANSWERS, State(), Policy(ambiguity_margin=0.02)).kind == "clarify"


def test_asking_for_a_person_hands_off_at_once() -> None:
    assert wants_human("Can I speak to a real person please") and not wants_human("personal loan rates")


@pytest.mark.parametrize("text", [
    "I want to talk to a *human* agent please", "get me a real person, my card is 4111", "agent", "Operator!",
    "Representative please", "can I talk to someone", "connect me with customer service", "I need a live agent",
    "transfer me to a representative", "I want a human", "Can I speak with one of your advisors?",
    "please call me back", "speak to a manager"])
def test_a_request_for_a_person_hands_off(text: str) -> None:
    assert wants_human(text)


@pytest.mark.parametrize("text", [  # chatbot QA: each of these opened a ticket and silenced the bot
    "At what age can a person open a savings account?", "I sent money to a person",
    "Which mobile operator do I need for SMS alerts when I change my address?",
    "Is it possible for a person who lives in the US to get a card?", "send the 5% deposit over to the agent",
    "How can I transfer to someone else's account?", "I need someone to assist me with a top-up",
    "Do I need to speak to a representative to change my pin?", "Why did the bank call me?"])
def test_a_question_that_mentions_a_person_is_answered(text: str) -> None:
    assert not wants_human(text)
    assert decide("let me talk to an agent", HITS, 0.99, ANSWERS, State(), Policy()).kind == "handoff"


def test_follow_up_is_read_with_previous_question() -> None:
    state = State(turns=[{"role": "user", "text": "What is the interest rate on savings?"},
                         {"role": "bot", "text": "3.1%"}])
    assert follow_up_context("and for credit cards?", state) == "What is the interest rate on savings?"
    assert follow_up_context("How do I close my account?", state) is None


def test_pii_is_masked() -> None:
    text = "card 4111 1111 1111 1111, mail jo.doe+x@bank.co.uk, call +44 20 7946 0958"
    assert mask_pii(text) == "card [card], mail [email], call [phone]"
    assert mask_pii("call (415) 555-0123 (after 5)") == "call [phone] (after 5)"  # it left "([phone]"
    for typed in ("4111111111111111exp1227", "pan4111111111111111", "card4111111111111111end"):
        assert "4111" not in mask_pii(typed) and "[card]" in mask_pii(typed), mask_pii(typed)


def test_duplicate_question_text_is_answered_not_clarified() -> None:
    """Two entries with one question (FAQs hold copies) tie; asking "which one?" only loops."""
    dup = [Hit("x1", 0.98, "What options should I choose?"), Hit("x2", 0.98, "what options should I choose")]
    answers = {"x1": "Choose checking.", "x2": "Generally choose the checking option."}
    state = State()
    d = decide("q", dup, 0.95, answers, state, Policy())
    assert (d.kind, d.answer, state.unsure) == ("answer", "Choose checking.", 0)
    same_answer = [Hit("a", 0.9, "qa"), Hit("b", 0.9, "qb")]
    assert decide("q", same_answer, 0.95, {"a": "Same.", "b": "same"}, State(), Policy()).kind == "answer"


def test_genuine_ambiguity_still_clarifies_with_distinct_suggestions() -> None:
    """A distinct third entry within the margin is a real choice; the copy is not offered twice."""
    hits = [Hit("x1", 0.80, "qx"), Hit("x2", 0.80, "QX?"), Hit("y", 0.79, "qy")]
    d = decide("q", hits, 0.95, {"x1": "ax", "x2": "ax2", "y": "ay"}, State(), Policy(ambiguity_margin=0.02))
    assert d.kind == "clarify" and [h.id for h in d.hits] == ["x1", "y"]


def test_silent_notice_is_given_once_per_handoff() -> None:
    state = State()
    assert decide("talk to a human", HITS, 0.9, ANSWERS, state, Policy()).kind == "handoff"
    replies = [decide("hello?", HITS, 0.9, ANSWERS, state, Policy()) for _ in range(3)]
    assert [r.kind for r in replies] == ["silent"] * 3
    assert [r.answer for r in replies] == [SILENT_ANSWER, "", ""]
    state = State.from_dict(state.to_dict())  # survives the round trip through Redis
    assert decide("still there?", HITS, 0.9, ANSWERS, state, Policy()).answer == ""


def test_picked_suggestion_is_answered_and_resets_unsure() -> None:
    state = State(unsure=2)
    d = chosen("b", "qb", "answer b", state)
    assert (d.kind, d.answer, d.confidence, state.unsure) == ("answer", "answer b", 1.0, 0)
    assert [h.id for h in d.hits] == ["b"]
