"""The service skeleton: JSON errors, health/readiness, OpenAPI 3, API keys and audit."""

from __future__ import annotations

from typing import Any

import pytest
from flask import jsonify
from pydantic import BaseModel, Field
from sqlalchemy import select

from shared.errors import Unavailable


class Echo(BaseModel):
    text: str = Field(min_length=1)
    n: int = 1


@pytest.fixture
def app(settings):
    from shared import db as dbmod
    from shared.auth import require_role
    from shared.web import add_readiness_check, create_service_app, json_body

    dbmod.upgrade(settings.db_url)
    app = create_service_app("testsvc", settings.model_copy(update={"ops_key": "boot-key-for-tests"}))
    dbmod.init_app(app, settings)

    @app.post("/v1/echo")
    @json_body(Echo)
    def echo(body: Echo) -> Any:
        """Echo the text n times."""
        return jsonify({"text": body.text * body.n})

    @app.get("/v1/items/<item_id>")
    def item(item_id: str) -> Any:
        """One item."""
        return jsonify({"id": item_id})

    @app.post("/v1/admin/thing")
    @require_role("ops")
    def admin_thing() -> Any:
        """Ops only."""
        return jsonify({"ok": True})

    @app.get("/v1/report")
    @require_role("analyst")
    def report() -> Any:
        """Analysts (and ops)."""
        return jsonify({"ok": True})

    app.extensions["flags"] = {"ready": True}

    def model_loaded() -> None:
        if not app.extensions["flags"]["ready"]:
            raise Unavailable("model news/sentiment@production not loaded yet")

    add_readiness_check(app, model_loaded, "model")
    yield app
    app.extensions["db"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def _error(resp, status: int) -> dict:
    assert resp.status_code == status
    assert resp.is_json, resp.data[:200]
    body = resp.get_json()
    assert set(body["error"]) == {"code", "message"}
    return body["error"]


def test_json_errors(client):
    assert _error(client.get("/nope"), 404)["code"] == "not_found"
    not_allowed = client.get("/v1/echo")
    assert _error(not_allowed, 405)["code"] == "method_not_allowed"
    assert "POST" in not_allowed.headers["Allow"]  # RFC 9110: a 405 says what is allowed
    assert _error(client.post("/v1/echo", data="{bad", content_type="application/json"), 400)["code"] \
        == "invalid_json"
    assert _error(client.post("/v1/echo", data="text=x"), 415)["code"] == "unsupported_media_type"
    nul = client.post("/v1/echo", data='{"text": "a\\u0000b"}', content_type="application/json")
    assert _error(nul, 400)["code"] == "invalid_json"  # PostgreSQL cannot store it: it was a 500 there
    # valid JSON the strict parser refuses says why, not "not valid JSON" (sentiment QA)
    assert "holds a NUL character" in _error(client.post("/v1/echo", data='{"text": "a\\u0000b"}',
                                                         content_type="application/json"), 400)["message"]
    assert "Expecting" in _error(client.post("/v1/echo", data="{bad", content_type="application/json"),
                                 400)["message"]  # a syntax error names where
    assert _error(client.get("/v1/items/a%00b"), 400)["code"] == "invalid_url"
    assert client.post("/v1/echo", json={"text": "a\\u0000b"}).status_code == 200  # a backslash, not NUL
    for body, says in (("", "empty"), ("null", "null")):  # valid JSON, or nothing: the message says which
        assert says in _error(client.post("/v1/echo", data=body, content_type="application/json"), 400)["message"]
    err = _error(client.post("/v1/echo", json={"text": ""}), 400)
    assert err["code"] == "validation_error" and "text" in err["message"]
    assert client.post("/v1/echo", json={"text": "ab", "n": 2}).get_json() == {"text": "abab"}


def test_health_readiness_metrics(app, client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    app.extensions["flags"]["ready"] = False
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert "not loaded yet" in resp.get_json()["reasons"][0]
    # the contract's error shape too (it had only status/service/reasons), the reasons in its message
    assert _error(resp, 503) == {"code": "unavailable", "message": resp.get_json()["reasons"][0]}
    for n in range(5):  # invented methods: one series each, without a limit (observability QA)
        client.open("/readyz", method=f"M{n}X")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and b"finpulse_http_requests" in metrics.data
    assert b'method="M0X"' not in metrics.data and b'method="other"' in metrics.data
    assert metrics.headers["Content-Type"].count("charset") == 1  # strict scrapers refuse a repeated one


def test_wrong_keys_past_the_budget_are_refused_before_the_lookup(app, client, monkeypatch):
    """Security QA: 200 wrong keys to /v1/admin/jobs in 2.4 s were all plain 401s, nothing slowed.
    Past FINPULSE_AUTH_FAILURE_LIMIT (20/minute) every key-protected request from that address is a 429."""
    from shared import auth
    from shared.db import get_db

    analyst = {"Authorization": f"Bearer {auth.create_key(get_db(app), 'ann', 'analyst')}"}
    ops = {"Authorization": "Bearer boot-key-for-tests"}
    client.environ_base["REMOTE_ADDR"] = "203.0.113.7"  # a customer, not this host
    for _ in range(25):  # successes, a missing key and a 403 are no failed key
        assert client.post("/v1/admin/thing", headers=ops).status_code == 200
        assert client.post("/v1/admin/thing").status_code == 401
        assert client.post("/v1/admin/thing", headers=analyst).status_code == 403
    guesses = [client.post("/v1/admin/thing", headers={"Authorization": f"Bearer fp_guess{n}"}) for n in range(20)]
    assert [r.status_code for r in guesses] == [401] * 20
    lookups = []
    monkeypatch.setattr(auth, "role_for", lambda *a: lookups.append(a))
    for method, path, headers in (("POST", "/v1/admin/thing", ops), ("GET", "/v1/report", analyst),
                                  ("GET", "/v1/report", {})):
        refused = client.open(path, method=method, headers=headers)
        assert _error(refused, 429)["code"] == "too_many_requests", (method, path)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert lookups == []  # refused before the key is looked up
    monkeypatch.undo()
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.1"  # another address keeps its own budget
    assert other.post("/v1/admin/thing", headers=ops).status_code == 200
    local = app.test_client()  # this host (FINPULSE_CHATBOT_RATE_LIMIT_EXEMPT): scripts and tests
    assert {local.post("/v1/admin/thing", headers={"Authorization": "Bearer no"}).status_code
            for _ in range(30)} == {401}
    assert local.post("/v1/admin/thing", headers=ops).status_code == 200


def test_the_failed_key_budget_ends_with_its_window(app, client):
    import time

    app.config["FINPULSE"] = app.config["FINPULSE"].model_copy(update={"auth_failure_limit": "2/second"})
    client.environ_base["REMOTE_ADDR"] = "203.0.113.8"
    assert [client.get("/v1/report", headers={"Authorization": "Bearer no"}).status_code
            for _ in range(3)] == [401, 401, 429]
    time.sleep(1.1)
    assert client.get("/v1/report", headers={"Authorization": "Bearer boot-key-for-tests"}).status_code == 200


def test_an_unreachable_budget_store_keeps_a_budget_in_this_process(app, client, caplog):
    """Security QA: with its Redis unreachable the failed-key budget failed open, so whoever could make
    Redis unreachable had unlimited key guesses. It now counts in this process, with the same limits and
    one log line; good keys keep working (ops need their endpoints during an outage) until it is spent."""
    import logging

    unreachable = "redis://127.0.0.1:6399/15"  # nothing listens there
    app.config["FINPULSE"] = app.config["FINPULSE"].model_copy(
        update={"ratelimit_storage_url": unreachable, "auth_failure_limit": "3/minute"})
    client.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    good = {"Authorization": "Bearer boot-key-for-tests"}
    with caplog.at_level(logging.INFO, logger="shared.auth"):
        assert client.get("/v1/report", headers=good).status_code == 200
        codes = [client.get("/v1/report", headers={"Authorization": f"Bearer fp_guess{n}"}).status_code
                 for n in range(5)]
        assert codes == [401, 401, 401, 429, 429], codes
        refused = client.get("/v1/report", headers=good)  # past the budget no key is looked up
        assert _error(refused, 429)["code"] == "too_many_requests"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = "198.51.100.9"  # another address keeps its own budget
        assert other.get("/v1/report", headers=good).status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == "shared.auth"]
    assert len(said) == 1 and "unreachable" in said[0] and "in this process" in said[0], said


def test_the_in_process_budget_keeps_its_windows_in_bounded_memory():
    """The stand-in budget holds the newest failures the largest limit needs, for a bounded number of
    addresses: a flood of wrong keys from ever new (IPv6) addresses cannot grow it without end."""
    import time

    from limits import parse_many

    from shared.auth import LocalBudget

    budget = LocalBudget(parse_many("2/second;3/minute"), max_failures=300)  # 300 // 3: 100 addresses
    for n in range(250):
        budget.fail(f"2001:db8::{n:x}")
    assert len(budget.failures) == 100
    assert "2001:db8::f9" in budget.failures and "2001:db8::0" not in budget.failures  # the oldest went
    for _ in range(10):
        budget.fail("203.0.113.1")
    assert len(budget.failures["203.0.113.1"]) == 3  # only what 3/minute needs
    assert 55 <= budget.retry_after("203.0.113.1") <= 60  # the longest limit reached decides
    assert budget.retry_after("198.51.100.1") is None

    short = LocalBudget(parse_many("2/second"))
    short.fail("a")
    assert short.retry_after("a") is None
    short.fail("a")
    assert short.retry_after("a") == 1
    time.sleep(1.05)
    assert short.retry_after("a") is None  # a moving window, as the store's
    short.fail("b")
    assert list(short.failures) == ["b"]  # failures all out of every window are forgotten


def test_readyz_gives_full_reasons_only_to_this_host_and_analyst_or_ops_keys(app, client, tmp_path):
    """Security QA: /readyz showed anyone server paths and raw probe errors ("no knowledge base
    loaded at /tmp/.../indexes/chatbot/bank"); others get the probes' names only."""
    from shared.auth import create_key
    from shared.db import get_db
    from shared.web import add_readiness_check

    secret = tmp_path / "indexes" / "chatbot" / "bank"

    def kb() -> None:
        raise Unavailable(f"no knowledge base loaded at {secret}; run 'finpulse kb load --kb FILE'")

    def probe() -> None:
        raise OSError(f"[Errno 13] Permission denied: '{secret}'")

    add_readiness_check(app, kb, "knowledge base")
    add_readiness_check(app, probe)
    app.extensions["flags"]["ready"] = False
    analyst, feed = create_key(get_db(app), "ann", "analyst"), create_key(get_db(app), "fred", "feed")
    outside = app.test_client()
    outside.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    for key in (None, feed, "fp_wrong"):
        resp = outside.get("/readyz", headers={"Authorization": f"Bearer {key}"} if key else {})
        short = ["model", "knowledge base", "a readiness check"]
        assert _error(resp, 503) == {"code": "unavailable", "message": "; ".join(short)}
        assert resp.get_json()["reasons"] == short, key
        assert str(secret) not in resp.get_data(as_text=True) and "Errno" not in resp.get_data(as_text=True)
    for who, key in ((outside, analyst), (outside, "boot-key-for-tests"), (client, None)):  # client: this host
        resp = who.get("/readyz", headers={"Authorization": f"Bearer {key}"} if key else {})
        reasons = resp.get_json()["reasons"]
        assert "not loaded yet" in reasons[0] and str(secret) in reasons[1] and "Errno 13" in reasons[2], key
    # a wrong key counts against the budget (/readyz is no key oracle), and past it even a good one is not looked up
    for _ in range(20):
        outside.get("/readyz", headers={"Authorization": "Bearer fp_guess"})
    assert outside.get("/readyz", headers={"Authorization": f"Bearer {analyst}"}).get_json()["reasons"][0] == "model"
    assert _error(outside.get("/v1/report", headers={"Authorization": f"Bearer {analyst}"}), 429)


def test_openapi_document_is_valid(client):
    from openapi_spec_validator import validate

    doc = client.get("/openapi.json").get_json()
    validate(doc)
    assert "/v1/items/{item_id}" in doc["paths"]
    body = doc["paths"]["/v1/echo"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "text" in body["properties"]
    error = doc["components"]["schemas"]["Error"]  # every error answer has all of them (they were optional)
    assert error["required"] == ["error"] and error["properties"]["error"]["required"] == ["code", "message"]


def test_require_role_and_audit(app, client):
    from shared.auth import audit, create_key, revoke_key
    from shared.db import get_db
    from shared.models import ApiKey, AuditLog

    db = get_db(app)
    assert _error(client.post("/v1/admin/thing"), 401)["code"] == "unauthorized"
    assert _error(client.post("/v1/admin/thing", headers={"Authorization": "Bearer nope"}), 401)
    analyst = create_key(db, "ann", "analyst")
    ops = create_key(db, "otto", "ops")
    as_analyst = {"Authorization": f"Bearer {analyst}"}
    assert _error(client.post("/v1/admin/thing", headers=as_analyst), 403)["code"] == "forbidden"
    assert client.get("/v1/report", headers=as_analyst).status_code == 200
    assert client.post("/v1/admin/thing", headers={"Authorization": f"Bearer {ops}"}).status_code == 200
    assert client.get("/v1/report", headers={"Authorization": f"Bearer {ops}"}).status_code == 200
    assert client.post("/v1/admin/thing", headers={"Authorization": "Bearer boot-key-for-tests"}).status_code == 200
    assert client.post("/v1/admin/thing", headers={"Authorization": "bearer boot-key-for-tests"}).status_code == 200
    assert _error(client.post("/v1/admin/thing", headers={"Authorization": "Basic boot-key-for-tests"}), 401)
    for unauthorized in (client.post("/v1/admin/thing"),
                         client.get("/v1/report", headers={"Authorization": "Bearer no"})):
        assert unauthorized.headers["WWW-Authenticate"].startswith("Bearer")  # RFC 9110: every 401 has one
    with db.session() as s:  # keys are stored hashed, never in clear
        hashes = s.scalars(select(ApiKey.key_hash)).all()
    assert analyst not in hashes and len(hashes) == 2
    assert revoke_key(db, "ann") == 1
    assert _error(client.get("/v1/report", headers=as_analyst), 401)
    audit(db, "otto", "models.promote", "news/sentiment@v2", "ok", {"reason": "better f1"})
    with db.session() as s:
        row = s.scalars(select(AuditLog)).one()
    assert (row.actor, row.action, row.outcome, row.detail) == ("otto", "models.promote", "ok",
                                                                {"reason": "better f1"})
    assert row.at is not None


@pytest.mark.parametrize("configured", ["boot-key-for-tests\n", " boot-key-for-tests ", "boot-key-for-tests\r\n"])
def test_a_bootstrap_key_set_with_a_trailing_newline_still_authenticates(settings, configured) -> None:
    """FINPULSE_OPS_KEY from a secret or env file ends in a newline; the presented key is stripped,
    the configured one was not, so the bootstrap key was a 401 on every request."""
    from shared import db as dbmod
    from shared.auth import require_role, role_for
    from shared.web import create_service_app

    dbmod.upgrade(settings.db_url)
    app = create_service_app("testsvc", settings.model_copy(update={"ops_key": configured}))
    dbmod.init_app(app, settings)

    @app.post("/v1/admin/thing")
    @require_role("ops")
    def admin_thing() -> Any:
        """Ops only."""
        return jsonify({"ok": True})

    client = app.test_client()
    assert client.post("/v1/admin/thing", headers={"Authorization": "Bearer boot-key-for-tests"}).status_code == 200
    assert client.post("/v1/admin/thing", headers={"Authorization": "Bearer boot-key-for-test"}).status_code == 401
    assert role_for(dbmod.get_db(app), "anything", "  \n") is None  # a blank setting is no key at all
    app.extensions["db"].dispose()


def test_a_database_without_the_schema_is_a_503_naming_db_upgrade(any_db_url, settings) -> None:
    """QA (multi-process deploy): before `finpulse db upgrade` every data endpoint was a 500
    internal_error on PostgreSQL (undefined table); readiness alone said what was wrong."""
    from services.recommendations import create_app
    from shared.db import downgrade
    from shared.web import SCHEMA_UNAVAILABLE

    downgrade(any_db_url, "base")  # every table dropped, as on a database never migrated
    app = create_app(settings.model_copy(update={"database_url": any_db_url}))
    res = app.test_client().post("/v1/interactions", json={"user_id": "u1", "item_id": "m2"})
    assert (res.status_code, res.get_json()) == (503, {"error": {"code": "unavailable", "message": SCHEMA_UNAVAILABLE}})
    app.extensions["db"].dispose()
