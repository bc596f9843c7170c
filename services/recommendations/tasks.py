"""Celery tasks: retrain jobs and their six-hourly schedule (thin: the work is in ``retraining``).

Both go through :func:`services.recommendations.retraining.run_retrain_job`, so a scheduled
refit is an ordinary job (row, log, registered version, gate) like one an operator starts.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

JOB_TASK = "services.recommendations.tasks.retrain_job"
RETRAIN_TASK = "services.recommendations.tasks.retrain"
RETRAIN_EVERY_S = 6 * 3600.0
PRUNE_TASK = "services.recommendations.tasks.prune"
log = logging.getLogger(__name__)


def _settings() -> Any:
    from celery import current_app

    from shared.settings import get_settings

    return getattr(current_app.conf, "finpulse_settings", None) or get_settings()


@shared_task(name=JOB_TASK, ignore_result=True)
def retrain_job(job_id: str) -> None:
    """Run the retrain job ``job_id`` (queued by ``POST /v1/admin/retrain``)."""
    from services.recommendations.retraining import run_retrain_job

    run_retrain_job(job_id, _settings())


@shared_task(name=RETRAIN_TASK, ignore_result=True)
def retrain_task(domain: str | None = None) -> dict[str, Any] | None:
    """Refit ``domain``'s production recommender on its events plus every stored one, as a job."""
    from services.recommendations.retraining import run_retrain_job
    from services.recommendations.versions import TASK, registry
    from shared.db import Database
    from shared.lifecycle import create_job

    settings = _settings()
    domain = domain or settings.recommendations_domain
    if registry(settings).production(domain, TASK) is None:
        log.info("no production %s/%s yet: nothing to refit", domain, TASK)
        return None
    db = Database(settings.db_url)
    try:
        job_id = create_job(db, f"retrain:{domain}/{TASK}", {"domain": domain, "task": TASK,
                                                             "reason": "scheduled refit"}, actor="beat")
        job = run_retrain_job(job_id, settings, db)
        return {k: job[k] for k in ("id", "status", "result", "error")}
    finally:
        db.dispose()


@shared_task(name=PRUNE_TASK, ignore_result=True)
def prune_task() -> dict[str, int]:
    """Daily: delete interactions past ``FINPULSE_RETENTION_INTERACTIONS_DAYS``."""
    from shared.retention import run_scheduled

    return run_scheduled(_settings(), ("interactions",))


def beat_schedule(settings: Any) -> dict[str, Any]:
    """The ``celery beat`` entries: retrain the served domain every six hours; when set, retention."""
    from shared.retention import daily_entry

    return {"recommendations-retrain": {"task": RETRAIN_TASK, "schedule": RETRAIN_EVERY_S,
                                        "args": (settings.recommendations_domain,)},
            **daily_entry(settings, "recommendations-prune", PRUNE_TASK, ("interactions",))}

