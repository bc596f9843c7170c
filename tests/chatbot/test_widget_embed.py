"""The widget embedded in host pages that are not the demo page (browser QA of embedding):
a strict CSP, a dark host page, the host's own focus, a replaced <body>, a <script> in <head>."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.chatbot.test_end_to_end import CONTRAST_JS, demo_page

CLARIFY = {"session_id": "embed1", "kind": "clarify", "handoff": False, "answer": "Did you mean:",
           "confidence": 0.3, "sources": [{"id": "pin", "question": "I forgot my PIN", "label": "I forgot my PIN"}]}
ANSWER = {"session_id": "embed1", "kind": "answer", "handoff": False, "answer": "Reset it **in the app**.",
          "confidence": 0.9, "sources": [{"id": "pin", "question": "I forgot my PIN", "label": "I forgot my PIN"}]}


def host(page, base: str, body: str, head: str = "", headers: dict[str, str] | None = None) -> None:
    """Open a host page (same origin as the chatbot) made of ``head`` and ``body``."""
    html = f"<!doctype html><html><head><meta charset=utf-8>{head}</head><body>{body}</body></html>"
    page.route(f"{base}/host.html", lambda route: route.fulfill(
        body=html, content_type="text/html", headers=headers or {}))
    page.goto(f"{base}/host.html")


def ask(page, text: str) -> None:
    box = page.get_by_label("Your question")
    box.fill(text)
    box.press("Enter")


def test_widget_js_may_be_loaded_by_cross_origin_isolated_pages(client) -> None:
    """Regression (embed QA): a host page with `Cross-Origin-Embedder-Policy: require-corp` blocked
    /widget.js, which sent no Cross-Origin-Resource-Policy."""
    resp = client.get("/widget.js")
    assert resp.status_code == 200
    assert resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


@pytest.mark.browser
def test_widget_keeps_its_style_under_a_nonce_csp(app) -> None:
    """Regression (embed QA): with `style-src 'nonce-…'` the widget's inline <style> was refused (no
    nonce), so the toggle and panel lost all styling; it now carries its script tag's nonce, and no
    part of the widget needs an inline style attribute."""
    csp = ("default-src 'none'; script-src 'nonce-XYZ'; style-src 'nonce-XYZ'; connect-src 'self'")
    with demo_page(app) as (page, base):
        page.route("**/v1/chat", lambda route: route.fulfill(
            json=CLARIFY if "PIN" not in route.request.post_data else ANSWER))
        page.route("**/v1/feedback", lambda route: route.fulfill(status=201, json={}))
        host(page, base, '<h1>Host</h1><script nonce="XYZ">window.violations = [];'
             'document.addEventListener("securitypolicyviolation", e => violations.push(e.violatedDirective));'
             '</script><script nonce="XYZ" src="/widget.js" defer></script>',
             headers={"Content-Security-Policy": csp})
        toggle = page.get_by_role("button", name="Chat with us")
        assert toggle.evaluate("t => getComputedStyle(t).position") == "fixed"
        toggle.click()
        assert page.get_by_role("dialog").evaluate("p => getComputedStyle(p).position") == "fixed"
        ask(page, "pin")
        page.locator(".fpc-sugg").get_by_role("button", name="I forgot my PIN").click()
        page.locator(".fpc-fb").get_by_role("button", name="Helpful", exact=True).click()
        page.get_by_role("status").get_by_text("Thanks for your feedback").wait_for(timeout=5_000)
        assert page.locator(".fpc-bot strong").inner_text() == "in the app"
        assert page.evaluate("violations") == []


@pytest.mark.browser
@pytest.mark.parametrize("dark", [
    '<meta name="color-scheme" content="light dark">',
    "<style>:root{color-scheme:dark}</style>",
    "<style>button,input{color:#fff}</style>",
])
def test_widget_stays_readable_on_a_dark_host_page(app, dark: str) -> None:
    """Regression (embed QA): on a dark host page the "Did you mean" and feedback buttons (and the
    input) took the page's light text colour on their white background: white on white."""
    with demo_page(app) as (page, base):
        page.emulate_media(color_scheme="dark")
        page.route("**/v1/chat", lambda route: route.fulfill(
            json=CLARIFY if "PIN" not in route.request.post_data else ANSWER))
        host(page, base, '<script src="/widget.js" defer></script>', head=dark)
        page.get_by_role("button", name="Chat with us").click()
        ask(page, "pin")
        page.locator(".fpc-sugg button").wait_for(timeout=5_000)
        page.get_by_label("Your question").fill("typed text")
        ratios = {sel: page.evaluate(CONTRAST_JS, [sel, "text", None])
                  for sel in (".fpc-sugg button", ".fpc-form input")}
        page.locator(".fpc-sugg button").click()
        page.locator(".fpc-fb button").first.wait_for(timeout=5_000)
        ratios[".fpc-fb button"] = page.evaluate(CONTRAST_JS, [".fpc-fb button", "text", None])
        assert all(r >= 4.5 for r in ratios.values()), ratios


