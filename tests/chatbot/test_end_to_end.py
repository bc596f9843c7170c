"""The real base encoder once: kb build → kb ask through the CLI, and the widget in Chromium."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import expect

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@contextlib.contextmanager
def demo_page(app: Any) -> Iterator[tuple[Any, str]]:
    """``app`` on a real waitress server and a fresh headless Chromium page: ``(page, base URL)``.
    The page is not navigated yet, so a test can hook its requests and dialogs first."""
    from playwright.sync_api import sync_playwright

    from tests.waitress_server import serving

    with serving(app, threads=4) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            yield browser.new_page(), f"http://127.0.0.1:{server.effective_port}"
        finally:
            browser.close()


def ask_on_demo_page(page: Any, base: str, question: str) -> tuple[Any, Any]:
    """Open the demo page's chat, send ``question``: ``(input box, message log)``."""
    page.goto(f"{base}/")
    page.get_by_role("button", name="Chat with us").click()
    box, log = page.get_by_label("Your question"), page.locator("[role=log]")
    box.fill(question)
    box.press("Enter")
    return box, log


@pytest.fixture(scope="session")
def real_index(tmp_path_factory) -> Path:
    """The sample FAQ embedded with the bundled MiniLM (built once per session)."""
    from services.chatbot.cli import kb

    out = tmp_path_factory.mktemp("real-kb") / "idx"
    sample = Path(__file__).resolve().parents[2] / "data" / "samples" / "faq.jsonl"
    result = CliRunner().invoke(kb, ["build", "--kb", str(sample), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_cli_ask_with_real_encoder_paraphrases(real_index, tmp_path) -> None:
    from services.chatbot.cli import kb

    (tmp_path / "q.jsonl").write_text(
        json.dumps({"text": "somebody stole my debit card"}) + "\n"
        + json.dumps({"text": "what does it cost to send money abroad"}) + "\n")
    result = CliRunner().invoke(kb, ["ask", "--index", str(real_index), "--input", str(tmp_path / "q.jsonl"),
                                     "--output", str(tmp_path / "a.jsonl"), "--k", "3"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["results"][0]["id"] for r in rows] == ["lost-card", "transfer-fee"]
    assert rows[0]["results"][0]["score"] > rows[0]["results"][1]["score"]


@pytest.mark.browser
def test_widget_asks_to_rephrase_without_buttons_when_nothing_matches(chat_settings, bow, loaded_kb) -> None:
    """A question about nothing in the knowledge base shows the rephrase text and no suggestion buttons."""
    from services.chatbot import create_app
    from services.chatbot.dialogue import NO_MATCH_ANSWER

    with demo_page(create_app(chat_settings, encoder=bow)) as (page, base):
        page.goto(f"{base}/")
        page.get_by_role("button", name="Chat with us").click()
        page.get_by_label("Your question").fill("zebra quantum lasagne")
        page.keyboard.press("Enter")
        log = page.locator("[role=log]")
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            log.get_by_text(NO_MATCH_ANSWER).wait_for(timeout=15_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "chatbot_widget_no_match.png"))
        assert log.get_by_role("button").count() == 0  # no "Did you mean", no rating of a non-answer


def test_cli_errors_are_one_line(tmp_path) -> None:
    from services.chatbot.cli import kb

    (tmp_path / "bad.jsonl").write_text('{"id": "a", "question": "q"}\n')
    result = CliRunner().invoke(kb, ["build", "--kb", str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "o")])
    assert result.exit_code != 0 and "bad.jsonl:1" in str(result.exception)
    assert not (tmp_path / "o").exists()


@pytest.mark.browser
def test_widget_in_headless_chromium(chat_settings, bow, loaded_kb) -> None:
    """Type a question into the widget on the demo page and see the answer."""
    from services.chatbot import create_app

    with demo_page(create_app(chat_settings, encoder=bow)) as (page, base):
        page.goto(f"{base}/")
        page.keyboard.press("Tab")  # keyboard only: focus the toggle, open, type, Enter
        page.get_by_role("button", name="Chat with us").focus()
        page.keyboard.press("Enter")
        page.get_by_label("Your question").fill("How do I reset my card PIN? <b>x</b>")
        page.keyboard.press("Enter")
        log = page.locator("[role=log]")
        # the markup makes the bag-of-words bot unsure: it offers suggestions as buttons
        log.get_by_role("button", name="I forgot my PIN").focus()
        page.keyboard.press("Enter")
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            log.get_by_text("Reset your PIN in the app").wait_for(timeout=15_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "chatbot_widget.png"))
        assert log.locator("b").count() == 0  # user text rendered as text, not HTML
    assert (ARTIFACTS / "chatbot_widget.png").stat().st_size > 1000



MARKDOWN_FAQ = """# Cards

## How do I block my lost card?

You can block it straight away:

- in the **app** under Cards
- by phone, 24/7

Read [our card guide](https://bank.example/cards) first. [Click here](javascript:alert(1)) is no link,
and <img src=x onerror=alert(1)> is just text.\\
Call us any time.

## What are your opening hours?

We are open *9 to 5* on working days.

## How do I reset my card PIN?

Reset your PIN in the app under Cards > PIN.
"""


