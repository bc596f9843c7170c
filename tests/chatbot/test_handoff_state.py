"""A handed-off conversation under parallel turns, and what the agent reads of it."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from services.chatbot.dialogue import SILENT_ANSWER

QUESTIONS = ["How do I reset my card PIN?", "When will my new card arrive?", "Can I cancel a transfer?",
             "What is the interest rate on credit cards?", "How long does a transfer take?",
             "Do you charge for ATM withdrawals?", "How do I close my account?", "zebra quantum violin",
             "Where can I download my statement?", "How do I open an account?"]


def chat(client, message: str, session_id: str) -> dict:
    r = client.post("/v1/chat", json={"session_id": session_id, "message": message})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def parallel(n: int, fn) -> list:
    """``fn(i)`` in ``n`` threads released together; their results in order."""
    gate = threading.Barrier(n)

    def run(i: int):
        gate.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_parallel_turns_never_lose_the_handoff(app, ops_headers, unique) -> None:
    """QA: 30 parallel turns of one session ended with "handoff": false while its ticket was open,
    and the bot went on answering (a turn that read the state before the handoff saved it after)."""
    client = app.test_client()
    for round_ in range(3):  # each round a fresh session; one lost update is enough to fail
        sid = f"hr-{unique}-{round_}"
        messages = [QUESTIONS[i % len(QUESTIONS)] for i in range(30)]
        messages[7] = "I want to speak to a human agent"
        replies = parallel(30, lambda i, sid=sid, messages=messages: chat(client, messages[i], sid))
        assert [r["kind"] for r in replies].count("handoff") == 1, [r["kind"] for r in replies]
        # the notice is said once; every later turn (in whatever order they ran) is silent
        assert [r["answer"] for r in replies if r["kind"] == "silent"].count(SILENT_ANSWER) <= 1
        poll = client.get(f"/v1/chat/{sid}/messages?after=0").get_json()
        assert poll["handoff"] is True, round_
        after = chat(client, "How do I reset my card PIN?", sid)
        assert after["kind"] == "silent" and after["handoff"] is True, after
        tickets = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
        assert len([t for t in tickets if t["session_id"] == sid]) == 1


def test_the_bot_is_silent_in_every_turn_after_a_handoff(app, unique) -> None:
    """Turns sent in parallel right after the handoff turn are all silent, one notice among them."""
    client = app.test_client()
    sid = f"after-{unique}"
    assert chat(client, "I want to speak to a human agent", sid)["kind"] == "handoff"
    replies = parallel(12, lambda i: chat(client, QUESTIONS[i % len(QUESTIONS)], sid))
    assert {r["kind"] for r in replies} == {"silent"}
    assert sorted(r["answer"] for r in replies) == [""] * 11 + [SILENT_ANSWER]


def test_the_agent_reads_what_the_customer_wrote_after_the_handoff(app, ops_headers, unique) -> None:
    """The ticket's transcript stopped at the handoff: later customer messages reached no agent."""
    client = app.test_client()
    sid = f"later-{unique}"
    chat(client, "My card was charged twice", sid)
    assert chat(client, "I want to speak to a human agent", sid)["kind"] == "handoff"
    later = "It is card 4111 1111 1111 1111, mail me at ann@example.com or call +44 20 7946 0958"
    assert chat(client, later, sid)["answer"] == SILENT_ANSWER
    reply = client.post(f"/v1/handoffs/{sid}/messages", json={"text": "Anna here, looking into it."},
                        headers=ops_headers)
    assert reply.status_code == 201
    assert chat(client, "thanks, and it was on Monday", sid)["answer"] == ""

    tickets = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
    (ticket,) = [t for t in tickets if t["session_id"] == sid]
    turns = [(m["role"], m["text"]) for m in ticket["transcript"]]
    assert turns[-3:] == [("user", "It is card [card], mail me at [email] or call [phone]"),
                          ("agent", "Anna here, looking into it."), ("user", "thanks, and it was on Monday")]
    assert ("user", "My card was charged twice") in turns
    raw = json.dumps(ticket["transcript"])
    assert "4111" not in raw and "ann@example.com" not in raw and "7946" not in raw
    assert all(m["at"].endswith("+00:00") for m in ticket["transcript"])


def test_a_turn_stuck_behind_its_conversation_is_a_429_and_a_failed_turn_frees_it(app, monkeypatch, unique) -> None:
    """Turns of one session queue on its lock; one that waits too long is told to retry, and a
    turn that failed (a 400) does not leave the conversation locked."""
    from services.chatbot import conversation

    client, bot, sid = app.test_client(), app.extensions["chatbot"], f"busy-{unique}"
    monkeypatch.setattr(conversation, "LOCK_WAIT_S", 0.2)
    with bot.session_lock(sid):
        r = client.post("/v1/chat", json={"session_id": sid, "message": "How do I reset my card PIN?"})
        assert r.status_code == 429 and r.get_json()["error"]["code"] == "session_busy"
        assert chat(client, "How do I reset my card PIN?", f"other-{unique}")["kind"] == "answer"
    r = client.post("/v1/chat", json={"session_id": sid, "message": "x", "entry_id": "no-such-entry"})
    assert r.status_code == 400
    assert chat(client, "How do I reset my card PIN?", sid)["kind"] == "answer"
