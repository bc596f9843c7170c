"""The dashboard in headless Chromium: older alerts page by page, and a chart that follows the stream.

Analyst QA: the alert list ended at its first 100 with no way further back, and the open ticker's
chart kept its old volume and markers when the stream updated (or retracted) one of its alerts.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.sentiment.conftest import START, day_of
from tests.sentiment.test_alert_paging import store
from tests.sentiment.test_dashboard import dashboard

SERIES = "/v1/tickers/ACME/sentiment"
# EventSource as the page opens it, each instance kept in window.__streams: a test can then hand
# the dashboard a burst of events at once, which a real stream only sends when its timing allows
RECORD_STREAMS = """window.__streams = [];
window.EventSource = class extends window.EventSource {
  constructor(...args) { super(...args); window.__streams.push(this); } };"""
SEND = """(events) => { const es = window.__streams[window.__streams.length - 1];
  for (const [name, data] of events) es.dispatchEvent(new MessageEvent(name, { data: JSON.stringify(data) })); }"""


@pytest.mark.browser
def test_older_alerts_are_loaded_below_the_first_page_with_a_button(app, pipe) -> None:
    with dashboard(app, pipe) as (page, base, errors):
        # 120 alerts older than ACME's, three to an hour (ties in event time): 121 in all
        store(pipe, *((f"OLD{i:03d}", START + timedelta(days=29, hours=-(i // 3))) for i in range(120)))
        expected = [a["id"] for a in app.test_client().get("/v1/alerts?limit=1000").get_json()["alerts"]]
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_function("document.querySelectorAll('#alerts li').length === 100", timeout=15_000)
        button = page.locator("#older")
        assert button.is_visible() and button.evaluate("b => b.tagName") == "BUTTON"
        button.focus()
        page.keyboard.press("Enter")  # a native button: the keyboard works as the mouse does
        page.wait_for_function("document.querySelectorAll('#alerts li').length === 121", timeout=15_000)
        shown = page.eval_on_selector_all("#alerts li", "items => items.map(li => li.dataset.id)")
        assert shown == expected  # none twice, none skipped, in the API's order
        assert not button.is_visible()  # the last page
        assert page.evaluate("document.activeElement.closest('li').dataset.id") == expected[100]  # the first added
        assert page.is_hidden("#alerts-error") and errors == []


@pytest.mark.browser
def test_an_update_of_the_open_tickers_alert_redraws_its_chart(app, pipe) -> None:
    with dashboard(app, pipe) as (page, base, errors):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#chart canvas", timeout=15_000)
        page.wait_for_selector("#live.on", timeout=15_000)
        page.wait_for_function("document.getElementById('articles-title').innerText.endsWith('window')",
                               timeout=15_000)
        page.focus("#chart")
        page.keyboard.press("End")
        assert page.get_attribute("#chart", "aria-valuetext").startswith("2024-03-31 00:00 (8 articles")
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if SERIES in r.url else None)
        more = day_of("ACME", START + timedelta(days=30), 52, first=100)  # the alert's day: 60 articles
        pipe.score(pipe.ingest(more).stored)  # the stream sends `update`: same alert, new count
        # redrawn with the new volume, on the bucket the analyst had picked
        page.wait_for_function("document.getElementById('chart').getAttribute('aria-valuetext')"
                               ".startsWith('2024-03-31 00:00 (60 articles')", timeout=15_000)
        assert asked and page.evaluate("document.activeElement.id") == "chart"
        assert page.inner_text("#articles-title").endswith("window")  # the table is left as it was
        assert errors == []


@pytest.mark.browser
def test_a_burst_of_stream_events_redraws_the_chart_once(app, pipe) -> None:
    with dashboard(app, pipe) as (page, base, errors):
        page.add_init_script(RECORD_STREAMS)
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#chart canvas", timeout=15_000)
        page.wait_for_selector("#live.on", timeout=15_000)
        (alert,) = app.test_client().get("/v1/alerts").get_json()["alerts"]
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if SERIES in r.url else None)
        other = {**alert, "id": "BOLT-20240331T0000", "ticker": "BOLT"}
        page.evaluate(SEND, [["alert", other], ["update", {**other, "article_count": 9}]])
        page.wait_for_selector('#alerts li[data-id="BOLT-20240331T0000"]', timeout=5_000)
        page.wait_for_timeout(1500)
        assert asked == []  # another ticker's events leave the chart be
        page.evaluate(SEND, [["alert", {**alert, "severity": "warn"}], ["alert", alert],
                             ["update", {**alert, "article_count": 9}], ["update", {**alert, "article_count": 10}],
                             ["retract", {"id": alert["id"]}]])
        page.wait_for_function("document.querySelectorAll('#alerts li').length === 1", timeout=5_000)
        page.wait_for_timeout(2000)  # the redraw waits 500 ms for the rest of the burst
        assert len(asked) == 1, asked
        assert errors == []
