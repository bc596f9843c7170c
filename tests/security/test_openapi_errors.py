"""Each service's /openapi.json tells clients which errors can come back, and they really do.

Regression for the QA finding that the documents listed none of the 404/409/413/429/503
answers the endpoints give, and kept bounds such as ``k`` 1-100 in prose only: every
operation now lists its 4xx/5xx statuses with the shared Error schema, integer query
arguments carry ``minimum``/``maximum``, and a sample of those statuses is produced here by
real requests against the real services (SQLite, the test Redis, the in-memory rate limiter).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from services_under_test import OPS_KEY, SERVICES, build_app

ERROR_REF = {"$ref": "#/components/schemas/Error"}
OPS = {"Authorization": f"Bearer {OPS_KEY}"}


def _doc(app: Any) -> dict[str, Any]:
    return app.test_client().get("/openapi.json").get_json()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def _produced(doc: dict[str, Any], method: str, path: str, resp: Any, status: int) -> dict[str, str]:
    """``resp`` has ``status``, which the document lists for the operation with the Error schema,
    and its body is that schema's shape; returns the error object."""
    assert resp.status_code == status, (method, path, resp.status_code, resp.get_data(as_text=True)[:300])
    documented = doc["paths"][path][method]["responses"]
    assert str(status) in documented, (method, path, status, sorted(documented))
    assert documented[str(status)]["content"]["application/json"]["schema"] == ERROR_REF
    error = resp.get_json()["error"]
    assert set(error) >= {"code", "message"} and error["code"] and error["message"]
    return error


def _concrete(path: str) -> str:
    return "/".join("x1" if part.startswith("{") else part for part in path.split("/"))


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_lists_its_errors_with_the_one_error_schema(service: str, settings: Any) -> None:
    """The document validates as OpenAPI 3; no operation lacks an error answer, each one is the
    Error component (defined once), and the decorators' statuses are there by themselves."""
    from openapi_spec_validator import validate

    doc = _doc(build_app(service, settings))
    validate(doc)
    text = json.dumps(doc)
    assert text.count('"required": ["code", "message"]') == 1  # the shape lives in the component only
    for method, path, op in _operations(doc):
        where = f"{method.upper()} {path}"
        errors = {s: r for s, r in op["responses"].items() if s == "default" or int(s) >= 400}
        assert any(s != "default" and 400 <= int(s) < 500 for s in errors), where
        for status, answer in errors.items():
            assert answer["content"] == {"application/json": {"schema": ERROR_REF}}, (where, status)
            assert answer["description"], (where, status)
        if "requestBody" in op:
            assert {"400", "413", "415"} <= set(errors), where
        if any(p["in"] == "query" for p in op["parameters"]):
            assert "400" in errors, where
        if "security" in op:  # the key is looked up in the database, past the failed-key budget
            assert {"401", "403", "429", "503"} <= set(errors), where
            assert "WWW-Authenticate" in errors["401"]["headers"], where
            assert "FINPULSE_AUTH_FAILURE_LIMIT" in errors["429"]["description"], where
        if "too_many_requests" in errors.get("429", {}).get("description", ""):  # a rate limit's, not session_busy
            assert "Retry-After" in errors["429"]["headers"], where
    # 503 only where a dependency is touched: not on liveness, metrics or the document itself
    for path in ("/healthz", "/metrics", "/openapi.json"):
        assert "503" not in doc["paths"][path]["get"]["responses"], path
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_v1_route_is_documented(service: str, settings: Any) -> None:
    """A /v1 route without ``documented()`` got a bare 200 and no 503 for what it touches
    (the ops routes retire, restore and handoffs did): each one now says what it needs."""
    app = build_app(service, settings)
    bare = sorted(rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/v1/")
                  and not hasattr(app.view_functions[rule.endpoint], "_openapi_status"))
    assert bare == [], bare
    if service == "recommendations":  # what the 503 names: the store these ops routes write to
        doc = _doc(app)
        for path, method in (("/v1/items/{item_id}/restore", "post"), ("/v1/items/{item_id}", "delete")):
            assert "database" in doc["paths"][path][method]["responses"]["503"]["description"], (path, method)


