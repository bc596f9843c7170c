"""The chatbot service over HTTP: chat, clarify/handoff, KB edits, reload, errors, widget."""

from __future__ import annotations

import json
import uuid

from services.chatbot.kb import build_kb_dir
from services.chatbot.service import kb_dir


def chat(client, message, session_id=None):
    body = {"message": message} | ({"session_id": session_id} if session_id else {})
    return client.post("/v1/chat", json=body)


def test_chat_answers_with_sources(client) -> None:
    r = chat(client, "How do I reset my card PIN?")
    assert r.status_code == 200
    data = r.get_json()
    assert set(data) >= {"session_id", "answer", "confidence", "sources", "handoff"}
    assert data["sources"][0]["id"] == "reset-pin" and data["answer"].startswith("Reset your PIN")
    assert data["handoff"] is False and 0 < data["confidence"] <= 1


def test_follow_up_uses_previous_turn(client) -> None:
    sid = chat(client, "What is the interest rate on credit cards?").get_json()["session_id"]
    data = chat(client, "and for savings accounts?", sid).get_json()
    assert data["sources"][0]["id"] == "savings-rate"


def test_unsure_then_handoff_then_silent_until_released(client, app, ops_headers) -> None:
    sid = chat(client, "zebra quantum violin").get_json()["session_id"]
    kinds = [chat(client, "zebra quantum violin", sid).get_json() for _ in range(2)]
    assert kinds[-1]["handoff"] is True
    silent = chat(client, "How do I reset my card PIN?", sid).get_json()
    assert silent["handoff"] is True and silent["sources"] == []
    tickets = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
    (ticket,) = [t for t in tickets if t["session_id"] == sid]
    assert ticket["reason"] == "low_confidence" and len(ticket["transcript"]) >= 4
    # times carry their offset (SQLite hands them back naive), as the audit log's do
    assert all(t.endswith("+00:00") for t in [ticket["created_at"], *(m["at"] for m in ticket["transcript"])])
    assert client.post(f"/v1/handoffs/{sid}/release").status_code == 401
    assert client.post(f"/v1/handoffs/{sid}/release", headers=ops_headers).status_code == 200
    assert client.post(f"/v1/handoffs/{'x' * 100}/release", headers=ops_headers).status_code == 400  # as /messages
    assert chat(client, "How do I reset my card PIN?", sid).get_json()["handoff"] is False


def test_asking_for_person_opens_ticket_with_masked_transcript(client, ops_headers) -> None:
    sid = chat(client, "my card 4111 1111 1111 1111 was charged twice").get_json()["session_id"]
    assert chat(client, "I want to speak to a human", sid).get_json()["handoff"] is True
    tickets = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
    (ticket,) = [t for t in tickets if t["session_id"] == sid]
    text = json.dumps(ticket["transcript"])
    assert "4111" not in text and "[card]" in text and ticket["reason"] == "asked_for_person"


def test_kb_put_and_delete_need_ops_and_change_answers(client, ops_headers) -> None:
    body = {"questions": ["Do you offer pet insurance?"], "answer": "Yes, from 5 EUR a month."}
    assert client.put("/v1/kb/pets", json=body).status_code == 401
    r = client.put("/v1/kb/pets", json=body, headers=ops_headers)
    assert r.status_code == 201 and r.get_json()["created"] is True
    assert chat(client, "do you offer pet insurance").get_json()["sources"][0]["id"] == "pets"
    assert client.delete("/v1/kb/pets", headers=ops_headers).status_code == 200
    after = chat(client, "do you offer pet insurance").get_json()  # nothing else is about pets: rephrase
    assert after["kind"] == "clarify" and "pets" not in [s["id"] for s in after["sources"]], after
    assert client.delete("/v1/kb/pets", headers=ops_headers).status_code == 404
    r = client.put("/v1/kb/x", json={"answer": "no question"}, headers=ops_headers)
    assert r.status_code == 400 and r.get_json()["error"]["message"].startswith("missing 'question'")
    r = client.put("/v1/kb/a%20b", json=body, headers=ops_headers)  # it said "request body:0: id 'a b' ..."
    assert r.status_code == 400 and r.get_json()["error"]["message"].startswith("the URL's id 'a b' must be")
    # HTTP QA: the code was the file readers' `bad_row`, which the OpenAPI document does not list
    documented = client.get("/openapi.json").get_json()["paths"]["/v1/kb/{entry_id}"]["put"]["responses"]["400"]
    assert r.get_json()["error"]["code"] == "bad_request"
    assert "bad_request: an invalid entry id" in documented["description"]


def test_kb_put_and_delete_refuse_a_path_that_is_not_utf8(client, app, ops_headers) -> None:
    """i18n QA: %FF was read as the id U+FFFD (stored), and %FE then overwrote that entry."""
    body = {"questions": ["Do you offer pet insurance?"], "answer": "Yes, from 5 EUR a month."}
    for res in (client.put("/v1/kb/%FF", json=body, headers=ops_headers),
                client.put("/v1/kb/a%FE", json=body, headers=ops_headers),
                client.delete("/v1/kb/%C0", headers=ops_headers)):
        assert res.status_code == 400 and res.get_json()["error"]["code"] == "invalid_url", res.get_json()
    assert not any("\ufffd" in i for i in app.extensions["chatbot"].handle.get(fresh=True).entries)


def test_running_app_picks_up_kb_load(client, chat_settings, bow, tmp_path) -> None:
    assert chat(client, "How do I reset my card PIN?").get_json()["sources"][0]["id"] == "reset-pin"
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"id": "pin-v2", "question": "reset card PIN", "answer": "v2"}) + "\n")
    build_kb_dir(new, kb_dir(chat_settings), bow, "flat", model="bow", progress=False)
    data = chat(client, "How do I reset my card PIN?").get_json()
    assert data["sources"][0]["id"] == "pin-v2"


def test_bad_input_is_4xx_json(client, app) -> None:
    assert client.post("/v1/chat", data="nope", content_type="text/plain").status_code == 415
    assert client.post("/v1/chat", json={"message": "   "}).status_code == 400
    assert client.post("/v1/chat", json={"message": "\u200b\u200b\ufeff"}).status_code == 400  # invisible only
    assert client.post("/v1/chat", json={"message": "\u200bhi"}).status_code == 200
    assert client.post("/v1/chat", json={"message": "hi", "session_id": "../x"}).status_code == 400
    r = client.post("/v1/chat", json={"message": "x" * 5000})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "message_too_long"
    assert client.post("/v1/feedback", json={"session_id": "s", "rating": "meh"}).status_code == 400


def test_feedback_exports_training_pairs(client, ops_headers) -> None:
    chat(client, "I forgot my PIN", "s1")
    r = client.post("/v1/feedback", json={"session_id": "s1", "rating": "up", "entry_id": "reset-pin",
                                          "message": "forgot pin, mail me at a@b.com"})
    assert r.status_code == 201
    lines = client.get("/v1/feedback/pairs", headers=ops_headers).get_data(as_text=True).splitlines()
    assert {"text": "forgot pin, mail me at [email]", "id": "reset-pin"} in [json.loads(x) for x in lines]


def test_ready_widget_and_demo_page(client) -> None:
    assert client.get("/readyz").status_code == 200
    js = client.get("/widget.js")
    assert js.status_code == 200 and "textContent" in js.get_data(as_text=True)
    assert "innerHTML" not in js.get_data(as_text=True)
    page = client.get("/").get_data(as_text=True)
    assert "widget.js" in page


def test_not_ready_without_kb(chat_settings, bow) -> None:
    from services.chatbot import create_app

    app = create_app(chat_settings, encoder=bow)
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and "kb load" in json.dumps(r.get_json())
    assert app.test_client().post("/v1/chat", json={"message": "hi"}).status_code == 503


def test_record_turns_stores_masked_rows_in_order_and_ignores_an_empty_list(app) -> None:
    from services.chatbot import handoff
    from shared.db import get_db

    db = get_db(app)
    handoff.record_turns(db, "turns1", [])
    assert handoff.transcript(db, "turns1") == []
    handoff.record_turns(db, "turns1", [("user", "mail me at a@b.com", None), ("bot", "Sure.", {"kind": "answer"})])
    rows = handoff.transcript(db, "turns1")
    assert [(r["role"], r["text"]) for r in rows] == [("user", "mail me at [email]"), ("bot", "Sure.")]


