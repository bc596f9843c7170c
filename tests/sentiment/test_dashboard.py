"""The analysts' dashboard in headless Chromium: alerts, a chart with markers, no HTML injection."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from tests.sentiment.conftest import START, burst, history

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"


def test_dashboard_page_is_served_without_cdn(client) -> None:
    html = client.get("/").get_data(as_text=True)
    assert "/static/sentiment/vendor/uPlot.iife.min.js" in html and "http" not in html.split("<body>")[1]
    assert client.get("/static/sentiment/vendor/uPlot.iife.min.js").status_code == 200


@pytest.mark.browser
def test_dashboard_shows_alert_chart_and_articles(app, pipe) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    long_source = "<b>wire</b>" + "-a-very-long-source-name" * 8  # 202 characters: stored as 200
    evil = {"id": "evil", "source": long_source, "published_at": (START + timedelta(days=30, hours=20)).isoformat(),
            "title": "$ACME <img src=x onerror=\"document.title='pwned'\"> fraud probe"}
    rows = history(["ACME", "BOLT"], START, 30) + burst("ACME", START + timedelta(days=30)) + [evil]
    report = pipe.ingest(rows)
    assert "evil" in report.stored, report.rejected
    pipe.score(report.stored)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            # the stream replays every stored alert, as it does for those of its last second: the
            # list keeps its items (a focused one used to vanish under the keyboard, flaking CI)
            page.route("**/v1/alerts/stream*",
                       lambda route: route.continue_(url=route.request.url + "&after=2000-01-01T00:00:00Z"))
            page.goto(f"http://127.0.0.1:{server.port}/?ticker=BOLT")
            page.wait_for_selector("#alerts li.critical", timeout=15_000)
            assert "ACME" in page.inner_text("#alerts li.critical")
            assert page.get_attribute("#alerts", "aria-live") == "polite"  # new alerts are announced
            page.focus("#alerts li.critical")  # an alert opens from the keyboard, not by mouse only
            page.evaluate("document.activeElement.dataset.probe = 'kept'")
            page.wait_for_selector("#live.on", timeout=15_000)
            page.wait_for_timeout(1500)  # the replay is sent as the stream opens
            assert page.evaluate("document.activeElement.dataset.probe") == "kept"
            assert page.locator("#alerts li.new").count() == 0  # nothing shown twice or flagged new
            page.keyboard.press("Enter")
            page.wait_for_function("document.getElementById('ticker').value === 'ACME'", timeout=15_000)
            page.wait_for_selector("#chart canvas", timeout=15_000)
            # BOLT's rows are on the page already: wait for ACME's, not for any row
            page.wait_for_function("document.querySelector('#articles tbody').innerText.includes('$ACME')",
                                   timeout=15_000)
            assert "<img" in page.inner_text("#articles tbody")  # shown as text
            assert page.locator("#articles img").count() == 0 and page.title() != "pwned"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "sentiment-dashboard.png"))
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # long source names
            source = page.locator("#articles td.source").first  # the newest row: the long name, cut
            assert source.get_attribute("title") == long_source[:200] and len(source.inner_text()) <= 40
            one_line = """[...document.querySelectorAll('#articles td.probs, #articles td.when')].every(td => {
                const r = document.createRange(); r.selectNodeContents(td);
                return r.getClientRects().length === 1; })"""
            assert page.evaluate(one_line)  # "0.90 / 0.05 / 0.05" had wrapped into a column of numbers
            assert page.get_attribute("#alerts li.critical", "role") == "button"  # announced as acting
            # a ticker that fails to load leaves nothing of the last one on screen
            page.route("**/v1/tickers/NOPE/sentiment*", lambda route: route.fulfill(status=503, body="{}"))
            page.fill("#ticker", "NOPE")
            page.click("#filters button[type=submit]")
            page.wait_for_function("document.getElementById('chart-note').innerText.includes('Could not load NOPE')",
                                   timeout=15_000)
            assert page.locator("#chart canvas").count() == 0 and "ACME" not in page.inner_text("#detail")
            errors = [e for e in errors if "503" not in e]  # the refused load itself
            assert errors == [], errors  # e.g. no favicon 404
            browser.close()
    finally:
        server.shutdown()
    assert (ARTIFACTS / "sentiment-dashboard.png").stat().st_size > 10_000


@pytest.mark.browser
def test_a_retracted_alert_leaves_the_open_dashboard(app, pipe) -> None:
    """Regression (sentiment QA): an alert that re-evaluation removed stayed listed until reload."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    day = START + timedelta(days=30)
    pipe.score(pipe.ingest(history(["ACME"], START, 30) + burst("ACME", day)).stored)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.port}/?ticker=ACME")
            page.wait_for_selector('#alerts li[data-id="ACME-20240331T0000"]', timeout=15_000)
            page.wait_for_selector("#live.on", timeout=15_000)  # the stream is open
            calm = [{**r, "title": f"$ACME hosts investor day #{i}", "body": "Routine."}
                    for i, r in enumerate(burst("ACME", day))]
            pipe.score(pipe.ingest(calm).to_score)  # the burst's articles corrected: its alert is retracted
            page.wait_for_selector("#alerts li", state="detached", timeout=15_000)
            assert page.is_visible("#no-alerts")
            browser.close()
    finally:
        server.shutdown()
