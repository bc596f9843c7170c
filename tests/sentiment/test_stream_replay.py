"""The live alert stream over real HTTP: a reconnect with Last-Event-ID replays what it missed."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.sentiment.alerts import list_alerts
from tests.sentiment.conftest import START, burst, day_of, history, mixed_day

BURST_DAY = START + timedelta(days=30)
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def server(app) -> Iterator[str]:
    """The app on a real threaded HTTP server (what EventSource connects to)."""
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.port}"
    srv.shutdown()


class Stream:
    """An SSE client on a TCP socket (HTTP/1.0, so the body is the raw event stream, and
    closing is immediate): parses blocks into dicts (``id``, ``event``, ``data``) in a queue."""

    def __init__(self, base: str, last_event_id: str | None = None, max_s: int = 20,
                 forwarded_for: str | None = None) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        extra += f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
        self.sock.sendall(f"GET /v1/alerts/stream?max_s={max_s} HTTP/1.0\r\nHost: {host}\r\n"
                          f"Accept: text/event-stream\r\n{extra}\r\n".encode())
        self.blocks: queue.Queue[dict[str, str]] = queue.Queue()
        self.status = ""
        self.last_id = ""  # the raw id: of the last event taken, what EventSource would send back
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        block: dict[str, str] = {}
        try:
            with self.sock.makefile("r", encoding="utf-8", newline="\n") as fh:
                self.status = fh.readline().strip()
                while fh.readline().strip():  # the response headers
                    pass
                for raw in fh:
                    line = raw.rstrip("\r\n")
                    if line == "":
                        self.blocks.put(block)
                        block = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(":")
                        block[key] = value[1:] if value.startswith(" ") else value
        except (OSError, ValueError):  # closed by the test
            pass

    def next(self, timeout: float = 10) -> dict[str, str]:
        return self.blocks.get(timeout=timeout)

    def alerts(self, n: int, timeout: float = 10) -> list[dict]:
        out: list[dict] = []
        while len(out) < n:
            b = self.next(timeout)
            if b.get("event") == "alert":
                assert b["id"].rpartition("@")[0] == json.loads(b["data"])["id"]  # alert id @ stream position
                out.append(json.loads(b["data"]))
                self.last_id = b["id"]
        return out

    def events(self, n: int, timeout: float = 10, kinds: tuple[str, ...] = ("alert", "retract")
               ) -> list[tuple[str, str, dict]]:
        """The next ``n`` events of ``kinds`` as ``(event, id, data)``."""
        out: list[tuple[str, str, dict]] = []
        while len(out) < n:
            b = self.next(timeout)
            if b.get("event") in kinds:
                out.append((b["event"], b["id"].rpartition("@")[0], json.loads(b["data"])))
                self.last_id = b["id"]
        return out

    def quiet(self, seconds: float, kinds: tuple[str, ...] = ("alert",)) -> bool:
        """True when no event of ``kinds`` arrives within ``seconds``."""
        try:
            while True:
                if self.next(seconds).get("event") in kinds:
                    return False
        except queue.Empty:
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _raise(pipe, ticker: str, day: int = 0) -> None:
    pipe.score(pipe.ingest([{**r, "id": f"{r['id']}-{day}"} for r in burst(ticker, BURST_DAY + timedelta(days=day))])
               .stored)


def test_reconnect_with_last_event_id_replays_missed_alerts_then_goes_live(server, pipe) -> None:
    pipe.score(pipe.ingest(history(["ACME", "BOLT", "CRUX", "DUNE"], START, 30)).stored)
    first = Stream(server)
    head = first.next()
    assert first.status.endswith("200 OK")
    assert head["retry"] == "2000" and head["id"] == "0"  # no alert yet: the stream's position is 0
    _raise(pipe, "ACME")
    (a,) = first.alerts(1)
    assert a["ticker"] == "ACME"
    first.close()  # the dashboard loses its connection ...
    _raise(pipe, "BOLT")  # ... while two alerts are raised
    _raise(pipe, "CRUX")

    again = Stream(server, last_event_id=first.last_id)  # what EventSource sends when it reconnects
    again.next()
    missed = again.alerts(2)
    assert [x["ticker"] for x in missed] == ["BOLT", "CRUX"]  # replayed in the order raised, ACME not again
    _raise(pipe, "DUNE")
    (d,) = again.alerts(1)
    assert d["ticker"] == "DUNE"  # then live
    assert again.quiet(1.5)  # nothing twice
    again.close()

    fresh = Stream(server)  # a new client is live from now: no replay, but knows where it joined
    assert fresh.next()["id"] == again.last_id  # DUNE's alert id at its stream position
    assert fresh.quiet(1.5)
    fresh.close()
    from_start = Stream(server, last_event_id="0")  # joined before any alert: replays the last hour
    from_start.next()
    assert [x["ticker"] for x in from_start.alerts(4)] == ["ACME", "BOLT", "CRUX", "DUNE"]
    from_start.close()


def test_an_alert_that_changes_kind_as_its_bucket_fills_is_sent_again(server, pipe) -> None:
    """Regression: a bucket judged on its first articles raised a crash alert that stood for
    good; now it is judged again as articles arrive, and a change of kind reaches the stream
    under the same id (the dashboard replaces the entry)."""
    pipe.score(pipe.ingest(history(["ACME"], START, 30)).stored)
    s = Stream(server)
    s.next()
    rows = mixed_day("ACME", BURST_DAY)
    for row in rows[:3]:  # live, one article at a time: the morning's bad news
        pipe.score(pipe.ingest([row]).stored)
    (crash,) = s.alerts(1)
    for row in rows[3:]:  # the afternoon's good news
        pipe.score(pipe.ingest([row]).stored)
    (spike,) = s.alerts(1)
    assert (crash["id"], crash["kind"]) == ("ACME-20240331T0000", "sentiment_shift")
    assert (spike["id"], spike["kind"], len(spike["article_ids"])) == ("ACME-20240331T0000", "volume_spike", 10)
    assert s.quiet(1.5)
    s.close()


ALL = ("alert", "update", "retract")


def test_an_alert_whose_numbers_change_is_sent_as_an_update_live_and_on_replay(server, pipe) -> None:
    """Regression (analyst QA): the stream sent an alert again only when its kind or severity
    changed, so an open dashboard kept "21 articles (z=+7.7)" while the API said 26 (z=+10.1).
    A change of its message or count is now ``event: update`` (same id); a client that missed
    the raise gets the alert as it is now, as ``event: alert``, once."""
    pipe.score(pipe.ingest(history(["ACME"], START, 30)).stored)
    s = Stream(server)
    s.next()
    pipe.score(pipe.ingest(day_of("ACME", BURST_DAY, 8)).stored)
    (a,) = s.alerts(1)
    saw_raise = s.last_id
    assert (a["kind"], a["severity"], a["article_count"]) == ("sentiment_shift", "critical", 8)
    pipe.score(pipe.ingest(day_of("ACME", BURST_DAY, 4, first=8)).stored)  # the same alert, 12 articles
    ((event, aid, update),) = s.events(1, kinds=ALL)
    assert (event, aid, update["kind"], update["severity"], update["article_count"]) == (
        "update", a["id"], "sentiment_shift", "critical", 12)
    assert "on 12 articles" in update["message"] and "on 8 articles" in a["message"]
    assert s.quiet(1.5, kinds=ALL)  # once
    s.close()
    seen = Stream(server, last_event_id=saw_raise)  # reconnects having seen the raise: the update
    seen.next()
    assert [(e[0], e[2]["article_count"]) for e in seen.events(1, kinds=ALL)] == [("update", 12)]
    seen.close()
    missed = Stream(server, last_event_id="0")  # joined before the raise: the alert as it is now
    missed.next()
    assert [(e[0], e[2]["article_count"]) for e in missed.events(1, kinds=ALL)] == [("alert", 12)]
    assert missed.quiet(1.5, kinds=ALL)
    missed.close()


def test_replay_is_bounded(server, pipe, monkeypatch) -> None:
    from services.sentiment import api

    monkeypatch.setattr(api, "REPLAY_MAX", 2)
    pipe.score(pipe.ingest(history(["ACME", "BOLT", "CRUX"], START, 30)).stored)
    for t in ("ACME", "BOLT", "CRUX"):
        _raise(pipe, t)
    s = Stream(server, last_event_id="unknown-id")
    s.next()
    assert [x["ticker"] for x in s.alerts(2)] == ["BOLT", "CRUX"]  # the newest REPLAY_MAX only
    assert s.quiet(1.5)
    s.close()
    monkeypatch.setattr(api, "REPLAY_S", 0)  # none raised within the window: nothing replayed
    s = Stream(server, last_event_id="unknown-id")
    s.next()
    assert s.quiet(1.5)
    s.close()


def _calm(ticker: str, day: int = 0) -> list[dict]:
    """The burst's articles corrected to routine news: re-evaluation retracts its alert."""
    return [{**r, "id": f"{r['id']}-{day}", "title": f"${ticker} hosts investor day #{i}", "body": "Routine."}
            for i, r in enumerate(burst(ticker, BURST_DAY + timedelta(days=day)))]


