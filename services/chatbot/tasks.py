"""Celery tasks of the chatbot: the daily retention of transcripts and feedback (thin: the work is
in ``services.chatbot.retention``, reached through ``shared.retention`` like the CLI's)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

PRUNE_TASK = "services.chatbot.tasks.prune"
KINDS = ("chat", "feedback")


def _settings() -> Any:
    from celery import current_app

    from shared.settings import get_settings

    return getattr(current_app.conf, "finpulse_settings", None) or get_settings()


@shared_task(name=PRUNE_TASK, ignore_result=True)
def prune_task() -> dict[str, int]:
    """Daily: delete transcripts and feedback past their ``FINPULSE_RETENTION_*_DAYS``."""
    from shared.retention import run_scheduled

    return run_scheduled(_settings(), KINDS)


def beat_schedule(settings: Any) -> dict[str, Any]:
    """The ``celery beat`` entry: transcript and feedback retention, only when one is set."""
    from shared.retention import daily_entry

    return daily_entry(settings, "chatbot-prune", PRUNE_TASK, KINDS)
