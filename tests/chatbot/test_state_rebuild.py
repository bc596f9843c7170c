"""A conversation whose Redis state expired (its TTL, a flush, a restart) goes on from its transcript.

QA: the widget kept the session and showed the old chat, but the bot had forgotten it: "that didn't
help" got "couldn't find anything", a follow-up lost its topic, and a handed-off chat was told again.
"""

from __future__ import annotations

import json

from services.chatbot.dialogue import HANDOFF_ANSWER, NO_MATCH_ANSWER, REJECTED_ANSWER, SILENT_ANSWER


def chat(client, message: str, session_id: str) -> dict:
    r = client.post("/v1/chat", json={"session_id": session_id, "message": message})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def expire(app, session_id: str) -> None:
    """What the TTL (FINPULSE_CHATBOT_SESSION_TTL_S) or a Redis flush does to the session's state."""
    bot = app.extensions["chatbot"]
    assert bot.redis.delete(bot._key(session_id)) == 1


def test_a_follow_up_after_expiry_keeps_its_topic(app, unique) -> None:
    client, bot, sid = app.test_client(), app.extensions["chatbot"], f"rb-follow-{unique}"
    assert chat(client, "What is the interest rate on credit cards?", sid)["sources"][0]["id"] == "credit-card-interest"
    expire(app, sid)
    data = chat(client, "and for savings?", sid)  # alone: "couldn't find anything"
    assert data["answer"] != NO_MATCH_ANSWER and data["sources"][0]["id"] == "savings-rate", data
    saved = json.loads(bot.redis.get(bot._key(sid)))  # the rebuilt state is saved as any other
    assert [t["text"] for t in saved["turns"] if t["role"] == "user"] == [
        "What is the interest rate on credit cards?", "and for savings?"]
    assert saved["answered"] == "credit-card-interest"


def test_that_did_not_help_after_expiry_offers_the_topics_other_entries(app, unique) -> None:
    client, sid = app.test_client(), f"rb-nohelp-{unique}"
    assert chat(client, "How do I reset my card PIN?", sid)["sources"][0]["id"] == "reset-pin"
    expire(app, sid)
    data = chat(client, "That didn't help", sid)
    assert (data["kind"], data["answer"]) == ("clarify", REJECTED_ANSWER), data
    assert data["sources"] and "reset-pin" not in [s["id"] for s in data["sources"]]
    assert any(s["id"] in ("card-declined", "lost-card", "activate-card") for s in data["sources"])


def test_a_thumbs_down_after_expiry_is_still_that_did_not_help(app, unique) -> None:
    client, sid = app.test_client(), f"rb-thumbs-{unique}"
    assert chat(client, "How do I reset my card PIN?", sid)["sources"][0]["id"] == "reset-pin"
    expire(app, sid)
    r = client.post("/v1/feedback", json={"session_id": sid, "rating": "down", "entry_id": "reset-pin"})
    assert r.status_code == 201 and r.get_json()["reply"]["answer"] == REJECTED_ANSWER, r.get_json()


def test_the_unsure_count_survives_expiry(app, unique) -> None:
    client, sid = app.test_client(), f"rb-unsure-{unique}"
    assert [chat(client, "zebra quantum violin", sid)["kind"] for _ in range(2)] == ["clarify", "clarify"]
    expire(app, sid)
    assert chat(client, "zebra quantum violin", sid)["answer"] == HANDOFF_ANSWER


def test_a_handed_off_session_stays_with_the_agent_after_expiry(app, ops_headers, unique) -> None:
    """The bot stays silent and does not announce the agent a second time; a release hands it back."""
    client, sid = app.test_client(), f"rb-handoff-{unique}"
    assert chat(client, "I want to talk to a human agent please", sid)["kind"] == "handoff"
    assert chat(client, "my card was charged twice", sid)["answer"] == SILENT_ANSWER
    reply = client.post(f"/v1/handoffs/{sid}/messages", json={"text": "Anna here."}, headers=ops_headers)
    assert reply.status_code == 201
    expire(app, sid)
    again = chat(client, "How do I reset my card PIN?", sid)
    assert (again["kind"], again["answer"], again["handoff"]) == ("silent", "", True), again
    assert client.get(f"/v1/chat/{sid}/messages").get_json()["handoff"] is True
    assert client.post(f"/v1/handoffs/{sid}/release", headers=ops_headers).status_code == 200
    expire(app, sid)
    assert chat(client, "How do I reset my card PIN?", sid)["kind"] == "answer"


def test_a_new_session_is_not_rebuilt(app, monkeypatch, unique) -> None:
    """No transcript, nothing to rebuild: the ticket is not looked up (new sessions stay one query)."""
    from services.chatbot import handoff

    def no_lookup(*_a, **_k):
        raise AssertionError("a new session looked up a ticket")

    monkeypatch.setattr(handoff, "find_open_ticket", no_lookup)
    assert chat(app.test_client(), "How do I reset my card PIN?", f"rb-new-{unique}")["kind"] == "answer"


def bot(kind: str, sources: list[str] | None = None, text: str = "...") -> dict:
    return {"role": "bot", "text": text, "meta": {"kind": kind, "confidence": 0.5, "sources": sources or []}}


def user(text: str) -> dict:
    return {"role": "user", "text": text, "meta": None}


def test_state_from_transcript_reads_what_decide_kept() -> None:
    """The last answer is kept through clarifies and small talk, not past an asked-for handoff; the
    unsure count is the clarifies since the last answer; an open ticket is a handoff."""
    from services.chatbot.conversation import state_from_transcript

    rows = [user("How do I reset my card PIN?"), bot("answer", ["reset-pin"]), user("thanks"), bot("answer"),
            user("that didn't help"), bot("clarify", ["lost-card", "card-declined"])]
    state = state_from_transcript(rows, None)
    assert (state.answered, state.unsure, state.handoff) == ("reset-pin", 1, False)
    assert [t["role"] for t in state.turns] == ["user", "bot"] * 3 and "meta" not in state.turns[0]
    handed = state_from_transcript([*rows, user("talk to a human"), bot("handoff", ["reset-pin"])], 7)
    assert (handed.answered, handed.unsure, handed.handoff, handed.ticket_id, handed.notified) == (
        None, 0, True, 7, False)
    waiting = state_from_transcript([*rows, user("talk to a human"), bot("handoff"), user("hello?")], 7)
    assert waiting.notified and len(state_from_transcript(rows * 3, None).turns) == 10