@pytest.mark.browser
def test_widget_leaves_focus_on_the_host_page_when_an_answer_lands(app) -> None:
    """Regression (embed QA): an answer arriving after the customer moved to the host page's search
    box pulled focus back into the chat input."""
    with demo_page(app) as (page, base):
        pending = []
        page.route("**/v1/chat", lambda route: pending.append(route))
        host(page, base, '<input id="search" aria-label="Search the site"><script src="/widget.js" defer></script>')
        page.get_by_role("button", name="Chat with us").click()
        ask(page, "how do I reset my pin")
        page.locator(".fpc-log[aria-busy=true]").wait_for(state="attached")
        page.get_by_label("Search the site").click()
        page.keyboard.type("mortgage")
        while not pending:
            page.wait_for_timeout(50)
        pending.pop().fulfill(json=ANSWER)
        page.locator(".fpc-bot").wait_for(timeout=5_000)
        page.locator(".fpc-log[aria-busy]").wait_for(state="detached")
        assert page.evaluate("document.activeElement.id") == "search"
        # still in the chat: the input gets focus back, as before
        page.route("**/v1/chat", lambda route: route.fulfill(json=ANSWER))
        ask(page, "and again")
        page.locator(".fpc-bot").nth(1).wait_for(timeout=5_000)
        expect(page.get_by_label("Your question")).to_be_focused(timeout=5_000)  # in the widget's shadow root


@pytest.mark.browser
def test_widget_comes_back_after_the_host_replaces_its_body(app) -> None:
    """Regression (embed QA): a Turbo/pjax visit (or `document.body.innerHTML = …`) removed the
    widget for good, and loading widget.js again did nothing; it now puts the same widget (the
    conversation kept) into the new body, and a second load on the same page adds nothing."""
    with demo_page(app) as (page, base):
        page.route("**/v1/chat", lambda route: route.fulfill(json=ANSWER))
        host(page, base, '<h1>One</h1><script src="/widget.js"></script><script src="/widget.js"></script>')
        page.get_by_role("button", name="Chat with us").click()
        ask(page, "pin")
        page.locator(".fpc-bot").wait_for(timeout=5_000)
        assert page.locator(".fpc-toggle").count() == 1 and page.locator(".fpc-panel").count() == 1
        page.evaluate("""() => new Promise((done) => {  // what Turbo does: a new body, its scripts run again
          document.body.innerHTML = '<h1>Two</h1>';
          const s = document.createElement('script'); s.src = '/widget.js'; s.onload = done;
          document.body.appendChild(s); })""")
        assert page.locator("h1").inner_text() == "Two"
        assert page.locator(".fpc-toggle").count() == 1 and page.locator(".fpc-panel").count() == 1
        assert page.locator(".fpc-bot strong").inner_text() == "in the app"  # the same conversation
        assert page.get_by_role("button", name="Close chat").is_visible()


@pytest.mark.browser
def test_widget_script_in_head_without_defer_waits_for_the_body(app) -> None:
    """Regression (embed QA): `<script src=widget.js>` in <head> (no defer) threw on a null
    document.body and left an orphan <style>; it now starts once the body is there."""
    with demo_page(app) as (page, base):
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        host(page, base, "<h1>Host</h1>", head='<script src="/widget.js"></script>')
        page.get_by_role("button", name="Chat with us").click()
        assert page.get_by_role("dialog").is_visible()
        assert page.locator("style").count() == 1 and errors == []
