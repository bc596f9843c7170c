"""Celery tasks: periodic retraining of the served recommender (thin: the work is in ``serving``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

RETRAIN_EVERY_S = 6 * 3600.0


def _settings() -> Any:
    from celery import current_app

    from shared.settings import get_settings

    return getattr(current_app.conf, "finpulse_settings", None) or get_settings()


@shared_task(name="services.recommendations.tasks.retrain", acks_late=True)
def retrain_task(domain: str | None = None) -> dict[str, Any]:
    """Refit ``domain``'s model on its data plus every stored interaction (idempotent)."""
    from services.recommendations.serving import retrain
    from shared.db import Database

    settings = _settings()
    db = Database(settings.db_url)
    try:
        return retrain(settings, db, domain)
    finally:
        db.dispose()


def beat_schedule(settings: Any) -> dict[str, Any]:
    """The ``celery beat`` entry: retrain the served domain every six hours."""
    return {"recommendations-retrain": {"task": "services.recommendations.tasks.retrain",
                                        "schedule": RETRAIN_EVERY_S,
                                        "args": (settings.recommendations_domain,)}}


def _install_beat_schedule(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None:
        app.conf.beat_schedule = {**beat_schedule(_settings()), **(app.conf.beat_schedule or {})}


def connect_beat() -> None:
    """Add the schedule when a beat starts (call from the worker entry point)."""
    from celery.signals import beat_init

    beat_init.connect(_install_beat_schedule, weak=False)
