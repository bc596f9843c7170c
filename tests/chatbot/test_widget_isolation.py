"""The widget on a hostile host page (embed QA): the page's own CSS (resets, `button{all:unset}`, a
`font-size:0` hack on <html> and <body>, `div{display:flex}`, `[role=dialog]{display:none}`, a cookie
bar at the top z-index, ids and class names that happen to be the widget's) hid or broke the widget,
and the widget's <style> in <head> restyled the page's own `.fpc-…` elements. The widget now lives
in an open shadow root with its styles inside, and resets what its host element inherits."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.chatbot.test_end_to_end import ARTIFACTS, demo_page
from tests.chatbot.test_widget_embed import ANSWER, host

HOSTILE_CSS = """<style>
*, *::before, *::after { box-sizing: content-box; }
html { font-size: 0; }
body { font-size: 0; line-height: 0; color: #fff; background: #123; }
body div { display: flex; flex-direction: row-reverse; }
ol, ul { list-style: none; margin: 0; padding: 0; }
body p { margin: 3em; font-size: 16px; }
body button { all: unset; }
body [role="dialog"] { display: none; }
body input { width: 100%; font-size: 0; border: 0; padding: 0; }
#cookie-bar { position: fixed; left: 0; right: 0; bottom: 0; height: 90px; z-index: 2147483647;
              background: rgba(0, 0, 0, .6); }
.host-btn { display: inline-block; padding: 7px 13px; background: rgb(200, 0, 0); font: 700 15px/20px serif; }
</style>"""
# the page's own elements, some with the widget's ids and class names
HOSTILE_BODY = """<p>Welcome to the bank</p>
<section class="fpc-fb fpc-msg"><button class="host-btn" id="host-btn">Host button</button></section>
<input id="fpc-input" aria-label="Search the site"><div id="fpc-panel" role="dialog" aria-label="Cookies"></div>
<div id="cookie-bar"></div>"""
PROPS = ("display", "position", "background-color", "color", "padding", "margin", "border", "font-size",
         "font-family", "font-weight", "line-height", "box-sizing", "outline", "width", "height")
STYLES_JS = """([sels, props]) => sels.map((s) => { const cs = getComputedStyle(document.querySelector(s));
  return props.map((p) => cs.getPropertyValue(p)); })"""
HOST_ELEMENTS = ["#host-btn", "section", "p", "#fpc-input", "body", "html"]
LIST_ANSWER = {"session_id": "hostile1", "kind": "answer", "handoff": False,
               "answer": "Two ways:\n\n- in the **app**\n- by phone"}


@pytest.mark.browser
def test_widget_works_and_stays_apart_on_a_hostile_host_page(app) -> None:
    """Opens, takes a question by mouse and keyboard, is answered, and leaves the page's own styles alone."""
    with demo_page(app) as (page, base):
        page.set_default_timeout(5_000)  # the old widget fails here fast, not after 30 s
        host(page, base, HOSTILE_BODY, head=HOSTILE_CSS)
        before = page.evaluate(STYLES_JS, [HOST_ELEMENTS, PROPS])
        page.add_script_tag(url=f"{base}/widget.js")  # the widget is in the page once the script has run
        # the page's own elements keep their computed style; the widget adds one element and no <style>
        after = page.evaluate(STYLES_JS, [HOST_ELEMENTS, PROPS])
        assert after == before, [(sel, p, x, y) for sel, b, a in zip(HOST_ELEMENTS, before, after, strict=True)
                                 for p, x, y in zip(PROPS, b, a, strict=True) if x != y]
        assert page.evaluate("document.querySelectorAll('style').length") == 1
        assert page.evaluate("document.body.lastElementChild.shadowRoot.mode") == "open"
        assert page.evaluate("document.querySelectorAll('.fpc-toggle, .fpc-log, [role=log]').length") == 0
        toggle = page.get_by_role("button", name="Chat with us")

        # the font-size:0 hack and the page's resets do not reach in: sizes and colours are the widget's
        assert toggle.evaluate("t => getComputedStyle(t).fontSize") == "16px"
        assert toggle.evaluate("t => getComputedStyle(t).backgroundColor") == "rgb(10, 107, 58)"
        box = toggle.bounding_box()
        assert box and box["width"] > 80 and box["height"] > 30, box
        toggle.click()  # not intercepted by the cookie bar: Playwright checks what is under the pointer
        dialog = page.get_by_role("dialog", name="Customer service chat")
        expect(dialog).to_be_visible()
        assert dialog.evaluate("d => getComputedStyle(d).fontSize") == "14px"
        question, send = page.get_by_label("Your question"), dialog.get_by_role("button", name="Send")
        expect(question).to_be_focused()  # focus moved into the shadow root, to the widget's own input
        for control, width in ((question, 150), (send, 30)):
            expect(control).to_be_visible()
            b = control.bounding_box()
            assert b and b["width"] > width and b["height"] > 20 and b["y"] + b["height"] <= 720, b
        assert question.evaluate("i => parseFloat(getComputedStyle(i).fontSize)") > 10

        question.fill("How can I reset my card PIN?")
        send.click()
        log = page.get_by_role("log")
        log.get_by_text("Reset your PIN in the app").wait_for(timeout=15_000)
        expect(question).to_be_focused()  # back to the input after the answer
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chatbot_widget_hostile_host.png"))

        page.route("**/v1/chat", lambda route: route.fulfill(json=LIST_ANSWER))
        question.fill("other ways?")
        question.press("Enter")
        item = log.locator(".fpc-bot li").first
        item.wait_for()
        # the page's `ol, ul { list-style: none; padding: 0 }` does not reach the answer's list
        assert item.evaluate("li => getComputedStyle(li).listStyleType") == "disc"
        assert item.evaluate("li => getComputedStyle(li.parentElement).paddingLeft") != "0px"

        # keyboard: Escape closes and focus goes to the toggle; Shift+Tab leaves the shadow root for the page
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(page.get_by_role("button", name="Chat with us")).to_be_focused()
        page.keyboard.press("Shift+Tab")
        expect(page.get_by_label("Search the site")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="Chat with us")).to_be_focused()
        assert page.evaluate(STYLES_JS, [HOST_ELEMENTS, PROPS]) == before
    assert (ARTIFACTS / "chatbot_widget_hostile_host.png").stat().st_size > 1000


