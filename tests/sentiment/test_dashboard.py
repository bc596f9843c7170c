"""The analysts' dashboard in headless Chromium: alerts, a chart with markers, no HTML injection."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.sentiment.conftest import START, burst, day_of, history

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
            page.focus("#alerts li.critical button")  # an alert opens from the keyboard, not by mouse only
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
            # announced as acting: a real button, inside an item of the list (an li with role=button lost the list)
            assert page.locator("#alerts li.critical > button[type=button]").count() == 1
            assert page.get_attribute("#alerts li.critical", "role") is None
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
            page.focus('#alerts li[data-id="ACME-20240331T0000"] button')
            calm = [{**r, "title": f"$ACME hosts investor day #{i}", "body": "Routine."}
                    for i, r in enumerate(burst("ACME", day))]
            pipe.score(pipe.ingest(calm).to_score)  # the burst's articles corrected: its alert is retracted
            page.wait_for_selector("#alerts li", state="detached", timeout=15_000)
            assert page.is_visible("#no-alerts")
            # browser QA: the focused alert gone, focus fell to <body>; it goes to a neighbour or the list
            assert page.evaluate("document.activeElement.id") == "alerts"
            browser.close()
    finally:
        server.shutdown()


@pytest.mark.browser
def test_an_open_dashboard_shows_an_alerts_true_count_and_follows_its_updates(app, pipe) -> None:
    """Regression (analyst QA): the dashboard counted ``article_ids`` (at most 50), so a spike of
    87 read "50 articles"; and a stream that sent only new kinds or severities left an open
    dashboard on "21 articles (z=+7.7)" while the API said 26. The item now shows
    ``article_count`` and is replaced in place by the stream's ``update``, not listed twice."""
    item = '#alerts li[data-id="ACME-20240331T0000"]'
    with dashboard(app, pipe) as (page, base, errors):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector(item, timeout=15_000)
        assert page.inner_text(f"{item} .meta").endswith(" 8 articles")
        page.wait_for_selector("#live.on", timeout=15_000)
        page.focus(f"{item} button")
        more = day_of("ACME", START + timedelta(days=30), 52, first=100)  # the burst day: 60 articles
        pipe.score(pipe.ingest(more).stored)
        (a,) = app.test_client().get("/v1/alerts").get_json()["alerts"]
        assert (a["kind"], a["severity"], a["article_count"], len(a["article_ids"])) == (
            "sentiment_shift", "critical", 60, 50)  # the same alert: an update, its ids capped
        page.wait_for_function(f"document.querySelector({item!r} + ' .meta').innerText.endsWith(' 60 articles')",
                               timeout=15_000)
        assert page.locator("#alerts li").count() == 1  # replaced, not added
        assert "on 60 articles" in page.inner_text(item) and "on 8 articles" not in page.inner_text(item)
        assert page.evaluate("document.activeElement.closest('li').dataset.id") == "ACME-20240331T0000"  # focus stays
        assert errors == []


@pytest.mark.browser
def test_opening_an_alert_lists_the_articles_of_its_bucket(app, pipe) -> None:
    """Regression (cross-service QA): a click on an alert listed the whole window's articles
    (63 for a ticker whose alert stood on 8), never the ones behind the alert."""
    item = '#alerts li[data-id="ACME-20240331T0000"]'
    with dashboard(app, pipe) as (page, base, errors):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector(item, timeout=15_000)
        (a,) = app.test_client().get("/v1/alerts").get_json()["alerts"]
        page.wait_for_function("document.getElementById('articles-title').innerText.endsWith('window')",
                               timeout=15_000)
        window = page.locator("#articles tbody tr").count()
        page.click(item)
        page.wait_for_function("document.getElementById('articles-title').innerText.includes('alert')",
                               timeout=15_000)
        assert "8 articles" in page.inner_text("#articles-title")
        rows = page.locator("#articles tbody tr")
        assert rows.count() == a["article_count"] == 8 < window
        assert all(w.startswith("2024-03-31") for w in rows.locator("td.when").all_inner_texts())
        # browser QA: under a source filter (the burst is all wire0) the table said "No articles" below
        # "8 articles": an alert counts every source, and its table lists them all, saying so
        page.select_option("#source", "wire1")
        page.click(item)
        page.wait_for_function("document.getElementById('articles-title').innerText.endsWith('(all sources)')",
                               timeout=15_000)
        assert rows.count() == 8 and set(rows.locator("td.source").all_inner_texts()) == {"wire0"}
        assert errors == []


