"""Dashboard QA in headless Chromium: the alert list's semantics and order, and filters that follow
the store.

Sentiment QA: each alert was an ``li`` with role="button", so a screen reader heard buttons, not a
list of N alerts; a live alert for an older bucket went to the top of the list said to be "newest
first" (after a reload it sat in its place); and the Source dropdown and the ticker suggestions were
loaded once, so sources and tickers ingested later appeared only after a reload.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.sentiment.conftest import START, history
from tests.sentiment.test_alert_paging import store
from tests.sentiment.test_dashboard import dashboard
from tests.sentiment.test_dashboard_live_paging import RECORD_STREAMS, SEND

ACME = '#alerts li[data-id="ACME-20240331T0000"]'
SHOWN = "items => items.map(li => li.dataset.id)"


@pytest.mark.browser
def test_each_alert_is_a_list_item_holding_a_real_button(app, pipe) -> None:
    with dashboard(app, pipe) as (page, base, errors):
        store(pipe, ("OLDA", START + timedelta(days=20)), ("OLDB", START + timedelta(days=10)))
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_function("document.querySelectorAll('#alerts li').length === 3", timeout=15_000)
        alerts = page.get_by_role("list", name="Alerts, newest first; Enter opens one")
        assert alerts.get_by_role("listitem").count() == 3  # a list of 3 alerts for a screen reader
        buttons = alerts.get_by_role("listitem").get_by_role("button")
        assert buttons.count() == 3
        assert buttons.first.evaluate("b => b.tagName + ' ' + b.type") == "BUTTON button"
        assert page.eval_on_selector_all("#alerts li", "items => items.filter(li => li.getAttribute('role') || "
                                         "li.hasAttribute('tabindex')).length") == 0
        assert buttons.first.get_attribute("aria-label") is None  # named by what it says
        assert buttons.first.inner_text().startswith("ACME sentiment shift · critical")
        # the keyboard: Tab goes from one alert to the next, Space opens it as Enter does
        page.focus(f"{ACME} button")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.tagName + ' ' + document.activeElement.closest('li').dataset.id"
                             ) == "BUTTON OLDA-20240321T0000"
        page.keyboard.press("Space")
        page.wait_for_function("document.getElementById('ticker').value === 'OLDA'", timeout=15_000)
        page.focus(f"{ACME} button")
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('ticker').value === 'ACME'", timeout=15_000)
        page.wait_for_function("document.getElementById('articles-title').innerText.includes('alert')",
                               timeout=15_000)
        assert page.evaluate("document.activeElement.closest('li').dataset.id") == "ACME-20240331T0000"
        # the item's whole box is the button: a click anywhere on it opens the alert
        box, inner = page.locator(ACME).bounding_box(), page.locator(f"{ACME} button").bounding_box()
        assert inner["width"] >= box["width"] - 5 and inner["height"] >= box["height"] - 1, (box, inner)
        assert errors == []


@pytest.mark.browser
def test_a_live_alert_for_an_older_bucket_is_listed_in_its_place(app, pipe) -> None:
    with dashboard(app, pipe) as (page, base, errors):
        page.add_init_script(RECORD_STREAMS)
        # older alerts: two sharing an hour (ties go by id), one more a day before
        store(pipe, ("OLDB", START + timedelta(days=20)), ("OLDD", START + timedelta(days=20)),
              ("OLDE", START + timedelta(days=19)))
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_function("document.querySelectorAll('#alerts li').length === 4", timeout=15_000)
        page.wait_for_selector("#live.on", timeout=15_000)
        # raised now for buckets before the newest listed: between the ties, before them, and the oldest
        late = store(pipe, ("OLDC", START + timedelta(days=20)), ("LATE", START + timedelta(days=25)),
                     ("OLDA", START + timedelta(days=20)), ("OLDF", START + timedelta(days=2)))
        api = app.test_client().get("/v1/alerts?limit=1000").get_json()["alerts"]
        by_id = {a["id"]: a for a in api}
        page.evaluate(SEND, [["alert", by_id[i]] for i in late])
        page.wait_for_function("document.querySelectorAll('#alerts li').length === 8", timeout=5_000)
        shown = page.eval_on_selector_all("#alerts li", SHOWN)
        assert shown == [a["id"] for a in api], shown  # as a reload would list them
        assert page.locator("#alerts li.new").count() == 4  # still marked as just arrived
        # an alert sent again (kind or severity changed) keeps its place, and so does its focus
        page.focus('#alerts li[data-id="OLDC-20240321T0000"] button')
        page.evaluate(SEND, [["alert", {**by_id["OLDC-20240321T0000"], "severity": "critical"}]])
        page.wait_for_selector('#alerts li.critical[data-id="OLDC-20240321T0000"]', timeout=5_000)
        assert page.eval_on_selector_all("#alerts li", SHOWN) == shown
        assert page.evaluate("document.activeElement.closest('li').dataset.id") == "OLDC-20240321T0000"
        page.reload()
        page.wait_for_function("document.querySelectorAll('#alerts li').length === 8", timeout=15_000)
        assert page.eval_on_selector_all("#alerts li", SHOWN) == shown
        assert errors == []


TICKERS_API = "/v1/tickers"


@pytest.mark.browser
def test_tickers_and_sources_ingested_later_join_the_filters(app, pipe) -> None:
    asked: list[str] = []
    with dashboard(app, pipe) as (page, base, errors):
        page.add_init_script(RECORD_STREAMS)
        page.clock.install()  # time flows; fast_forward below stands for an analyst's half minute
        page.on("request", lambda r: asked.append(r.url) if r.url.endswith(TICKERS_API) else None)
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#chart canvas", timeout=15_000)
        page.wait_for_selector("#live.on", timeout=15_000)
        assert len(asked) == 1
        options = "sel => Array.from(document.querySelectorAll(sel), o => o.value)"
        assert page.evaluate(options, "#source option") == ["", "wire0", "wire1"]
        page.select_option("#source", "wire1")
        (acme,) = app.test_client().get("/v1/alerts").get_json()["alerts"]
        # a known ticker's events ask nothing
        page.evaluate(SEND, [["alert", {**acme, "severity": "warn"}], ["update", {**acme, "article_count": 9}]])
        page.wait_for_timeout(1_000)
        assert len(asked) == 1
        # news of new tickers from a new source, then a burst of events naming them: one request
        rows = [{**r, "source": "latewire"} for r in history(["ZETA", "YODA"], START, 3)]
        pipe.score(pipe.ingest(rows).stored)
        events = [["alert", {**acme, "id": f"{t}-20240331T0000", "ticker": t}] for t in ("ZETA", "YODA", "ZETA")]
        page.evaluate(SEND, events + [["update", {**acme, "id": "YODA-20240331T0000", "ticker": "YODA"}]])
        page.wait_for_function("Array.from(document.querySelectorAll('#tickers option'), o => o.value)"
                               ".includes('ZETA')", timeout=10_000)
        assert set(page.evaluate(options, "#tickers option")) == {"ACME", "ZETA", "YODA"}
        assert page.evaluate(options, "#source option") == ["", "latewire", "wire0", "wire1"]
        assert page.input_value("#source") == "wire1"  # the analyst's pick stays
        page.wait_for_timeout(1_000)
        assert len(asked) == 2, asked
        # a source that only sends articles: picked up when a filter gets the focus, once it is 30 s old
        quiet = [{**r, "id": f"q-{r['id']}", "url": f"{r['url']}/q", "title": f"{r['title']} (wire recap)",
                  "source": "quietwire"} for r in history(["ACME"], START, 1)]
        assert len(pipe.ingest(quiet).stored) == 3
        page.focus("#source")
        page.focus("#ticker")
        page.wait_for_timeout(500)
        assert len(asked) == 2  # the list is fresh: nothing asked
        page.clock.fast_forward(31_000)
        page.focus("#source")
        page.wait_for_function("Array.from(document.querySelectorAll('#source option'), o => o.value)"
                               ".includes('quietwire')", timeout=5_000)
        assert page.evaluate(options, "#source option") == ["", "latewire", "quietwire", "wire0", "wire1"]
        page.focus("#ticker")
        page.focus("#source")
        page.wait_for_timeout(500)
        assert len(asked) == 3, asked
        assert errors == []