@pytest.mark.browser
def test_widget_renders_markdown_answers_safely(chat_settings, bow, ops_headers, tmp_path) -> None:
    """Answers from a Markdown FAQ showed their raw markup (`**`, `- `, `[text](url)`): the widget
    builds a small Markdown subset as DOM nodes, for answers and agent replies only, with links
    to http(s)/mailto only and HTML as literal text."""
    from services.chatbot import create_app
    from services.chatbot.kb import build_kb_dir
    from services.chatbot.service import kb_dir

    faq = tmp_path / "faq.md"
    faq.write_text(MARKDOWN_FAQ, encoding="utf-8")
    build_kb_dir(faq, kb_dir(chat_settings), bow, "flat", model="bow", progress=False)
    app = create_app(chat_settings, encoder=bow)
    with demo_page(app) as (page, base):
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        box, log = ask_on_demo_page(page, base, "How do I block my lost card?")
        answer = log.locator(".fpc-bot").last
        answer.locator("ul").wait_for(timeout=15_000)
        assert answer.locator("ul > li").all_inner_texts() == ["in the app under Cards", "by phone, 24/7"]
        assert answer.locator("strong").all_inner_texts() == ["app"]
        links = answer.locator("a")
        assert links.count() == 1 and links.inner_text() == "our card guide"
        assert links.get_attribute("href") == "https://bank.example/cards"
        assert links.get_attribute("target") == "_blank"
        assert "noopener" in links.get_attribute("rel").split()
        text = answer.inner_text()
        assert "Click here is no link" in text  # the javascript: link is plain text
        assert "<img src=x onerror=alert(1)> is just text" in text
        # a hard-wrapped line flows on; one ending in two spaces breaks
        assert "is no link, and <img" in text and answer.locator("br").count() == 1
        assert page.locator("img").count() == 0 and not dialogs
        assert "**" not in text and "](" not in text and "- in" not in text
        assert answer.locator(".fpc-sr").inner_text() == "Assistant:"  # still a labelled bubble in the log
        assert log.get_attribute("aria-live") == "polite"

        # the customer's own words stay plain; an agent's reply is rendered like an answer
        box.fill("I want to talk to a *human* agent please")
        box.press("Enter")
        log.get_by_text("an agent will reply here shortly").wait_for(timeout=15_000)
        assert log.locator(".fpc-user").last.inner_text().endswith("I want to talk to a *human* agent please")
        assert log.locator(".fpc-user em").count() == 0
        sid = page.evaluate("sessionStorage.getItem('finpulse-chat-session')")
        r = app.test_client().post(f"/v1/handoffs/{sid}/messages", headers=ops_headers,
                                   json={"text": "Hi, Anna here. Please:\n\n1. open the app\n2. tap **Help**"})
        assert r.status_code == 201
        agent = log.locator(".fpc-agent").last
        agent.locator("ol").wait_for(timeout=15_000)
        assert agent.locator("ol > li").all_inner_texts() == ["open the app", "tap Help"]
        assert agent.locator("strong").inner_text() == "Help"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chatbot_widget_markdown.png"))

        page.reload()  # the kept conversation is rendered the same way, the chat open as it was
        page.get_by_role("button", name="Close chat").wait_for(timeout=15_000)
        assert log.locator(".fpc-bot ul > li").count() == 2 and log.locator(".fpc-agent ol > li").count() == 2
        assert page.locator("img").count() == 0 and not dialogs
    assert (ARTIFACTS / "chatbot_widget_markdown.png").stat().st_size > 1000


