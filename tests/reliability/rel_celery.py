"""Celery app for the worker-kill test: the project's config, a short visibility timeout,
and one task that records its completion idempotently in Redis.

``celery -A rel_celery worker`` imports this module, so the app is built at import
(a test helper; project modules never do this).
"""

from __future__ import annotations

import time

import redis
from celery import shared_task

from shared.celery_app import make_celery
from shared.settings import load_settings

VISIBILITY_S = 3  # redeliver a dead worker's tasks after 3 s (production: above the longest task)


def build_app() -> object:
    settings = load_settings()
    app = make_celery(settings, name="rel")
    app.conf.imports = []  # only this module's task
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options, "visibility_timeout": VISIBILITY_S,
        "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
        # A worker SIGKILLed inside its restore sweep leaves kombu's unacked mutex behind;
        # others can restore nothing until it expires (default 300 s: the old flake).
        "unacked_mutex_expire": 2}
    return app


app = build_app()
_RECORD_ONCE = """if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[1]) end"""


@shared_task(name="rel.record", bind=True)
def record(self: object, key: str, i: int, sleep_s: float) -> int:
    """Work for ``sleep_s``, then record ``i`` once: a redelivery never doubles a result."""
    client = redis.Redis.from_url(self.app.conf.broker_url)  # type: ignore[attr-defined]
    client.hincrby(f"{key}:runs", str(i), 1)
    time.sleep(sleep_s)
    # One atomic step: a kill between a separate SADD and RPUSH left the task marked done
    # but its result never pushed, so its redelivery pushed nothing either (the old flake).
    client.eval(_RECORD_ONCE, 2, f"{key}:done", f"{key}:results", i)
    return i
