"""Browser QA of the widget as customers use it: keyboard picks, a closed chat during a hand-off,
failed requests and reloads. The chat endpoints are answered by the test (Playwright routes)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.chatbot.test_end_to_end import demo_page

SID = "qa1"
CLARIFY = {
    "session_id": SID,
    "kind": "clarify",
    "handoff": False,
    "answer": "Did you mean one of these?",
    "confidence": 0.3,
    "sources": [
        {"id": "pin", "question": "I forgot my PIN", "label": "I forgot my PIN"},
        {"id": "card", "question": "My card is lost", "label": "My card is lost"},
    ],
}
ANSWER = {
    "session_id": SID,
    "kind": "answer",
    "handoff": False,
    "answer": "Reset it in the app.",
    "confidence": 0.9,
    "sources": [{"id": "pin", "question": "I forgot my PIN", "label": "I forgot my PIN"}],
}
HANDOFF = {
    "session_id": SID,
    "kind": "handoff",
    "handoff": True,
    "confidence": 0.0,
    "sources": [],
    "answer": "I'm handing this conversation to a member of our team.",
}
ACTIVE = "document.querySelector('finpulse-chat').shadowRoot.activeElement?.id || document.activeElement.tagName"


def open_chat(page, base: str) -> None:
    page.goto(f"{base}/")
    page.get_by_role("button", name="Chat with us").click()


def ask(page, text: str) -> None:
    box = page.get_by_label("Your question")
    box.fill(text)
    box.press("Enter")


@pytest.mark.browser
def test_widget_keyboard_pick_keeps_the_focus_in_the_chat(app) -> None:
    """Regression (browser QA): a "Did you mean" suggestion picked with the keyboard was disabled while
    focused, so the focus fell to <body> until the answer came: Escape no longer closed the chat and a
    screen reader was taken back to the top of the page. The focus now goes to the input."""
    held: list = []
    with demo_page(app) as (page, base):
        page.route(
            "**/v1/chat",
            lambda route: (
                route.fulfill(json=CLARIFY) if "entry_id" not in (route.request.post_data or "") else held.append(route)
            ),
        )
        open_chat(page, base)
        ask(page, "pin")
        suggestion = page.locator(".fpc-sugg").get_by_role("button", name="I forgot my PIN")
        suggestion.wait_for(timeout=5_000)
        suggestion.focus()
        page.keyboard.press("Enter")
        page.get_by_role("status").get_by_text("The assistant is answering").wait_for(timeout=5_000)
        assert page.evaluate(ACTIVE) == "fpc-input"  # was BODY
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()
        assert page.evaluate(ACTIVE) != "BODY"  # on the toggle
        page.wait_for_timeout(200)  # the held request reached the route handler
        held[0].fulfill(json=ANSWER)
        page.get_by_role("button", name="Chat with us").click()
        page.locator(".fpc-bot").get_by_text("Reset it in the app.").wait_for(timeout=5_000)


@pytest.mark.browser
def test_widget_tells_a_closed_chat_of_an_agents_reply(app) -> None:
    """Regression (browser QA): a customer who closed the chat while waiting for an agent never learnt
    that the agent had answered: the reply went into the hidden panel, the button still said "Chat with
    us" and nothing was read out. The button now counts new messages (kept across a reload), a live
    region outside the panel announces them, and opening the chat clears the count."""
    replies: list[dict] = []

    def messages(route) -> None:
        after = int(route.request.url.rsplit("after=", 1)[1])
        fresh = [m for m in replies if m["id"] > after]
        route.fulfill(
            json={"session_id": SID, "messages": fresh, "handoff": True, "cursor": fresh[-1]["id"] if fresh else after}
        )

    with demo_page(app) as (page, base):
        page.route("**/v1/chat", lambda route: route.fulfill(json=HANDOFF))
        page.route("**/v1/chat/*/messages?*", messages)
        open_chat(page, base)
        ask(page, "a person please")
        page.get_by_text("handing this conversation").wait_for(timeout=5_000)
        page.get_by_role("button", name="Close chat").click()
        replies.append({"id": 7, "role": "agent", "text": "Hi, Anna here.", "at": "2026-01-01T00:00:00+00:00"})
        toggle = page.locator(".fpc-toggle")
        expect(toggle).to_have_text("Chat with us (1 new)", timeout=10_000)
        notice = page.locator("[aria-live]").filter(has_text="New message from our team")
        expect(notice).to_have_count(1)
        assert notice.evaluate("n => !n.closest('[role=dialog]')")  # read out: not in the hidden panel
        assert page.get_by_role("dialog").is_hidden()

        page.reload()
        expect(toggle).to_have_text("Chat with us (1 new)", timeout=5_000)
        toggle.click()
        expect(toggle).to_have_text("Close chat")
        page.locator(".fpc-agent").get_by_text("Hi, Anna here.").wait_for(timeout=5_000)
        assert page.locator("[aria-live]").filter(has_text="New message").count() == 0
        page.get_by_role("button", name="Close chat").click()
        expect(toggle).to_have_text("Chat with us")  # read: no count left
        assert page.evaluate("sessionStorage.getItem('finpulse-chat-unread')") == "0"


@pytest.mark.browser
def test_widget_reload_leaves_out_a_question_that_never_reached_the_server(app) -> None:
    """Regression (browser QA): a question whose request failed was kept for a reload while the error
    after it was not, so after a reload it read as asked and unanswered - twice once sent again."""
    with demo_page(app) as (page, base):
        page.route("**/v1/chat", lambda route: route.abort())
        open_chat(page, base)
        ask(page, "I forgot my PIN")
        page.locator(".fpc-error").wait_for(timeout=5_000)
        box = page.get_by_label("Your question")
        assert box.input_value() == "I forgot my PIN"  # to send again
        page.unroute("**/v1/chat")
        page.route("**/v1/chat", lambda route: route.fulfill(json=ANSWER))
        box.press("Enter")
        page.locator(".fpc-bot").get_by_text("Reset it in the app.").wait_for(timeout=5_000)
        history = json.loads(page.evaluate("sessionStorage.getItem('finpulse-chat-history')"))
        assert [m[:2] for m in history] == [["user", "I forgot my PIN"], ["bot", "Reset it in the app."]]
        page.reload()
        page.locator(".fpc-bot").first.wait_for(timeout=5_000)
        texts = [t.split("\n", 1)[-1].strip() for t in page.locator(".fpc-msg").all_inner_texts()]
        assert texts[:2] == ["I forgot my PIN", "Reset it in the app."] and len(texts) == 2, texts


def _polling(replies: list[dict], polls: list[int], now: list[int], handoff: list[bool] | None = None):
    """A fake ``GET /v1/chat/{id}/messages``: ``replies`` after the cursor; each poll's (fake) time into ``polls``."""

    def messages(route) -> None:
        polls.append(now[0])
        after = int(route.request.url.rsplit("after=", 1)[1])
        fresh = [m for m in replies if m["id"] > after]
        route.fulfill(json={"session_id": SID, "messages": fresh, "handoff": handoff[0] if handoff else True,
                            "cursor": fresh[-1]["id"] if fresh else after})

    return messages


