"""Keys, rate limits and CORS: ops/analyst endpoints refuse missing, unknown and
under-privileged keys with 401/403 JSON; the public chat is rate limited; only allowed
origins get CORS headers; secrets come from the environment, never from code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from services_under_test import OPS_KEY, SERVICES, build_app

PROTECTED = re.compile(r"^/v1/(admin|kb|handoffs|feedback/pairs)(/|$)")
REPO = Path(__file__).resolve().parents[2]


def protected_routes(app: Any) -> list[tuple[str, str]]:
    doc = app.test_client().get("/openapi.json").get_json()
    return [(m.upper(), p.replace("{", "").replace("}", "")) for p, ops in doc["paths"].items()
            if PROTECTED.match(p) for m in ops]


@pytest.mark.parametrize("service", SERVICES[1:])
def test_ops_endpoints_need_keys(service: str, settings: Any, tally: Any) -> None:
    from shared.auth import create_key
    from shared.db import get_db

    app = build_app(service, settings)
    routes = protected_routes(app)
    # the contract's four ops endpoints, on every service
    assert {("POST", "/v1/admin/retrain"), ("GET", "/v1/admin/jobs/job_id"), ("POST", "/v1/admin/models/promote"),
            ("POST", "/v1/admin/models/rollback")} <= set(routes), routes
    with app.app_context():
        analyst = create_key(get_db(app), "sec-analyst", "analyst")
    client = app.test_client()
    for method, path in routes:
        for headers, want in (({}, 401), ({"Authorization": "Bearer fp_wrong"}, 401),
                              ({"Authorization": "Basic " + OPS_KEY}, 401)):
            resp = client.open(path, method=method, headers=headers, json={})
            tally(__name__, "inputs")
            assert resp.status_code == want and resp.is_json, (method, path, headers, resp.status_code)
            assert resp.get_json()["error"]["code"] == "unauthorized"
        resp = client.open(path, method=method, headers={"Authorization": f"Bearer {analyst}"}, json={})
        tally(__name__, "inputs")
        # analyst keys pass analyst endpoints (then 2xx/4xx on the body), ops-only ones give 403
        assert resp.status_code != 401 and resp.status_code < 500, (method, path, resp.status_code)
        if resp.status_code == 403:
            assert resp.get_json()["error"]["code"] == "forbidden"
        resp = client.open(path, method=method, headers={"Authorization": f"Bearer {OPS_KEY}"}, json={})
        assert resp.status_code not in (401, 403), (method, path, resp.status_code)
        assert resp.status_code < 500 or resp.get_json()["error"]["code"] == "unavailable", (method, path)


def test_wrong_keys_share_one_budget_across_services(settings: Any, redis_url: str, unique: str) -> None:
    """Security QA: 200 wrong keys to /v1/admin/jobs in 2.4 s, all 401s. The budget of wrong keys
    (FINPULSE_AUTH_FAILURE_LIMIT) is one per address in the rate limits' Redis, across services."""
    s = settings.model_copy(update={"ratelimit_storage_url": None, "auth_failure_limit": "4/minute"})
    apps = [build_app(name, s) for name in ("sentiment", "recommendations")]
    clients = [app.test_client() for app in apps]
    for client in clients:  # a fresh address in the shared test Redis on every run
        client.environ_base["REMOTE_ADDR"] = f"2001:db8::{unique[:4]}:{unique[4:]}"
    codes = [c.get("/v1/admin/jobs", headers={"Authorization": "Bearer fp_wrong"}).status_code
             for c in clients for _ in range(2)]
    assert codes == [401] * 4, codes
    for client in clients:
        resp = client.get("/v1/admin/jobs", headers={"Authorization": f"Bearer {OPS_KEY}"})
        assert resp.status_code == 429 and resp.get_json()["error"]["code"] == "too_many_requests"
        assert int(resp.headers["Retry-After"]) > 0
    doc = clients[0].get("/openapi.json").get_json()
    assert "Retry-After" in doc["paths"]["/v1/admin/jobs"]["get"]["responses"]["429"]["headers"]


