"""/metrics reads the scoring backlog and stored alerts from the database at scrape time."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

from services.sentiment.models import Article
from tests.sentiment.conftest import START, burst, history


def _gauges(client) -> dict[str, float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    return {m[0]: float(m[1]) for m in re.findall(
        r"^(finpulse_news_unscored_articles|finpulse_news_oldest_unscored_age_seconds"
        r"|finpulse_sentiment_stored_alerts\{[^}]*\}) (\S+)$", r.get_data(as_text=True), re.M)}


def test_metrics_show_the_backlog_another_process_leaves(client, pipe) -> None:
    """Regression (sentiment QA): under `finpulse up` the worker scores, so this process's
    counters showed no backlog; the gauges are read from the database instead."""
    rows = history(["ACME"], START, 30) + burst("ACME", START + timedelta(days=30))
    ids = pipe.ingest(rows).stored  # stored, not scored: as when the worker is behind
    with pipe.db.session() as s:  # the oldest arrived five minutes ago
        s.get(Article, ids[0]).ingested_at = datetime.now(UTC) - timedelta(minutes=5)
    got = _gauges(client)
    assert got["finpulse_news_unscored_articles"] == len(rows)
    assert 300 <= got["finpulse_news_oldest_unscored_age_seconds"] < 400
    assert got['finpulse_sentiment_stored_alerts{severity="critical"}'] == 0
    pipe.score(ids)  # e.g. by the worker process
    got = _gauges(client)
    assert (got["finpulse_news_unscored_articles"], got["finpulse_news_oldest_unscored_age_seconds"]) == (0, 0)
    assert got['finpulse_sentiment_stored_alerts{severity="critical"}'] == 1
    assert got['finpulse_sentiment_stored_alerts{severity="warn"}'] == 0


def test_a_scrape_never_fails_when_the_database_is_down(client, pipe, caplog) -> None:
    from services.sentiment.metrics import init_app
    from shared.db import Database

    down = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    init_app(down)
    try:
        with caplog.at_level(logging.WARNING, logger="services.sentiment.metrics"):
            assert _gauges(client) == {} and _gauges(client) == {}  # left out, the rest still served
        assert len(caplog.records) == 1 and "database" in caplog.records[0].getMessage()  # logged once
        assert "finpulse_http_requests_total" in client.get("/metrics").get_data(as_text=True)
    finally:
        init_app(pipe.db)
        down.dispose()
    assert _gauges(client)["finpulse_news_unscored_articles"] == 0
