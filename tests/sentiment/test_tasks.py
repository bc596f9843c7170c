"""Celery tasks and feed polling are thin: the same pipeline, by ids (no worker needed here)."""

from __future__ import annotations

import json

from sqlalchemy import select

from services.sentiment.models import Article, FeedState, Score
from tests.data_connectors.test_news import RSS


def test_score_task_scores_by_id_and_is_idempotent(pipe, migrated, monkeypatch, stub_scorer) -> None:
    from services.sentiment import tasks

    monkeypatch.setattr(tasks, "_settings", lambda: migrated)
    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    ids = pipe.ingest([{"id": "t1", "source": "w", "published_at": "2024-02-01", "title": "$ACME fraud probe"}]).stored
    assert tasks.score_articles_task.run(ids) == {"articles": 1, "batches": [1], "alerts": 0,
                                                  "model_version": "stub/sentiment@v1"}
    assert tasks.score_articles_task.run(ids)["articles"] == 0
    assert tasks.sweep_unscored_task.run() == {"articles": 0, "alerts": 0}


def test_feed_polling_ingests_and_keeps_state(pipe, migrated, tmp_path) -> None:
    from services.sentiment.feeds import poll_all
    from services.sentiment.tasks import beat_schedule

    feed = tmp_path / "wire.xml"
    feed.write_text(RSS)
    pipe.settings = migrated.model_copy(update={"sentiment_feeds": [str(feed)]})
    out = poll_all(pipe)
    assert out["feeds"][0]["stored"] == 2  # the undated entry too, dated by the fetch time
    assert poll_all(pipe)["feeds"][0]["stored"] == 0  # polling again adds nothing
    with pipe.db.session() as s:
        assert s.get(Article, "r1").scored_at is not None
        assert s.scalar(select(FeedState.last_status)) == "2 entries"
    assert "sentiment-poll-feeds" in beat_schedule(pipe.settings)


def test_a_file_url_feed_is_polled_as_the_file(pipe, migrated, tmp_path) -> None:
    """Reliability QA: FINPULSE_SENTIMENT_FEEDS="file:///.../wire.xml" was "no such file" at every
    poll, while `finpulse news ingest` read the same URL."""
    from services.sentiment.feeds import poll_all

    feed = tmp_path / "wire.xml"
    feed.write_text(RSS)
    pipe.settings = migrated.model_copy(update={"sentiment_feeds": [feed.as_uri()]})
    assert poll_all(pipe)["feeds"][0] | {"url": ""} == {"url": "", "status": "2 entries", "stored": 2, "updated": 0}


def test_an_updated_feed_entry_is_picked_up_and_rescored(pipe, migrated, tmp_path) -> None:
    """Regression (sentiment QA): an RSS entry whose content was edited stayed on its first text."""
    from services.sentiment.feeds import poll_all

    feed = tmp_path / "wire.xml"
    feed.write_text(RSS)
    pipe.settings = migrated.model_copy(update={"sentiment_feeds": [str(feed)]})
    poll_all(pipe)
    feed.write_text(RSS.replace("$ACME beats estimates", "$ACME fraud probe"))
    assert poll_all(pipe)["feeds"][0] | {"status": ""} == {"url": str(feed), "status": "", "stored": 0, "updated": 1}
    with pipe.db.session() as s:
        assert s.scalar(select(Score.label).where(Score.article_id == "r1")) == "negative"
    assert poll_all(pipe)["feeds"][0]["updated"] == 0


