"""Redis and the database go away under a running service, then come back.

The sentiment service runs as a real process (waitress, ``python -m shared.up serve``):
while a dependency is down ``/readyz`` answers 503 naming it and requests answer 2xx
(degraded) or 503 JSON, never 500; once it is back everything recovers without a
restart, and every article the service accepted (202) is in the database.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from faultkit import FULL, RedisServer, Service, TcpProxy, record_line, wait_for

pytestmark = pytest.mark.reliability
ROUNDS = 3 if FULL else 1
POSTGRES_URL = os.environ.get("FINPULSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def article(i: int, tag: str) -> dict[str, Any]:
    return {"id": f"{tag}-{i}", "source": "reliability", "published_at": "2026-01-05T10:00:00Z",
            "title": f"$ACME profit rises in quarter {i} ({tag})", "body": "Strong growth.",
            "tickers": ["ACME"]}


def stored_ids(db_url: str) -> set[str]:
    from sqlalchemy import select

    from services.sentiment.models import Article
    from shared.db import Database

    db = Database(db_url)
    try:
        with db.session() as s:
            return set(s.scalars(select(Article.id)))
    finally:
        db.dispose()


def accept(svc: Service, rows: list[dict], accepted: set[str], statuses: list[int]) -> tuple[int, Any]:
    """POST articles; remember ids the service said it stored."""
    status, body = svc.post("/v1/news", {"articles": rows}, timeout=30)
    statuses.append(status)
    assert status != 0, "the service died"
    assert status < 500 or status == 503, f"{status}: {body}"
    assert isinstance(body, dict), f"non-JSON answer {status}: {str(body)[:200]}"
    if status >= 400:
        assert body["error"]["code"] != "internal_error" and body["error"]["message"], body
    if status == 202:
        accepted.update(r["id"] for r in rows)
    return status, body


def serve_sentiment(tmp_path: Path, home: Path, env: dict[str, str]) -> Service:
    from shared.db import upgrade

    db_url = env.get("DATABASE_URL") or f"sqlite:///{home / 'finpulse.db'}"
    upgrade(db_url.replace("postgresql://", "postgresql+psycopg://"))
    svc = Service("sentiment", {"FINPULSE_HOME": str(home), **env}, tmp_path / "sentiment.log")
    svc.start()
    return svc


def test_redis_restart(tmp_path: Path, private_redis: RedisServer, model_home: Path) -> None:
    svc = serve_sentiment(tmp_path, model_home, {"REDIS_URL": private_redis.url,
                                                 "FINPULSE_SENTIMENT_SCORING": "celery"})
    accepted: set[str] = set()
    statuses: list[int] = []
    try:
        wait_for(lambda: svc.get("/readyz")[0] == 200, 60, 0.5, what="sentiment ready")
        accept(svc, [article(0, "before")], accepted, statuses)
        for r in range(ROUNDS):
            private_redis.stop()
            status, body = svc.get("/readyz")
            assert status == 503 and any("redis" in reason.lower() for reason in body["reasons"]), body
            for i in range(3 if FULL else 1):
                t0 = time.monotonic()
                accept(svc, [article(i, f"down{r}")], accepted, statuses)
                print(f"POST /v1/news with Redis down answered in {time.monotonic() - t0:.1f}s")
            assert svc.get("/healthz")[0] == 200
            private_redis.start()
            wait_for(lambda: svc.get("/readyz")[0] == 200, 30, 0.5, what="readiness after Redis returned")
            _, body = accept(svc, [article(0, f"after{r}")], accepted, statuses)
            assert body.get("scoring") == "queued", body  # the broker is used again
    finally:
        svc.stop()
    lost = accepted - stored_ids(f"sqlite:///{model_home / 'finpulse.db'}")
    record_line("fault", "Redis killed and restarted", injected=ROUNDS, survived=ROUNDS if not lost else 0,
                requests=len(statuses), fivexx=sum(s >= 500 and s != 503 for s in statuses), lost=len(lost))
    assert not lost, f"accepted but not stored: {sorted(lost)}"


@pytest.fixture
def pg_database() -> Any:
    """A throw-away database on the local PostgreSQL (skipped with the reason if absent)."""
    import psycopg

    name = f"finpulse_rel_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_database_outage(tmp_path: Path, private_redis: RedisServer, model_home: Path, pg_database: str) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{pg_database}"
    svc = serve_sentiment(tmp_path, model_home, {"REDIS_URL": private_redis.url, "DATABASE_URL": url})
    accepted: set[str] = set()
    statuses: list[int] = []
    try:
        wait_for(lambda: svc.get("/readyz")[0] == 200, 60, 0.5, what="sentiment ready")
        accept(svc, [article(0, "before")], accepted, statuses)
        for r in range(ROUNDS):
            proxy.cut()
            status, body = svc.get("/readyz")
            assert status == 503 and any("database" in reason.lower() for reason in body["reasons"]), body
            for i in range(2):
                status, _ = accept(svc, [article(i, f"down{r}")], accepted, statuses)
                assert status in (202, 503)
                for path in ("/v1/alerts", "/v1/tickers", "/v1/tickers/ACME/sentiment"):
                    got, body = svc.get(path)
                    statuses.append(got)
                    assert got in (200, 503), f"{path} with the database down: {got} {body}"
            proxy.start()
            wait_for(lambda: svc.get("/readyz")[0] == 200, 30, 0.5, what="readiness after the DB returned")
            status, _ = accept(svc, [article(0, f"after{r}")], accepted, statuses)
            assert status == 202, "ingestion must resume once the database is back"
    finally:
        svc.stop()
        proxy.cut()
    lost = accepted - stored_ids(f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_database}")
    record_line("fault", "database connection cut and restored", injected=ROUNDS,
                survived=ROUNDS if not lost else 0, requests=len(statuses),
                fivexx=sum(s >= 500 and s != 503 for s in statuses), lost=len(lost))
    assert not lost, f"accepted but not stored: {sorted(lost)}"
