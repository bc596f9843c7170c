"""FINPULSE_ALLOWED_HOSTS: every service answers only to its host names (and this host's loopback);
any other Host is a 400 JSON error before anything else runs, health endpoints included.

Security QA: there was no Host check, so a page on any name rebound to a service's address (DNS
rebinding) was answered as the service's own, and a forged Host went into what the service answered.
"""

from __future__ import annotations

from typing import Any

import pytest
from services_under_test import SERVICES, build_app

ALLOWED = ["api.bank.example", ".svc.example"]


def _refused(resp: Any) -> dict:
    assert resp.status_code == 400 and resp.is_json, (resp.status_code, resp.get_data(as_text=True)[:200])
    return resp.get_json()["error"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_answers_only_its_allowed_hosts(service: str, settings: Any, tally: Any) -> None:
    app = build_app(service, settings.model_copy(update={"allowed_hosts": ALLOWED}))
    client = app.test_client()
    for host in ("evil.example", "evil.example:8101", "api.bank.example.evil.example", "evilsvc.example",
                 "10.0.0.7:8101", "[2001:db8::1]:8101", "bad host"):
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/no-such-page"):
            error = _refused(client.get(path, headers={"Host": host}))
            tally(__name__, "inputs")
            assert error["code"] == "invalid_host" and "FINPULSE_ALLOWED_HOSTS" in error["message"], (host, path)
    for host in ("api.bank.example", "API.Bank.Example:8101", "api.bank.example.", "svc.example",
                 "chat.svc.example:443", "localhost:8102", "127.0.0.1:8101", "[::1]:8103"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    doc = client.get("/openapi.json").get_json()
    assert "invalid_host" in doc["paths"]["/healthz"]["get"]["responses"]["400"]["description"]
    app.config["FINPULSE"] = settings  # the default, empty: any host, as before the setting existed
    assert client.get("/healthz", headers={"Host": "evil.example:8101"}).status_code == 200
    doc = client.get("/openapi.json").get_json()
    assert "invalid_host" not in doc["paths"]["/healthz"]["get"]["responses"]["400"]["description"]


def test_a_refused_host_reaches_no_rate_limit(settings: Any) -> None:
    """The Host check runs before the chat's rate limiter: refused requests spend nobody's budget."""
    app = build_app("chatbot", settings.model_copy(update={"allowed_hosts": ALLOWED, "chatbot_rate_limit": "2/minute"}))
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.30"  # a customer, not this host
    for _ in range(4):
        assert _refused(client.post("/v1/chat", json={"message": "hi"}, headers={"Host": "evil.example"}))
    assert client.post("/v1/chat", json={"message": "hi"}, headers={"Host": "api.bank.example"}).status_code != 429


def test_behind_a_trusted_proxy_the_forwarded_host_is_checked(settings: Any) -> None:
    app = build_app("recommendations", settings.model_copy(update={"allowed_hosts": ALLOWED, "trusted_proxies": 1}))
    client = app.test_client()
    assert _refused(client.get("/healthz", headers={"Host": "api.bank.example",
                                                    "X-Forwarded-Host": "evil.example"}))["code"] == "invalid_host"
    assert client.get("/healthz", headers={"Host": "recommendations:8103",
                                           "X-Forwarded-Host": "api.bank.example"}).status_code == 200


def test_the_setting_is_read_from_the_environment_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.errors import ConfigError
    from shared.settings import load_settings

    monkeypatch.setenv("FINPULSE_ALLOWED_HOSTS", " API.Bank.example, .svc.example,bücher.example,[::1] ")
    assert load_settings().allowed_hosts == ["api.bank.example", ".svc.example", "xn--bcher-kva.example", "::1"]
    assert load_settings(allowed_hosts=[]).allowed_hosts == []
    for bad, says in (("https://api.bank.example", "scheme"), ("api.bank.example:443", "port"),
                      ("*", "wildcard"), ("a b", "no host name")):
        monkeypatch.setenv("FINPULSE_ALLOWED_HOSTS", bad)
        with pytest.raises(ConfigError) as exc:
            load_settings()
        assert "FINPULSE_ALLOWED_HOSTS" in exc.value.message and says in exc.value.message, exc.value.message
        assert "\n" not in exc.value.message
