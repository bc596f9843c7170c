"""The sentiment monitoring service: news in, per-ticker sentiment on event time, alerts out."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from services.sentiment.scoring import Scorer
    from shared.admin import Enqueue, RetrainTask
    from shared.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, scorer: Scorer | None = None) -> Flask:
    """Build the Flask app; works with no model registered (``/readyz`` says what is missing).

    ``scorer`` replaces the registry model (tests inject a known-answer scorer).
    """
    from services.sentiment import metrics
    from services.sentiment.api import bp
    from services.sentiment.pipeline import Pipeline
    from services.sentiment.streams import StreamSlots
    from shared import db as dbmod
    from shared import redis_client
    from shared.settings import get_settings
    from shared.web import add_readiness_check, create_service_app

    settings = settings or get_settings()
    app = create_service_app("sentiment", settings)
    db = dbmod.init_app(app, settings)
    pipe = Pipeline(settings, db=db, scorer=scorer)
    app.extensions["sentiment"] = pipe
    # alert streams sleep most of their life: their own server threads, so a dashboard per
    # analyst never starves ingestion and health checks of the request threads
    app.config["FINPULSE_STREAM_THREADS"] = settings.sentiment_alert_streams
    app.extensions["alert_streams"] = StreamSlots(settings.sentiment_alert_streams,
                                                  settings.sentiment_alert_streams_per_address)
    app.register_blueprint(bp)
    metrics.init_app(db)  # the scoring backlog as the database sees it, whichever process scores
    add_readiness_check(app, db.ready, "database")
    add_readiness_check(app, lambda: redis_client.ping(settings.redis_url), "redis")
    add_readiness_check(app, lambda: pipe.scorer() and None, "model")
    add_readiness_check(app, lambda: pipe.linker and None, "company list")  # a broken FINPULSE_SENTIMENT_COMPANIES_CSV
    # Ops endpoints for this service's own model; the service never imports training.
    from shared.admin import register_admin

    register_admin(app, tasks={"sentiment": retrain_task()}, domains=[settings.sentiment_domain])
    if settings.sentiment_scoring == "celery":
        from shared.celery_app import celery_init_app

        celery_init_app(app, settings)
    elif settings.sentiment_scoring == "inline" and not settings.testing:
        start_sweeper(pipe)
    return app


def retrain_task(start: str | Enqueue | None = None) -> RetrainTask:
    """How ops retrain the sentiment model: the data (and dev) file checked before queueing.

    ``start`` defaults to the Celery retrain task on the training queue; tests pass a
    callable ``start(job_id, settings)``.
    """
    from services.sentiment.retraining import check_request
    from shared.admin import RetrainTask

    return RetrainTask(start or "training.retrain", check=check_request)


def start_sweeper(pipe: Any, every_s: float = 60.0) -> threading.Thread:
    """Score articles left unscored (crash, no model yet): at start-up, then every minute."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                pipe.sweep()
            except Exception as exc:  # no model yet or DB not migrated: try again later
                log.info("sentiment sweep skipped: %s", exc)
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=loop, name="sentiment-sweeper", daemon=True)
    thread.start()
    return thread


__all__ = ["create_app", "retrain_task"]