@contextlib.contextmanager
def dashboard(app: Any, pipe: Any, **context: Any) -> Iterator[tuple[Any, str, list[str]]]:
    """ACME's calm month and its burst day (2024-03-31, a critical alert) scored, ``app`` on a real
    server and a fresh headless Chromium page (``context``: viewport, timezone_id...):
    ``(page, base URL, uncaught page errors)``. The page is not navigated yet."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    pipe.score(pipe.ingest(history(["ACME"], START, 30) + burst("ACME", START + timedelta(days=30))).stored)
    with served_page(app, **context) as opened:
        yield opened


@contextlib.contextmanager
def served_page(app: Any, **context: Any) -> Iterator[tuple[Any, str, list[str]]]:
    """``app`` on a real server and a fresh headless Chromium page: ``(page, base URL, page errors)``."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **context}).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                yield page, f"http://127.0.0.1:{server.port}", errors
            finally:
                browser.close()
    finally:
        server.shutdown()


def hover_last_bucket(page: Any) -> dict[str, float]:
    """The mouse at the chart's right edge (uPlot's cursor takes the newest bucket): the plot area's box."""
    page.wait_for_selector("#chart .u-over", timeout=15_000)
    over = page.locator("#chart .u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] - 2, over["y"] + over["height"] / 2)
    return over


# The WCAG contrast ratio of an element's text and the first opaque background behind it.
CONTRAST_JS = """(sel) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  let e = document.querySelector(sel), bg = null;
  const fg = rgb(getComputedStyle(e).color);
  for (; !bg && e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c[3] !== 0) bg = c; }
  const [a, b] = [lum(fg), lum(bg || [255, 255, 255])].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05); }"""


@pytest.mark.browser
def test_chart_time_is_utc_in_any_browser_timezone(app, pipe) -> None:
    """Regression (browser QA): the chart says "time (UTC)" but uPlot showed the browser's local
    time: in New York the 2024-03-31 00:00 UTC bucket read 2024-03-30 8:00pm."""
    with dashboard(app, pipe, timezone_id="America/New_York") as (page, base, _):
        page.goto(f"{base}/?ticker=ACME")
        hover_last_bucket(page)
        legend = page.locator(".u-legend .u-series").first
        assert legend.inner_text().startswith("time (UTC)")
        assert legend.locator(".u-value").inner_text().startswith("2024-03-31"), legend.inner_text()


@pytest.mark.browser
def test_newest_bucket_bar_is_drawn_whole(app, pipe) -> None:
    """Regression (browser QA): the newest bucket sat on the plot's right edge, its volume bar
    cut in half; the x scale now has half a bucket of room at each end."""
    points = app.test_client().get("/v1/tickers/ACME/sentiment").get_json()["points"]
    with dashboard(app, pipe) as (page, base, _):
        page.goto(f"{base}/?ticker=ACME")
        over = hover_last_bucket(page)
        pt = page.locator(".u-cursor-pt").first.bounding_box()  # the volume series' point: its bar's centre
        half_bar = 0.3 * over["width"] / (len(points) - 1)  # bars are 60% of a bucket wide (at most)
        assert over["x"] + over["width"] - (pt["x"] + pt["width"] / 2) >= half_bar, (over, pt)


@pytest.mark.browser
def test_article_titles_keep_room_in_a_narrow_window(app, pipe) -> None:
    """Regression (browser QA): between ~800 and 1150 px wide the titles were squeezed into a
    ~47px column beside the unbreakable times, scores and model names."""
    with dashboard(app, pipe, viewport={"width": 1000, "height": 800}) as (page, base, _):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#articles td.title", timeout=15_000)
        widths = page.eval_on_selector_all("#articles td.title", "tds => tds.map(td => td.clientWidth)")
        assert min(widths) >= 12 * 16, widths
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")  # the table scrolls in its card


@pytest.mark.browser
def test_a_failed_alert_list_says_so_and_the_chart_still_loads(app, pipe) -> None:
    """Regression (browser QA): a 503 from /v1/alerts read "No alerts yet.", no ticker was loaded
    and the page threw an uncaught promise error."""
    with dashboard(app, pipe) as (page, base, errors):
        page.route("**/v1/alerts?limit=100", lambda route: route.fulfill(
            status=503, json={"error": {"code": "unavailable", "message": "database unavailable"}}))
        page.goto(f"{base}/")
        page.wait_for_selector("#chart canvas", timeout=15_000)  # the first ticker's
        assert page.input_value("#ticker") == "ACME"
        assert page.inner_text("#alerts-panel [role=alert]") == "Could not load alerts: database unavailable"
        assert not page.is_visible("#no-alerts") and errors == []


@pytest.mark.browser
def test_dashboard_text_contrast(app, pipe) -> None:
    """Regression (browser QA): the "live" badge was 3.32:1, "offline" 2.88:1, the grey notes
    4.48:1 and positive labels 3.32:1; WCAG AA needs 4.5:1."""
    with dashboard(app, pipe) as (page, base, _):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#live.on", timeout=15_000)
        page.wait_for_selector("#articles td.positive", timeout=15_000)
        ratios = {sel: page.evaluate(CONTRAST_JS, sel) for sel in ("#live", "#chart-note", "#articles td.positive")}
        page.evaluate("document.getElementById('live').className = 'live off'")
        ratios["offline"] = page.evaluate(CONTRAST_JS, "#live")
        assert all(r >= 4.5 for r in ratios.values()), ratios


@pytest.mark.browser
def test_dashboard_fits_a_phone_and_follows_resizes(app, pipe) -> None:
    """Regression (browser QA): the chart was at least 400px wide and sized once, so a phone
    scrolled the page sideways and a narrowed window cut the chart off."""
    with dashboard(app, pipe, viewport={"width": 360, "height": 740}) as (page, base, _):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#articles td.title", timeout=15_000)
        fits = """() => document.documentElement.scrollWidth <= innerWidth &&
            document.querySelector('#chart .uplot').getBoundingClientRect().right <=
            document.getElementById('chart').getBoundingClientRect().right + 1"""
        assert page.evaluate(fits)
        wrap = page.locator("#articles-wrap")  # the table scrolls inside its card, its columns all there
        assert wrap.evaluate("w => w.scrollWidth > w.clientWidth && getComputedStyle(w).overflowX === 'auto'")
        for width in (1280, 900):
            page.set_viewport_size({"width": width, "height": 800})
            page.wait_for_function(f"""() => Math.abs(document.querySelector('#chart .uplot').offsetWidth -
                document.getElementById('chart').clientWidth) <= 2 && ({fits})()""", timeout=5_000)


@pytest.mark.browser
def test_chart_buckets_are_picked_with_the_keyboard(app, pipe) -> None:
    """Regression (browser QA): a day's articles could only be listed by clicking on the chart."""
    with dashboard(app, pipe) as (page, base, _):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#chart canvas", timeout=15_000)
        page.focus("#chart")
        assert page.evaluate("document.activeElement.id") == "chart"
        assert page.get_attribute("#chart", "role") == "slider" and page.get_attribute("#chart", "tabindex") == "0"
        page.keyboard.press("End")
        assert page.get_attribute("#chart", "aria-valuetext").startswith("2024-03-31 00:00 (8 articles")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('articles-title').innerText.includes('2024-03-30 00:00')",
                               timeout=15_000)
        assert len(page.locator("#articles tbody tr").all()) == 3  # that day's calm news


