"""The Redis transport and result backend with fewer round trips keep Celery's semantics."""

from __future__ import annotations

import contextlib
import json
import time

import pytest


@pytest.fixture
def app(settings, redis_url: str):
    from shared.celery_app import make_celery

    return make_celery(settings.model_copy(update={"redis_url": redis_url}))


def test_config_selects_the_classes(app):
    from shared.celery_redis import RedisBackend, Transport

    assert isinstance(app.backend, RedisBackend)
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)


def test_channel_reuses_one_sync_client(app):
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._pool = None  # a dropped pool (reconnect): the client follows the new one
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool


def test_store_writes_publishes_and_expires(app, unique: str):
    backend = app.backend
    task_id = f"t-{unique}"
    key = backend.get_key_for_task(task_id)
    pubsub = backend.client.pubsub()
    pubsub.subscribe(key)
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    backend.store_result(task_id, {"n": 1}, "SUCCESS")
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)
    pubsub.close()
    assert message is not None and json.loads(message["data"])["result"] == {"n": 1}
    assert 0 < backend.client.ttl(key) <= int(backend.expires)
    assert app.AsyncResult(task_id).get(timeout=5) == {"n": 1}


def test_success_is_never_overwritten(app, unique: str):
    backend = app.backend
    task_id = f"t-{unique}"
    backend.store_result(task_id, None, "STARTED")
    assert backend.get_task_meta(task_id)["status"] == "STARTED"
    backend.store_result(task_id, {"ok": True}, "SUCCESS")
    backend.store_result(task_id, ValueError("late duplicate"), "FAILURE")  # e.g. a re-delivered copy
    backend._cache.pop(task_id, None)
    meta = backend.get_task_meta(task_id)
    assert meta["status"] == "SUCCESS" and meta["result"] == {"ok": True}


def test_failure_keeps_its_own_expiry(app, unique: str):
    backend = app.backend
    backend.failure_expires = 7
    task_id = f"t-{unique}"
    backend.store_result(task_id, ValueError("boom"), "FAILURE")
    assert 0 < backend.client.ttl(backend.get_key_for_task(task_id)) <= 7
    assert backend.get_task_meta(task_id)["status"] == "FAILURE"


def test_a_queue_item_that_is_not_a_message_is_dropped_not_fatal(app, redis_url: str, unique: str):
    """`LPUSH inference.cpu garbage` was an "Unrecoverable error" that ended the worker."""
    import redis
    from kombu import Consumer, Queue

    name = f"q-{unique}"
    queue = Queue(name, routing_key=name)
    got: list = []
    keep = [lambda body, msg: (got.append(body), msg.ack())]
    with app.connection_for_write() as conn, Consumer(conn, [queue], callbacks=keep, accept=["json"]):
        redis.Redis.from_url(redis_url).lpush(name, "garbage-not-json")
        with conn.Producer() as producer:
            producer.publish({"ok": 1}, routing_key=name, serializer="json", declare=[queue])
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=1)
    assert got == [{"ok": 1}]  # the message after the junk item still arrives
