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
    app = create_service_app("testsvc", settings.model_copy(update={"ops_key": "boot-key"}))
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

    add_readiness_check(app, model_loaded)
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
    assert client.post("/v1/admin/thing", headers={"Authorization": "Bearer boot-key"}).status_code == 200
    assert client.post("/v1/admin/thing", headers={"Authorization": "bearer boot-key"}).status_code == 200
    assert _error(client.post("/v1/admin/thing", headers={"Authorization": "Basic boot-key"}), 401)
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