def test_readyz_names_no_server_path_to_others(settings: Any) -> None:
    """Security QA: /readyz told anyone "no knowledge base loaded at /tmp/.../indexes/chatbot/bank"."""
    app = build_app("chatbot", settings)  # no knowledge base loaded
    outside = app.test_client()
    outside.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    resp = outside.get("/readyz")
    assert resp.status_code == 503 and "knowledge base" in resp.get_json()["reasons"]
    assert str(settings.home) not in resp.get_data(as_text=True)
    for headers in ({"Authorization": f"Bearer {OPS_KEY}"}, None):  # ops, and this host, see the path
        client = outside if headers else app.test_client()
        assert str(settings.home) in " ".join(client.get("/readyz", headers=headers).get_json()["reasons"])


def test_chat_is_rate_limited(settings: Any) -> None:
    app = build_app("chatbot", settings.model_copy(update={"chatbot_rate_limit": "3/minute"}))
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.7"  # a customer, not this host
    codes = [client.post("/v1/chat", json={"message": "hello"}).status_code for _ in range(5)]
    assert codes[-1] == 429, codes
    resp = client.post("/v1/chat", json={"message": "hello"})
    assert resp.is_json and resp.get_json()["error"]["message"]
    assert len(resp.headers.getlist("Retry-After")) == 1  # once, whoever sets it


def test_this_host_is_not_rate_limited_unless_a_proxy_forwarded_it(settings: Any) -> None:
    """An evaluation run over HTTP from the host got 429s after 120 questions a minute."""
    app = build_app("chatbot", settings.model_copy(update={"chatbot_rate_limit": "3/minute"}))
    local = app.test_client()  # 127.0.0.1
    assert all(local.post("/v1/chat", json={"message": "hello"}).status_code != 429 for _ in range(6))
    forwarded = [local.post("/v1/chat", json={"message": "hello"}, headers={"X-Forwarded-For": "198.51.100.2"})
                 for _ in range(5)]  # through a local proxy nobody declared: limited, as the proxy
    assert forwarded[-1].status_code == 429
    for header, value in (("X-Real-IP", "198.51.100.5"), ("Forwarded", "for=198.51.100.6")):  # nginx, RFC 7239
        codes = [local.post("/v1/chat", json={"message": "hello"}, headers={header: value}).status_code
                 for _ in range(5)]
        assert codes[-1] == 429, (header, codes)  # a local proxy sending only these made everyone exempt
    behind = build_app("chatbot", settings.model_copy(update={"chatbot_rate_limit": "3/minute",
                                                               "trusted_proxies": 1}))
    proxy = behind.test_client()  # a declared proxy: each customer has a bucket of their own
    for who, limited in (("198.51.100.3", True), ("198.51.100.4", True), ("127.0.0.1", False)):
        codes = [proxy.post("/v1/chat", json={"message": "hi"}, headers={"X-Forwarded-For": who}).status_code
                 for _ in range(5)]
        assert (codes[-1] == 429) is limited, (who, codes)
    # security QA: a client reaching the port itself, not through the proxy, claiming to be this host
    direct = behind.test_client()
    direct.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    codes = [direct.post("/v1/chat", json={"message": "hi"}, headers={"X-Forwarded-For": "127.0.0.1"}).status_code
             for _ in range(5)]
    assert codes[-1] == 429, codes


def test_the_per_conversation_limit_keys_only_valid_session_ids(settings: Any) -> None:
    """Security QA: the limiter keyed Redis on the posted session id before the body was
    validated: a 7.5 MB id stored a 7.5 MB key a request (five raised Redis by 48 MB)."""
    from services.chatbot import _session_id

    app = build_app("chatbot", settings)
    for posted, keyed in (("B" * 7_500_000, None), ("ok-1_A", "ok-1_A"), ("a b", None), (7, None)):
        with app.test_request_context("/v1/chat", method="POST", json={"session_id": posted, "message": "hi"}):
            assert _session_id() == keyed


def test_cors_allowlist_on_chat(settings: Any) -> None:
    good, bad = "https://bank.example", "https://evil.example"
    app = build_app("chatbot", settings.model_copy(update={"chatbot_cors_origins": [good]}))
    client = app.test_client()
    for origin, allowed in ((good, True), (bad, False)):
        resp = client.options("/v1/chat", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                   "Access-Control-Request-Headers": "Content-Type"})
        got = resp.headers.get("Access-Control-Allow-Origin")
        assert (got == origin) if allowed else (got is None), (origin, got)
        resp = client.post("/v1/chat", json={"message": "hi"}, headers={"Origin": origin})
        assert (resp.headers.get("Access-Control-Allow-Origin") == origin) is allowed


