"""The redelivery guard: first deliveries cost nothing, a task whose worker keeps dying is poison."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from shared.tasks import FAILED_LIST, MAX_DELIVERIES, PoisonTask, _guard_deliveries


def _task(task_id: str, redelivered: bool) -> SimpleNamespace:
    request = SimpleNamespace(id=task_id, is_eager=False, delivery_info={"redelivered": redelivered},
                              args=(["headline"],))
    return SimpleNamespace(request=request, name="shared.tasks.sentiment_scores")


def test_first_deliveries_are_free_and_repeated_redeliveries_are_poison(settings, redis_url) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    task_id = uuid.uuid4().hex
    for _ in range(10):  # first deliveries (e.g. retries) never count
        _guard_deliveries(_task(task_id, redelivered=False), settings)
    assert not client.exists(f"finpulse:task-deliveries:{task_id}")
    for _ in range(MAX_DELIVERIES - 1):  # the first run plus these redeliveries are allowed
        _guard_deliveries(_task(task_id, redelivered=True), settings)
    with pytest.raises(PoisonTask, match=f"delivered {MAX_DELIVERIES + 1} times"):
        _guard_deliveries(_task(task_id, redelivered=True), settings)
    assert any(task_id.encode() in row for row in client.lrange(FAILED_LIST, 0, 20))


def _malformed_messages(queue: str, tag: str) -> list[str]:
    """Queue items a hand (or a foreign producer) pushed: each used to end the worker or be taken
    for a lost broker connection."""
    import base64
    import json

    def message(task: str, body: object, n: int) -> str:
        return json.dumps({"body": base64.b64encode(json.dumps(body).encode()).decode(),
                           "content-encoding": "utf-8", "content-type": "application/json",
                           "headers": {"task": task, "id": f"{tag}-{n}", "lang": "py"},
                           "properties": {"body_encoding": "base64", "delivery_tag": f"{tag}-{n}",
                                          "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0}})

    return [message("shared.tasks.ping", {"a": 1}, 1),  # a body that is not [args, kwargs, embed]
            message("shared.tasks.ping", [1, 2], 2),
            '{"body": "xx", "headers": {}, "properties": {}}',  # no delivery tag
            "[1, 2, 3]"]  # JSON, but no message at all


def test_malformed_task_messages_are_dropped_not_fatal(worker_settings, redis_url, unique) -> None:
    """Worker QA: a message whose body Celery cannot unpack was an "Unrecoverable error": the worker
    exited, restored the message on its way out, and every restart died on it again (`finpulse up`
    gave up and stopped the suite). Now each is dropped with one log line and dead-lettered."""
    import json
    import os
    import subprocess
    import sys
    import time

    import redis

    from shared.inference import client_app

    client = redis.Redis.from_url(redis_url)
    queue, tag = f"test-poison-{unique}", f"poison-{unique}"
    env = {**os.environ, "FINPULSE_HOME": str(worker_settings.home), "REDIS_URL": redis_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker", "--queues", queue, "--concurrency", "2", "--no-warm",
         "--loglevel", "INFO", "--hostname", f"{queue}@test"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        app = client_app(worker_settings)
        assert app.send_task("shared.tasks.ping", queue=queue).get(timeout=60)["pong"] is True
        for item in _malformed_messages(queue, tag):
            client.lpush(queue, item)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.llen(queue):
            assert proc.poll() is None, "the worker exited on a malformed message"
            time.sleep(0.2)
        # still consuming, on the same connection: a ping after them is answered at once
        assert app.send_task("shared.tasks.ping", queue=queue).get(timeout=20)["pong"] is True
        assert proc.poll() is None
        assert not [k for k in client.hkeys("unacked") if k.decode().startswith(tag)]  # never restored
        dead = [json.loads(x) for x in client.lrange(FAILED_LIST, 0, 100)]
        assert {f"{tag}-1", f"{tag}-2"} <= {d.get("id") for d in dead}
        assert sum(1 for d in dead if d.get("queue") == queue) == 4
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Unrecoverable error" not in out and "Connection to broker lost" not in out, out[-3000:]
    assert out.count("dropped a message of queue") == 4, out[-3000:]