@pytest.mark.browser
def test_a_bad_ticker_or_an_html_error_page_reads_short(app, pipe) -> None:
    """Regression (browser QA): a ticker with "/" reached another URL and the chart note showed
    Flask's 404 text; an HTML error page showed a JSON parser's error."""
    with dashboard(app, pipe) as (page, base, _):
        page.route("**/v1/tickers/HTML/sentiment*", lambda route: route.fulfill(
            status=502, content_type="text/html", body="<html><h1>502 Bad Gateway</h1></html>"))
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#chart canvas", timeout=15_000)
        for ticker, note in (("bad ticker!!/../x", "Could not load BAD TICKER!!/../X: not a ticker symbol"),
                             ("HTML", "Could not load HTML: HTTP 502")):
            page.fill("#ticker", ticker)
            page.click("#filters button[type=submit]")
            page.wait_for_function(f"document.getElementById('chart-note').innerText.startsWith({note!r})",
                                   timeout=15_000)
            text = page.inner_text("#chart-note")
            assert "URL" not in text and "JSON" not in text and len(text) < 100, text


@pytest.mark.browser
def test_a_long_source_is_cut_between_characters_not_inside_an_emoji(app, pipe) -> None:
    """i18n QA: the Source column cut at 39 UTF-16 units, leaving half an emoji (a "\\ufffd") before
    the "…"; a ZWJ sequence (👩🏽‍💻, four code points) is one character too."""
    coder = "\U0001f469\U0001f3fd\u200d\U0001f4bb"
    source = "w" * 38 + coder * 3
    row = {"id": "emoji-src", "source": source, "published_at": (START + timedelta(days=30, hours=20)).isoformat(),
           "title": "$ACME emoji source probe"}
    pipe.score(pipe.ingest([row]).stored)
    with dashboard(app, pipe) as (page, base, errors):
        page.goto(f"{base}/?ticker=ACME")
        page.wait_for_selector("#articles td.source", timeout=15_000)
        cell = page.locator("#articles td.source").first  # the newest row
        assert cell.get_attribute("title") == source
        assert cell.inner_text() == "w" * 38 + coder + "\u2026" and errors == []
