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