def test_no_secrets_in_code() -> None:
    """Keys and passwords come from the environment: no literal secret in shipped code."""
    pattern = re.compile(r"""(ops_key|password|secret|api_key|token)\s*[:=]\s*["'][^"'{}<>\s]{8,}["']""", re.I)
    hits = []
    for folder in ("shared", "services", "training", "data_connectors"):
        for path in (REPO / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)


def test_ops_key_read_from_environment(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    from shared.settings import load_settings

    monkeypatch.setenv("FINPULSE_OPS_KEY", "fp_from_env_123456")
    assert load_settings(home=home).ops_key == "fp_from_env_123456"
    monkeypatch.delenv("FINPULSE_OPS_KEY")
    assert load_settings(home=home).ops_key is None  # no built-in default key


def test_under_waitress_a_forwarded_request_from_this_host_is_still_limited(settings: Any) -> None:
    """waitress strips X-Forwarded-For by default, so a local proxy's customers passed for this
    host and were never limited; the services are served with the headers kept."""
    import json
    import urllib.error
    import urllib.request

    from shared.up import waitress_options
    from tests.waitress_server import serving

    app = build_app("chatbot", settings.model_copy(update={"chatbot_rate_limit": "3/minute"}))
    with serving(app, **waitress_options("chatbot")) as server:

        def post(headers: dict[str, str]) -> int:
            req = urllib.request.Request(f"http://127.0.0.1:{server.effective_port}/v1/chat",
                                         data=json.dumps({"message": "hello"}).encode(),
                                         headers={"Content-Type": "application/json", **headers})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert 429 not in [post({}) for _ in range(5)]  # this host itself
        assert [post({"X-Forwarded-For": "203.0.113.50"}) for _ in range(5)][-1] == 429


@pytest.mark.parametrize(("service", "path"), [("sentiment", "/"), ("chatbot", "/"), ("recommendations", "/ops")])
def test_pages_cannot_be_framed_and_no_response_is_sniffed(service: str, path: str, settings: Any) -> None:
    """Security QA: the dashboard, ops page and chat demo had no frame or sniffing headers: another
    site could frame the dashboard under its own overlay."""
    client = build_app(service, settings).test_client()
    page, data = client.get(path, headers={"Authorization": f"Bearer {OPS_KEY}"}), client.get("/healthz")
    assert page.mimetype == "text/html" and data.is_json
    for resp in (page, data):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert "X-Frame-Options" not in data.headers


WRITES = [("sentiment", "/v1/news", {"id": "w1", "title": "$ACME record profit", "published_at": "2024-03-01T10:00:00Z",
                                     "source": "wire"}, 202),
          ("sentiment", "/v1/score", {"texts": ["profit rose"]}, 200),
          ("recommendations", "/v1/interactions", {"user_id": "u1", "item_id": "i1"}, 201)]


@pytest.mark.parametrize(("service", "path", "body", "ok"), WRITES)
def test_feed_key_required_closes_the_public_writes_to_feed_and_ops_keys(service: str, path: str, body: dict,
                                                                         ok: int, settings: Any) -> None:
    """Security QA: anyone who could reach a port rewrote stored articles (withdrawing a real alert)
    or skewed every user's recommendations; FINPULSE_FEED_KEY_REQUIRED lets a deployment close the
    writes. Off (the default) they stay open, as the contract has them, and the document says so."""
    from shared.auth import create_key
    from shared.db import get_db

    open_app = build_app(service, settings)
    assert open_app.test_client().post(path, json=body).status_code == ok
    assert "security" not in open_app.test_client().get("/openapi.json").get_json()["paths"][path]["post"]
    app = build_app(service, settings.model_copy(update={"feed_key_required": True}))
    with app.app_context():
        feed, analyst = create_key(get_db(app), "newswire", "feed"), create_key(get_db(app), "desk", "analyst")
    client = app.test_client()
    for headers, want in (({}, 401), ({"Authorization": f"Bearer {analyst}"}, 403),
                          ({"Authorization": f"Bearer {feed}"}, ok), ({"Authorization": f"Bearer {OPS_KEY}"}, ok)):
        resp = client.post(path, json=body, headers=headers)
        assert resp.status_code == want, (headers, resp.get_json())
    op = client.get("/openapi.json").get_json()["paths"][path]["post"]
    assert op["security"] == [{"bearer": []}] and "401" in op["responses"]
    assert client.get("/healthz").status_code == 200  # reads stay open
