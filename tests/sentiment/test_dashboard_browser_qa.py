"""Browser QA of the analysts' dashboard in headless Chromium: a ticker typed in another spelling,
an article table that fails or answers late, a store without news, what a screen reader hears."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from tests.sentiment.conftest import START, burst, history
from tests.sentiment.test_dashboard import dashboard, served_page

UNAVAILABLE = {"error": {"code": "unavailable", "message": "database unavailable"}}
ALERT = '#alerts li[data-id="ACME-20240331T0000"]'


def text_of(sel: str, *, includes: str) -> str:
    """A wait_for_function expression: the element's text holds ``includes``."""
    return f"(document.querySelector({sel!r}) || {{}}).innerText?.includes({includes!r})"


@pytest.mark.browser
def test_a_ticker_typed_as_brk_b_is_shown_as_brk_dot_b_and_follows_its_live_alerts(app, pipe) -> None:
    """Regression (browser QA): "brk-b" charted BRK.B's series under the title "BRK-B", and the
    dashboard kept "BRK-B" as the open ticker, so a live alert for BRK.B (as alerts and the
    stream name it) never redrew the open chart: it said "alerts 0" under a critical alert."""
    pipe.score(pipe.ingest(history(["BRK.B"], START, 30)).stored)
    with dashboard(app, pipe) as (page, base, errors):
        page.goto(f"{base}/?ticker=brk-b")
        page.wait_for_selector("#chart canvas", timeout=15_000)
        page.wait_for_function(text_of("#chart-note", includes="alerts 0"), timeout=15_000)
        assert page.input_value("#ticker") == "BRK.B"
        assert page.inner_text("#chart-title").startswith("BRK.B ·")
        assert page.evaluate("location.search") == "?ticker=BRK.B"
        page.wait_for_selector("#live.on", timeout=15_000)
        pipe.score(pipe.ingest(burst("BRK.B", START + timedelta(days=30))).stored)
        page.wait_for_selector('#alerts li[data-id="BRK.B-20240331T0000"]', timeout=15_000)
        page.wait_for_function(text_of("#chart-note", includes="alerts 1"), timeout=15_000)
        assert errors == []


@pytest.mark.browser
def test_articles_that_fail_to_load_say_so_instead_of_leaving_the_windows_rows(app, pipe) -> None:
    """Regression (browser QA): with the articles request failing, opening an alert (or picking a
    bucket) left the window's 63 rows under "Articles · ACME · window" with no word of the
    failure, and an uncaught promise error; an analyst read them as the alert's articles."""
    with dashboard(app, pipe) as (page, base, errors):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_function(text_of("#articles-title", includes="window"), timeout=15_000)
        assert page.locator("#articles tbody tr").count() > 8
        page.route("**/v1/tickers/ACME/articles*", lambda route: route.fulfill(status=503, json=UNAVAILABLE))
        page.click(ALERT)
        # the alert reloads the chart (its window's articles fail first), then asks for the bucket's
        page.wait_for_function(text_of("#articles-title", includes="alert 2024-03-31 00:00"), timeout=15_000)
        page.wait_for_function(text_of("#articles tbody", includes="Could not load the articles"), timeout=15_000)
        assert page.inner_text("#articles tbody") == "Could not load the articles: database unavailable"
        assert page.locator("#chart canvas").count() == 1  # the chart it did load stays
        page.focus("#chart")
        page.keyboard.press("Home")
        page.keyboard.press("Enter")  # a bucket picked from the keyboard: the same
        page.wait_for_function(text_of("#articles-title", includes="2024-03-0"), timeout=15_000)
        assert page.inner_text("#articles tbody").startswith("Could not load the articles")
        assert page.locator("#articles tbody tr").count() == 1
        assert errors == []


@pytest.mark.browser
def test_a_late_answer_for_the_ticker_shown_before_does_not_fill_the_table(app, pipe) -> None:
    """Regression (browser QA): a bucket's articles that answered after the analyst had moved to
    another ticker filled the table, titled with the new ticker: "Articles · ZZZZ · 2024-03-31"
    over ACME's headlines."""
    held: list[Any] = []
    with dashboard(app, pipe) as (page, base, errors):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_function(text_of("#articles-title", includes="window"), timeout=15_000)
        # answered only when released below
        page.route("**/v1/tickers/ACME/articles*", lambda route: held.append(route))
        page.focus("#chart")
        page.keyboard.press("End")
        page.keyboard.press("Enter")
        for _ in range(50):
            if held:
                break
            page.wait_for_timeout(100)
        assert held, "the bucket's articles were never asked for"
        page.fill("#ticker", "ZZZZ")
        page.click("#filters button[type=submit]")
        page.wait_for_function(text_of("#articles-title", includes="ZZZZ · window"), timeout=15_000)
        held[0].continue_()
        page.wait_for_timeout(1_500)
        assert page.inner_text("#articles-title") == "Articles · ZZZZ · window"
        assert "$ACME" not in page.inner_text("#articles tbody")
        assert errors == []


@pytest.mark.browser
def test_a_dashboard_without_news_says_so(app) -> None:
    """Regression (browser QA): on a fresh install the chart card was a blank 320px box over a
    table of headers alone, with nothing saying there was no news yet or how to add some; a
    ticker list that failed to load looked the same."""
    with served_page(app) as (page, base, errors):
        page.goto(f"{base}/")
        page.wait_for_function(text_of("#chart-note", includes="No news stored yet"), timeout=15_000)
        assert "POST /v1/news" in page.inner_text("#chart-note")
        assert page.inner_text("#articles tbody") == "No articles yet."
        assert page.is_visible("#no-alerts")
        page.route("**/v1/tickers", lambda route: route.fulfill(status=503, json=UNAVAILABLE))
        page.reload()
        page.wait_for_function(text_of("#chart-note", includes="Could not load the list of tickers"), timeout=15_000)
        assert errors == []


@pytest.mark.browser
def test_an_alert_is_named_with_spaces_and_the_chart_slider_takes_up_and_down(app, pipe) -> None:
    """Regression (browser QA): a screen reader named an alert "ACMEsentiment shift · critical ..."
    (two spans, no space between them); and the chart, a slider, ignored ↑ and ↓, the keys a
    screen reader tells its user to move a slider with."""
    with dashboard(app, pipe) as (page, base, errors):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector(ALERT, timeout=15_000)
        assert page.get_by_role("button", name=re.compile(r"^ACME sentiment shift · critical ")).count() == 1
        page.wait_for_selector("#chart canvas", timeout=15_000)
        page.focus("#chart")
        page.keyboard.press("End")
        page.keyboard.press("ArrowDown")
        assert page.get_attribute("#chart", "aria-valuetext").startswith("2024-03-30 00:00")
        page.keyboard.press("ArrowUp")
        assert page.get_attribute("#chart", "aria-valuetext").startswith("2024-03-31 00:00")
        assert errors == []