def test_the_sweep_leaves_fresh_arrivals_to_their_tasks_and_never_overlaps(pipe, migrated, monkeypatch,
                                                                          stub_scorer) -> None:
    """Regression (resilience QA): under a 5,000-article backlog the minutely sweep scored, in
    several overlapping runs, the articles their queued tasks were scoring too."""
    from datetime import UTC, datetime, timedelta

    from services.sentiment import tasks
    from shared.redis_client import get_redis

    monkeypatch.setattr(tasks, "_settings", lambda: migrated)
    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    ids = pipe.ingest([{"id": f"s{i}", "source": "w", "published_at": "2024-02-01", "title": f"$ACME item {i}"}
                       for i in range(3)]).stored
    assert tasks.sweep_unscored_task.run()["articles"] == 0  # just arrived: their tasks have them
    with pipe.db.session() as s:
        s.get(Article, ids[0]).ingested_at = datetime.now(UTC) - timedelta(minutes=10)
    lock = get_redis(migrated.redis_url).lock("finpulse:sentiment:sweep", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert tasks.sweep_unscored_task.run()["skipped"] == "another sweep is running"
    finally:
        lock.release()
    assert tasks.sweep_unscored_task.run()["articles"] == 1  # only the one left behind
    with pipe.db.session() as s:
        assert [a.id for a in s.scalars(select(Article).where(Article.scored_at.is_not(None)))] == [ids[0]]


def test_queued_scoring_leaves_no_result_behind(settings, redis_url: str) -> None:
    """Soak QA: each queued batch subscribed the sending thread to its result channel, which
    nothing read (169 bytes a post piling up in the socket), and left a result key in Redis."""
    import gc

    from services.sentiment.pipeline import enqueue
    from shared.celery_app import inference_queue, make_celery

    conf = settings.model_copy(update={"redis_url": redis_url, "sentiment_score_batch": 2})
    app, queue = make_celery(conf), inference_queue(conf)
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete(queue)
        enqueue(conf, ["a1", "a2", "a3"])
        queued = [json.loads(m) for m in client.lrange(queue, 0, -1)]
        client.delete(queue)
    gc.collect()
    assert len(queued) == 2  # both batches are on the queue, as before
    assert all(m["headers"]["ignore_result"] for m in queued)
    consumer = app.backend.result_consumer
    assert consumer is None or not consumer.subscribed_to | consumer._pending_unsubscribe


def test_scoring_with_no_model_yet_leaves_articles_for_the_sweep(pipe, migrated, monkeypatch, caplog) -> None:
    """Soak QA: while the first run still trained, each queued task logged a 25-line traceback."""
    from services.sentiment import tasks

    monkeypatch.setattr(tasks, "_settings", lambda: migrated)
    ids = pipe.ingest([{"id": "n1", "source": "w", "published_at": "2024-02-01", "title": "$ACME fraud probe"}]).stored
    assert tasks.score_articles_task.run(ids) == {"articles": 0, "pending": 1}
    assert "1 articles left for the sweep" in caplog.text and "sentiment model" in caplog.text
    with pipe.db.session() as s:
        assert s.scalars(select(Score)).all() == []


def test_a_database_deadlock_is_retried_not_left_to_the_sweep(pipe, migrated, monkeypatch, stub_scorer) -> None:
    """PG QA: racing versions of the same articles deadlocked the claim; the task retried only
    the builtin ConnectionError, so the batch waited 5-6 minutes for the sweep."""
    from sqlalchemy.exc import OperationalError

    from services.sentiment import tasks

    monkeypatch.setattr(tasks, "_settings", lambda: migrated)
    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    ids = pipe.ingest([{"id": "d1", "source": "w", "published_at": "2024-02-01", "title": "$ACME fraud probe"}]).stored
    real, calls = tasks._pipeline, []

    def deadlocking_once() -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE news_articles", {}, Exception("deadlock detected"))
        return real()

    monkeypatch.setattr(tasks, "_pipeline", deadlocking_once)
    result = tasks.score_articles_task.apply(args=[ids])
    assert result.successful() and len(calls) == 2
    with pipe.db.session() as s:
        assert [r.article_id for r in s.scalars(select(Score))] == ["d1"]


def test_the_sweep_without_a_model_leaves_the_backlog_with_one_line(pipe, migrated, monkeypatch) -> None:
    """The score task left articles to the sweep when no model (or no readable company list) was
    there, but the sweep itself then failed with a traceback every minute: it now says why and
    leaves them for the next sweep."""
    from datetime import UTC, datetime, timedelta

    from services.sentiment import tasks

    monkeypatch.setattr(tasks, "_settings", lambda: migrated)
    ids = pipe.ingest([{"id": "n1", "source": "w", "published_at": "2024-02-01", "title": "$ACME fraud probe"}]).stored
    with pipe.db.session() as s:
        s.get(Article, ids[0]).ingested_at = datetime.now(UTC) - timedelta(minutes=10)
    out = tasks.sweep_unscored_task.run()
    assert out["articles"] == 0 and "no sentiment model registered" in out["unavailable"]
    with pipe.db.session() as s:
        assert s.get(Article, ids[0]).scored_at is None  # still there for the next sweep
