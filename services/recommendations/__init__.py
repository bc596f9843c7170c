"""The recommendations service: ``create_app(settings=None)`` wires the API to the live model.

The model served is the registry's ``production`` version of
``<recommendations_domain>/recommendations``, loaded lazily and once per process;
``/readyz`` says when there is none yet. Ops endpoints (``/v1/admin/*``, ops key) retrain,
promote and roll back recommender versions like every other FinPulse model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from shared.admin import Enqueue, RetrainTask
    from shared.settings import Settings


def retrain_task(start: str | Enqueue | None = None) -> RetrainTask:
    """How ops retrain recommenders: ``data`` optional (refit production), checked before queueing.

    ``start`` defaults to the Celery job task on the training queue; tests pass a callable
    that runs the job in-process.
    """
    from services.recommendations.retraining import check_request
    from services.recommendations.tasks import JOB_TASK
    from shared.admin import RetrainTask

    return RetrainTask(start or JOB_TASK, data_optional=True, check=check_request, files=("data", "items"))


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app: JSON errors, health/readiness, metrics, the recommendations API, ops."""
    from services.recommendations.api import bp
    from services.recommendations.serving import RecsService
    from services.recommendations.versions import TASK
    from shared.admin import register_admin
    from shared.db import init_app
    from shared.redis_client import ping
    from shared.settings import get_settings
    from shared.web import add_readiness_check, create_service_app

    settings = settings or get_settings()
    app = create_service_app("recommendations", settings)
    db = init_app(app, settings)
    recs = RecsService(settings, db)
    app.extensions["recs"] = recs
    app.register_blueprint(bp)
    add_readiness_check(app, recs.ready, "model")
    add_readiness_check(app, db.ready, "database")
    # retrains queue through Redis and model changes arrive on it: ready said yes with it down
    add_readiness_check(app, lambda: ping(settings.redis_url), "redis")
    register_admin(app, tasks={TASK: retrain_task()}, domains=[settings.recommendations_domain])
    return app


__all__ = ["create_app", "retrain_task"]