@pytest.mark.parametrize("service", SERVICES[1:])
def test_bounded_query_arguments_are_refused_just_past_their_schema_bounds(service: str, settings: Any,
                                                                          redis_url: str) -> None:
    """Every query argument with a ``minimum``/``maximum`` is a 400 one step outside them and not
    a 400 at the maximum: the schema states what the view enforces."""
    app = build_app(service, settings)
    doc, client, checked = _doc(app), app.test_client(), 0
    for method, path, op in _operations(doc):
        for param in [p for p in op["parameters"] if p["in"] == "query" and "maximum" in p["schema"]]:
            schema, name, url = param["schema"], param["name"], _concrete(path)
            low = schema.get("exclusiveMinimum", schema.get("minimum", 0) - 1)
            for bad in (low, schema["maximum"] + 1):
                resp = client.open(url, method=method.upper(), headers=OPS, query_string={name: bad})
                assert name in _produced(doc, method, path, resp, 400)["message"], (path, name, bad)
            if path != "/v1/alerts/stream":  # a valid max_s holds the stream open that long
                resp = client.open(url, method=method.upper(), headers=OPS, query_string={name: schema["maximum"]})
                assert resp.status_code != 400, (path, name, resp.get_json())
            checked += 1
    assert checked >= 4  # limit, k, hours, max_s, after, ...: bounds are stated structurally


def test_recommendations_k_bounds_are_in_the_schema(settings: Any) -> None:
    app = build_app("recommendations", settings)
    doc, client = _doc(app), app.test_client()
    path = "/v1/users/{user_id}/recommendations"
    k = next(p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}
    assert _produced(doc, "get", path, client.get("/v1/users/u1/recommendations?k=0"), 400)["code"] == "bad_k"
    # no production recommender yet: the documented 503, not a 500
    error = _produced(doc, "get", path, client.get("/v1/users/u1/recommendations?k=5"), 503)
    assert error["code"] == "unavailable"
    big = json.dumps([{"user_id": "u", "item_id": "i" * 100}] * 70_000)  # over 8 MiB
    resp = client.post("/v1/interactions", data=big, content_type="application/json")
    error = _produced(doc, "post", "/v1/interactions", resp, 413)
    assert error["code"] == "request_entity_too_large"
    assert "over the 8 MiB limit" in error["message"]  # werkzeug's message named no limit (recommendations QA)


def test_sentiment_errors_are_documented_and_produced(settings: Any, redis_url: str) -> None:
    app = build_app("sentiment", settings)
    doc, client = _doc(app), app.test_client()
    rows = [{"title": f"t{i}", "published_at": "2024-01-01T00:00:00Z"} for i in range(5001)]
    assert _produced(doc, "post", "/v1/news", client.post("/v1/news", json=rows), 413)["code"] == "too_large"
    resp = client.post("/v1/score", data='{"texts": ["x"]}', content_type="text/plain")
    assert _produced(doc, "post", "/v1/score", resp, 415)["code"] == "unsupported_media_type"
    resp = client.get("/v1/alerts?limit=0")
    assert "limit" in _produced(doc, "get", "/v1/alerts", resp, 400)["message"]
    resp = client.get("/static/sentiment/no-such-file.js")
    _produced(doc, "get", "/static/sentiment/{filename}", resp, 404)
    resp = client.get("/healthz?x=%00")  # the one 400 every operation can give
    assert _produced(doc, "get", "/healthz", resp, 400)["code"] == "invalid_url"


