"""HTTP views: parse -> validate -> one pipeline call -> JSON (contract in ../shared/CONTRACT.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify, render_template, request, stream_with_context
from pydantic import BaseModel, Field, RootModel, field_validator

from services.sentiment import queries
from services.sentiment.aggregate import BUCKETS, parse_duration, ticker_series
from services.sentiment.alerts import MAX_ARTICLE_IDS, list_alerts
from services.sentiment.ingest import Rejected, parse_time
from services.sentiment.linking import ticker_symbol
from services.sentiment.pipeline import Pipeline
from shared.auth import require_role
from shared.errors import BadInput
from shared.monitoring import record_predictions
from shared.text import is_blank
from shared.web import (
    Query,
    documented,
    error_response,
    int_query,
    json_body,
    query_params,
    require_json,
    settings_of,
    why_not_json,
)

bp = Blueprint("sentiment", __name__, static_folder="static", template_folder="templates",
               static_url_path="/static/sentiment")
MAX_SCORE_TEXTS = 256
MAX_NEWS_ROWS = 5000
REPLAY_MAX = 500  # alerts a reconnecting stream client is sent at most ...
REPLAY_S = 3600  # ... and none raised longer ago than this
NO_ALERT_ID = "0"  # the stream's id before any alert exists: resuming from it replays the window
KEEPALIVE_S = 5  # a comment line this often: the server only learns a client left when it writes
STREAM_RETRY_S = 15  # Retry-After of a stream refused because its address's or every slot is taken
DEFAULT_WINDOW = "30d"  # a ticker series' span when neither window nor start is given
TIME_ARG = ("string", "ISO-8601 time (event time, UTC if no offset)")  # a query argument
LIMIT = int_query("rows", 1, 1000, 100)
MAX_S = int_query("seconds the stream stays open", 1, 3600, 60)


def pipeline() -> Pipeline:
    return current_app.extensions["sentiment"]


class ScoreRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=MAX_SCORE_TEXTS)

    @field_validator("texts")
    @classmethod
    def _non_empty(cls, texts: list[str]) -> list[str]:
        for i, t in enumerate(texts):
            if is_blank(t):  # "\u200b" alone passed str.strip() (shared rule: chat, recommendations)
                raise ValueError(f"texts[{i}] is empty")
        return texts


def _ticker(value: str) -> str:
    """``$brk-b`` -> ``BRK.B``, as linking stores it (:func:`ticker_symbol`)."""
    t = ticker_symbol(value)
    if t is None:
        raise BadInput(f"invalid ticker {value[:20]!r}")
    return t


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw, name)
    except Rejected as exc:  # the reason names the argument: unparseable, bad offset or out of range
        raise BadInput(f"{exc}; {name} must be a time: ISO-8601, RFC 2822 or epoch seconds/milliseconds") from None


def _cursor_arg(name: str) -> tuple[datetime, str] | None:
    """The alerts page position a cursor argument names (:func:`queries.cursor_position`)."""
    raw = request.args.get(name)
    if not raw or not raw.strip():  # as an empty time argument: left out
        return None
    position = queries.cursor_position(pipeline().db, raw.strip())
    if position is None:
        raise BadInput(f"{name} must be the `next` of an earlier page or an alert id, got {raw[:40]!r}")
    return position


@bp.post("/v1/score")
@documented(needs=("model",), errors={
    400: "validation_error: a text over FINPULSE_MAX_TEXT_CHARS, or one the model cannot score",
    503: "unavailable: no inference worker answered in time"})
@require_role("feed", only_if="feed_key_required")
@json_body(ScoreRequest)
def score(body: ScoreRequest) -> Any:
    """Score texts with the production sentiment model."""
    limit = settings_of().max_text_chars
    for i, t in enumerate(body.texts):
        if len(t) > limit:
            raise BadInput(f"texts[{i}] has {len(t)} characters; the limit is {limit}", code="validation_error")
    settings = settings_of()
    version, results = pipeline().score_texts(body.texts)
    bad = [f"texts[{i}]: {r['error']['message']}" for i, r in enumerate(results) if "error" in r]
    if bad:
        raise BadInput("; ".join(bad[:5]), code="validation_error")
    record_predictions(settings, settings.sentiment_domain, "sentiment", version, results)
    return jsonify({"results": [{"label": r["label"], "scores": r["scores"]} for r in results],
                    "model_version": version})


class NewsArticleIn(BaseModel):
    """One article as ``POST /v1/news`` takes it (rows are checked one by one, so a bad row is
    rejected alone: this model documents the body, the ingest validates it)."""

    id: str | int | None = Field(None, description="your id (1-128 letters, digits and URI characters "
                                 "-._~:/?#[]@!$&'()*+,;=%); a re-post with the same id is a duplicate or an update")
    source: str | None = Field(None, description="feed or publisher; 'unknown' when absent")
    published_at: str | int | float = Field(description="event time: ISO-8601, RFC 2822 or epoch s/ms")
    title: str
    body: str | None = None
    url: str | None = Field(None, description="also identifies the article (normalised)")
    tickers: list[str] | None = Field(None, description="instead of linking tickers from the text")


class NewsListIn(BaseModel):
    articles: list[NewsArticleIn] = Field(max_length=MAX_NEWS_ROWS)


NewsIn = RootModel[NewsArticleIn | list[NewsArticleIn] | NewsListIn]


@bp.post("/v1/news")
@documented(status=202, body=NewsIn, needs=("database",), errors={
    400: "bad_request or all_rejected: not an article, a list or {\"articles\"}; or every row rejected",
    413: f"too_large: more than {MAX_NEWS_ROWS} articles in one request"})
@require_role("feed", only_if="feed_key_required")
def post_news() -> Any:
    """Ingest one article or a list; 202 with stored and updated ids, duplicates and rejected rows."""
    require_json()
    data = request.get_json(silent=True)
    if data is None:  # the strict parser refuses a NUL or a lone surrogate anywhere in the body:
        try:  # here that is one row's fault, which the ingest rejects alone, and the rest is stored
            data = json.loads(request.get_data())
        except (ValueError, RecursionError):  # not JSON even leniently: the strict parser says why
            raise BadInput(why_not_json("an article, a list of them or {\"articles\": [...]}"),
                           code="invalid_json") from None
    rows = data.get("articles", [data]) if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows:
        raise BadInput("expected an article object, a list of articles or {\"articles\": [...]}")
    if len(rows) > MAX_NEWS_ROWS:
        raise BadInput(f"{len(rows)} articles in one request; the limit is {MAX_NEWS_ROWS}", status=413,
                       code="too_large")
    report = pipeline().ingest(rows)
    if not report.stored and not report.updated and not report.duplicates:
        return jsonify({"error": {"code": "all_rejected", "message": "; ".join(
            f"[{r['index']}] {r['reason']}" for r in report.rejected[:5])}, **report.to_dict()}), 400
    return jsonify({**report.to_dict(), "scoring": pipeline().dispatch(report.to_score)}), 202


@bp.get("/v1/tickers")
@documented(needs=("database",))
def tickers() -> Any:
    """Tickers with articles (most covered first) and the known sources."""
    return jsonify(queries.tickers(pipeline().db))


@bp.get("/v1/tickers/<ticker>/sentiment")
@documented(needs=("database",), errors={400: "bad_request: an invalid ticker, or a series of too many points"})
@query_params(window=Query("string", "span back from end, e.g. 30d, 12h", default=DEFAULT_WINDOW),
              bucket=Query("string", "bucket width (default: the alerts' bucket, FINPULSE_SENTIMENT_BUCKET)",
                           enum=tuple(BUCKETS)), end=TIME_ARG,
              start=("string", "ISO-8601 time the series starts at, instead of window"),
              source=("string", "only articles of this source"),
              articles=("string", "1/true: list each point's articles"))
def ticker_sentiment(ticker: str) -> Any:
    """Sentiment, EWMA, volume and z-scores per bucket on event time, with the alerts."""
    t = _ticker(ticker)
    settings = settings_of()
    first = _time_arg("start")
    if first is not None and "window" in request.args:
        raise BadInput("give start or window, not both")
    window = parse_duration(request.args.get("window", DEFAULT_WINDOW))
    bucket = request.args.get("bucket", settings.sentiment_bucket)
    data = ticker_series(pipeline().db, t, window=window, bucket=bucket, end=_time_arg("end"),
                         source=request.args.get("source") or None, settings=settings, start=first)
    with_articles = request.args.get("articles", "0").lower() in ("1", "true", "yes")
    start = datetime.fromisoformat(data["start"])  # may lie before EARLIEST: not re-validated
    data["points"] = [p.to_dict(with_articles) for p in data["points"]]
    data["window"] = request.args.get("window", DEFAULT_WINDOW) if first is None else None
    data["alert_bucket_s"] = pipeline().rules.bucket_s  # what an alert's `at` opens, whatever the chart's bucket
    # an alert covers its bucket: one that began before a mid-bucket start is still on the chart
    data["alerts"] = [a for a in list_alerts(pipeline().db, since=start, ticker=t, limit=1000,
                                             bucket_s=pipeline().rules.bucket_s) if a["at"] < data["end"]]
    return jsonify(data)


@bp.get("/v1/tickers/<ticker>/articles")
@documented(needs=("database",), errors={400: "bad_request: an invalid ticker"})
@query_params(start=TIME_ARG, end=TIME_ARG, source=("string", "only articles of this source"), limit=LIMIT)
def ticker_articles(ticker: str) -> Any:
    """The scored articles behind a ticker's points (newest first), with scores and links."""
    return jsonify({"articles": queries.articles(
        pipeline().db, _ticker(ticker), start=_time_arg("start"), end=_time_arg("end"),
        source=request.args.get("source") or None, limit=LIMIT.read("limit"))})


