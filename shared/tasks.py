"""Generic inference tasks: ping, sentiment scores, sentence embeddings.

Thin tasks (JSON in, the same domain function a view would call) that never fail a
whole batch for one bad text: bad items come back as per-item errors, caller mistakes
as an ``{"error": ...}`` result. Unexpected failures are retried a bounded number of
times; a poison message (one that keeps failing or killing its worker) is recorded on
the ``finpulse:failed-tasks`` list and marked FAILURE, never redelivered forever.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Retry

from shared.errors import FinPulseError, Unavailable

log = logging.getLogger(__name__)
MAX_RETRIES = 2
MAX_DELIVERIES = 4  # runs of one task id, worker crashes included
FAILED_LIST = "finpulse:failed-tasks"
_DELIVERIES = "finpulse:task-deliveries:"


class PoisonTask(Exception):
    """A task that failed or was redelivered too often; it is recorded and not run again."""


def task_settings(task: Task) -> Any:
    settings = getattr(task.app.conf, "finpulse_settings", None)
    if settings is None:
        from shared.settings import get_settings

        settings = get_settings()
    return settings


def record_failure(settings: Any, task: Task, reason: str) -> None:
    """Append the failed task to the dead-letter list (kept to the latest 1000)."""
    from shared.redis_client import get_redis

    entry = {"id": task.request.id, "task": task.name, "reason": reason[:500], "at": time.time(),
             "args": repr(task.request.args)[:500]}
    try:
        client = get_redis(settings.redis_url)
        client.lpush(FAILED_LIST, json.dumps(entry))
        client.ltrim(FAILED_LIST, 0, 999)
    except Exception as exc:  # noqa: BLE001 - recording must not mask the failure
        log.warning("could not record failed task %s: %s", task.request.id, exc)


def _guard_deliveries(task: Task, settings: Any) -> None:
    """Count redeliveries of this task id in Redis; past the bound it is poison.

    Only a redelivered message (its worker died before acking) pays the Redis round trip:
    a first delivery is the common case and costs nothing here.
    """
    from shared.redis_client import get_redis

    if not task.request.id or task.request.is_eager:
        return
    if not (task.request.delivery_info or {}).get("redelivered"):
        return
    key = _DELIVERIES + task.request.id
    try:
        client = get_redis(settings.redis_url)
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 3600)
        runs = 1 + int(pipe.execute()[0])  # the first delivery was not counted
    except Exception:  # noqa: BLE001 - without Redis the broker is gone too
        return
    if runs > MAX_DELIVERIES:
        reason = f"delivered {runs} times (retried or its worker died each time)"
        record_failure(settings, task, reason)
        raise PoisonTask(reason)


def _run(task: Task, fn: Any) -> dict[str, Any]:
    """Run ``fn`` with the task's error policy (see module docstring)."""
    settings = task_settings(task)
    _guard_deliveries(task, settings)
    try:
        return fn(settings)
    except Unavailable as exc:  # no model yet, Redis blip: worth another try
        return _retry_or_fail(task, settings, exc)
    except FinPulseError as exc:  # the caller's mistake: an answer, not a failure
        return exc.to_dict()
    except (Retry, PoisonTask):
        raise
    except Exception as exc:  # noqa: BLE001
        log.exception("task %s failed", task.name)
        return _retry_or_fail(task, settings, exc)


def _retry_or_fail(task: Task, settings: Any, exc: Exception) -> dict[str, Any]:
    if task.request.retries < MAX_RETRIES and not task.request.is_eager:
        raise task.retry(exc=exc, countdown=0.5 * (task.request.retries + 1), max_retries=MAX_RETRIES)
    record_failure(settings, task, f"{type(exc).__name__}: {exc}")
    raise PoisonTask(f"{task.name} failed after {task.request.retries} retries: {exc}") from exc


@shared_task(name="shared.tasks.ping", track_started=False)
def ping() -> dict[str, Any]:
    """Liveness of a worker: who answered."""
    return {"pong": True, "host": socket.gethostname(), "pid": os.getpid()}


@shared_task(bind=True, name="shared.tasks.sentiment_scores", track_started=False)
def sentiment_scores(self: Task, texts: list[Any], model: str | None = None,
                     runtime: str | None = None) -> dict[str, Any]:
    """``{"model", "results": [{"label", "scores"} | {"error"}]}`` for ``texts``.

    Concurrent tasks in one worker share its dynamic batcher, so many one-headline
    tasks cost a few batched forward passes.
    """
    from shared.inference import score_local

    return _run(self, lambda s: score_local(texts, s, ref=model, kind=runtime))


@shared_task(bind=True, name="shared.tasks.embed_texts", track_started=False)
def embed_texts(self: Task, texts: list[Any], model: str | None = None,
                normalize: bool = True) -> dict[str, Any]:
    """``{"model", "results": [{"embedding": [...]} | {"error"}]}`` (base encoder by default)."""
    from shared.inference import embed_local

    return _run(self, lambda s: embed_local(texts, s, ref=model, normalize=normalize))
