"""Celery tasks: thin wrappers taking ids, calling the same pipeline the web app calls."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import shared_task
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)
PRUNE_TASK = "services.sentiment.tasks.prune"


def _settings() -> Any:
    from celery import current_app

    from shared.settings import get_settings

    return getattr(current_app.conf, "finpulse_settings", None) or get_settings()


def _pipeline() -> Any:
    from services.sentiment.pipeline import Pipeline

    return Pipeline(_settings())


# Results go to the log, never to a caller: with a result kept, each apply_async left the
# sending thread subscribed to a Redis channel nobody read (169 bytes a post piling up in
# the socket, soak QA) and a celery-task-meta key behind.
# A deadlock or a dropped database connection (SQLAlchemy's OperationalError) is retried like
# a broker hiccup: left to the sweep, the batch waited 5-6 minutes unscored (PG QA).
@shared_task(name="services.sentiment.tasks.score_articles", acks_late=True, ignore_result=True,
             autoretry_for=(ConnectionError, OperationalError), retry_backoff=True, max_retries=5)
def score_articles_task(ids: list[str]) -> dict[str, Any]:
    """Score articles by id (idempotent: already scored ones are skipped). With no model yet
    (first run still training) they stay unscored for the sweep: one log line, not a traceback."""
    from shared.errors import Unavailable

    try:
        out = _pipeline().score(list(ids))
    except Unavailable as exc:
        log.warning("%d articles left for the sweep: %s", len(ids), exc.message)
        return {"articles": 0, "pending": len(ids)}
    return {"articles": out.articles, "batches": out.batches, "alerts": len(out.alerts),
            "model_version": out.model_version}


SWEEP_LOCK_S = 1800  # a sweep that died holding the lock frees it after this long


@shared_task(name="services.sentiment.tasks.sweep_unscored", acks_late=True, ignore_result=True)
def sweep_unscored_task() -> dict[str, Any]:
    """Pick up articles a crash or a missing model left unscored.

    One sweep at a time (a Redis lock): beat starts one a minute, and a sweep through a
    backlog takes longer, so overlapping sweeps scored the same articles over and over.
    """
    from shared.errors import Unavailable
    from shared.redis_client import get_redis

    settings = _settings()
    lock = get_redis(settings.redis_url).lock("finpulse:sentiment:sweep", timeout=SWEEP_LOCK_S,
                                              blocking=False)
    if not lock.acquire():
        return {"articles": 0, "alerts": 0, "skipped": "another sweep is running"}
    try:
        out = _pipeline().sweep(grace_s=settings.sentiment_sweep_grace_s)
    except Unavailable as exc:  # no model yet, a broken company list: one line a minute, not a traceback
        log.warning("sweep left the unscored articles for the next one: %s", exc.message)
        return {"articles": 0, "alerts": 0, "unavailable": exc.message}
    finally:
        with contextlib.suppress(Exception):  # expired meanwhile: nothing to release
            lock.release()
    return {"articles": out.articles, "alerts": len(out.alerts)}


@shared_task(name="services.sentiment.tasks.poll_feeds", acks_late=True, ignore_result=True)
def poll_feeds_task() -> dict[str, Any]:
    """Poll every configured feed with ETag/Last-Modified and ingest what is new."""
    from services.sentiment.feeds import poll_all

    pipe = _pipeline()
    return poll_all(pipe)


@shared_task(name=PRUNE_TASK, ignore_result=True)
def prune_task() -> dict[str, int]:
    """Daily: delete news past ``FINPULSE_RETENTION_NEWS_DAYS`` (see ``services.sentiment.retention``)."""
    from shared.retention import run_scheduled

    return run_scheduled(_settings(), ("news",))


def beat_schedule(settings: Any) -> dict[str, Any]:
    """Entries for ``celery beat``: feed polling, the unscored sweep and, when set, news retention."""
    from shared.retention import daily_entry

    sched = {"sentiment-sweep-unscored": {"task": "services.sentiment.tasks.sweep_unscored", "schedule": 60.0}}
    if settings.sentiment_feeds:
        sched["sentiment-poll-feeds"] = {"task": "services.sentiment.tasks.poll_feeds",
                                         "schedule": settings.sentiment_feed_poll_s}
    return sched | daily_entry(settings, "sentiment-prune", PRUNE_TASK, ("news",))