class AlertOut(BaseModel):
    """One alert, as ``GET /v1/alerts``, the stream, Redis and the webhook send it."""

    id: str = Field(description="TICKER-YYYYMMDDTHHMM of its bucket: the same alert keeps it through changes")
    ticker: str
    kind: Literal["sentiment_shift", "negative_burst", "volume_spike"]
    severity: Literal["warn", "critical"]
    at: str = Field(description="the bucket's start (event time), ISO-8601 UTC")
    value: float
    baseline: float
    message: str
    article_count: int = Field(description="articles in the alert's bucket, all of them")
    article_ids: list[str] = Field(description=f"at most {MAX_ARTICLE_IDS} of them, those that explain the alert "
                                   "first: a sentiment shift's furthest in its direction, a burst's most negative, "
                                   "a volume spike's most relevant to the ticker")


class AlertsOut(BaseModel):
    alerts: list[AlertOut]
    next: str | None = Field(description="pass as `before` (with the same since and ticker) for the next, "
                             "older page; null on the last page")


@bp.get("/v1/alerts")
@documented(response=AlertsOut, needs=("database",))
@query_params(since=TIME_ARG, ticker=("string", "one ticker, e.g. ACME"), limit=LIMIT,
              before=("string", "the `next` of the previous page (or an alert's id): the alerts after it, "
                      "in the same order"))