@pytest.mark.browser
def test_widget_keeps_its_style_under_a_nonce_csp_after_the_body_is_replaced(app) -> None:
    """The shadow root's <style> is checked against the page's `style-src` again when the widget is put
    back into a new <body>: the nonce it carries (from the script tag) must still be accepted."""
    csp = "default-src 'none'; script-src 'nonce-XYZ'; style-src 'nonce-XYZ'; connect-src 'self'"
    with demo_page(app) as (page, base):
        page.set_default_timeout(5_000)
        page.route("**/v1/chat", lambda route: route.fulfill(json=ANSWER))
        host(page, base, '<h1>One</h1><script nonce="XYZ">window.violations = [];'
             'document.addEventListener("securitypolicyviolation", e => violations.push(e.violatedDirective));'
             '</script><script nonce="XYZ" src="/widget.js"></script>',
             headers={"Content-Security-Policy": csp})
        page.evaluate("""() => new Promise((done) => {  // what Turbo does: a new body, its scripts run again
          document.body.innerHTML = '<h1>Two</h1>';
          const s = document.createElement('script'); s.nonce = 'XYZ'; s.src = '/widget.js'; s.onload = done;
          document.body.appendChild(s); })""")
        toggle = page.get_by_role("button", name="Chat with us")
        assert toggle.evaluate("t => getComputedStyle(t).position") == "fixed"
        toggle.click()
        assert page.get_by_role("dialog").evaluate("d => getComputedStyle(d).position") == "fixed"
        assert page.evaluate("violations") == []
