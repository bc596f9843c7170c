"""The chatbot with Redis gone (sessions, rate limits): 503 JSON, never 500, and it recovers.

In-process app against a private redis-server that is killed and restarted.
"""

from __future__ import annotations

from typing import Any

import pytest
from faultkit import REPO, RedisServer, record_line

pytestmark = pytest.mark.reliability


def test_chat_during_redis_outage(settings: Any, private_redis: RedisServer) -> None:
    from services.chatbot import create_app
    from services.chatbot.service import load_kb
    from shared.db import upgrade

    s = settings.model_copy(update={"redis_url": private_redis.url, "ratelimit_storage_url": None})
    upgrade(s.db_url)
    load_kb(s, REPO / "data" / "samples" / "faq.jsonl", progress=False)
    client = create_app(s).test_client()
    ask = {"message": "how do I reset my card pin"}
    assert client.post("/v1/chat", json=ask).status_code == 200
    private_redis.stop()
    statuses = []
    for _ in range(3):
        resp = client.post("/v1/chat", json=ask)
        statuses.append(resp.status_code)
        assert resp.is_json, resp.get_data(as_text=True)[:200]
        assert resp.status_code in (200, 503), (resp.status_code, resp.get_json())
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "redis" in " ".join(ready.get_json()["reasons"]).lower()
    private_redis.start()
    resp = client.post("/v1/chat", json=ask)
    statuses.append(resp.status_code)
    assert resp.status_code == 200, resp.get_json()
    record_line("fault", "Redis killed under the chatbot", injected=1, survived=1, requests=len(statuses),
                fivexx=sum(c >= 500 and c != 503 for c in statuses), lost=0)
