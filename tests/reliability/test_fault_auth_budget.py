"""The failed-key budget with its Redis killed and restarted: counted in the process meanwhile, never
unlimited, good keys still served, and back in Redis once it answers again.

In-process app (the shared app factory) against a private redis-server.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis
from faultkit import RedisServer
from flask import jsonify

pytestmark = pytest.mark.reliability


def test_the_failed_key_budget_survives_a_redis_outage(settings: Any, private_redis: RedisServer,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Security QA: the budget failed open while Redis was unreachable (unlimited key guesses)."""
    from shared import db as dbmod
    from shared.auth import FailureBudget, require_role
    from shared.web import create_service_app

    monkeypatch.setattr(FailureBudget, "RETRY_STORE_S", 0.0)  # try the store on every request
    s = settings.model_copy(update={"ratelimit_storage_url": private_redis.url, "auth_failure_limit": "3/minute",
                                    "ops_key": "boot-key-for-tests"})
    dbmod.upgrade(s.db_url)
    app = create_service_app("testsvc", s)
    dbmod.init_app(app, s)

    @app.get("/v1/report")
    @require_role("analyst")
    def report() -> Any:
        """Analysts (and ops)."""
        return jsonify({"ok": True})

    attacker, ops = app.test_client(), app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.20"
    ops.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    wrong, good = {"Authorization": "Bearer fp_guess"}, {"Authorization": "Bearer boot-key-for-tests"}
    store = redis.Redis.from_url(private_redis.url)

    assert attacker.get("/v1/report", headers=wrong).status_code == 401
    assert store.keys("*finpulse-auth-failures*")  # counted in Redis while it answers
    private_redis.stop()
    with caplog.at_level(logging.INFO, logger="shared.auth"):
        codes = [attacker.get("/v1/report", headers=wrong).status_code for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429], codes  # the process's own count: 3, then refused
        assert ops.get("/v1/report", headers=good).status_code == 200  # a good key still works
        private_redis.start()  # an empty Redis: what the process counted is not carried over
        assert attacker.get("/v1/report", headers=good).status_code == 200
        assert attacker.get("/v1/report", headers=wrong).status_code == 401
    assert store.keys("*finpulse-auth-failures*")  # counted in Redis again
    said = [r.getMessage() for r in caplog.records if r.name == "shared.auth"]
    assert len(said) == 2 and "unreachable" in said[0] and "reachable again" in said[1], said
    app.extensions["db"].dispose()