def test_admin_errors_are_documented_and_produced(settings: Any, tmp_path: Any) -> None:
    """Keys (401/403), unknown job (404), finished job (409), gate refusal (409)."""
    from shared import lifecycle
    from shared.auth import create_key
    from shared.db import get_db
    from shared.registry import Registry

    app = build_app("sentiment", settings)
    doc, client = _doc(app), app.test_client()
    with app.app_context():
        db = get_db(app)
        analyst = create_key(db, "ann", "analyst")
        job = lifecycle.create_job(db, "retrain:news/sentiment", {}, actor="test")
        lifecycle.update_job(db, job, status="succeeded")
    resp = client.get("/v1/admin/jobs")
    assert _produced(doc, "get", "/v1/admin/jobs", resp, 401)["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = client.get("/v1/admin/jobs", headers={"Authorization": f"Bearer {analyst}"})
    assert _produced(doc, "get", "/v1/admin/jobs", resp, 403)["code"] == "forbidden"
    resp = client.get("/v1/admin/jobs/no-such-job", headers=OPS)
    assert _produced(doc, "get", "/v1/admin/jobs/{job_id}", resp, 404)["code"] == "not_found"
    resp = client.post(f"/v1/admin/jobs/{job}/cancel", headers=OPS)
    assert _produced(doc, "post", "/v1/admin/jobs/{job_id}/cancel", resp, 409)["code"] == "conflict"

    # v1 in production, v2 whose gate report (against v1) failed: promoting v2 is the documented 409
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    reg = Registry(settings.registry_dir)
    v1 = reg.register("news", "sentiment", model, move=False)
    reg.promote(v1.ref)
    v2 = reg.register("news", "sentiment", model, move=False)
    (v2.path / "gate.json").write_text(json.dumps({"passed": False, "production": v1.ref,
                                                   "summary": "macro_f1 0.10 < 0.80"}))
    resp = client.post("/v1/admin/models/promote", headers=OPS, json={"ref": v2.ref})
    error = _produced(doc, "post", "/v1/admin/models/promote", resp, 409)
    assert error["code"] == "conflict" and "gate" in error["message"]
    resp = client.post("/v1/admin/models/promote", headers=OPS, json={"ref": "news/sentiment@v9"})
    _produced(doc, "post", "/v1/admin/models/promote", resp, 404)
    assert reg.production("news", "sentiment").version == v1.version  # nothing moved


def test_chatbot_413_and_rate_limit_429_are_documented_and_produced(settings: Any, redis_url: str) -> None:
    """message_too_long is a 413; past the per-address limit the chat is a 429 with Retry-After."""
    app = build_app("chatbot", settings.model_copy(update={"chatbot_rate_limit": "2/minute",
                                                                "chatbot_rate_limit_exempt": []}))
    doc, client = _doc(app), app.test_client()
    too_long = {"message": "x" * (settings.chatbot_max_message_chars + 1)}
    for _ in range(2):
        resp = client.post("/v1/chat", json=too_long)
        assert _produced(doc, "post", "/v1/chat", resp, 413)["code"] == "message_too_long"
    resp = client.post("/v1/chat", json=too_long)
    assert _produced(doc, "post", "/v1/chat", resp, 429)["code"] == "too_many_requests"
    assert int(resp.headers["Retry-After"]) > 0
    limit = doc["paths"]["/v1/chat"]["post"]["responses"]["429"]
    assert "2/minute" in limit["description"] and "Retry-After" in limit["headers"]
    for path, method in (("/v1/feedback", "post"), ("/v1/chat/{session_id}/messages", "get")):
        assert "429" in doc["paths"][path][method]["responses"], path  # the other limited endpoints
    assert "429" not in doc["paths"]["/widget.js"]["get"]["responses"]


def test_documented_refuses_an_unknown_dependency_and_query_read_needs_bounds() -> None:
    from shared.web import Query, documented

    with pytest.raises(ValueError, match="unknown dependencies"):
        documented(needs=("databse",))
    with pytest.raises(TypeError, match="no bounded integer"):
        Query("string", "a ticker").read("ticker")