ATM_Q = "What options should I choose to withdraw cash from the ATM"


def load_with_duplicates(chat_settings, bow, tmp_path, sample_faq, answers=None):
    """The sample FAQ plus one question held twice without ids, as in the bank FAQ."""
    path = tmp_path / "dup.jsonl"
    answers = answers or ["Choose the credit option abroad.", "Choose the Checking/Current option."]
    rows = [{"question": ATM_Q, "answer": a} for a in answers]
    path.write_text(sample_faq.read_text() + "".join(json.dumps(r) + "\n" for r in rows))
    return build_kb_dir(path, kb_dir(chat_settings), bow, "flat", model="bow", progress=False)


def test_exact_duplicated_question_is_answered(client, chat_settings, bow, tmp_path, sample_faq) -> None:
    kb = load_with_duplicates(chat_settings, bow, tmp_path, sample_faq,
                              ["Choose the credit option abroad.", "choose the credit option abroad"])
    sid = "dup1"
    for _ in range(4):  # used to be clarify, clarify, then a handoff
        data = chat(client, ATM_Q, sid).get_json()
        assert data["kind"] == "answer" and data["handoff"] is False
        assert data["answer"] == kb.entries[data["sources"][0]["id"]].answer


def test_one_question_with_different_answers_asks_with_labels(client, chat_settings, bow, tmp_path,
                                                              sample_faq) -> None:
    """Bank FAQ QA: one question held once per card got the top card's answer, confidently; now the
    customer is asked, with buttons labelled apart, and a pick answers that entry."""
    kb = load_with_duplicates(chat_settings, bow, tmp_path, sample_faq)
    data = chat(client, ATM_Q, "dup2").get_json()
    assert data["kind"] == "clarify" and data["handoff"] is False, data
    dups = [s for s in data["sources"] if s["question"] == ATM_Q]
    assert len(dups) == 2
    labels = sorted(s["label"] for s in dups)
    # the words both answers open with are left out: the label starts where they part
    assert labels == [f"{ATM_Q} \u2014 \u2026Checking/Current option.", f"{ATM_Q} \u2014 \u2026credit option abroad."]
    assert all(s["label"] == s["question"] for s in data["sources"] if s["question"] != ATM_Q)
    picked = dups[1]
    out = client.post("/v1/chat", json={"session_id": "dup2", "message": picked["label"],
                                        "entry_id": picked["id"]}).get_json()
    assert out["kind"] == "answer" and out["answer"] == kb.entries[picked["id"]].answer


