"""HTTP contract: readiness without a model, /v1/score through the real tiny model, SSE, OpenAPI."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.sentiment.conftest import START, burst, day_of, history


@pytest.fixture
def registered(migrated, tiny_sentiment_model):
    from shared.inference import invalidate
    from shared.registry import Registry

    reg = Registry(migrated.registry_dir)
    version = reg.register("news", "sentiment", tiny_sentiment_model, move=False)
    reg.promote(getattr(version, "ref", "news/sentiment@v1"))
    invalidate()
    yield migrated
    invalidate()


def test_readyz_says_which_model_is_missing_while_healthz_is_ok(migrated, redis_url) -> None:
    from services.sentiment import create_app

    client = create_app(migrated).test_client()
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503
    assert any("no sentiment model registered for news/sentiment" in x for x in r.json["reasons"])
    assert client.post("/v1/score", json={"texts": ["hello"]}).status_code == 503
    # articles are still accepted, stored unscored
    r = client.post("/v1/news", json={"source": "w", "published_at": "2024-01-02", "title": "$ACME news"})
    assert r.status_code == 202 and r.json["scoring"] == "pending"


def test_a_broken_company_list_is_the_servers_503_until_mended_never_the_posters_400(migrated, redis_url,
                                                                                     stub_scorer, tmp_path) -> None:
    """A headerless FINPULSE_SENTIMENT_COMPANIES_CSV answered POST /v1/news with a 400 bad_request
    (the poster's fault, said the API) and /readyz was 200. It is the server's 503 now, readiness
    names it, nothing is stored, and mending the file takes effect without a restart."""
    from services.sentiment import create_app
    from services.sentiment.models import Article, ArticleTicker

    companies = tmp_path / "companies.csv"
    companies.write_text("ZPHR,Zephyr Robotics,Zephyr\n", encoding="utf-8")  # no header line
    app = create_app(migrated.model_copy(update={"sentiment_companies_csv": companies}), scorer=stub_scorer)
    client = app.test_client()
    article = {"id": "z1", "source": "w", "published_at": "2024-01-02", "title": "Zephyr Robotics beats estimates"}
    r = client.post("/v1/news", json=article)
    assert r.status_code == 503 and r.json["error"]["code"] == "unavailable", r.json
    assert r.json["error"]["message"].startswith(f"FINPULSE_SENTIMENT_COMPANIES_CSV: company list {companies}:1: ")
    ready = client.get("/readyz")
    assert ready.status_code == 503 and any("FINPULSE_SENTIMENT_COMPANIES_CSV" in x for x in ready.json["reasons"])
    with app.extensions["sentiment"].db.session() as s:
        assert s.query(Article).count() == 0
    companies.write_text("ticker,name,aliases\nZPHR,Zephyr Robotics,Zephyr\n", encoding="utf-8")
    r = client.post("/v1/news", json=article)
    assert r.status_code == 202, r.json
    assert client.get("/readyz").status_code == 200
    with app.extensions["sentiment"].db.session() as s:  # linked by the mended list's name
        assert [(t.article_id, t.ticker) for t in s.query(ArticleTicker)] == [("z1", "ZPHR")]


def test_real_tiny_model_scores_texts_and_news(registered, redis_url) -> None:
    from services.sentiment import create_app

    client = create_app(registered).test_client()
    assert client.get("/readyz").status_code == 200
    r = client.post("/v1/score", json={"texts": ["record profit and strong growth beat expectations",
                                                 "profit fell sharply and the company warned of losses"]})
    assert r.status_code == 200
    results = r.json["results"]
    assert [x["label"] for x in results] == ["positive", "negative"]
    assert set(results[0]["scores"]) == {"negative", "neutral", "positive"}
    assert abs(sum(results[0]["scores"].values()) - 1) < 1e-5
    r = client.post("/v1/news", json=history(["ACME"], START, 2))
    assert r.json["scoring"] == "scored"
    arts = client.get("/v1/tickers/ACME/articles").json["articles"]
    assert arts and all(a["model_version"] == "news/sentiment@v1" for a in arts)


@pytest.mark.parametrize("body", [{}, {"texts": []}, {"texts": "one"}, {"texts": [""]}, {"texts": ["ok", 3]},
                                  {"texts": ["x"] * 257},
                                  # invisible only: blank as in the chat and recommendations (shared.text.is_blank)
                                  {"texts": ["\u200b"]}, {"texts": ["ok", " \ufeff\u2060 "]}])
def test_score_validates_input(client, body) -> None:
    r = client.post("/v1/score", json=body)
    assert r.status_code == 400 and r.json["error"]["code"] == "validation_error"


def test_score_rejects_oversize_text(client, migrated) -> None:
    r = client.post("/v1/score", json={"texts": ["x" * (migrated.max_text_chars + 1)]})
    assert r.status_code == 400 and "limit" in r.json["error"]["message"]


def test_alert_stream_pushes_new_alerts_as_server_sent_events(client, pipe) -> None:
    pipe.score(pipe.ingest(history(["ACME", "BOLT"], START, 30)).stored)
    received: list[str] = []

    def listen() -> None:
        resp = client.get("/v1/alerts/stream?max_s=4")
        received.append(resp.get_data(as_text=True))

    t = threading.Thread(target=listen)
    t.start()
    time.sleep(1.0)
    pipe.score(pipe.ingest(burst("ACME", START.replace(day=31))).stored)
    t.join(10)
    events = [b for b in received[0].split("\n\n") if b.startswith("id: ")]
    assert len(events) == 1
    data = json.loads(events[0].split("data: ", 1)[1])
    assert data["ticker"] == "ACME" and data["severity"] == "critical"


def test_alerts_are_published_on_redis(client, pipe, redis_url) -> None:
    from services.sentiment.alerts import CHANNEL
    from shared.redis_client import channel, get_redis

    pipe.score(pipe.ingest(history(["ACME"], START, 30)).stored)
    sub = get_redis(redis_url).pubsub()
    sub.subscribe(channel(redis_url, CHANNEL))
    sub.get_message(timeout=1)
    pipe.score(pipe.ingest(burst("ACME", START.replace(day=31))).stored)
    msg = sub.get_message(timeout=2)
    while msg and msg["type"] != "message":
        msg = sub.get_message(timeout=2)
    sub.close()
    assert msg and json.loads(msg["data"])["ticker"] == "ACME"


def test_openapi_lists_the_contract_endpoints(client) -> None:
    paths = client.get("/openapi.json").json["paths"]
    for p in ("/v1/score", "/v1/news", "/v1/tickers/{ticker}/sentiment", "/v1/alerts", "/v1/alerts/stream", "/"):
        assert p in paths


def test_openapi_gives_each_post_its_real_status_and_body(client) -> None:
    """Regression: every operation said 200, and /v1/news (read row by row) had no body schema."""
    doc = client.get("/openapi.json").json
    news = doc["paths"]["/v1/news"]["post"]
    assert set(news["responses"]) >= {"202"} and "200" not in news["responses"]
    schema = news["requestBody"]["content"]["application/json"]["schema"]
    assert len(schema["anyOf"]) == 3 and "NewsArticleIn" in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["NewsArticleIn"]["required"] == ["published_at", "title"]
    retrain = doc["paths"]["/v1/admin/retrain"]["post"]
    assert "202" in retrain["responses"] and "multipart/form-data" in retrain["requestBody"]["content"]
    form = retrain["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["data"]["format"] == "binary"
    assert "200" in doc["paths"]["/v1/score"]["post"]["responses"]


def test_openapi_gives_the_series_window_default_and_bucket_values(client) -> None:
    """HTTP QA: `window` and `bucket` were bare strings, their default and values only in prose."""
    get = client.get("/openapi.json").json["paths"]["/v1/tickers/{ticker}/sentiment"]["get"]
    schema = {p["name"]: p["schema"] for p in get["parameters"] if p["in"] == "query"}
    assert schema["window"] == {"type": "string", "default": "30d"}
    assert schema["bucket"] == {"type": "string", "enum": ["1h", "1d"]}
    for bucket in schema["bucket"]["enum"]:  # each listed value is taken, one outside them is a 400
        assert client.get(f"/v1/tickers/ACME/sentiment?bucket={bucket}").status_code == 200
    assert client.get("/v1/tickers/ACME/sentiment?bucket=1w").status_code == 400
    assert client.get("/v1/tickers/ACME/sentiment").json["window"] == "30d"


def test_openapi_describes_the_alert_stream_as_server_sent_events(client) -> None:
    """Regression: the stream's 200 had no content type and its Last-Event-ID resume header was unlisted."""
    stream = client.get("/openapi.json").json["paths"]["/v1/alerts/stream"]["get"]
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    assert [p["name"] for p in stream["parameters"] if p["in"] == "header"] == ["Last-Event-ID"]


def _alert_messages(pipe, redis_url: str, monkeypatch, webhook_receiver, batches: list[list[dict]]) -> list[dict]:
    """ACME's calm month scored, then each batch ingested and scored (a re-sent row as a new
    version) with a webhook set: the Redis messages heard, once the webhook has drained."""
    from services.sentiment.alerts import CHANNEL
    from shared import webhooks
    from shared.redis_client import channel, get_redis

    monkeypatch.setattr(pipe, "settings", pipe.settings.model_copy(
        update={"sentiment_webhook_url": webhook_receiver.url}))
    pipe.score(pipe.ingest(history(["ACME"], START, 30)).stored)
    sub = get_redis(redis_url).pubsub()
    sub.subscribe(channel(redis_url, CHANNEL))
    sub.get_message(timeout=1)
    for rows in batches:
        pipe.score(pipe.ingest(rows).to_score)
    messages = []
    while (msg := sub.get_message(timeout=2)) is not None:
        if msg["type"] == "message":
            messages.append(json.loads(msg["data"]))
    sub.close()
    assert webhooks.drain(10)
    return messages


def test_a_retraction_reaches_redis_subscribers_and_the_webhook(pipe, redis_url, monkeypatch,
                                                                webhook_receiver) -> None:
    """Regression (left open in session 17): retractions went to the SSE stream only, so a webhook
    or pub/sub consumer kept an alert that re-evaluation had withdrawn."""
    webhook_receiver.slow_first_s = 0.3  # the retraction must not overtake the raise
    day = START.replace(day=31)
    calm = [{**r, "title": f"$ACME hosts investor day #{i}", "body": "Routine."}
            for i, r in enumerate(burst("ACME", day))]
    messages = _alert_messages(pipe, redis_url, monkeypatch, webhook_receiver, [
        burst("ACME", day), calm])  # the burst's articles corrected: the alert is withdrawn
    alert_id = f"ACME-{day:%Y%m%dT%H%M}"
    assert [(m["id"], m.get("retracted", False)) for m in messages] == [(alert_id, False), (alert_id, True)]
    bodies = [([a["id"] for a in p["alerts"]], [a["id"] for a in p["retracted"]]) for p in webhook_receiver.got]
    assert bodies == [([alert_id], []), ([], [alert_id])]  # one POST each, the raise first


def test_openapi_gives_the_alert_schema_with_its_article_count(client) -> None:
    """Analyst QA: ``article_ids`` is capped at 50, so the schema names ``article_count``, the true
    number (extra to the contract's fields, which stay required)."""
    doc = client.get("/openapi.json").json
    ok = doc["paths"]["/v1/alerts"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["properties"]["alerts"]["items"] == {"$ref": "#/components/schemas/AlertOut"}
    alert = doc["components"]["schemas"]["AlertOut"]
    assert set(alert["required"]) == {"id", "ticker", "kind", "severity", "at", "value", "baseline", "message",
                                      "article_ids", "article_count"}
    assert alert["properties"]["article_count"]["type"] == "integer"
    assert "at most 50" in alert["properties"]["article_ids"]["description"]


def test_an_alert_update_reaches_the_stream_not_redis_or_the_webhook(pipe, redis_url, monkeypatch,
                                                                     webhook_receiver) -> None:
    """Analyst QA: an alert whose numbers change (same kind and severity) is sent on the SSE
    stream as an update; Redis and the webhook read every message as a new or changed alert,
    so they keep hearing raises and retractions only (a count moves with every scored batch)."""
    day = START.replace(day=31)
    messages = _alert_messages(pipe, redis_url, monkeypatch, webhook_receiver, [
        day_of("ACME", day, 8), day_of("ACME", day, 4, first=8)])  # 12 articles: the same alert, updated
    assert [(m["id"], m["article_count"]) for m in messages] == [("ACME-20240331T0000", 8)]
    assert [[a["article_count"] for a in p["alerts"]] for p in webhook_receiver.got] == [[8]]


def test_a_share_class_is_one_ticker_in_links_and_paths(client) -> None:
    """Regression (analytics QA): ``$BRK-B`` linked BRK, and /v1/tickers/BRK-B/sentiment was a
    ticker of its own with no articles."""
    rows = [{"id": "brk-1", "source": "qa", "published_at": "2024-09-05T10:00:00Z",
             "title": "Buffett: $BRK-B holders cheer"},
            {"id": "brk-2", "source": "qa", "published_at": "2024-09-05T11:00:00Z",
             "title": "Berkshire (NYSE:BRK-B) adds to Apple"}]
    assert client.post("/v1/news", json=rows).status_code == 202
    assert {t["ticker"]: t["articles"] for t in client.get("/v1/tickers").json["tickers"]} == {"BRK.B": 2, "AAPL": 1}
    for path in ("BRK-B", "brk.b", "$brk-b"):
        data = client.get(f"/v1/tickers/{path}/sentiment?window=1d").json
        assert (data["ticker"], sum(p["volume"] for p in data["points"])) == ("BRK.B", 2), path
