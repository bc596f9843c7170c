"""Explicit hostile requests against every body-taking endpoint of each service.

Malformed JSON, wrong content types, oversize bodies (413 JSON) and unicode edge cases
(NUL, lone surrogates, RTL, combining marks, 1 MB strings) must all give a 4xx JSON
error (or success), never a 5xx, HTML or a stack trace.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Blueprint, jsonify
from pydantic import BaseModel
from services_under_test import OPS_KEY, SERVICES, build_app

from shared.web import MAX_CONTENT_LENGTH, json_body

UNICODE_EDGES = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e\u05e9\u05dc\u05d5\u05dd abc",
                 "\ufeff", "e\u0301" * 1000, "💥🏦", "\u2028\u2029", "x" * 1_000_000]
AUTH = {"Authorization": f"Bearer {OPS_KEY}"}


def _resolve(schema: dict, defs: dict) -> dict:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def instance(schema: dict, text: str, defs: dict, depth: int = 0) -> Any:
    """A schema-shaped value whose every string is ``text`` (to reach the domain code)."""
    schema = _resolve(schema, defs)
    defs = {**defs, **schema.get("$defs", {})}
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, defs).get("type") != "null"]
            return instance(options[0] if options else schema[key][0], text, defs, depth)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {k: instance(v, text, defs, depth + 1)
                for k, v in schema.get("properties", {}).items() if depth < 4}
    if kind == "array":
        return [instance(schema.get("items", {}), text, defs, depth + 1)] if depth < 4 else []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if "enum" in schema:
        return schema["enum"][0]
    return text


def body_operations(app: Any) -> list[tuple[str, str, dict, dict]]:
    """(method, concrete path, body schema, component schemas) of every body-taking route."""
    doc = app.test_client().get("/openapi.json").get_json()
    defs = doc.get("components", {}).get("schemas", {})
    out = []
    for path, ops in doc["paths"].items():
        concrete = path
        for seg in [s for s in path.split("/") if s.startswith("{")]:
            concrete = concrete.replace(seg, "x1")
        for method, op in ops.items():
            if method in ("post", "put", "patch"):
                body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
                out.append((method.upper(), concrete, body.get("schema", {}), defs))
    return out


def with_echo(app: Any) -> Any:
    """Add a tiny @json_body route so the shared body parsing is tested on its own."""

    class Echo(BaseModel):
        text: str
        items: list[str] = []

    bp = Blueprint("hostile_echo", __name__)

    @bp.post("/v1/echo")
    @json_body(Echo)
    def echo(body: Echo) -> Any:
        """Echo a body (test only)."""
        return jsonify({"chars": len(body.text)})

    app.register_blueprint(bp)
    return app


def check(resp: Any, what: str, allowed_5xx: bool = False) -> None:
    """A response to hostile input: never 500, always the JSON error shape when >= 400."""
    assert resp.status_code < 500 or (allowed_5xx and resp.status_code == 503), (
        f"{what}: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
    if resp.status_code >= 400:
        assert resp.is_json, f"{what}: {resp.status_code} error is {resp.content_type}"
        err = _json(resp)["error"]
        assert err["code"] and err["message"], what
        assert "Traceback" not in err["message"], what


def _json(resp: Any) -> Any:
    """The answer parsed by the standard library: an answer may rightly echo a NUL the request
    sent (a rejected row's id, JSON-escaped), which the apps' own strict loader refuses."""
    return json.loads(resp.get_data(as_text=True))


def hostile_requests(app: Any, tally: Any) -> list[str]:
    """Fire every hostile case at every body-taking route; return the failures."""
    client = app.test_client()
    failures = []
    for method, path, schema, defs in body_operations(app):
        cases: list[tuple[str, dict]] = [
            ("malformed JSON", {"data": b'{"texts": ["a", ', "content_type": "application/json"}),
            ("JSON null", {"data": b"null", "content_type": "application/json"}),
            ("JSON array", {"data": b"[1, 2]", "content_type": "application/json"}),
            ("invalid UTF-8", {"data": b'{"text": "\xff\xfe"}', "content_type": "application/json"}),
            ("text/plain", {"data": json.dumps(instance(schema, "ok", defs)), "content_type": "text/plain"}),
            ("form body", {"data": {"text": "ok"}}),
            ("no body", {}),
            ("oversize", {"data": b'{"text": "' + b"x" * (MAX_CONTENT_LENGTH + 10) + b'"}',
                          "content_type": "application/json"}),
            ("deep nesting", {"data": b"[" * 100_000 + b"]" * 100_000, "content_type": "application/json"}),
        ]
        for text in UNICODE_EDGES:
            cases.append((f"unicode {text[:12]!r}", {"json": instance(schema, text, defs)}))
        for name, kwargs in cases:
            for headers in (AUTH,):
                tally(__name__, "inputs")
                resp = client.open(path, method=method, headers=headers, **kwargs)
                if resp.status_code >= 500 and (resp.status_code != 503 or not resp.is_json
                                                or _json(resp)["error"]["code"] == "internal_error"):
                    tally(__name__, "5xx")
                if name == "oversize" and schema and (resp.status_code != 413 or not resp.is_json):
                    failures.append(f"{method} {path} oversize: {resp.status_code}, want 413 JSON")
                try:
                    check(resp, f"{method} {path} {name}", allowed_5xx=resp.is_json
                          and _json(resp).get("error", {}).get("code") != "internal_error")
                except AssertionError as exc:
                    failures.append(str(exc))
    return failures


@pytest.mark.parametrize("service", SERVICES)
def test_hostile_bodies(service: str, settings: Any, tally: Any, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue("tiny_sentiment_model") if service == "sentiment" else None
    app = build_app(service, settings, model)
    if service == "base":
        with_echo(app)
    failures = hostile_requests(app, tally)
    assert not failures, "\n".join(failures[:25])


def test_echo_accepts_unicode_literally(settings: Any) -> None:
    """The shared parser keeps RTL/emoji text intact (rejecting them would be a bug too)."""
    app = with_echo(build_app("base", settings))
    resp = app.test_client().post("/v1/echo", json={"text": "\u202e\u05e9\u05dc 💥"})
    assert resp.status_code == 200 and resp.get_json() == {"chars": 5}


def test_unknown_route_and_method_are_json(settings: Any) -> None:
    client = build_app("base", settings).test_client()
    for resp, status in ((client.get("/nope/<script>"), 404), (client.delete("/healthz"), 405)):
        assert resp.status_code == status and resp.is_json
        assert "<script>" not in resp.get_data(as_text=True)
