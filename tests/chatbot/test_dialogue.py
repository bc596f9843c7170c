"""The unsure → clarify → handoff policy and follow-up reading, without any service."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.chatbot import handoff
from services.chatbot.dialogue import (
    NO_MATCH_ANSWER,
    SILENT_ANSWER,
    Policy,
    State,
    chosen,
    decide,
    follow_up_context,
    wants_human,
)
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


def test_a_question_that_matches_nothing_asks_to_rephrase_without_suggestions() -> None:
    """QA: "what is the meaning of life" got "Did you mean" with three unrelated bank entries."""
    state, policy = State(), Policy(max_unsure=2)
    far = [Hit("a", 0.2, "qa"), Hit("b", 0.18, "qb")]
    turns = [decide("what is the meaning of life", far, 0.0, ANSWERS, state, policy, no_match=True)
             for _ in range(3)]
    assert [(d.kind, d.answer, d.hits) for d in turns[:2]] == [("clarify", NO_MATCH_ANSWER, [])] * 2
    assert turns[2].kind == "handoff" and state.handoff  # unsure turns like any other
    # small talk and a request for a person come first; "that didn't help" still offers the others
    assert decide("thanks", far, 0.0, ANSWERS, State(), policy, no_match=True).kind == "answer"
    assert decide("talk to a person", far, 0.0, ANSWERS, State(), policy, no_match=True).kind == "handoff"
    rejected = decide("that didn't help", far, 0.0, ANSWERS, State(answered="a"), policy, rejected=True, no_match=True)
    assert rejected.kind == "clarify" and [h.id for h in rejected.hits] == ["b"]


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


def test_a_chain_of_follow_ups_keeps_the_question_that_set_the_topic() -> None:
    """QA: the third turn of "rate on savings?" → "and for credit cards?" → "what about loans?" was read
    with "and for credit cards?" alone and lost the topic."""
    state = State(turns=[{"role": "user", "text": "What is the interest rate on savings?"},
                         {"role": "bot", "text": "3.1%"},
                         {"role": "user", "text": "and for credit cards?"}, {"role": "bot", "text": "19.9%"},
                         {"role": "user", "text": "thanks"}, {"role": "bot", "text": "You're welcome!"}])
    assert follow_up_context("what about loans?", state) == "What is the interest rate on savings?"
    state.turns += [{"role": "user", "text": "How do I close my account?"}, {"role": "bot", "text": "..."}]
    assert follow_up_context("and for joint accounts?", state) == "How do I close my account?"


def test_pii_is_masked() -> None:
    text = "card 4111 1111 1111 1111, mail jo.doe+x@bank.co.uk, call +44 20 7946 0958"
    assert mask_pii(text) == "card [card], mail [email], call [phone]"
    assert mask_pii("call (415) 555-0123 (after 5)") == "call [phone] (after 5)"  # it left "([phone]"
    for typed in ("4111111111111111exp1227", "pan4111111111111111", "card4111111111111111end"):
        assert "4111" not in mask_pii(typed) and "[card]" in mask_pii(typed), mask_pii(typed)


@pytest.mark.parametrize(("typed", "masked"), [  # i18n QA: each of these was stored, ticketed and sent as typed
    *[(f"card 4111{sep}1111{sep}1111{sep}1111", "card [card]")
      for sep in ("\u00a0", "\u202f", "\u2009", "\u3000", "\u200b", "\u2013", "\u2014", "\u2010", "\u2015")],
    ("card \uff14\uff11\uff11\uff11\u3000\uff11\uff11\uff11\uff11\u3000\uff11\uff11\uff11\uff11\u3000"
     "\uff11\uff11\uff11\uff11", "card [card]"),
    ("mail \uff4a\uff4f\uff48\uff4e\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d",
     "mail [email]"),
    ("phone \uff0b\uff18\uff11 \uff19\uff10 \uff11\uff12\uff13\uff14 \uff15\uff16\uff17\uff18", "phone [phone]"),
    ("phone +49\u00a030\u00a0123\u00a04567", "phone [phone]"), ("phone +49\u202f30\u202f1234567", "phone [phone]"),
    ("phone 030/1234567", "phone [phone]"), ("phone 030.1234567", "phone [phone]"),
    ("phone 030\u20131234567", "phone [phone]"),
])
def test_pii_typed_with_unicode_separators_or_full_width_is_masked(typed: str, masked: str) -> None:
    assert mask_pii(typed) == masked


@pytest.mark.parametrize("text", ["paid on 2024-03-07, due 07.03.2024 or 2024/03/07", "1.000.000 EUR",
                                  "PIN 1234, 3.1% or 19.9%, between 10-20 items", "1,000,000.00"])
def test_dates_amounts_and_short_numbers_are_not_masked(text: str) -> None:
    assert mask_pii(text) == text


# the e-mail pattern before it was made linear: what masking must still give
_EMAIL_BEFORE = re.compile(r"[\w.+-]+[@\uff20][\w-]+([.\uff0e][\w-]+)+")


def _masked_before(text: str) -> str:
    text = handoff._CARD.sub("[card]", _EMAIL_BEFORE.sub("[email]", text))
    return handoff._PHONE.sub(handoff._phone, text)


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(st.text(alphabet="ab1２_.．+-@＠ ,(", max_size=40))
def test_linear_email_masking_masks_what_the_old_pattern_did(text: str) -> None:
    assert mask_pii(text) == _masked_before(text)


@pytest.mark.timeout(60)  # ~1000x what these take now; the old e-mail pattern took hours (quadratic)
@pytest.mark.parametrize(("typed", "masked"), [
    ("1" * 200_000 + "x", "1" * 200_000 + "x"),  # security QA: 20k of these held a chat worker 10 s
    ("a." * 100_000 + "x", "a." * 100_000 + "x"),
    ("a" * 200_000 + "@", "a" * 200_000 + "@"),  # an "@" that starts no address
    ("a" * 200_000 + "@b.co", "[email]"),
    ("mail " + "a." * 100_000 + "@bank.co.uk", "mail [email]"),
])
def test_long_runs_without_an_address_are_masked_in_linear_time(typed: str, masked: str) -> None:
    assert mask_pii(typed) == masked


def test_exact_copies_are_answered_not_clarified() -> None:
    """Two entries with one answer (FAQs hold copies) tie; asking "which one?" only loops."""
    dup = [Hit("x1", 0.98, "What options should I choose?"), Hit("x2", 0.98, "what options should I choose")]
    answers = {"x1": "Choose checking.", "x2": "choose  checking"}
    state = State()
    d = decide("q", dup, 0.95, answers, state, Policy())
    assert (d.kind, d.answer, state.unsure) == ("answer", "Choose checking.", 0)
    same_answer = [Hit("a", 0.9, "qa"), Hit("b", 0.9, "qb")]
    assert decide("q", same_answer, 0.95, {"a": "Same.", "b": "same"}, State(), Policy()).kind == "answer"


def test_near_copies_are_answered_and_per_product_answers_named_by_their_product() -> None:
    """Re-measured on the bank FAQ: "I forgot my ATM PIN" went from a right answer to a "Did you
    mean" between answers a word apart ("PhoneBanking" / "Phone Banking", "the" / "the nearest"),
    labelled by trivial fragments. A near copy is a copy; answers apart by a name or a figure are not,
    and their labels name what differs."""
    from services.chatbot.dialogue import suggestion_labels

    q = "What if I forget my ATM PIN"
    near = {"a": "Call PhoneBanking or visit the branch to get a new PIN, which reaches you by post.",
            "b": "Call Phone Banking or visit the nearest branch to get a new PIN, which reaches you by post."}
    hits = [Hit("a", 0.97, q), Hit("b", 0.965, q)]
    assert decide("forgot my atm pin", hits, 0.97, near, State(), Policy(ambiguity_margin=0.02)).kind == "answer"
    cards = {"a": "You can get the Platinum ForexPlus card at any branch of the bank. View more",
             "b": "You can get the ISIC ForexPlus card at any branch of the bank. View more"}
    d = decide("where do I get this card", hits, 0.97, cards, State(), Policy(ambiguity_margin=0.02))
    assert d.kind == "clarify"
    assert suggestion_labels(d.hits, cards) == [f"{q} \u2014 Platinum", f"{q} \u2014 ISIC"]
    days = {"a": "Give notice 60 days in advance at your branch.",
            "b": "Give notice 180 days in advance at your branch."}
    assert decide("notice", hits, 0.97, days, State(), Policy(ambiguity_margin=0.02)).kind == "clarify"


def test_same_question_with_different_answers_asks_with_labels_that_tell_them_apart() -> None:
    """Bank FAQ QA: "how do I change my atm pin" got the eGiftPlus card's "There is no ATM PIN" at
    0.97, because entries with one question (one per card) counted as copies and nobody was asked."""
    from services.chatbot.dialogue import suggestion_labels

    q = "How do I change my ATM PIN"
    hits = [Hit("gift", 0.97, q), Hit("debit", 0.965, q + "?"), Hit("credit", 0.96, q.lower())]
    answers = {"gift": "There is no ATM PIN for the eGiftPlus card, as it cannot be used at ATMs.",
               "debit": "You can change your Debit Card ATM PIN at any of our ATMs or in NetBanking.",
               "credit": "You can change your Credit Card ATM PIN in NetBanking under Cards."}
    state = State()
    d = decide("how do I change my atm pin", hits, 0.97, answers, state, Policy(ambiguity_margin=0.02))
    assert d.kind == "clarify" and [h.id for h in d.hits] == ["gift", "debit", "credit"] and state.unsure == 1
    labels = suggestion_labels(d.hits, answers)
    assert len(set(labels)) == 3 and all(label.startswith(h.question) for label, h in zip(labels, d.hits, strict=True))
    assert "eGiftPlus" in labels[0] and "Debit" in labels[1] and "Credit Card" in labels[2]
    assert all(len(label) - len(h.question) <= 70 for label, h in zip(labels, d.hits, strict=True))
    # a shared opening is skipped: the label shows where the answers part
    same_start = {"gift": "You can change it " * 3 + "at the branch.", "debit": "You can change it " * 3 + "online."}
    assert suggestion_labels(hits[:2], same_start) == [q + " \u2014 \u2026at the branch.", q + "? \u2014 \u2026online."]
    # distinct categories tell them apart more simply; a lone question keeps its text
    assert suggestion_labels(hits[:2] + [Hit("z", 0.5, "Other")], answers, {"gift": "cards", "debit": "loans"}) == [
        q + " (cards)", q + "? (loans)", "Other"]


def test_genuine_ambiguity_still_clarifies_with_distinct_suggestions() -> None:
    """A distinct third entry within the margin is a real choice; the copy is not offered twice."""
    hits = [Hit("x1", 0.80, "qx"), Hit("x2", 0.80, "QX?"), Hit("y", 0.79, "qy")]
    d = decide("q", hits, 0.95, {"x1": "ax", "x2": "AX.", "y": "ay"}, State(), Policy(ambiguity_margin=0.02))
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


def test_near_identical_questions_are_one_question_for_suggestions() -> None:
    """Bank FAQ QA: "Death Benefit" / "Death-Benefit", "Fees and Charges" / "fees & charges" and
    "Who" / "Whom should I contact" were offered as two "Did you mean" buttons reading alike."""
    from services.chatbot.dialogue import suggestion_labels
    from services.chatbot.lexical import match_key as _norm

    assert _norm("What is the Death Benefit under the plan") == _norm("What is the Death-Benefit under the plan?")
    assert _norm("What are the Fees and Charges applicable") == _norm("What are the fees & charges applicable")
    assert _norm("Who should I contact if my card is lost") == _norm("Whom should I contact if my card is lost")
    assert _norm("Can I withdraw cash") != _norm("Can I deposit cash")
    hits = [Hit("d1", 0.8, "What is the Death Benefit under the plan"),
            Hit("d2", 0.8, "What is the Death-Benefit under the plan"), Hit("o", 0.79, "Other")]
    # same answer (but for punctuation): one button, the better one
    d = decide("q", hits, 0.95, {"d1": "The sum assured.", "d2": "the sum assured", "o": "x"}, State(), Policy())
    assert [h.id for h in d.hits] == ["d1", "o"]
    # different answers: both stay, told apart by their labels
    answers = {"d1": "The sum assured is paid.", "d2": "Premiums paid are returned.", "o": "x"}
    d = decide("q", hits, 0.95, answers, State(), Policy())
    labels = suggestion_labels(d.hits, answers)
    assert [h.id for h in d.hits] == ["d1", "d2", "o"] and len(set(labels)) == 3
    assert labels[0].endswith("The sum assured is paid.") and labels[1].endswith("Premiums paid are returned.")


@pytest.mark.parametrize(("text", "kind"), [
    ("hi", "greeting"), ("Hello!", "greeting"), ("good morning", "greeting"), ("thanks!", "thanks"),
    ("Thank you", "thanks"), ("thanks a lot", "thanks"), ("bye", "bye"), ("Goodbye!", "bye"), ("ok", "ok"),
    ("OK.", "ok"), ("got it, thanks", "ok"),
    # re-measured on the bank FAQ: these still got "Did you mean" (or a "You're welcome!" to a goodbye)
    ("thank you, that helped!", "thanks"), ("that was helpful, thanks", "thanks"), ("no thanks", "done"),
    ("ok thanks bye", "bye"),
    # i18n QA: an emoji alone was looked up (all [UNK] to the encoder) and answered with some entry
    ("\U0001f44d", "ok"), ("\U0001f64f", "thanks"), ("\U0001f44c", "ok"), ("\U0001f60a", "thanks"),
    ("\U0001f44d\U0001f3fd \U0001f44d", "ok")])
def test_small_talk_gets_a_friendly_reply_and_is_not_an_unsure_turn(text: str, kind: str) -> None:
    from services.chatbot.dialogue import SMALL_TALK_ANSWERS, small_talk

    assert small_talk(text) == kind
    state = State(unsure=1)
    d = decide(text, HITS, 0.1, ANSWERS, state, Policy(max_unsure=1))
    assert (d.kind, d.answer, d.hits, state.unsure, state.handoff) == ("answer", SMALL_TALK_ANSWERS[kind], [], 1, False)


def test_small_talk_after_an_answer_never_leads_to_a_handoff() -> None:
    """QA: "What is NEFT?" → "thanks!" → "bye" → "ok" ended in a low_confidence handoff ticket."""
    state, policy = State(), Policy(max_unsure=2)
    kinds = [decide("What is NEFT?", HITS, 0.9, ANSWERS, state, policy).kind]
    kinds += [decide(m, HITS, 0.05, ANSWERS, state, policy).kind for m in ("thanks!", "bye", "ok", "hello")]
    assert kinds == ["answer"] * 5 and not state.handoff and state.unsure == 0
    handed = State(handoff=True, notified=True)  # a pending handoff stays: the bot keeps quiet
    assert decide("thanks!", HITS, 0.9, ANSWERS, handed, policy).kind == "silent" and handed.handoff


@pytest.mark.parametrize("text", [
    "hi, how do I block my card?", "thanks for the card, how do I activate it", "ok so what is the NEFT limit",
    "Hello, what are the RTGS charges?", "good morning, my card was declined"])
def test_questions_that_start_with_small_talk_are_still_questions(text: str) -> None:
    from services.chatbot.dialogue import small_talk

    assert small_talk(text) is None


@pytest.mark.parametrize("text", [
    "get me a manager", "is there a person I can talk to", "can someone call me", "I want a real person",
    "representative", "Is there anyone I could speak with?", "Could somebody please call me", "I need a supervisor"])
def test_more_requests_for_a_person_hand_off(text: str) -> None:
    assert wants_human(text)
    assert decide(text, HITS, 0.99, ANSWERS, State(), Policy()).kind == "handoff"


@pytest.mark.parametrize("text", [
    "Can someone else use my card?", "Can someone else deposit money into my account?",
    "Is there a person-to-person transfer limit?", "Who is the relationship manager for my account?",
    "Can my manager approve a corporate card?", "Is there a person I can nominate for my deposit?",
    "Can I get a manager's cheque?", "How can I get a demand draft?"])
def test_faq_questions_about_someone_are_not_requests_for_a_person(text: str) -> None:
    assert not wants_human(text)


def test_a_follow_up_that_finds_the_entry_just_answered_offers_the_others() -> None:
    """QA: "and for credit cards?" after the RTGS charges answer gave the RTGS answer again."""
    hits = [Hit("rtgs", 0.9, "What are the RTGS charges"), Hit("cc", 0.7, "Credit card charges"),
            Hit("neft", 0.6, "NEFT charges")]
    answers = {"rtgs": "RTGS costs 25.", "cc": "Cards cost 500.", "neft": "NEFT is free."}
    state, policy = State(), Policy(max_unsure=1)
    assert decide("What are the charges for RTGS?", hits, 0.9, answers, state, policy).kind == "answer"
    assert state.answered == "rtgs" and State.from_dict(state.to_dict()).answered == "rtgs"
    d = decide("and for credit cards?", hits, 0.9, answers, state, policy, follow_up=True)
    assert d.kind == "clarify" and [h.id for h in d.hits] == ["cc", "neft"] and state.unsure == 1
    # a follow-up whose best entry is another one is answered; a repeat past the count hands off
    state = State(answered="rtgs")
    d = decide("and for credit cards?", hits[1:], 0.9, answers, state, policy, follow_up=True)
    assert (d.kind, d.answer) == ("answer", "Cards cost 500.")
    state = State(answered="rtgs", unsure=1)
    assert decide("and for cards?", hits, 0.9, answers, state, policy, follow_up=True).kind == "handoff"
    # not a follow-up: asking the same question again is answered again
    state = State(answered="rtgs")
    assert decide("What are the RTGS charges?", hits, 0.9, answers, state, policy).kind == "answer"


def test_an_entry_stays_answered_through_unsure_turns() -> None:
    """QA: limit answer -> "that didn't help" -> "what about loans?" gave the rejected limit answer again."""
    hits = [Hit("limit", 0.9, "How do I raise my card limit"), Hit("loan", 0.7, "Loan repayment"),
            Hit("rate", 0.6, "Card interest")]
    answers = {"limit": "Ask in the app.", "loan": "Repay monthly.", "rate": "It is 3%."}
    state, policy = State(), Policy(max_unsure=3)
    assert decide("How do I increase my credit card limit?", hits, 0.9, answers, state, policy).kind == "answer"
    rejected = decide("that didn't help", hits, 0.9, answers, state, policy, rejected=True)
    assert rejected.kind == "clarify" and "limit" not in [h.id for h in rejected.hits]
    assert state.answered == "limit"
    for follow_up in ("what about loans?", "and for savings?"):
        d = decide(follow_up, hits, 0.9, answers, state, policy, follow_up=True)
        assert d.kind == "clarify" and [h.id for h in d.hits] == ["loan", "rate"]
    # a new answer takes its place; a handoff forgets it
    assert decide("Loan repayment", hits[1:], 0.9, answers, state, policy).kind == "answer"
    assert state.answered == "loan"
    decide("talk to a person", hits, 0.9, answers, state, policy)
    assert state.answered is None


def test_a_follow_up_after_small_talk_leans_on_the_question_before_it() -> None:
    state = State(turns=[{"role": "user", "text": "What are the RTGS charges?"}, {"role": "bot", "text": "25"},
                         {"role": "user", "text": "thanks!"}, {"role": "bot", "text": "You're welcome!"}])
    assert follow_up_context("and for NEFT?", state) == "What are the RTGS charges?"


def test_a_rejection_is_the_whole_message_saying_the_answer_did_not_help() -> None:
    from services.chatbot.dialogue import rejects_answer

    for text in ("That didn't help", "that did not help at all!", "No, that's not what I meant",
                 "not what I asked", "wrong answer", "you didn't answer my question", "not helpful",
                 "that didn\u2019t work"):
        assert rejects_answer(text), text
    for text in ("how do I get help with my card?", "that helped", "no thanks", "my card doesn't work",
                 "help", "the app doesn't work when I log in from abroad"):
        assert not rejects_answer(text), text


@pytest.mark.parametrize("text", ["no", "nope", "nah", "no thanks", "No, that's all", "no that's all", "that's it",
                                  "that's all", "all good", "nothing else", "No, that is all.", "nope, nothing else"])
def test_no_to_anything_else_closes_the_chat_and_is_not_an_unsure_turn(text: str) -> None:
    """Bank FAQ QA: "thanks" ("Is there anything else I can help you with?") -> "no" -> "nope" ->
    "no, that is all" got "Sorry, I couldn't find anything" three times, and the third opened a ticket."""
    from services.chatbot.dialogue import SMALL_TALK_ANSWERS, small_talk

    assert small_talk(text) == "done"
    state = State(unsure=2)
    d = decide(text, [], 0.0, ANSWERS, state, Policy(max_unsure=2), no_match=True)
    assert (d.kind, d.answer, d.hits) == ("answer", SMALL_TALK_ANSWERS["done"], [])
    assert (state.unsure, state.handoff) == (2, False)


@pytest.mark.parametrize("text", ["no", "nope", "no thanks"])
def test_no_to_did_you_mean_says_none_fits_and_is_an_unsure_turn(text: str) -> None:
    """Regression QA: "no" to "Did you mean one of these?" said goodbye, and the next unclear question
    went straight to a handoff; it asks to rephrase, as none of the suggestions fits."""
    from services.chatbot.dialogue import CLARIFY_ANSWER, NO_MATCH_ANSWER, REJECTED_ANSWER

    for asked in (CLARIFY_ANSWER, REJECTED_ANSWER):
        state = State(turns=[{"role": "user", "text": "card"}, {"role": "bot", "text": asked}], unsure=1)
        d = decide(text, HITS, 0.9, ANSWERS, state, Policy(max_unsure=2))
        assert (d.kind, d.answer, d.hits, state.unsure, state.handoff) == ("clarify", NO_MATCH_ANSWER, [], 2, False)
        assert decide(text, HITS, 0.9, ANSWERS, state, Policy(max_unsure=2)).kind == "handoff"  # unsure as ever


def test_the_qa_goodbye_after_an_answer_opens_no_handoff() -> None:
    from services.chatbot.dialogue import SMALL_TALK_ANSWERS

    state, policy = State(), Policy(max_unsure=2)
    assert decide("How can I block my debit card?", HITS, 0.9, ANSWERS, state, policy).kind == "answer"
    replies = [decide(m, [], 0.0, ANSWERS, state, policy, no_match=True) for m in ("thanks", "no", "nope",
                                                                                   "no, that is all")]
    assert [r.answer for r in replies] == [SMALL_TALK_ANSWERS["thanks"]] + [SMALL_TALK_ANSWERS["done"]] * 3
    assert not state.handoff and state.unsure == 0
    # a question after "no" is still a question
    assert decide("no, how do I block my card?", HITS, 0.9, ANSWERS, state, policy).answer == "answer a"


@pytest.mark.parametrize("text", [  # chatbot QA: each of these opened a ticket and silenced the bot
    "I don't want to talk to a human, just tell me how to change my PIN", "please don't transfer me to an agent",
    "Do I need an agent to file a claim?", "how do I find an agent near me for cash deposit",
    "I do not want to speak to a person", "no need to transfer me to an agent", "I never want to talk to a human",
    "I don\u2019t want to talk to a human", "is live chat open on Sundays?", "how do I escalate a complaint?",
    "I don't want live chat"])
def test_a_person_not_wanted_or_asked_about_is_no_request_for_one(text: str) -> None:
    assert not wants_human(text)
    assert decide(text, HITS, 0.99, ANSWERS, State(), Policy()).kind == "answer"


@pytest.mark.parametrize("text", [
    "live chat", "Live chat please", "I want live chat", "escalate", "please escalate this", "escalate to a manager",
    "can you escalate my complaint?", "speak to someone", "I don't want to wait, get me a human",
    "I don't understand, talk to a human", "no, I want to talk to a person"])
def test_live_chat_escalate_and_requests_after_another_clause_hand_off(text: str) -> None:
    assert wants_human(text)
    assert decide(text, HITS, 0.99, ANSWERS, State(), Policy()).kind == "handoff"


@pytest.mark.parametrize("text", ["that doesnt help", "didn't help", "not helpful", "wrong", "Wrong answer",
                                  "useless", "that's useless", "that was not helpful", "didnt work", "incorrect"])
def test_more_wordings_of_that_did_not_help_reject_the_answer(text: str) -> None:
    """Bank FAQ QA: these were looked up as new questions (whatever entry mentions "help" or "wrong")."""
    from services.chatbot.dialogue import rejects_answer

    assert rejects_answer(text)


@pytest.mark.parametrize("text", ["wrong amount debited from my account", "wrong pin entered three times",
                                  "my card doesn't work", "useless charges on my statement", "no thanks"])
def test_questions_starting_like_a_rejection_are_still_questions(text: str) -> None:
    from services.chatbot.dialogue import rejects_answer

    assert not rejects_answer(text)


@pytest.mark.parametrize("text", ["cancel", "Cancel that", "never mind", "nevermind", "I don't need an agent",
                                  "I don\u2019t need an agent anymore", "back to the bot", "go back to the bot please",
                                  "forget it", "no need"])
def test_a_customer_may_take_back_a_handoff(text: str) -> None:
    from services.chatbot.dialogue import HANDOFF_CANCELLED_ANSWER, cancels_handoff, handed_back

    assert cancels_handoff(text)
    state = State(unsure=3, handoff=True, ticket_id=7, notified=True)
    d = handed_back(state)
    assert (d.kind, d.answer, d.hits) == ("answer", HANDOFF_CANCELLED_ANSWER, [])
    assert (state.handoff, state.unsure, state.ticket_id, state.notified) == (False, 0, None, False)


@pytest.mark.parametrize("text", ["cancel my card", "how do I cancel a standing order", "cancel a transfer",
                                  "never mind the fee, how do I close my account?"])
def test_asking_to_cancel_something_is_no_taking_back_of_a_handoff(text: str) -> None:
    from services.chatbot.dialogue import cancels_handoff

    assert not cancels_handoff(text)


def test_a_name_right_after_a_full_stop_with_no_space_is_no_name_in_a_label() -> None:
    """Bank FAQ QA: "hey, my card was stolen" offered "Who should I contact if my card is lost or stolen —
    New The": the answers' "Card.New card" and "purchaser.The" read as names."""
    from services.chatbot.dialogue import _names, suggestion_labels

    q = "Who should I contact if my card is lost or stolen"
    answers = {"debit": "Call PhoneBanking at once to block your debit Card.New card will reach you in 7 days.",
               "gift": "Call PhoneBanking at once to block the card and tell the purchaser.The balance is refunded."}
    labels = suggestion_labels([Hit("debit", 0.9, q), Hit("gift", 0.89, q)], answers)
    assert not any(label.endswith(("New", "The", "New The")) for label in labels), labels
    assert "new" not in _names(answers["debit"]) and "the" not in _names(answers["gift"])
    assert "phonebanking" in _names(answers["debit"])  # a name mid-sentence still is one


def test_a_request_for_a_person_or_its_taking_back_is_no_topic() -> None:
    """Regression QA: after "talk to a human" and "cancel", "that didn't help" read "cancel" as the
    topic and offered the entries nearest it instead of the earlier answer's alternatives."""
    from services.chatbot.dialogue import topic_question

    turns = [("user", "how do I block my card?"), ("bot", "answer a"), ("user", "talk to a human"),
             ("bot", "handing over"), ("user", "cancel"), ("bot", "cancelled")]
    state = State(turns=[{"role": role, "text": text} for role, text in turns])
    assert topic_question(state) == "how do I block my card?"
