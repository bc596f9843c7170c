"""No HTML injection: hostile article titles/sources and a hostile KB answer are shown as
literal text by the dashboard and the chat widget in headless Chromium, and never run.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_inputs import XSS
from services_under_test import build_app

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
HOSTILE = [XSS, "<script>window.__xss=1</script>", "\"><svg onload=window.__xss=1>"]


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve a WSGI app on a free loopback port in a thread; yields a starter."""
    from werkzeug.serving import make_server

    servers = []

    def start(app: Any) -> str:
        srv = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}"

    yield start
    for srv in servers:
        srv.shutdown()


@pytest.fixture
def page() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"Chromium not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page()
        dialogs: list[str] = []
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.dialogs = dialogs
        yield pg
        browser.close()


def assert_inert(pg: Any) -> None:
    assert pg.evaluate("window.__xss") is None, "hostile markup executed"
    assert not pg.dialogs, pg.dialogs
    # a locator also looks inside open shadow roots (the chat widget's), where querySelectorAll does not
    assert pg.locator("img[src=x], svg[onload], script:not([src])").count() == 0


def test_dashboard_shows_hostile_titles_literally(settings: Any, serve: Any, page: Any) -> None:
    app = build_app("sentiment", settings)
    rows = [{"id": f"x{i}", "source": h, "published_at": "2026-01-05T10:00:00Z", "title": f"$ACME {h}",
             "tickers": ["ACME"]} for i, h in enumerate(HOSTILE)]
    resp = app.test_client().post("/v1/news", data=json.dumps(rows), content_type="application/json")
    assert resp.status_code == 202, resp.get_json()
    base = serve(app)
    page.goto(base + "/")
    page.fill("#ticker", "ACME")
    page.press("#ticker", "Enter")
    page.wait_for_function("document.querySelector('#articles tbody tr') !== null", timeout=15000)
    page.wait_for_timeout(300)
    text = page.inner_text("body")
    for h in HOSTILE:
        assert h in text, f"{h!r} not shown literally"
    assert_inert(page)


def test_widget_shows_hostile_answer_literally(settings: Any, serve: Any, page: Any, tmp_path: Path) -> None:
    from services.chatbot.service import load_kb

    kb = tmp_path / "kb.jsonl"
    kb.write_text(json.dumps({"id": "evil", "question": "How do I close my account?", "answer": XSS}) + "\n"
                  + json.dumps({"id": "ok", "question": "What are your opening hours?",
                                "answer": "We are open 9 to 5."}) + "\n")
    load_kb(settings, kb, progress=False)
    base = serve(build_app("chatbot", settings))
    page.goto(base + "/")
    page.click(".fpc-toggle")
    page.fill("#fpc-input", "How do I close my account?")
    page.press("#fpc-input", "Enter")
    page.locator(".fpc-bot").first.wait_for(timeout=30000)
    page.wait_for_timeout(300)
    assert XSS in page.inner_text(".fpc-log"), page.inner_text(".fpc-log")
    assert_inert(page)