def test_a_retracted_alert_is_sent_as_retract_live_and_on_replay(server, pipe) -> None:
    """Regression (sentiment QA): an alert removed by re-evaluation stayed on an open dashboard."""
    pipe.score(pipe.ingest(history(["ACME", "BOLT"], START, 30)).stored)
    s = Stream(server)
    s.next()
    _raise(pipe, "ACME")
    (a,) = s.alerts(1)
    pipe.score(pipe.ingest(_calm("ACME")).to_score)  # its articles corrected: no longer a burst
    assert s.events(1) == [("retract", a["id"], {"id": a["id"]})]
    _raise(pipe, "BOLT")
    (b,) = s.alerts(1)  # the stream goes on
    s.close()
    assert [x["id"] for x in list_alerts(pipe.db)] == [b["id"]]

    replay = Stream(server, last_event_id="0")  # joined before both: the retraction is replayed, not the alert
    replay.next()
    assert [e[:2] for e in replay.events(2)] == [("retract", a["id"]), ("alert", b["id"])]
    replay.close()
    after = Stream(server, last_event_id=a["id"])  # resumes after the retraction
    after.next()
    assert [x["id"] for x in after.alerts(1)] == [b["id"]] and after.quiet(1.5)
    after.close()
    pipe.score(pipe.ingest(burst("ACME", BURST_DAY)).to_score)  # raised again: the same id comes back
    again = Stream(server, last_event_id=b["id"])
    assert again.events(1)[0][:2] == ("alert", a["id"])
    again.close()
    assert [x["id"] for x in list_alerts(pipe.db)] == [a["id"], b["id"]]