def alerts() -> Any:
    """Alerts newest first (event time, then id), from ``since`` on, optionally for one ticker,
    a page at a time: ``next`` is the cursor of the older page, stable while new alerts arrive."""
    ticker = request.args.get("ticker")
    page, cursor = queries.alerts_page(pipeline().db, since=_time_arg("since"),
                                       ticker=_ticker(ticker) if ticker else None,
                                       limit=LIMIT.read("limit"), bucket_s=pipeline().rules.bucket_s,
                                       before=_cursor_arg("before"))
    return jsonify({"alerts": page, "next": cursor})


def _sse(event: dict[str, Any], name: str) -> str:
    """One alert event (``name``: alert, update or retract) as an SSE block; its ``id`` is what
    EventSource sends back as Last-Event-ID (a retraction's position is its tombstone's, so
    replay resumes after it)."""
    alert = event["alert"]
    position = queries.stream_id(event["created_at"], alert["id"])
    data = {"id": alert["id"]} if name == "retract" else alert
    return f"id: {position}\nevent: {name}\ndata: {json.dumps(data)}\n\n"


@bp.get("/v1/alerts/stream")
@documented(media_type="text/event-stream",
            headers={"Last-Event-ID": "the last event id seen: a reconnect replays what came after it"},
            needs=("database",), retry_after=(429, 503),
            errors={503: "too_many_streams: every alert stream slot (FINPULSE_SENTIMENT_ALERT_STREAMS) is taken; "
                         "Retry-After says when to try again",
                    429: "too_many_streams: this address holds its share of the slots "
                         "(FINPULSE_SENTIMENT_ALERT_STREAMS_PER_ADDRESS); Retry-After says when to try again"})
