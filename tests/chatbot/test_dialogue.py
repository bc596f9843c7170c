"""The unsure → clarify → handoff policy and follow-up reading, without any service."""

from __future__ import annotations

from services.chatbot.dialogue import Policy, State, decide, follow_up_context, wants_human
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
    assert decide("let me talk to an agent", HITS, 0.99, ANSWERS, State(), Policy()).kind == "handoff"


def test_follow_up_is_read_with_previous_question() -> None:
    state = State(turns=[{"role": "user", "text": "What is the interest rate on savings?"},
                         {"role": "bot", "text": "3.1%"}])
    assert follow_up_context("and for credit cards?", state) == "What is the interest rate on savings?"
    assert follow_up_context("How do I close my account?", state) is None


def test_pii_is_masked() -> None:
    text = "card 4111 1111 1111 1111, mail jo.doe+x@bank.co.uk, call +44 20 7946 0958"
    assert mask_pii(text) == "card [card], mail [email], call [phone]"