@pytest.mark.browser
def test_widget_polls_fast_again_once_the_customer_writes_or_comes_back(app) -> None:
    """Regression (browser QA): while handed off the poll slows to every 15 s when nothing comes, and the
    customer's next message left it there: the agent's instant answer to it took up to 15 s to show. So did
    an answer that came while the chat was closed, after opening it again. Both now bring the poll back to
    its fast interval (3 s after a message, at once on opening). The page's clock is Playwright's, run by hand."""
    replies: list[dict] = []
    polls: list[int] = []
    now = [0]
    silent = {"session_id": SID, "kind": "silent", "handoff": True, "answer": "", "confidence": 0.0, "sources": []}

    def chat(route) -> None:
        body = json.loads(route.request.post_data or "{}")
        if body.get("message") == "are you there?":  # the agent answers it at once
            replies.append({"id": 1, "role": "agent", "text": "Yes, Anna here.", "at": "2026-01-01T00:00:00+00:00"})
        route.fulfill(json=HANDOFF if "session_id" not in body else silent)

    with demo_page(app) as (page, base):
        page.clock.install(time=1_000_000)
        page.route("**/v1/chat", chat)
        page.route("**/v1/chat/*/messages?*", _polling(replies, polls, now))
        open_chat(page, base)
        page.clock.pause_at(2_000_000)

        def run(ms: int) -> None:  # the page's time, in steps that let each poll's answer in
            for _ in range(ms // 250):
                page.clock.run_for(250)
                now[0] += 250
                page.wait_for_timeout(15)

        def idle() -> None:  # until the poll has slowed down to every 15 s, and just polled
            run(45_000)
            assert polls[-1] - polls[-2] >= 14_000, polls
            count = len(polls)
            while len(polls) == count:
                run(250)

        ask(page, "a person please")
        page.get_by_text("handing this conversation").wait_for(timeout=5_000)
        idle()
        ask(page, "are you there?")
        page.locator(".fpc-form button:enabled").wait_for(timeout=5_000)
        status = page.locator(".fpc-status")
        expect(status).to_have_text("A member of our team will take over this chat.")
        run(4_000)
        expect(page.locator(".fpc-agent")).to_have_text("Agent: Yes, Anna here.", timeout=1_000)  # was 15 s away
        # the agent has written: no longer "will take over" (browser QA, as in the test below)
        expect(status).to_have_text("A member of our team has this chat and will answer you here.")

        page.get_by_role("button", name="Close chat").click()
        idle()
        replies.append({"id": 2, "role": "agent", "text": "Anything else?", "at": "2026-01-01T00:01:00+00:00"})
        page.locator(".fpc-toggle").click()
        run(1_000)
        expect(page.locator(".fpc-agent").last).to_have_text("Agent: Anything else?", timeout=1_000)


@pytest.mark.browser
def test_widget_tells_who_has_the_chat_and_answers_a_cancel_the_agent_keeps(app, ops_headers) -> None:
    """Regression (browser QA), on the real chat service: the status line said the team "will take over"
    after the agent had written (and after a reload "has this chat" before anyone had); and once an agent had
    written, "cancel" (the agent's to answer, the hand-off stays) met nothing at all. The status line now says
    which stage it is, and the cancel gets a line saying a member of the team has the chat."""
    from services.chatbot.dialogue import HANDOFF_KEPT_ANSWER, SILENT_ANSWER

    waiting, with_agent = "will take over this chat", "has this chat and will answer you here"
    with demo_page(app) as (page, base):
        open_chat(page, base)
        log, status = page.locator("[role=log]"), page.locator(".fpc-status")
        ask(page, "I want to talk to a human agent please")
        log.get_by_text("an agent will reply here shortly").wait_for(timeout=15_000)
        expect(status).to_contain_text(waiting)
        ask(page, "hello?")
        log.get_by_text(SILENT_ANSWER).wait_for(timeout=15_000)
        expect(status).to_contain_text(waiting)
        page.reload()
        page.get_by_role("button", name="Close chat").wait_for(timeout=15_000)
        page.wait_for_timeout(1_000)  # the first poll after a reload: no agent yet
        expect(status).to_contain_text(waiting)  # was "has this chat"

        sid = page.evaluate("sessionStorage.getItem('finpulse-chat-session')")
        r = app.test_client().post(f"/v1/handoffs/{sid}/messages", json={"text": "Hi, Anna here."}, headers=ops_headers)
        assert r.status_code == 201
        log.locator(".fpc-agent").get_by_text("Hi, Anna here.").wait_for(timeout=15_000)
        expect(status).to_contain_text(with_agent)  # was "will take over"
        ask(page, "cancel")
        log.locator(".fpc-bot").get_by_text(HANDOFF_KEPT_ANSWER).wait_for(timeout=15_000)  # was nothing
        expect(status).to_contain_text(with_agent)
        page.reload()
        page.get_by_role("button", name="Close chat").wait_for(timeout=15_000)
        page.wait_for_timeout(1_000)
        expect(status).to_contain_text(with_agent)
        expect(log.locator(".fpc-bot").get_by_text(HANDOFF_KEPT_ANSWER)).to_have_count(1)

        app.test_client().post(f"/v1/handoffs/{sid}/release", headers=ops_headers)
        expect(status).to_contain_text("chatting with our assistant again", timeout=20_000)
        ask(page, "I want to talk to a human agent please")
        log.get_by_text("an agent will reply here shortly").last.wait_for(timeout=15_000)
        expect(status).to_contain_text(waiting)  # a new hand-off: nobody has written in it yet