@query_params(max_s=MAX_S, after=TIME_ARG)
def alerts_stream() -> Any:
    """Server-sent events: each new alert as ``event: alert``, each retracted one as
    ``event: retract`` with ``{"id"}``, each whose numbers changed as ``event: update``.

    An alert is sent as ``alert`` when it is raised or changes kind or severity, and as
    ``update`` (the whole alert again, same id: replace it) when only what it says changed, its
    message or ``article_count``. A client that missed the raise (it happened after the
    client's position, and this stream has not sent it) gets the updated alert as ``alert``,
    so one listening to ``alert`` alone still hears of every alert; an ``update`` may name an
    alert raised before the client joined (``GET /v1/alerts`` lists it).

    Each event's id is ``ALERT_ID@µs``, its position in the stream. A reconnect carrying
    ``Last-Event-ID`` (EventSource sends it by itself) first replays what came after that
    position (the newest ``REPLAY_MAX`` of the last ``REPLAY_S``; an id the server cannot place
    replays that whole window), then goes on live. The first block names the newest alert's
    position (``0`` before any exists) as the stream's id, so a client that got no event before
    it lost the connection still resumes where it joined. At most ``sentiment_alert_streams``
    are open at once per process (one more is a 503 with Retry-After), and at most
    ``sentiment_alert_streams_per_address`` of them from one address (a 429). A backfill's (quiet)
    alerts are never sent: it pushes nothing to live channels.
    """
    max_s = MAX_S.read("max_s")
    slots, address = current_app.extensions["alert_streams"], request.remote_addr or ""
    if refused := slots.acquire(address):
        settings = settings_of()
        resp, status = error_response("too_many_streams", (
            f"this address has {settings.sentiment_alert_streams_per_address} alert streams open "
            "(FINPULSE_SENTIMENT_ALERT_STREAMS_PER_ADDRESS)" if refused == "address" else
            f"{settings.sentiment_alert_streams} alert streams are open (FINPULSE_SENTIMENT_ALERT_STREAMS)")
            + "; retry later, or poll GET /v1/alerts", 429 if refused == "address" else 503)
        resp.headers["Retry-After"] = str(STREAM_RETRY_S)
        return resp, status
    try:
        return _alert_stream(max_s, lambda: slots.release(address))
    except BaseException:
        slots.release(address)
        raise


def _alert_stream(max_s: int, release: Callable[[], None]) -> Response:
    """The stream of :func:`alerts_stream`; ``release`` gives its slot back when the server closes it."""
    db = pipeline().db
    last_id = (request.headers.get("Last-Event-ID") or "").strip()[:128] or None
    replay: list[dict[str, Any]] = []
    sent: set[tuple[str, datetime]] = set()  # (id, created_at): an alert that changed is sent again
    head = ""
    if last_id is None:  # a new client: live from now (a second back, for commits in flight)
        after = _time_arg("after") or datetime.now(UTC) - timedelta(seconds=1)
        start = (after, "")
        newest = queries.alert_position(db)
        head = f"id: {queries.stream_id(*newest) if newest else NO_ALERT_ID}\n"
    else:
        now = datetime.now(UTC)
        floor = (now - timedelta(seconds=REPLAY_S), "")
        known = queries.resume_position(db, last_id)
        base = max(min(known, (now, "")), floor) if known else floor  # a position ahead of now would skip live alerts
        start = base
        replay = queries.alerts_to_replay(db, after=base, limit=REPLAY_MAX)
        caught_up = (replay[-1]["created_at"], replay[-1]["alert"]["id"]) if replay else base
        after = caught_up[0] - timedelta(seconds=1)
        # the live loop looks a second back: what lies at or before the client's position is not resent
        sent = {(a["alert"]["id"], a["created_at"])
                for a in queries.alerts_created_after(db, after, limit=REPLAY_MAX + 100)
                if (a["created_at"], a["alert"]["id"]) <= caught_up}

    announced: set[tuple[datetime, str]] = set()  # (raised_at, id) of the raises this client was sent

    def name(event: dict[str, Any]) -> str:
        """``alert`` for a raise the client has not seen (past its position, not sent yet), else
        ``update`` (or ``retract``)."""
        if event["retracted"]:
            return "retract"
        raised = (event["raised_at"], event["alert"]["id"])
        if raised > start and raised not in announced:
            announced.add(raised)
            return "alert"
        return "update"

    def events() -> Iterator[str]:
        cursor = after
        deadline = time.monotonic() + max_s
        yield f"retry: 2000\n{head}: connected\n\n"
        for a in replay:
            yield _sse(a, name(a))
        last_ping = time.monotonic()
        while time.monotonic() < deadline:
            for a in queries.alerts_created_after(db, cursor):
                if (a["alert"]["id"], a["created_at"]) not in sent:
                    sent.add((a["alert"]["id"], a["created_at"]))
                    yield _sse(a, name(a))
                cursor = max(cursor, a["created_at"] - timedelta(seconds=1))
            if time.monotonic() - last_ping > KEEPALIVE_S:  # a client gone is noticed on a write
                last_ping = time.monotonic()
                yield ": keep-alive\n\n"
            time.sleep(0.5)

    resp = Response(stream_with_context(events()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    resp.call_on_close(release)  # the server closes every response, sent in full or not
    return resp


@bp.get("/")
def dashboard() -> Any:
    """The analysts' dashboard: live alerts, per-ticker chart, articles behind each point."""
    return render_template("dashboard.html")