def test_reconnect_resumes_where_the_client_was_even_if_its_last_alert_changed_since(server, pipe) -> None:
    """Regression (left open in session 17): the last alert a client saw was retracted after it
    disconnected; a reconnect resumed from the retraction and skipped an alert raised before it."""
    pipe.score(pipe.ingest(history(["ACME", "BOLT", "CRUX"], START, 30)).stored)
    s = Stream(server)
    s.next()
    _raise(pipe, "ACME")
    (a,) = s.alerts(1)
    seen = s.last_id
    s.close()
    _raise(pipe, "BOLT")  # missed ...
    pipe.score(pipe.ingest(_calm("ACME")).to_score)  # ... and then the alert it saw last is retracted
    again = Stream(server, last_event_id=seen)
    again.next()
    assert [e[:2] for e in again.events(2)] == [("alert", f"BOLT-{BURST_DAY:%Y%m%dT%H%M}"), ("retract", a["id"])]
    again.close()
    ahead = Stream(server, last_event_id=f"{a['id']}@{10**17}")  # a position past now: live, not deaf
    ahead.next()
    _raise(pipe, "CRUX")
    assert ahead.alerts(1)[0]["ticker"] == "CRUX"
    ahead.close()


@pytest.mark.browser
def test_browser_eventsource_gets_alerts_raised_while_it_reconnects(server, pipe) -> None:
    """Chromium's own EventSource: the stream ends (max_s=1), it reconnects after retry: 2000 ms
    with Last-Event-ID, and alerts raised in that gap still arrive, each once."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    pipe.score(pipe.ingest(history(["ACME", "BOLT", "CRUX"], START, 30)).stored)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{server}/healthz")
        page.evaluate("""() => { window.got = []; window.errors = 0;
            const es = new EventSource('/v1/alerts/stream?max_s=1');
            es.onerror = () => { window.errors += 1; };
            es.addEventListener('alert', (ev) => window.got.push(JSON.parse(ev.data).ticker)); }""")
        for i, t in enumerate(("ACME", "BOLT", "CRUX")):
            page.wait_for_function(f"window.errors > {i}", timeout=10_000)  # the stream just ended: a gap
            _raise(pipe, t)
        page.wait_for_function("window.got.length >= 3", timeout=15_000)
        page.wait_for_timeout(3500)  # another reconnect: nothing comes twice
        assert page.evaluate("window.got") == ["ACME", "BOLT", "CRUX"]
        browser.close()


def test_open_streams_never_starve_requests_and_one_too_many_is_a_503(migrated, redis_url, stub_scorer,
                                                                     monkeypatch) -> None:
    """Eight dashboards held waitress's eight request threads: /healthz and POST /v1/news waited
    for a stream to end (58 s). Streams now have threads of their own, as many as the slots."""
    import time
    import urllib.error
    import urllib.request

    from services.sentiment import api, create_app
    from shared.up import waitress_options
    from tests.waitress_server import serving

    monkeypatch.setattr(api, "KEEPALIVE_S", 1)  # a closed stream is noticed on a write: within seconds

    app = create_app(migrated.model_copy(update={"sentiment_alert_streams": 2}), scorer=stub_scorer)
    options = waitress_options("sentiment", app)
    assert options["threads"] == 8 + 2
    with serving(app, **{**options, "threads": 3}) as server:  # 1 request thread
        base = f"http://127.0.0.1:{server.effective_port}"
        try:
            streams = [Stream(base, max_s=60) for _ in range(2)]
            for s in streams:
                assert s.next()  # the `connected` block: both hold a thread and a slot
            started = time.monotonic()
            with urllib.request.urlopen(f"{base}/healthz", timeout=10) as resp:
                assert resp.status == 200 and time.monotonic() - started < 2
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/v1/alerts/stream?max_s=5", timeout=10)
            assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "15"
            assert json.loads(refused.value.read())["error"]["code"] == "too_many_streams"
            streams[0].close()  # a client leaves: the server learns it when keep-alive writes fail
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/v1/alerts/stream?max_s=1", timeout=10) as resp:
                        assert resp.status == 200 and b": connected" in resp.read()
                    break
                except urllib.error.HTTPError as exc:
                    assert exc.code == 503 and time.monotonic() < deadline, "the closed stream's slot never came back"
                    time.sleep(0.5)
            assert time.monotonic() - started < 25  # within a few keep-alives, not at the stream's max_s (60)
        finally:
            for s in streams:
                s.close()


def test_one_address_holds_at_most_its_share_of_the_stream_slots(migrated, stub_scorer, monkeypatch) -> None:
    """One client could open every stream slot and turn every other dashboard to polling: an
    address now holds at most ``sentiment_alert_streams_per_address`` (then a 429), while
    other addresses still get the rest, and a closed stream gives its address's slot back.
    The clients come through a declared proxy (``trusted_proxies``), which names each one."""
    import time

    from services.sentiment import api, create_app
    from shared.up import waitress_options
    from tests.waitress_server import serving

    monkeypatch.setattr(api, "KEEPALIVE_S", 1)  # a closed stream is noticed on a write: within seconds

    app = create_app(migrated.model_copy(update={"sentiment_alert_streams": 3, "trusted_proxies": 1,
                                                "sentiment_alert_streams_per_address": 2}), scorer=stub_scorer)
    with serving(app, **waitress_options("sentiment", app)) as server:
        base = f"http://127.0.0.1:{server.effective_port}"
        opened: list[Stream] = []

        def status_from(address: str) -> str:
            """The status line a new stream from ``address`` gets (an open one stays open)."""
            opened.append(Stream(base, max_s=60, forwarded_for=address))
            deadline = time.monotonic() + 10
            while not opened[-1].status and time.monotonic() < deadline:
                time.sleep(0.05)
            return opened[-1].status.split(" ", 2)[1]

        try:
            assert [status_from("10.0.0.1"), status_from("10.0.0.1")] == ["200", "200"]
            with pytest.raises(urllib.error.HTTPError) as refused:  # its share is taken
                urllib.request.urlopen(urllib.request.Request(f"{base}/v1/alerts/stream?max_s=1",
                                                              headers={"X-Forwarded-For": "10.0.0.1"}), timeout=10)
            assert refused.value.code == 429 and refused.value.headers["Retry-After"] == "15"
            error = json.loads(refused.value.read())["error"]
            assert error["code"] == "too_many_streams"
            assert "FINPULSE_SENTIMENT_ALERT_STREAMS_PER_ADDRESS" in error["message"]
            assert status_from("10.0.0.2") == "200"  # another analyst still gets the last slot
            assert status_from("10.0.0.3") == "503"  # every slot taken: the process cap, as before
            opened[0].close()  # the first address's stream ends: the server notices on a keep-alive write
            deadline = time.monotonic() + 30
            while (status := status_from("10.0.0.1")) != "200":
                assert status == "429" and time.monotonic() < deadline, "the closed stream's slot never came back"
                time.sleep(0.5)
        finally:
            for s in opened:
                s.close()