def test_picking_a_suggestion_answers_that_entry(client) -> None:
    """The widget sends the picked entry's id: answered outright, never counted as unsure."""
    sid = "pick1"
    for _ in range(4):  # more rounds than max_unsure: without the pick counting as resolved, a handoff
        data = chat(client, "How do I reset my card PIN? <b>x</b>", sid).get_json()
        assert data["kind"] == "clarify", data
        picked = data["sources"][-1]
        r = client.post("/v1/chat", json={"session_id": sid, "message": picked["question"], "entry_id": picked["id"]})
        out = r.get_json()
        assert r.status_code == 200 and out["kind"] == "answer" and out["handoff"] is False
        assert out["sources"][0]["id"] == picked["id"] and out["confidence"] == 1.0
    r = client.post("/v1/chat", json={"session_id": sid, "message": "x", "entry_id": "no-such-entry"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_entry"


def test_agent_replies_reach_the_customer_and_the_notice_is_said_once(client, app, ops_headers) -> None:
    from services.chatbot import handoff
    from services.chatbot.dialogue import SILENT_ANSWER
    from shared.db import get_db

    sid = "agent1"
    assert chat(client, "I want to talk to a human agent please", sid).get_json()["kind"] == "handoff"
    poll = client.get(f"/v1/chat/{sid}/messages").get_json()
    assert poll == {"session_id": sid, "messages": [], "cursor": 0, "handoff": True}
    assert [chat(client, m, sid).get_json()["answer"] for m in ("hello?", "anyone?", "hi")] == [SILENT_ANSWER, "", ""]

    url = f"/v1/handoffs/{sid}/messages"
    assert client.post(url, json={"text": "Hi, Anna here."}).status_code == 401
    assert client.post(url, json={"text": "  "}, headers=ops_headers).status_code == 400
    r = client.post(url, json={"text": "Hi, Anna here. How can I help?"}, headers=ops_headers)
    assert r.status_code == 201 and r.get_json()["role"] == "agent"
    poll = client.get(f"/v1/chat/{sid}/messages").get_json()
    assert [m["text"] for m in poll["messages"]] == ["Hi, Anna here. How can I help?"] and poll["handoff"]
    assert poll["cursor"] == r.get_json()["id"]
    assert client.get(f"/v1/chat/{sid}/messages?after={poll['cursor']}").get_json()["messages"] == []
    roles = [m["role"] for m in handoff.transcript(get_db(app), sid)]
    assert roles[-1] == "agent" and roles.count("user") == 4

    assert client.post(f"/v1/handoffs/{sid}/release", headers=ops_headers).status_code == 200
    assert client.get(f"/v1/chat/{sid}/messages").get_json()["handoff"] is False
    r = client.post(url, json={"text": "late"}, headers=ops_headers)  # nobody has the conversation now
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    assert client.get("/v1/chat/bad%20id/messages").status_code == 400
    assert client.get(f"/v1/chat/{sid}/messages?after=-1").status_code == 400
    huge = client.get(f"/v1/chat/{sid}/messages?after=999999999999999999")  # past every id (a 500 on PostgreSQL)
    assert huge.status_code == 200 and huge.get_json()["messages"] == []
    assert client.get(f"/v1/chat/{sid}/messages?after=%C2%B2").status_code == 400  # "²".isdigit()


def test_the_customer_reads_the_agents_words_while_the_transcript_stays_masked(client, app, ops_headers,
                                                                               redis_url) -> None:
    """Regression: agent replies reached the customer masked, so "call 0800 123 4567 or mail
    help@bank.example" arrived as "call [phone] or mail [email]"."""
    import redis

    from services.chatbot import handoff
    from shared.db import get_db

    sid = f"agent-exact-{uuid.uuid4().hex[:8]}"  # the Redis state outlives a test run
    opened = chat(client, "I want to talk to a human agent please", sid).get_json()
    assert opened["kind"] == "handoff", opened
    text = "Call us on +44 20 7946 0958 or [mail us](mailto:help@bank.example)."
    r = client.post(f"/v1/handoffs/{sid}/messages", json={"text": text}, headers=ops_headers)
    assert r.status_code == 201
    assert [m["text"] for m in client.get(f"/v1/chat/{sid}/messages").get_json()["messages"]] == [text]
    stored = handoff.transcript(get_db(app), sid)[-1]["text"]
    assert "7946" not in stored and "help@bank.example" not in stored  # the transcript is masked
    for key in redis.Redis.from_url(redis_url).scan_iter(f"finpulse:chat:*:{sid}:agent:*"):
        redis.Redis.from_url(redis_url).delete(key)  # the exact text expired with the session
    assert [m["text"] for m in client.get(f"/v1/chat/{sid}/messages").get_json()["messages"]] == [stored]


def test_openapi_lists_the_agent_and_poll_endpoints(client) -> None:
    doc = client.get("/openapi.json").get_json()
    reply = doc["paths"]["/v1/handoffs/{session_id}/messages"]["post"]
    assert "text" in reply["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "get" in doc["paths"]["/v1/chat/{session_id}/messages"]
    chat_schema = doc["paths"]["/v1/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "entry_id" in chat_schema["properties"]
    # what /v1/chat really takes and answers (chatbot QA: integer ids, 413/415/429 and the answer's fields)
    assert {"type": "integer"} in chat_schema["properties"]["entry_id"]["anyOf"]
    responses = doc["paths"]["/v1/chat"]["post"]["responses"]
    assert {"200", "400", "413", "415", "429"} <= set(responses)
    answer = responses["200"]["content"]["application/json"]["schema"]
    assert set(answer["properties"]) == {"session_id", "answer", "confidence", "sources", "handoff", "kind"}
    got = client.post("/v1/chat", json={"message": "How do I reset my card PIN?"}).get_json()
    assert set(got) == set(answer["properties"])  # the document and the service agree
    feedback = doc["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"type": "integer"} in feedback["properties"]["entry_id"]["anyOf"]


def test_openapi_documents_each_sources_label_and_the_put_that_creates(client) -> None:
    """Regression: every source carries a `label` the Source schema lacked, and PUT /v1/kb/{id}
    answers 201 when it creates an entry while the document listed only 200."""
    doc = client.get("/openapi.json").get_json()
    source = doc["components"]["schemas"]["Source"]
    assert "label" in source["required"]
    got = chat(client, "How do I reset my card PIN?").get_json()["sources"]
    assert got and all(set(s) == set(source["properties"]) for s in got)
    assert {"200", "201"} <= set(doc["paths"]["/v1/kb/{entry_id}"]["put"]["responses"])


def test_widget_origins_may_poll(chat_settings, bow, loaded_kb) -> None:
    from services.chatbot import create_app

    origin = "https://www.bank.example"
    app = create_app(chat_settings.model_copy(update={"chatbot_cors_origins": [origin]}), encoder=bow)
    r = app.test_client().get("/v1/chat/s1/messages", headers={"Origin": origin})
    assert r.status_code == 200 and r.headers.get("Access-Control-Allow-Origin") == origin


def test_the_star_origin_lets_any_page_embed_the_widget(chat_settings, bow, loaded_kb) -> None:
    """Settings accept "*" because Flask-CORS, which the chatbot hands the list to, takes it as any origin."""
    from services.chatbot import create_app

    app = create_app(chat_settings.model_copy(update={"chatbot_cors_origins": ["*"]}), encoder=bow)
    r = app.test_client().get("/v1/chat/s1/messages", headers={"Origin": "https://anywhere.example"})
    assert r.status_code == 200 and r.headers.get("Access-Control-Allow-Origin") in ("*", "https://anywhere.example")


def test_feedback_is_validated_and_export_holds_only_live_entries(client, ops_headers) -> None:
    bogus = {"session_id": "never-existed-3", "rating": "up", "entry_id": "no-such-entry", "message": "bogus pair"}
    r = client.post("/v1/feedback", json=bogus)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_entry"
    r = client.post("/v1/feedback", json={"session_id": "qa s1", "rating": "up", "entry_id": "reset-pin"})
    assert r.status_code == 400
    body = {"questions": ["Do you offer pet insurance?"], "answer": "Yes."}
    assert client.put("/v1/kb/pets", json=body, headers=ops_headers).status_code == 201
    # each rated entry was given in the session (one never offered is a 400: see the test below)
    assert chat(client, "Do you offer pet insurance?", "fb1").get_json()["sources"][0]["id"] == "pets"
    for sid in ("fb1", "fb2"):
        assert chat(client, "I forgot my PIN", sid).get_json()["sources"][0]["id"] == "reset-pin"
    # KB QA: a blank question rated up went out as {"text": "   "}, which `train embeddings --pairs` refuses
    for sid, entry, text in (("fb1", "pets", "insure my dog"), ("fb1", "reset-pin", "forgot my pin"),
                             ("fb2", "reset-pin", "   ")):
        fb = {"session_id": sid, "rating": "up", "entry_id": entry, "message": text}
        assert client.post("/v1/feedback", json=fb).status_code == 201
    assert client.delete("/v1/kb/pets", headers=ops_headers).status_code == 200
    lines = client.get("/v1/feedback/pairs", headers=ops_headers).get_data(as_text=True).splitlines()
    assert [json.loads(x) for x in lines] == [{"text": "forgot my pin", "id": "reset-pin"}]


def test_feedback_on_a_session_that_never_chatted_is_refused(client, ops_headers, unique) -> None:
    """Known defect 3: it was stored (201), and a thumbs-up became a made-up training pair."""
    fb = {"session_id": f"never-{unique}", "rating": "up", "entry_id": "reset-pin", "message": "made up"}
    r = client.post("/v1/feedback", json=fb)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_session"
    assert fb["session_id"] in r.get_json()["error"]["message"]
    assert client.get("/v1/feedback/pairs", headers=ops_headers).get_data(as_text=True) == ""
    chat(client, "How do I reset my card PIN?", fb["session_id"])
    assert client.post("/v1/feedback", json=fb).status_code == 201


def race(n, fn):
    """``fn(i)`` in ``n`` threads released together; their results in order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    gate = threading.Barrier(n)

    def run(i):
        gate.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_parallel_handoffs_of_one_session_open_one_ticket(any_db_url) -> None:
    """Known defect 1: parallel "talk to a person" turns each opened a ticket (SQLite and PostgreSQL)."""
    from sqlalchemy import func, select

    from services.chatbot import handoff
    from services.chatbot.models import HandoffTicket
    from shared.db import Database

    db = Database(any_db_url)
    try:
        handoff.record_turns(db, "race1", [("user", "I want a human", None)])
        ids = race(8, lambda i: handoff.open_ticket(db, "race1", "asked_for_person"))
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(HandoffTicket)) == 1
        assert set(ids) == {handoff.open_ticket_id(db, "race1")}
        assert handoff.release_ticket(db, "race1", "ops") == 1
        assert handoff.open_ticket(db, "race1", "low_confidence") not in ids  # a new handoff, a new ticket
    finally:
        db.dispose()


def test_a_handoff_notifies_the_webhook_once_with_the_masked_transcript(any_db_url, webhook_receiver) -> None:
    """The handoff webhook had no retry: an agent desk that blinked missed the ticket for good."""
    from services.chatbot import handoff
    from shared import webhooks
    from shared.db import Database

    db = Database(any_db_url)
    try:
        handoff.record_turns(db, "hook1", [("user", "I am ann@example.com, get me a human", None)])
        webhook_receiver.fail.append(503)
        ticket = handoff.open_ticket(db, "hook1", "asked_for_person", webhook_receiver.url)
        assert handoff.open_ticket(db, "hook1", "asked_for_person", webhook_receiver.url) == ticket  # no 2nd
        assert webhooks.drain(10)
        [body] = webhook_receiver.got
        assert body["ticket_id"] == ticket and body["reason"] == "asked_for_person"
        assert "ann@example.com" not in json.dumps(body) and body["transcript"][0]["role"] == "user"
    finally:
        db.dispose()


def test_parallel_chat_handoffs_give_one_ticket(client, ops_headers, unique) -> None:
    sid = f"race-{unique}"  # the Redis state outlives a test run
    replies = race(6, lambda i: chat(client, "I want to speak to a human agent", sid).get_json())
    assert all(r["handoff"] for r in replies)
    tickets = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
    assert len([t for t in tickets if t["session_id"] == sid]) == 1


def test_parallel_kb_edits_of_one_id_leave_a_replayable_log(app, chat_settings, bow, ops_headers) -> None:
    """Known defect 2: parallel PUTs of one id logged the same version and stale ``before``s;
    two apps (as two processes, each with its own copy of the index) edit the same index."""
    from sqlalchemy import select

    from services.chatbot import create_app
    from services.chatbot.models import KbChange
    from shared.db import get_db

    other = create_app(chat_settings, encoder=bow)
    clients = [app.test_client(), other.test_client()]
    for c in clients:  # each process has its index in memory before the edits
        chat(c, "How do I reset my card PIN?")

    def put(i):
        body = {"questions": [f"Do you insure pets, take {i}?"], "answer": f"answer {i}"}
        return clients[i % 2].put("/v1/kb/pets", json=body, headers=ops_headers).status_code

    assert sorted(race(8, put)) == [200] * 7 + [201]
    with get_db(app).session() as s:
        log = [(c.before, c.after, c.kb_version) for c in s.scalars(select(KbChange).order_by(KbChange.id))]
    assert len(log) == 8 and log[0][0] is None
    assert [v for _, _, v in log] == list(range(log[0][2], log[0][2] + 8))  # one version each, in log order
    assert all(log[i][0] == log[i - 1][1] for i in range(1, 8))  # each starts from the previous
    from services.chatbot.kb import KnowledgeBase

    on_disk = KnowledgeBase.load(kb_dir(chat_settings))
    assert on_disk.entries["pets"].to_dict() == log[-1][1] and on_disk.meta["version"] == log[-1][2]


def test_migration_closes_duplicate_open_tickets_then_guards(any_db_url) -> None:
    """A database from before chatbot_0002 may hold duplicates: the oldest stays open."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from services.chatbot import handoff
    from shared.db import Database, downgrade, upgrade

    downgrade(any_db_url, "chatbot_0001")
    db = Database(any_db_url)
    try:
        with db.engine.begin() as conn:
            for _ in range(3):
                conn.execute(text("INSERT INTO chat_handoffs (session_id, status, reason, transcript, created_at) "
                                  "VALUES ('dup', 'open', 'asked_for_person', '[]', CURRENT_TIMESTAMP)"))
        upgrade(any_db_url)
        assert [t["id"] for t in handoff.open_tickets(db)] == [1]
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text("INSERT INTO chat_handoffs (session_id, status, reason, transcript, created_at) "
                              "VALUES ('dup', 'open', 'x', '[]', CURRENT_TIMESTAMP)"))
    finally:
        db.dispose()


def test_handoff_outlives_the_session_state_ttl(client, app, ops_headers, unique) -> None:
    """The Redis state expired while the customer waited for an agent: the poll said "no
    handoff" (the widget stopped polling, the agent's reply never showed) and the bot answered."""
    from services.chatbot.dialogue import SILENT_ANSWER

    sid, bot = f"ttl-{unique}", app.extensions["chatbot"]
    assert chat(client, "I want to talk to a human agent please", sid).get_json()["kind"] == "handoff"
    bot.redis.delete(bot._key(sid))  # what the TTL does after chatbot_session_ttl_s
    assert client.get(f"/v1/chat/{sid}/messages").get_json()["handoff"] is True
    again = chat(client, "How do I reset my card PIN?", sid).get_json()
    assert again["kind"] == "silent" and again["answer"] == SILENT_ANSWER
    assert chat(client, "I want to talk to a human agent please", f"new-{unique}").get_json()["kind"] == "handoff"
    assert client.post(f"/v1/handoffs/{sid}/release", headers=ops_headers).status_code == 200
    assert chat(client, "How do I reset my card PIN?", sid).get_json()["kind"] == "answer"


def test_kb_load_waits_for_an_edit_in_progress(chat_settings, loaded_kb, sample_faq, bow, monkeypatch) -> None:
    """An edit holds the index from its read to its save: a ``kb load`` landing in between
    would be saved over by the edit (the old entries plus one). The load's save waits."""
    import threading

    from services.chatbot import service
    from services.chatbot.kb import edit_lock

    monkeypatch.setattr(service, "get_encoder", lambda path: bow)
    directory = kb_dir(chat_settings)
    stamp = (directory / "meta.json").stat().st_mtime_ns
    done = threading.Event()
    with edit_lock(directory):
        worker = threading.Thread(target=lambda: (service.load_kb(chat_settings, sample_faq, progress=False),
                                                  done.set()))
        worker.start()
        assert not done.wait(3.0)  # not saved while the edit holds the index
        assert (directory / "meta.json").stat().st_mtime_ns == stamp
    worker.join(30)
    assert done.is_set() and (directory / "meta.json").stat().st_mtime_ns != stamp


def test_an_integer_entry_id_picked_and_rated_as_the_sources_gave_it(client, ops_headers) -> None:
    """A base with integer ids gives sources ``"id": 5``; sending that 5 back was a 400."""
    r = client.put("/v1/kb/5", json={"question": "Where is the nearest branch?", "answer": "See the map."},
                   headers=ops_headers)
    assert r.status_code == 201
    sid = "int-pick"
    r = client.post("/v1/chat", json={"session_id": sid, "message": "nearest branch", "entry_id": 5})
    assert r.status_code == 200 and r.get_json()["kind"] == "answer"
    assert r.get_json()["answer"] == "See the map."
    r = client.post("/v1/feedback", json={"session_id": sid, "rating": "up", "entry_id": 5})
    assert r.status_code == 201, r.get_json()
    r = client.post("/v1/chat", json={"session_id": sid, "message": "x", "entry_id": True})
    assert r.status_code == 400


class HeldEncoder:
    """Wraps an encoder: its first call (a load's embedding of the file) waits for ``go``, so
    edits land while the load runs, as they do during a real minutes-long embedding."""

    def __init__(self, inner) -> None:
        import threading

        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.started, self.go = threading.Event(), threading.Event()

    def encode(self, texts, batch_size: int = 64, progress: bool = False):
        if not self.started.is_set():
            self.started.set()
            assert self.go.wait(30)
        return self.inner.encode(texts, batch_size, progress)


def test_kb_edits_acknowledged_during_a_kb_load_survive_it(client, chat_settings, bow, ops_headers,
                                                           sample_faq, tmp_path) -> None:
    """Known defect: ``kb load`` swapped in the file's entries alone, undoing every PUT/DELETE
    answered 2xx while it embedded. The load replaces the rest, the edits stay on top of it."""
    import threading

    from services.chatbot.kb import KnowledgeBase

    rows = [json.loads(line) for line in sample_faq.read_text().splitlines()]
    old = {r["id"]: r for r in rows}
    new = tmp_path / "new.jsonl"  # the sample with every answer changed, less card-declined
    new.write_text("".join(json.dumps({**r, "answer": f"file {r['id']}"}) + "\n"
                           for r in rows if r["id"] != "card-declined"))
    held = HeldEncoder(bow)
    load = threading.Thread(target=build_kb_dir, args=(new, kb_dir(chat_settings), held, "flat"),
                            kwargs={"model": "bow", "progress": False, "live": True})
    load.start()
    try:
        assert held.started.wait(30)  # the load read its file and embeds it
        bike = {"question": "Where can I park my bicycle", "answer": "Bike racks."}
        assert client.put("/v1/kb/late1", json=bike, headers=ops_headers).status_code == 201
        pin = {"questions": old["reset-pin"]["questions"], "answer": "Edited during the load."}
        assert client.put("/v1/kb/reset-pin", json=pin, headers=ops_headers).status_code == 200
        same = {k: old["lost-card"][k] for k in ("questions", "answer", "category")}  # as it was, still an edit
        assert client.put("/v1/kb/lost-card", json=same, headers=ops_headers).status_code == 200
        deleted = client.delete("/v1/kb/card-arrival", headers=ops_headers)
        assert deleted.status_code == 200
    finally:
        held.go.set()
        load.join(60)
    assert not load.is_alive()
    live = KnowledgeBase.load(kb_dir(chat_settings))
    assert live.entries["late1"].answer == "Bike racks."
    assert live.entries["reset-pin"].answer == "Edited during the load."
    assert live.entries["lost-card"].answer == old["lost-card"]["answer"]
    assert "card-arrival" not in live.entries and "card-declined" not in live.entries  # edit, file
    assert live.entries["activate-card"].answer == "file activate-card"  # the file's where nobody edited
    assert chat(client, "Where can I park my bicycle?").get_json()["sources"][0]["id"] == "late1"
    assert chat(client, "I forgot my PIN").get_json()["answer"] == "Edited during the load."
    after = client.put("/v1/kb/late2", json=bike, headers=ops_headers).get_json()["kb_version"]
    # versions never start over, nor skip: the load is one more than the last edit (the edits it
    # replayed counted again, and the next edit's version jumped past numbers nobody logged)
    assert after == live.meta["version"] + 1 == deleted.get_json()["kb_version"] + 2


def test_a_re_embedding_keeps_edits_saved_meanwhile_and_yields_to_a_load(client, chat_settings, bow, ops_headers,
                                                                         tmp_path) -> None:
    """The re-embedding after a promotion rebuilds the live entries aside (as ``reembed`` does):
    edits saved meanwhile are applied to the new vectors, not undone nor a reason to start
    over; a ``kb load`` meanwhile makes the rebuild stale instead."""
    from services.chatbot.kb import KnowledgeBase, read_live, swap_in

    directory = kb_dir(chat_settings)
    before = read_live(directory)
    fresh = KnowledgeBase.build(list(before.entries.values()), bow, "flat", "bow")
    bike = {"question": "Where can I park my bicycle", "answer": "Bike racks."}
    assert client.put("/v1/kb/late1", json=bike, headers=ops_headers).status_code == 201
    assert client.delete("/v1/kb/reset-pin", headers=ops_headers).status_code == 200
    assert swap_in(fresh, directory, before, bow, rebuilds=True) is True
    live = KnowledgeBase.load(directory)
    assert "late1" in live.entries and "reset-pin" not in live.entries
    assert live.meta["built_at"] == fresh.meta["built_at"]
    assert live.meta["version"] == before.meta["version"] + 2  # the two edits; re-embedding adds none
    assert chat(client, "Where can I park my bicycle?").get_json()["sources"][0]["id"] == "late1"

    before = read_live(directory)
    stale = KnowledgeBase.build(list(before.entries.values()), bow, "flat", "bow")
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"id": "pin-v2", "question": "reset card PIN", "answer": "v2"}) + "\n")
    build_kb_dir(new, directory, bow, "flat", model="bow", progress=False, live=True)
    assert swap_in(stale, directory, before, bow, rebuilds=True) is False
    assert list(KnowledgeBase.load(directory).entries) == ["pin-v2"]


def test_an_edit_the_change_log_cannot_record_is_not_applied(client, chat_settings, ops_headers) -> None:
    """Concurrency QA: the index was saved before the change's log row; with the log's table
    locked and the service killed meanwhile, the edit was served but never logged."""
    import sqlalchemy as sa

    from services.chatbot.kb import KnowledgeBase
    from services.chatbot.models import KbChange

    engine = sa.create_engine(chat_settings.db_url)
    version = KnowledgeBase.load(kb_dir(chat_settings)).meta["version"]
    body = {"question": "Do you insure pets", "answer": "Yes."}
    with engine.begin() as conn:  # the log refuses rows (a table gone stands in for a locked one)
        conn.execute(sa.text("ALTER TABLE chat_kb_changes RENAME TO chat_kb_changes_away"))
    try:
        refused = client.put("/v1/kb/pets", json=body, headers=ops_headers)
        gone = client.delete("/v1/kb/reset-pin", headers=ops_headers)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE chat_kb_changes_away RENAME TO chat_kb_changes"))
    assert refused.status_code == 503 and gone.status_code == 503
    live = KnowledgeBase.load(kb_dir(chat_settings))
    assert "pets" not in live.entries and "reset-pin" in live.entries and live.meta["version"] == version
    assert chat(client, "do you insure pets").get_json()["sources"][0]["id"] != "pets"
    ok = client.put("/v1/kb/pets", json=body, headers=ops_headers)
    assert ok.status_code == 201 and ok.get_json()["kb_version"] == version + 1
    with engine.connect() as conn:
        logged = conn.execute(sa.select(KbChange.entry_id, KbChange.kb_version)).all()
    assert [tuple(r) for r in logged] == [("pets", version + 1)]
    engine.dispose()


def test_an_edit_after_an_index_set_back_by_an_older_release_gets_a_new_number(client, chat_settings,
                                                                              ops_headers) -> None:
    """Upgrade QA: an older FinPulse reset the index's version to 1 on each re-embedding, so the
    first edits after the upgrade logged kb_versions the change log already held."""
    import sqlalchemy as sa

    from services.chatbot.kb import KnowledgeBase
    from services.chatbot.models import KbChange

    version = KnowledgeBase.load(kb_dir(chat_settings)).meta["version"]
    engine = sa.create_engine(chat_settings.db_url)
    with engine.begin() as conn:  # what the old release logged before it set the index back
        conn.execute(sa.insert(KbChange), [
            {"domain": chat_settings.chatbot_domain, "entry_id": "old", "action": "delete", "before": {"id": "old"},
             "after": None, "kb_version": version + i, "actor": "ops"} for i in (1, 2, 3)])
    put = client.put("/v1/kb/pets", json={"question": "Do you insure pets", "answer": "Yes."}, headers=ops_headers)
    assert put.status_code == 201 and put.get_json()["kb_version"] == version + 4
    gone = client.delete("/v1/kb/pets", headers=ops_headers)
    assert gone.get_json()["kb_version"] == version + 5
    with engine.connect() as conn:
        numbers = conn.execute(sa.select(KbChange.kb_version).order_by(KbChange.id)).scalars().all()
    assert numbers == sorted(set(numbers))  # each number names one edit, rising in log order
    engine.dispose()


def test_new_conversations_count_against_the_address_limit_only(chat_settings, bow, loaded_kb) -> None:
    """Regression (chatbot QA): a message without session_id fell under the per-conversation
    limit keyed by address, so one address (a NAT) could open 30 conversations a minute, not 120."""
    from services.chatbot import create_app

    app = create_app(chat_settings.model_copy(update={"chatbot_rate_limit": "12/minute",
                                                      "chatbot_session_rate_limit": "3/minute",
                                                      "chatbot_rate_limit_exempt": []}), encoder=bow)
    c = app.test_client()
    firsts = [chat(c, "How do I reset my card PIN?") for _ in range(6)]  # six new conversations
    assert [r.status_code for r in firsts] == [200] * 6
    sid = firsts[0].get_json()["session_id"]
    assert [chat(c, "and for savings?", sid).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert chat(c, "How do I reset my card PIN?").status_code == 200  # another conversation: the address's 11th
    assert chat(c, "How do I reset my card PIN?").status_code == 200
    too_many = chat(c, "How do I reset my card PIN?")  # the 13th from this address
    assert too_many.status_code == 429 and too_many.headers.get("Retry-After")


def test_feedback_has_a_per_address_rate_limit_of_its_own(chat_settings, bow, loaded_kb) -> None:
    """Security QA: POST /v1/feedback, masked and stored like a chat turn, had no rate limit."""
    from services.chatbot import create_app

    app = create_app(chat_settings.model_copy(update={"chatbot_rate_limit": "3/minute",
                                                      "chatbot_rate_limit_exempt": []}), encoder=bow)
    c = app.test_client()
    sid = chat(c, "How do I reset my card PIN?").get_json()["session_id"]
    fb = {"session_id": sid, "rating": "up", "entry_id": "reset-pin", "message": "How do I reset my card PIN?"}
    assert [c.post("/v1/feedback", json=fb).status_code for _ in range(3)] == [201, 201, 201]
    too_many = c.post("/v1/feedback", json=fb)
    assert too_many.status_code == 429 and too_many.headers.get("Retry-After")
    assert chat(c, "and for savings?", sid).status_code == 200  # the chat's budget is its own


def test_feedback_message_is_held_to_the_chat_message_limit(client) -> None:
    """Security QA: feedback took a 4000-character ``message``, a copy of a chat message capped at 1000."""
    chat(client, "How do I reset my card PIN?", "fb-long")
    fb = {"session_id": "fb-long", "rating": "down"}
    r = client.post("/v1/feedback", json=fb | {"message": "1" * 1001})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "message_too_long"
    at_limit = fb | {"message": f" {'x' * 1000} ", "comment": "y" * 4000}  # as /v1/chat: counted stripped
    assert client.post("/v1/feedback", json=at_limit).status_code == 201


def test_feedback_pairs_carry_ids_as_the_base_gave_them(chat_settings, bow, tmp_path, ops_headers) -> None:
    """Regression (chatbot QA): sources said ``"id": 3`` and the pairs export ``"id": "3"``."""
    from services.chatbot import create_app

    rows = [{"id": 3, "question": "How do I reset my card PIN?", "answer": "In the app."},
            {"id": 4, "question": "Close my savings account", "answer": "At a branch."}]
    (tmp_path / "kb.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_kb_dir(tmp_path / "kb.jsonl", kb_dir(chat_settings), bow, "flat", model="bow", progress=False)
    client = create_app(chat_settings, encoder=bow).test_client()
    r = chat(client, "reset my card PIN", "int-pairs").get_json()
    assert r["sources"][0]["id"] == 3
    assert client.post("/v1/feedback", json={"session_id": "int-pairs", "rating": "up", "entry_id": 3,
                                             "message": "reset my card PIN"}).status_code == 201
    lines = client.get("/v1/feedback/pairs", headers=ops_headers).get_data(as_text=True).splitlines()
    assert [json.loads(line) for line in lines] == [{"text": "reset my card PIN", "id": 3}]


def test_chats_are_monitored_under_the_encoder_that_answered(client, chat_settings) -> None:
    """Every chat was counted under version "current": a promoted encoder's handoffs were not told apart."""
    from shared import monitoring

    domain = chat_settings.chatbot_domain
    monitoring.forget(chat_settings, domain)
    assert chat(client, "How do I reset my card PIN?").status_code == 200
    assert (domain, "chat", "bow") in monitoring.list_series(chat_settings)  # the test index's encoder
    assert monitoring.summary(chat_settings, domain, "chat", "bow")["chats"] == 1
    monitoring.forget(chat_settings, domain)


def test_encoder_version_labels() -> None:
    from services.chatbot.service import encoder_version
    from shared.encoders import base_encoder_path

    assert encoder_version(str(base_encoder_path())) == "base"
    assert encoder_version("/srv/finpulse/registry/bank/embeddings/v3") == "v3"


def test_small_talk_after_an_answer_opens_no_ticket(client, ops_headers, unique) -> None:
    """QA: "What is NEFT?" → "thanks!" → "bye" → "ok" ended in a low_confidence handoff ticket."""
    from services.chatbot.dialogue import SMALL_TALK_ANSWERS

    sid = f"smalltalk-{unique}"
    assert chat(client, "How do I reset my card PIN?", sid).get_json()["kind"] == "answer"
    replies = [chat(client, m, sid).get_json() for m in ("thanks!", "bye", "ok", "hi")]
    assert [(r["kind"], r["handoff"], r["sources"]) for r in replies] == [("answer", False, [])] * 4
    assert [r["answer"] for r in replies] == [SMALL_TALK_ANSWERS[k] for k in ("thanks", "bye", "ok", "greeting")]
    tickets = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
    assert not [t for t in tickets if t["session_id"] == sid]


def test_a_follow_up_does_not_repeat_the_answer_just_given(client, unique) -> None:
    """QA: "and for credit cards?" after an answer gave the same answer again."""
    sid = f"again-{unique}"
    first = chat(client, "How do I reset my card PIN?", sid).get_json()
    assert first["kind"] == "answer" and first["sources"][0]["id"] == "reset-pin"
    data = chat(client, "and how do I reset the PIN?", sid).get_json()
    assert data["kind"] == "clarify" and data["answer"] != first["answer"], data
    assert data["sources"] and "reset-pin" not in [s["id"] for s in data["sources"]]


def test_a_follow_up_after_that_did_not_help_does_not_give_the_rejected_answer(client, unique) -> None:
    """QA: answer -> "that didn't help" -> a follow-up gave the rejected answer again, confidently."""
    sid = f"rejected-again-{unique}"
    first = chat(client, "How do I reset my card PIN?", sid).get_json()
    assert first["kind"] == "answer" and first["sources"][0]["id"] == "reset-pin"
    assert chat(client, "That didn't help", sid).get_json()["kind"] == "clarify"
    data = chat(client, "and how do I reset the PIN?", sid).get_json()
    assert data["kind"] == "clarify" and data["answer"] != first["answer"], data
    assert data["sources"] and "reset-pin" not in [s["id"] for s in data["sources"]]


def test_that_did_not_help_offers_the_topics_other_entries_then_a_person(client, ops_headers, unique) -> None:
    """QA: "that didn't help" was looked up as a new question (whatever entry mentions help) and
    answered confidently; it is an unsure turn on the same topic, and enough of them hand off."""
    from services.chatbot.dialogue import HANDOFF_ANSWER, REJECTED_ANSWER

    sid = f"nohelp-{unique}"
    first = chat(client, "How do I reset my card PIN?", sid).get_json()
    assert first["kind"] == "answer" and first["sources"][0]["id"] == "reset-pin"
    data = chat(client, "That didn't help", sid).get_json()
    assert (data["kind"], data["answer"], data["handoff"]) == ("clarify", REJECTED_ANSWER, False), data
    assert data["sources"] and "reset-pin" not in [s["id"] for s in data["sources"]]
    assert any(s["id"] in ("card-declined", "lost-card", "activate-card") for s in data["sources"])  # same topic
    assert chat(client, "no, not what I asked", sid).get_json()["kind"] == "clarify"
    last = chat(client, "wrong answer", sid).get_json()
    assert (last["kind"], last["answer"], last["handoff"]) == ("handoff", HANDOFF_ANSWER, True)
    tickets = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
    assert [t["reason"] for t in tickets if t["session_id"] == sid] == ["low_confidence"]


def test_a_handoff_counts_once_and_silent_turns_are_no_chats(client, chat_settings) -> None:
    """Every silent turn after "talk to an agent" counted as another hand-off of the encoder: a
    waiting customer's 12 messages raised a handoff_rate alert with one ticket (cross-service QA)."""
    from shared import monitoring

    domain = chat_settings.chatbot_domain
    monitoring.forget(chat_settings, domain)
    sid = chat(client, "How do I reset my card PIN?").get_json()["session_id"]
    assert chat(client, "I want to talk to a human agent please", sid).get_json()["kind"] == "handoff"
    for text in ("hello?", "anyone there?", "How do I reset my card PIN?"):
        assert chat(client, text, sid).get_json()["kind"] == "silent"
    figures = monitoring.summary(chat_settings, domain, "chat", "bow")
    assert figures["chats"] == 2 and figures["handoff_rate"] == 0.5, figures
    monitoring.forget(chat_settings, domain)


def test_a_suggestion_deleted_since_it_was_offered_answers_its_question(client, ops_headers) -> None:
    """A "Did you mean" button kept in the widget after ops deleted its entry was a 400 ("Sorry,
    something went wrong"): the suggestion's question is answered by retrieval instead. An id the
    session was never offered stays a 400."""
    sid = f"stale-{uuid.uuid4().hex[:8]}"
    data = chat(client, "How do I reset my card PIN? <b>x</b>", sid).get_json()
    assert data["kind"] == "clarify", data
    gone = data["sources"][0]
    assert client.delete(f"/v1/kb/{gone['id']}", headers=ops_headers).status_code == 200
    r = client.post("/v1/chat", json={"session_id": sid, "message": gone["question"], "entry_id": gone["id"]})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["answer"] and gone["id"] not in [s["id"] for s in r.get_json()["sources"]]
    r = client.post("/v1/chat", json={"session_id": sid, "message": "x", "entry_id": "no-such-entry"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_entry"
    other = chat(client, "What is the interest rate on credit cards?").get_json()["session_id"]
    r = client.post("/v1/chat", json={"session_id": other, "message": gone["question"], "entry_id": gone["id"]})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_entry"


def test_feedback_on_an_answer_deleted_since_is_stored_but_not_exported(client, ops_headers) -> None:
    """"Helpful" on an answer whose entry ops deleted afterwards was a 400 ("Sorry, we couldn't save
    your feedback"): the session's transcript shows the answer was given, so the rating is kept;
    the training-pair export still leaves the deleted entry out."""
    sid = f"fbgone-{uuid.uuid4().hex[:8]}"
    assert chat(client, "How do I reset my card PIN?", sid).get_json()["sources"][0]["id"] == "reset-pin"
    assert client.delete("/v1/kb/reset-pin", headers=ops_headers).status_code == 200
    fb = {"session_id": sid, "rating": "up", "entry_id": "reset-pin", "message": "How do I reset my card PIN?"}
    assert client.post("/v1/feedback", json=fb).status_code == 201
    assert "reset-pin" not in client.get("/v1/feedback/pairs", headers=ops_headers).get_data(as_text=True)
    other = chat(client, "What is the interest rate on credit cards?").get_json()["session_id"]
    r = client.post("/v1/feedback", json={**fb, "session_id": other})  # never given to this session
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_entry"


def test_widget_carries_the_services_message_limit(chat_settings, bow) -> None:
    """The widget's input stops where this service's limit does, not at a hard-coded 1000."""
    from services.chatbot import create_app

    client = create_app(chat_settings.model_copy(update={"chatbot_max_message_chars": 2500}), encoder=bow).test_client()
    js = client.get("/widget.js")
    assert js.status_code == 200 and js.mimetype == "application/javascript"
    text = js.get_data(as_text=True)
    assert "var INPUT_MAX = 2500;" in text and "var INPUT_MAX = 1000;" not in text
    assert js.headers["Cache-Control"] == "public, max-age=300"
    assert js.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    again = client.get("/widget.js", headers={"If-None-Match": js.headers["ETag"]})
    assert again.status_code == 304


def test_no_after_thanks_ends_the_chat_without_a_ticket(client, ops_headers, unique) -> None:
    """Bank FAQ QA: "thanks" -> "no" -> "nope" -> "no, that is all" were three unsure turns and a ticket."""
    from services.chatbot.dialogue import SMALL_TALK_ANSWERS

    sid = f"no-{unique}"
    assert chat(client, "How do I block my card?", sid).get_json()["kind"] == "answer"
    replies = [chat(client, m, sid).get_json() for m in ("thanks", "no", "nope", "no, that is all")]
    assert [(r["kind"], r["handoff"], r["sources"]) for r in replies] == [("answer", False, [])] * 4
    assert [r["answer"] for r in replies[1:]] == [SMALL_TALK_ANSWERS["done"]] * 3
    assert not [t for t in client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
                if t["session_id"] == sid]


def test_a_customer_takes_back_a_low_confidence_handoff(client, ops_headers, unique) -> None:
    """QA: after a low-confidence hand-off, "cancel" met silence; the customer could only wait for an agent.
    It closes the ticket as an agent's release does, and the bot answers again."""
    from services.chatbot.dialogue import HANDOFF_CANCELLED_ANSWER

    sid = f"take-back-{unique}"
    kinds = [chat(client, "zebra quantum violin", sid).get_json()["kind"] for _ in range(3)]
    assert kinds[-1] == "handoff"
    back = chat(client, "never mind", sid).get_json()
    assert (back["kind"], back["answer"], back["handoff"]) == ("answer", HANDOFF_CANCELLED_ANSWER, False)
    assert not [t for t in client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
                if t["session_id"] == sid]
    assert client.get(f"/v1/chat/{sid}/messages").get_json()["handoff"] is False
    again = chat(client, "How do I reset my card PIN?", sid).get_json()
    assert (again["kind"], again["sources"][0]["id"]) == ("answer", "reset-pin")
    # the unsure count started over: one more miss is no hand-off
    assert chat(client, "zebra quantum violin", sid).get_json()["kind"] == "clarify"


def test_once_an_agent_has_written_cancel_is_for_the_agent(client, ops_headers, unique) -> None:
    """The hand-off stays (the agent has the chat), the turn is silent; but the customer is told so (QA: "cancel"
    met an empty answer, nothing happened in the widget), each time, and the line is not stored as a bot turn."""
    from services.chatbot.dialogue import HANDOFF_KEPT_ANSWER, SILENT_ANSWER

    sid = f"agent-cancel-{unique}"
    assert chat(client, "I want to speak to a human agent", sid).get_json()["kind"] == "handoff"
    assert chat(client, "hello?", sid).get_json()["answer"] == SILENT_ANSWER
    assert client.post(f"/v1/handoffs/{sid}/messages", json={"text": "Anna here."},
                       headers=ops_headers).status_code == 201
    for text in ("cancel", "never mind"):
        reply = chat(client, text, sid).get_json()
        assert (reply["kind"], reply["handoff"], reply["answer"]) == ("silent", True, HANDOFF_KEPT_ANSWER)
    assert chat(client, "my card is blocked", sid).get_json()["answer"] == ""  # to the agent: silent as before
    tickets = [t for t in client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
               if t["session_id"] == sid]
    assert tickets and HANDOFF_KEPT_ANSWER not in [t["text"] for t in tickets[0]["transcript"]]
    assert [t["text"] for t in tickets[0]["transcript"] if t["role"] == "user"][-3:] == \
        ["cancel", "never mind", "my card is blocked"]


def test_an_unreadable_message_asks_to_rephrase_without_suggestions(chat_settings, bow, loaded_kb) -> None:
    """QA: "😀", "🤔", 1,000 x's or a script the KB has none of got three random "Did you mean"
    suggestions (scores 0.11-0.15); like any question that matches nothing, it asks to rephrase."""
    import re

    from services.chatbot import create_app
    from services.chatbot.dialogue import NO_MATCH_ANSWER, SMALL_TALK_ANSWERS

    class Reader(type(bow)):
        def unknown_share(self, texts):  # what is not [a-z0-9] is [UNK], as emoji and Georgian are to MiniLM
            return [0.0 if re.search(r"[a-z0-9]", t.lower()) and len(t) < 100 else 1.0 for t in texts]

    client = create_app(chat_settings, encoder=Reader()).test_client()
    georgian = "\u10e0\u10dd\u10d2\u10dd\u10e0 \u10d3\u10d0\u10d5\u10d1\u10da\u10dd\u10d9\u10dd"  # how do I block
    for text in ("\U0001f600", "\U0001f914", "x" * 1000, georgian):
        got = chat(client, text).get_json()
        assert (got["kind"], got["answer"], got["sources"], got["confidence"]) == \
            ("clarify", NO_MATCH_ANSWER, [], 0.0), (text, got)
    for text, kind in (("\U0001f44d", "ok"), ("\U0001f64f", "thanks"), ("hi", "greeting")):
        assert chat(client, text).get_json()["answer"] == SMALL_TALK_ANSWERS[kind], text
    assert chat(client, "How do I reset my card PIN?").get_json()["sources"][0]["id"] == "reset-pin"


def test_feedback_on_an_entry_the_session_was_never_shown_is_refused(client, ops_headers, unique) -> None:
    """QA: the OpenAPI document promises a 400 unknown_entry, but any entry in the knowledge base was taken,
    and a thumbs-up became a made-up training pair."""
    sid = f"fb-shown-{unique}"
    shown = [s["id"] for s in chat(client, "How do I reset my card PIN?", sid).get_json()["sources"]]
    assert shown[0] == "reset-pin" and "mortgage" not in shown
    fb = {"session_id": sid, "rating": "up", "entry_id": "mortgage", "message": "made up"}
    r = client.post("/v1/feedback", json=fb)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unknown_entry"
    assert "made up" not in client.get("/v1/feedback/pairs", headers=ops_headers).get_data(as_text=True)
    assert client.post("/v1/feedback", json=fb | {"entry_id": "reset-pin"}).status_code == 201


def test_feedback_pairs_keep_a_sessions_latest_rating_of_an_entry(client, ops_headers, unique) -> None:
    """QA: rating one answer three times exported its pair three times, and a thumbs-down after a
    thumbs-up still exported it."""
    up, changed = f"fb-up-{unique}", f"fb-changed-{unique}"
    for sid in (up, changed):
        assert chat(client, "How do I reset my card PIN?", sid).get_json()["sources"][0]["id"] == "reset-pin"
    fb = {"rating": "up", "entry_id": "reset-pin", "message": "reset my pin"}
    for sid, ratings in ((up, ("up", "up", "up")), (changed, ("up", "down"))):
        for rating in ratings:
            assert client.post("/v1/feedback", json=fb | {"session_id": sid, "rating": rating}).status_code == 201
    lines = client.get("/v1/feedback/pairs", headers=ops_headers).get_data(as_text=True).splitlines()
    assert [json.loads(x) for x in lines].count({"text": "reset my pin", "id": "reset-pin"}) == 1


def test_the_agents_queue_pages_oldest_first_with_each_transcripts_last_turns(app, client, ops_headers,
                                                                             unique) -> None:
    """QA: GET /v1/handoffs had no paging and sent every open ticket with its whole transcript (217 KB at
    153 tickets); it pages by ticket id, oldest waiting first, each with its last turns and their total."""
    from services.chatbot import handoff
    from shared.db import get_db

    sids = [f"queue-{i}-{unique}" for i in range(5)]
    handoff.record_turns(get_db(app), sids[0], [("user", f"question {i}", None) for i in range(60)])
    for sid in sids:
        assert chat(client, "I want to speak to a human", sid).get_json()["handoff"] is True
    seen, after, pages = [], 0, 0
    while after is not None:
        body = client.get(f"/v1/handoffs?limit=2&after={after}", headers=ops_headers).get_json()
        assert len(body["handoffs"]) <= 2
        seen += body["handoffs"]
        after, pages = body["next"], pages + 1
    assert pages == 3 and [t["session_id"] for t in seen] == sids  # none skipped or repeated
    long = seen[0]
    assert long["transcript_total"] == 62 and len(long["transcript"]) == handoff.TRANSCRIPT_TAIL
    assert [m["text"] for m in long["transcript"][:2]] == ["question 12", "question 13"]  # the last 50, in order
    assert (seen[1]["transcript_total"], len(seen[1]["transcript"])) == (2, 2)
    default = client.get("/v1/handoffs", headers=ops_headers).get_json()
    assert [t["session_id"] for t in default["handoffs"]] == sids and default["next"] is None
    for bad in ("limit=0", "limit=201", "limit=x", "after=-1"):
        assert client.get(f"/v1/handoffs?{bad}", headers=ops_headers).status_code == 400, bad
    assert client.get("/v1/handoffs?after=99999999999", headers=ops_headers).get_json()["handoffs"] == []
    doc = client.get("/openapi.json").get_json()["paths"]["/v1/handoffs"]["get"]
    params = {p["name"]: p["schema"] for p in doc["parameters"]}
    assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    assert params["after"]["type"] == "integer"
    assert "next" in doc["responses"]["200"]["content"]["application/json"]["schema"]["properties"]


def test_open_ticket_pages_carry_each_transcripts_tail_on_sqlite_and_postgresql(any_db_url) -> None:
    """The agents' page (a window query for each ticket's last turns) on both backends: ids after the
    cursor, oldest first, the last TRANSCRIPT_TAIL turns with their meta, and the total."""
    from services.chatbot import handoff
    from shared.db import Database

    db = Database(any_db_url)
    try:
        for sid, n in (("tail-a", 3), ("tail-b", handoff.TRANSCRIPT_TAIL + 7), ("tail-c", 1)):
            handoff.record_turns(db, sid, [("bot", f"{sid} {i}", {"kind": "answer", "sources": [str(i)]})
                                           for i in range(n)])
            handoff.open_ticket(db, sid, "low_confidence")
        first, after = handoff.open_tickets_page(db, after=0, limit=2)
        rest, last = handoff.open_tickets_page(db, after=after, limit=2)
        assert [t["session_id"] for t in first + rest] == ["tail-a", "tail-b", "tail-c"] and last is None
        b = first[1]
        assert (b["transcript_total"], len(b["transcript"])) == (handoff.TRANSCRIPT_TAIL + 7, handoff.TRANSCRIPT_TAIL)
        assert b["transcript"][0]["text"] == "tail-b 7" and b["transcript"][-1]["meta"]["sources"] == ["56"]
    finally:
        db.dispose()


def test_the_agents_transcript_shows_what_each_bot_turn_offered(client, ops_headers, unique) -> None:
    """QA: the agents read "Did you mean one of these?" without the suggestions it offered, and a rated-down
    answer without which entry it was: each turn carries its stored meta, its entries with their questions."""
    from services.chatbot.dialogue import REJECTED_ANSWER

    sid = f"meta-{unique}"
    assert chat(client, "my card 4111 1111 1111 1111 PIN reset", sid).get_json()["session_id"] == sid
    first = chat(client, "How do I reset my card PIN?", sid).get_json()
    offered = chat(client, "That didn't help", sid).get_json()
    assert first["sources"][0]["id"] == "reset-pin" and offered["kind"] == "clarify"
    assert chat(client, "talk to a human", sid).get_json()["handoff"] is True
    (ticket,) = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
    turns = ticket["transcript"]
    assert "4111" not in json.dumps(turns) and "[card]" in turns[0]["text"]  # masked as before
    answer = next(t for t in turns if t["text"] == first["answer"])
    assert answer["meta"]["kind"] == "answer" and answer["meta"]["sources"][0] == "reset-pin"
    assert answer["meta"]["entries"][0] == {"id": "reset-pin", "question": first["sources"][0]["question"]}
    clarify = next(t for t in turns if t["text"] == REJECTED_ANSWER)
    assert clarify["meta"]["sources"] == [s["id"] for s in offered["sources"]]
    assert [e["question"] for e in clarify["meta"]["entries"]] == [s["question"] for s in offered["sources"]]
    assert all("meta" not in t for t in turns if t["role"] == "user")


def test_a_thumbs_down_on_the_last_answer_is_that_did_not_help(client, ops_headers, unique) -> None:
    """QA: "Not helpful" only said thanks, and asking again gave the same answer. A thumbs-down on the
    session's last answer gets the bot's next turn, as "that didn't help" would: the topic's other
    entries, then a hand-off; one on an older answer is only stored."""
    from services.chatbot.dialogue import HANDOFF_ANSWER, REJECTED_ANSWER

    sid = f"thumbs-{unique}"
    pin = chat(client, "How do I reset my card PIN?", sid).get_json()
    fee = chat(client, "What does an international transfer cost?", sid).get_json()
    assert (pin["kind"], fee["kind"]) == ("answer", "answer") and fee["sources"][0]["id"] != "reset-pin"
    older = client.post("/v1/feedback", json={"session_id": sid, "rating": "down", "entry_id": "reset-pin"})
    assert older.status_code == 201 and older.get_json()["reply"] is None  # not the last answer: stored only
    up = client.post("/v1/feedback", json={"session_id": sid, "rating": "up", "entry_id": fee["sources"][0]["id"]})
    assert up.status_code == 201 and up.get_json()["reply"] is None
    fb = {"session_id": sid, "rating": "down", "entry_id": fee["sources"][0]["id"], "message": "transfer cost"}
    r = client.post("/v1/feedback", json=fb)
    assert r.status_code == 201 and isinstance(r.get_json()["id"], int)
    reply = r.get_json()["reply"]
    assert (reply["kind"], reply["answer"], reply["handoff"], reply["session_id"]) == (
        "clarify", REJECTED_ANSWER, False, sid), reply
    assert reply["sources"] and fee["sources"][0]["id"] not in [s["id"] for s in reply["sources"]]
    assert {"id", "question", "score", "label"} <= set(reply["sources"][0])
    # as typing it: more unsure turns hand off
    assert client.post("/v1/feedback", json=fb).get_json()["reply"]["kind"] == "clarify"
    last = client.post("/v1/feedback", json=fb).get_json()["reply"]
    assert (last["kind"], last["answer"], last["handoff"]) == ("handoff", HANDOFF_ANSWER, True)
    assert client.post("/v1/feedback", json=fb).get_json()["reply"] is None  # a person has it now
    (ticket,) = client.get("/v1/handoffs", headers=ops_headers).get_json()["handoffs"]
    assert ticket["reason"] == "low_confidence"
    rated = [t for t in ticket["transcript"] if t["role"] == "user" and t.get("meta")]
    assert len(rated) == 3 and rated[0]["meta"]["feedback"] == "down"
    assert rated[0]["meta"]["entry_id"] == fee["sources"][0]["id"]


def test_agents_queue_tells_a_waiting_customer_from_one_who_left(app, client, ops_headers, monkeypatch) -> None:
    """Regression (hand-off QA): a customer who closed the tab left a ticket at the head of the queue
    (oldest first) that looked like any other, and agents wrote into conversations nobody read. Each
    ticket carries ``customer_seen_at``: the later of the customer's last message and the widget's last
    poll for the agent's messages; without Redis, the last message alone."""
    from datetime import datetime

    from redis.exceptions import ConnectionError as RedisConnectionError

    def ticket(sid: str) -> dict:
        tickets = client.get("/v1/handoffs?limit=200", headers=ops_headers).get_json()["handoffs"]
        (found,) = [t for t in tickets if t["session_id"] == sid]
        return found

    left = chat(client, "I want to speak to a human").get_json()["session_id"]
    waiting = chat(client, "I want to speak to a human").get_json()["session_id"]
    last_said = {sid: [m["at"] for m in ticket(sid)["transcript"] if m["role"] == "user"][-1]
                 for sid in (left, waiting)}
    assert ticket(left)["customer_seen_at"] == last_said[left]  # no poll yet: the last message
    assert client.get(f"/v1/chat/{waiting}/messages?after=0").status_code == 200  # the widget's poll
    seen = ticket(waiting)["customer_seen_at"]
    assert datetime.fromisoformat(seen) > datetime.fromisoformat(last_said[waiting]) and seen.endswith("+00:00")
    assert ticket(left)["customer_seen_at"] == last_said[left]

    engine = app.extensions["chatbot"]

    def down(*args, **kwargs):
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(engine.redis, "mget", down)
    assert ticket(waiting)["customer_seen_at"] == last_said[waiting]  # the queue still answers