def test_kb_load_and_bootstrap_into_finpulse_home(settings, capsys) -> None:
    from services.chatbot.bootstrap import SAMPLE, prepare
    from services.chatbot.cli import kb
    from services.chatbot.service import kb_dir

    result = CliRunner().invoke(kb, ["load", "--kb", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "22"
    meta = kb_dir(settings) / "meta.json"
    before = meta.stat().st_mtime_ns
    prepare(settings, None)  # already loaded: nothing to do
    assert meta.stat().st_mtime_ns == before


@pytest.mark.browser
def test_widget_picks_by_id_shows_agent_replies_and_friendly_errors(chat_settings, bow, loaded_kb,
                                                                    ops_headers) -> None:
    """A picked suggestion goes out with its entry id; an agent's reply appears while handed off;
    the "agent has this conversation" notice shows once; a 429 reads as a friendly sentence."""
    from services.chatbot import create_app
    from services.chatbot.dialogue import SILENT_ANSWER

    app = create_app(chat_settings.model_copy(update={"chatbot_session_rate_limit": "5/minute",
                                                      "chatbot_rate_limit_exempt": []}), encoder=bow)
    sent: list[dict] = []
    with demo_page(app) as (page, base):
        page.on("request", lambda r: sent.append(json.loads(r.post_data or "{}"))
                if r.method == "POST" and r.url.endswith("/v1/chat") else None)
        box, log = ask_on_demo_page(page, base, "How do I reset my card PIN? <b>x</b>")
        log.get_by_role("button", name="I forgot my PIN").click()
        log.get_by_text("Reset your PIN in the app").wait_for(timeout=15_000)
        assert sent[-1]["entry_id"] == "reset-pin"
        offered = log.locator(".fpc-sugg button")
        assert all(offered.nth(i).is_disabled() for i in range(offered.count()))  # one pick per offer
        assert log.get_by_role("button", name="I forgot my PIN").get_attribute("aria-pressed") == "true"

        box.fill("I want to talk to a human agent please")
        box.press("Enter")
        log.get_by_text("an agent will reply here shortly").wait_for(timeout=15_000)
        sid = page.evaluate("sessionStorage.getItem('finpulse-chat-session')")
        for text in ("hello?", "anyone there?"):
            box.fill(text)
            box.press("Enter")
            log.get_by_text(text).wait_for(timeout=15_000)
            page.locator(".fpc-form button:enabled").wait_for(timeout=15_000)
        r = app.test_client().post(f"/v1/handoffs/{sid}/messages", json={"text": "Hi, Anna from the team."},
                                   headers=ops_headers)
        assert r.status_code == 201
        log.get_by_text("Hi, Anna from the team.").wait_for(timeout=15_000)  # polled, no message sent
        assert log.get_by_text(SILENT_ANSWER).count() == 1
        bubbles = log.locator(".fpc-bot").all_inner_texts()
        assert all(b.replace("Assistant:", "").strip() for b in bubbles), bubbles  # no empty bubbles

        # the 1st chat had no session id yet: these are the session's 5th and 6th (limit 5/minute)
        for text in ("one more", "and another"):
            box.fill(text)
            box.press("Enter")
            page.locator(".fpc-form button:enabled").wait_for(timeout=15_000)
        log.get_by_text("You're sending messages quickly").wait_for(timeout=15_000)
        assert "per 1 minute" not in log.inner_text()
        assert log.get_attribute("aria-live") == "polite"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chatbot_widget_handoff.png"))


@pytest.mark.browser
def test_widget_reload_mid_handoff_shows_the_conversation_once(chat_settings, bow, loaded_kb, ops_headers) -> None:
    """A reload used to leave only the agent's messages: the customer's turns and the bot's
    answers were gone, and the handoff status line too."""
    from services.chatbot import create_app

    app = create_app(chat_settings, encoder=bow)
    with demo_page(app) as (page, base):
        page.goto(f"{base}/")
        page.get_by_role("button", name="Chat with us").click()
        box, log = page.get_by_label("Your question"), page.locator("[role=log]")
        for text, reply in (("How do I reset my card PIN?", "Reset your PIN in the app"),
                            ("I want to talk to a human agent please", "an agent will reply here shortly")):
            box.fill(text)
            box.press("Enter")
            log.get_by_text(reply).wait_for(timeout=15_000)
        sid = page.evaluate("sessionStorage.getItem('finpulse-chat-session')")
        r = app.test_client().post(f"/v1/handoffs/{sid}/messages", json={"text": "Hi, Anna here."},
                                   headers=ops_headers)
        assert r.status_code == 201
        log.get_by_text("Hi, Anna here.").wait_for(timeout=15_000)
        page.reload()
        page.get_by_role("button", name="Close chat").wait_for(timeout=15_000)  # reopened as it was
        page.locator(".fpc-status").get_by_text("team").wait_for(timeout=15_000)  # after the first poll
        texts = [t.split(":", 1)[-1].strip() for t in log.locator(".fpc-msg").all_inner_texts()]
        assert texts[0] == "How do I reset my card PIN?" and texts[1].startswith("Reset your PIN in the app")
        assert texts.count("Hi, Anna here.") == 1 and texts[-1] == "Hi, Anna here.", texts


def test_bank_faq_duplicate_question_asks_with_labels_with_real_encoder(chat_settings, tmp_path) -> None:
    """The bank FAQ holds this question twice with two answers: the real encoder ties them. The
    customer is asked which, with two buttons labelled apart (not two identical ones), and a pick
    is answered as is (no handoff)."""
    from services.chatbot import create_app
    from services.chatbot.service import load_kb

    bank = Path(__file__).resolve().parents[3] / "shared" / "data" / "bank_faq" / "faq.jsonl"
    if not bank.is_file():
        pytest.skip(f"{bank} not present")
    question = "What options should I choose to withdraw cash from the ATM"
    rows = [line for line in bank.read_text(encoding="utf-8").splitlines() if json.loads(line)["question"] == question]
    assert len(rows) == 2
    sample = Path(__file__).resolve().parents[2] / "data" / "samples" / "faq.jsonl"
    kb_file = tmp_path / "faq.jsonl"
    kb_file.write_text(sample.read_text() + "\n".join(rows) + "\n")
    load_kb(chat_settings, kb_file, progress=False)
    client = create_app(chat_settings).test_client()
    for _ in range(3):
        data = client.post("/v1/chat", json={"session_id": "atm1", "message": question}).get_json()
        assert data["kind"] == "clarify" and data["handoff"] is False, data
        dups = [s for s in data["sources"] if s["question"] == question]
        assert len(dups) == 2 and dups[0]["label"] != dups[1]["label"], dups
        assert all(s["label"].startswith(question + " \u2014 ") for s in dups)
        out = client.post("/v1/chat", json={"session_id": "atm1", "message": question,
                                            "entry_id": dups[1]["id"]}).get_json()
        assert out["kind"] == "answer" and out["sources"][0]["id"] == dups[1]["id"]


@pytest.mark.browser
def test_widget_keeps_an_offer_across_a_reload_wraps_long_words_and_gives_back_failed_text(
        chat_settings, bow, loaded_kb) -> None:
    """A reload dropped the "Did you mean" buttons (the unsure turn could not be answered); a
    1,000-character word ran out of its bubble; a refused message emptied the input."""
    from services.chatbot import create_app

    app = create_app(chat_settings, encoder=bow)
    with demo_page(app) as (page, base):
        box, log = ask_on_demo_page(page, base, "How do I reset my card PIN? <b>x</b>")
        log.locator(".fpc-sugg button").first.wait_for(timeout=15_000)
        offered = log.locator(".fpc-sugg button").all_inner_texts()
        page.reload()
        page.get_by_role("button", name="Close chat").wait_for(timeout=15_000)
        kept = log.locator(".fpc-sugg button")
        assert kept.all_inner_texts() == offered and kept.last.is_enabled()
        kept.last.click()
        log.locator(".fpc-bot").nth(1).wait_for(timeout=15_000)
        assert log.locator(".fpc-bot").nth(1).inner_text().split(":", 1)[-1].strip()

        replies = log.locator(".fpc-bot").count()
        box.fill("x" * 1000)
        box.press("Enter")
        bubble = log.locator(".fpc-user").last
        assert bubble.evaluate("b => b.scrollWidth <= b.clientWidth")
        log.locator(".fpc-bot").nth(replies).wait_for(timeout=15_000)  # answered: the next is not sent while busy
        page.route("**/v1/chat", lambda route: route.fulfill(status=413, body="{}"))
        box.fill("a question the server refuses")
        box.press("Enter")
        log.locator(".fpc-error").last.wait_for(timeout=15_000)
        assert box.input_value() == "a question the server refuses"


@pytest.mark.browser
def test_widget_survives_a_kb_edit_under_its_suggestions_and_answers(app, ops_headers) -> None:
    """After ops deleted an entry, its "Did you mean" button (kept across a reload) answered
    "Sorry, something went wrong" and "Helpful" on its earlier answer "we couldn't save your
    feedback": the pick is answered from its question, and the rating is kept."""
    with demo_page(app) as (page, base):
        box, log = ask_on_demo_page(page, base, "How do I reset my card PIN?")
        log.get_by_text("Reset your PIN in the app").wait_for(timeout=15_000)
        box.fill("How do I reset my card PIN? <b>x</b>")
        box.press("Enter")
        log.get_by_role("button", name="I forgot my PIN").wait_for(timeout=15_000)
        assert app.test_client().delete("/v1/kb/reset-pin", headers=ops_headers).status_code == 200
        page.reload()
        page.get_by_role("button", name="Close chat").wait_for(timeout=15_000)
        replies = log.locator(".fpc-bot").count()
        log.get_by_role("button", name="I forgot my PIN").click()
        log.locator(".fpc-bot").nth(replies).wait_for(timeout=15_000)
        page.locator(".fpc-form button:enabled").wait_for(timeout=15_000)
        log.get_by_role("button", name="Helpful").first.click()
        page.locator(".fpc-status").get_by_text("Thanks for your feedback.").wait_for(timeout=15_000)
        assert log.locator(".fpc-error").count() == 0, log.inner_text()


# The WCAG contrast ratio of an element's text (or, with "outline", its outline) and a colour or
# the first opaque background behind it. `sel` is looked up in open shadow roots too.
CONTRAST_JS = """([sel, what, against]) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const find = (r) => r.querySelector(sel)  // into open shadow roots (the widget's), as Playwright's selectors do
    || [...r.querySelectorAll("*")].map((n) => n.shadowRoot && find(n.shadowRoot)).find(Boolean);
  let e = find(document), bg = against ? rgb(against) : null;
  const fg = rgb(getComputedStyle(e)[what === "outline" ? "outlineColor" : "color"]);
  for (; !bg && e; e = e.parentElement || e.getRootNode().host) {
    const c = rgb(getComputedStyle(e).backgroundColor); if (c[3] !== 0) bg = c; }
  const [a, b] = [lum(fg), lum(bg || [255, 255, 255])].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05); }"""


@pytest.mark.browser
def test_widget_panel_fits_a_short_window(app) -> None:
    """Regression (browser QA): at 200% zoom (a 640x360 window) the 28rem panel's top, its header
    and first messages, was above the window and could not be reached."""
    answer = {"session_id": "short1", "kind": "answer", "handoff": False, "answer": "A long answer. " * 30}
    with demo_page(app) as (page, base):
        page.set_viewport_size({"width": 640, "height": 360})
        page.route("**/v1/chat", lambda route: route.fulfill(json=answer))
        page.goto(f"{base}/")
        page.get_by_role("button", name="Chat with us").click()
        box, log = page.get_by_label("Your question"), page.locator("[role=log]")
        for n in range(3):
            box.fill(f"question {n}")
            box.press("Enter")
            log.locator(".fpc-bot").nth(n).wait_for(timeout=15_000)
        panel = page.get_by_role("dialog").bounding_box()
        assert panel["y"] >= 0 and panel["y"] + panel["height"] <= 360, panel
        head, form = page.locator(".fpc-head").bounding_box(), page.locator(".fpc-form").bounding_box()
        assert head["y"] >= 0 and form["y"] + form["height"] <= 360
        assert log.evaluate("l => l.scrollHeight > l.clientHeight")  # the log scrolls inside the panel


@pytest.mark.browser
def test_widget_gives_up_on_a_request_that_never_ends(app) -> None:
    """Regression (browser QA): with the server paused, "The assistant is answering…" stayed for
    ever, Send disabled and the question gone; it now fails like a refused request."""
    with demo_page(app) as (page, base):
        page.clock.install()  # the widget's 15 s timeout, fast-forwarded
        page.route("**/v1/chat", lambda route: None)  # never answered
        page.goto(f"{base}/")
        page.get_by_role("button", name="Chat with us").click()
        box, status = page.get_by_label("Your question"), page.get_by_role("status")
        box.fill("is anyone there?")
        box.press("Enter")
        status.get_by_text("The assistant is answering").wait_for(timeout=5_000)
        page.clock.fast_forward(16_000)
        page.locator(".fpc-error").get_by_text("unavailable right now").wait_for(timeout=5_000)
        assert box.input_value() == "is anyone there?"
        assert page.get_by_role("button", name="Send").is_enabled() and status.inner_text() == ""


@pytest.mark.browser
def test_widget_contrast_and_focus_style_stay_its_own(app) -> None:
    """Regression (browser QA): white on #0b5 was 2.55:1 (AA needs 4.5); the widget's global
    `:focus-visible{outline:3px solid #f90}` restyled the host page's own buttons, in an orange
    of 2.1:1 on white."""
    with demo_page(app) as (page, base):
        page.goto(f"{base}/")
        page.evaluate("document.querySelector('main').prepend(Object.assign(document.createElement('button'), "
                      "{id: 'host', textContent: 'Host'}))")  # the host page's own button
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "host"
        assert page.evaluate("getComputedStyle(host).outlineStyle") == "auto"  # the browser's own ring
        page.keyboard.press("Tab")
        toggle = page.locator(".fpc-toggle")  # in the widget's shadow root: the page's activeElement is its host
        expect(toggle).to_be_focused()
        assert toggle.evaluate("t => getComputedStyle(t).outlineWidth") == "3px"
        assert page.evaluate(CONTRAST_JS, [".fpc-toggle", "outline", "rgb(255, 255, 255)"]) >= 3
        page.keyboard.press("Enter")
        for sel in (".fpc-toggle", ".fpc-form button"):
            assert page.evaluate(CONTRAST_JS, [sel, "text", None]) >= 4.5, sel


@pytest.mark.browser
def test_widget_says_when_a_paste_is_cut_to_the_limit(app) -> None:
    """Regression (browser QA): `maxlength=1000` cut a longer paste without a word."""
    with demo_page(app) as (page, base):
        page.goto(f"{base}/")
        page.get_by_role("button", name="Chat with us").click()
        box, status = page.get_by_label("Your question"), page.locator(".fpc-status")
        box.focus()
        page.keyboard.insert_text("my transfer did not arrive " * 50)  # 1,350 characters, pasted
        assert len(box.input_value()) == 1000
        assert status.get_attribute("role") == "status"  # read out politely
        assert "1000/1000" in status.inner_text() and "shortened" in status.inner_text()
        page.keyboard.press("Backspace")
        assert status.inner_text() == ""


@pytest.mark.browser
def test_demo_page_fits_a_phone(app) -> None:
    """Regression (browser QA): the 477px embed snippet widened the demo page at 360x640, so
    "Chat with us" was off-screen."""
    with demo_page(app) as (page, base):
        page.set_viewport_size({"width": 360, "height": 640})
        page.goto(f"{base}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        toggle = page.get_by_role("button", name="Chat with us").bounding_box()
        assert toggle["x"] >= 0 and toggle["x"] + toggle["width"] <= 360


@pytest.mark.browser
def test_widget_labels_shared_questions_and_takes_feedback_on_answers(chat_settings, bow, tmp_path) -> None:
    """Bank FAQ QA: one question held once per card showed identical "Did you mean" buttons; and the
    widget had no way to rate an answer. Labels tell the buttons apart (the pick still goes by id),
    and an answer (only an answer) gets "Helpful" / "Not helpful", which stores one feedback row."""
    from sqlalchemy import select

    from services.chatbot import create_app
    from services.chatbot.kb import build_kb_dir
    from services.chatbot.models import ChatFeedback
    from services.chatbot.service import kb_dir
    from shared.db import get_db

    q = "Where do I get this card"
    faq = tmp_path / "faq.jsonl"
    faq.write_text(
        Path(__file__).resolve().parents[2].joinpath("data", "samples", "faq.jsonl").read_text()
        + json.dumps({"id": "gold", "question": q, "answer": "The Gold card is sold at any branch."}) + "\n"
        + json.dumps({"id": "gift", "question": q, "answer": "The eGift card is sold online only."}) + "\n")
    build_kb_dir(faq, kb_dir(chat_settings), bow, "flat", model="bow", progress=False)
    app = create_app(chat_settings, encoder=bow)
    with demo_page(app) as (page, base):
        box, log = ask_on_demo_page(page, base, q)
        buttons = log.locator(".fpc-sugg button")
        buttons.first.wait_for(timeout=15_000)
        texts = buttons.all_inner_texts()
        assert f"{q} \u2014 \u2026Gold card is sold at any branch." in texts
        assert f"{q} \u2014 \u2026eGift card is sold online only." in texts
        assert log.get_by_role("button", name="Not helpful").count() == 0  # a clarify is not rated
        log.get_by_role("button", name=f"{q} \u2014 \u2026eGift card is sold online only.").click()
        log.get_by_text("The eGift card is sold online only.").wait_for(timeout=15_000)
        # by its text: the thumbs-down's follow-up ("Sorry that didn't help...") comes after it
        answer = log.locator(".fpc-bot", has_text="The eGift card is sold online only.")
        helpful = answer.get_by_role("button", name="Helpful", exact=True)
        unhelpful = answer.get_by_role("button", name="Not helpful")
        assert helpful.get_attribute("aria-pressed") == unhelpful.get_attribute("aria-pressed") == "false"
        # drawn thumbs, not emoji: with no emoji font (this Chromium has none) those were empty boxes
        for button in (helpful, unhelpful):
            assert button.inner_text() == "" and button.locator("svg path").count() == 1
            drawn = button.locator("svg").bounding_box()
            assert drawn is not None and drawn["width"] >= 12 and drawn["height"] >= 12
        unhelpful.click()
        page.get_by_role("status").get_by_text("Thanks for your feedback").wait_for(timeout=15_000)
        assert unhelpful.get_attribute("aria-pressed") == "true" and unhelpful.is_disabled() and helpful.is_disabled()
        sid = page.evaluate("sessionStorage.getItem('finpulse-chat-session')")
        page.reload()  # a rated answer stays rated
        page.get_by_role("button", name="Close chat").wait_for(timeout=15_000)
        again = answer.get_by_role("button", name="Not helpful")
        assert again.get_attribute("aria-pressed") == "true" and again.is_disabled()
    with get_db(app).session() as s:
        rows = s.execute(select(ChatFeedback).where(ChatFeedback.session_id == sid)).scalars().all()
        assert [(r.rating, r.entry_id, r.query) for r in rows] == [(-1, "gift", q)]


@pytest.mark.browser
def test_widget_thumbs_down_on_the_last_answer_offers_the_topics_other_entries(app) -> None:
    """QA: "Not helpful" only said "Thanks for your feedback", and asking again gave the same answer. The
    feedback's reply shows as the bot's next message with its suggestion buttons, which answer when picked."""
    from services.chatbot.dialogue import REJECTED_ANSWER

    with demo_page(app) as (page, base):
        box, log = ask_on_demo_page(page, base, "How do I reset my card PIN?")
        log.get_by_text("Reset your PIN in the app").wait_for(timeout=15_000)
        assert log.locator(".fpc-sugg button").count() == 0
        log.locator(".fpc-bot").last.get_by_role("button", name="Not helpful").click()
        log.get_by_text(REJECTED_ANSWER).wait_for(timeout=15_000)
        page.get_by_role("status").get_by_text("Thanks for your feedback").wait_for(timeout=15_000)
        buttons = log.locator(".fpc-sugg button")
        texts = buttons.all_inner_texts()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chatbot_widget_thumbs_down.png"))
        assert texts and "I forgot my PIN" not in texts and all(buttons.nth(i).is_enabled() for i in range(len(texts)))
        assert log.locator(".fpc-user").count() == 1  # the rating is no message of the customer's
        buttons.first.click()
        expect(log.locator(".fpc-bot")).to_have_count(3, timeout=15_000)  # the picked entry's answer
        assert log.locator(".fpc-bot").last.get_by_role("button", name="Not helpful").count() == 1


@pytest.mark.browser
def test_widget_picks_id_0_and_keeps_a_rating_only_once_it_is_stored(chat_settings, bow, tmp_path) -> None:
    """Browser QA: the pick of an entry whose id is the integer 0 went as a retyped question ("Did you
    mean" again); a feedback post that failed left both thumbs disabled, shown as rated after a
    reload; and a stored rating dropped the focus to <body>, where Escape no longer closed the chat."""
    from sqlalchemy import select

    from services.chatbot import create_app
    from services.chatbot.kb import build_kb_dir
    from services.chatbot.models import ChatFeedback
    from services.chatbot.service import kb_dir
    from shared.db import get_db

    q = "Where do I get this card"
    faq = tmp_path / "faq.jsonl"
    faq.write_text(json.dumps({"id": 0, "question": q, "answer": "The Platinum card is issued at any branch."}) + "\n"
                   + json.dumps({"id": 1, "question": q, "answer": "The ISIC card is ordered online."}) + "\n"
                   + json.dumps({"id": 2, "question": "How do I close my account", "answer": "Visit a branch."}) + "\n")
    build_kb_dir(faq, kb_dir(chat_settings), bow, "flat", model="bow", progress=False)
    app = create_app(chat_settings, encoder=bow)
    with demo_page(app) as (page, base):
        box, log = ask_on_demo_page(page, base, q)
        log.locator(".fpc-sugg button").first.wait_for(timeout=15_000)
        log.locator(".fpc-sugg button", has_text="Platinum").click()
        log.get_by_text("The Platinum card is issued at any branch.").wait_for(timeout=15_000)
        helpful = log.locator(".fpc-bot").last.get_by_role("button", name="Helpful", exact=True)
        page.route("**/v1/feedback", lambda route: route.abort("internetdisconnected"))
        helpful.click()
        page.get_by_role("status").get_by_text("couldn't save your feedback").wait_for(timeout=15_000)
        assert helpful.is_enabled() and helpful.get_attribute("aria-pressed") == "false"
        page.unroute("**/v1/feedback")
        helpful.focus()
        page.keyboard.press("Enter")
        page.get_by_role("status").get_by_text("Thanks for your feedback").wait_for(timeout=15_000)
        assert helpful.is_disabled() and helpful.get_attribute("aria-pressed") == "true"
        assert page.evaluate("document.querySelector('finpulse-chat').shadowRoot.activeElement?.id") == "fpc-input"
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()
        sid = page.evaluate("sessionStorage.getItem('finpulse-chat-session')")
    with get_db(app).session() as s:
        rows = s.execute(select(ChatFeedback).where(ChatFeedback.session_id == sid)).scalars().all()
        assert [(r.rating, r.entry_id) for r in rows] == [(1, "0")]


PLAIN_STARS = ("Fee 1000* and 500* apply, 60%* of value. * conditions apply. Security cheques favoring the Bank "
               "Loan Account No. << >>*** ECS mandate duly filled. ***Security Cheques: issue 1 cheque. "
               "Keep snake_case_words, but *this* and **that** and _these_ and __those__ and ***both*** are marked, "
               "as is **bold with *italic* inside**.")


@pytest.mark.browser
def test_widget_leaves_unpaired_and_non_flanking_asterisks_literal(chat_settings, bow, tmp_path) -> None:
    """Bank FAQ QA: plain-text answers with asterisks turned bold ("<< >>*** ECS mandate ... ***Security")
    or italic ("1000* ... 500*"): emphasis now follows CommonMark's flanking rule."""
    from services.chatbot import create_app
    from services.chatbot.kb import build_kb_dir
    from services.chatbot.service import kb_dir

    faq = tmp_path / "faq.jsonl"
    faq.write_text(json.dumps({"id": "stars", "question": "What documents do I need for the loan",
                               "answer": PLAIN_STARS}) + "\n"
                   + json.dumps({"id": "other", "question": "Opening hours", "answer": "9 to 5"}) + "\n")
    build_kb_dir(faq, kb_dir(chat_settings), bow, "flat", model="bow", progress=False)
    with demo_page(create_app(chat_settings, encoder=bow)) as (page, base):
        box, log = ask_on_demo_page(page, base, "What documents do I need for the loan")
        answer = log.locator(".fpc-bot").last
        answer.wait_for(timeout=15_000)
        text = answer.inner_text().split(":", 1)[1].strip()
        assert text.startswith("Fee 1000* and 500* apply, 60%* of value. * conditions apply. Security cheques "
                               "favoring the Bank Loan Account No. << >>*** ECS mandate duly filled. ***Security "
                               "Cheques: issue 1 cheque. Keep snake_case_words, but this and that and these and "
                               "those"), text
        assert answer.locator("em").all_inner_texts() == ["this", "these", "both", "italic"]
        assert answer.locator("strong").all_inner_texts() == ["that", "those", "both", "bold with italic inside"]
        assert answer.locator("em > strong").inner_text() == "both"


def test_full_width_and_unreadable_queries_with_real_encoder(chat_settings, tmp_path) -> None:
    """i18n QA: full-width "Ｉ ｌｏｓｔ ｍｙ ｃａｒｄ" was all [UNK] to the encoder; and on a KB with a
    Chinese entry (itself mostly [UNK]), "谢谢", "👍" or a 999-letter word were answered with it
    at a confidence of 0.77-0.98. Full-width text reads as its letters; a query mostly [UNK] is an
    unsure turn (confidence 0), in the chat and in `kb ask` alike, unless it is an entry's own question
    (that entry's answer, where it had been "Did you mean"); an emoji acknowledgement is small talk."""
    from services.chatbot import create_app
    from services.chatbot.dialogue import SMALL_TALK_ANSWERS
    from services.chatbot.service import answer_rows, kb_dir, load_kb

    sample = Path(__file__).resolve().parents[2] / "data" / "samples" / "faq.jsonl"
    kb_file = tmp_path / "faq.jsonl"
    chinese = {"id": "open-account-zh", "questions": ["如何开设银行账户？", "怎么开户"],
               "answer": "请携带身份证到任何分行办理开户。"}
    kb_file.write_text(sample.read_text() + json.dumps(chinese, ensure_ascii=False) + "\n", encoding="utf-8")
    load_kb(chat_settings, kb_file, progress=False)
    client = create_app(chat_settings).test_client()

    def chat(message: str) -> dict:
        return client.post("/v1/chat", json={"message": message}).get_json()

    got = chat("Ｉ ｌｏｓｔ ｍｙ ｃａｒｄ")
    assert (got["kind"], got["sources"][0]["id"]) == ("answer", "lost-card"), got
    got = chat("怎么开户?")  # the Chinese entry's own question is that entry's, [UNK] or not
    assert (got["kind"], got["sources"][0]["id"], got["answer"]) == ("answer", "open-account-zh", chinese["answer"])
    for text in ("谢谢", "人工客服", "😀😀😀", "x" * 999):
        got = chat(text)
        assert got["kind"] == "clarify" and got["confidence"] == 0.0, (text, got)
    for text, kind in (("👍", "ok"), ("🙏", "thanks"), ("👌", "ok"), ("😊", "thanks")):
        assert chat(text)["answer"] == SMALL_TALK_ANSWERS[kind], text

    texts = ["ｗｈｅｎ ｗｉｌｌ ｍｙ ｃａｒｄ ａｒｒｉｖｅ？", "谢谢", "人工客服", "😀😀😀", "x" * 999]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    answer_rows(kb_dir(chat_settings), tmp_path / "q.jsonl", tmp_path / "a.jsonl", 3)
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert rows[0]["results"][0]["id"] == "card-arrival" and rows[0]["handoff"] is False, rows[0]
    assert [(r["confidence"], r["handoff"]) for r in rows[1:]] == [(0.0, True)] * 4, rows[1:]


def test_off_topic_questions_ask_to_rephrase_with_the_real_encoder(chat_settings, tmp_path) -> None:
    """QA: "what is the meaning of life" or "asdfghjkl" got "Did you mean" with three unrelated bank
    entries. Under the floor they ask to rephrase, no buttons; a bank question is answered as before."""
    from services.chatbot import create_app
    from services.chatbot.dialogue import NO_MATCH_ANSWER
    from services.chatbot.service import answer_rows, kb_dir, load_kb

    load_kb(chat_settings, Path(__file__).resolve().parents[2] / "data" / "samples" / "faq.jsonl", progress=False)
    client = create_app(chat_settings).test_client()
    off_topic = ["what is the meaning of life", "asdfghjkl", "how tall is mount everest", "recommend a good movie"]
    for text in off_topic:
        got = client.post("/v1/chat", json={"message": text}).get_json()
        assert (got["kind"], got["answer"], got["sources"], got["confidence"]) == \
            ("clarify", NO_MATCH_ANSWER, [], 0.0), (text, got)
    got = client.post("/v1/chat", json={"message": "I lost my card"}).get_json()
    assert (got["kind"], got["sources"][0]["id"]) == ("answer", "lost-card"), got
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in off_topic))
    answer_rows(kb_dir(chat_settings), tmp_path / "q.jsonl", tmp_path / "a.jsonl", 3)
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert all((r["confidence"], r["handoff"], len(r["results"])) == (0.0, True, 3) for r in rows), rows


@pytest.mark.browser
def test_widget_isolates_each_messages_direction(app) -> None:
    """i18n QA: in an LTR page an Arabic question's "؟" and "(PIN 1234)" landed on the wrong side of
    its bubble: each message's text (not the "You said:" label) is isolated with dir=auto, as is the input."""
    question = "كيف أحول المال إلى الخارج؟ (PIN 1234)"
    answer = {"session_id": "rtl1", "kind": "answer", "handoff": False, "answer": "אפשר להעביר דרך האפליקציה."}
    with demo_page(app) as (page, base):
        page.route("**/v1/chat", lambda route: route.fulfill(json=answer))
        page.goto(f"{base}/")
        page.get_by_role("button", name="Chat with us").click()
        box, log = page.get_by_label("Your question"), page.locator("[role=log]")
        assert box.get_attribute("dir") == "auto"
        box.fill(question)
        box.press("Enter")
        log.locator(".fpc-bot").first.wait_for(timeout=15_000)
        for who, text in (("user", question), ("bot", answer["answer"])):
            bubble = log.locator(f".fpc-{who}").first
            body = bubble.locator("[dir=auto]")
            assert body.count() == 1 and body.inner_text() == text, who
            assert body.evaluate("e => getComputedStyle(e).direction") == "rtl", who
            assert bubble.locator(".fpc-sr").evaluate("e => e.closest('[dir]') === null"), who  # the label is not in it
        page.get_by_role("button", name="Close chat").click()
        page.reload()  # a kept conversation is rendered the same way
        page.get_by_role("button", name="Chat with us").click()
        assert log.locator(".fpc-user [dir=auto]").first.inner_text() == question
