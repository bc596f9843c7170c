"""Schemathesis against every operation of each service's /openapi.json: zero 5xx.

Positive (schema-valid) and negative (schema-violating) cases, sent with an ops key so
they reach past authentication (keys are checked in test_auth_cors.py). 503 is allowed
only where the dependency really is absent (e.g. no knowledge base
loaded): it says "try later", and the body must still be the JSON error shape.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from services_under_test import OPS_KEY, SERVICES, build_app

FULL = os.environ.get("FINPULSE_RELIABILITY_FULL") == "1"
EXAMPLES = 60 if FULL else 6
SKIP_PATHS = {"/v1/alerts/stream"}  # server-sent events never end; covered in the fault tests


def fuzz_operations(app: Any, tally: Any, module: str, examples: int = EXAMPLES) -> list[str]:
    """Run every operation; return one line per 5xx (other than a reasoned 503) found."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in SKIP_PATHS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # With the ops key, so fuzzing reaches past authentication (tested on its own).
            run = _runner(op, mode, {"Authorization": f"Bearer {OPS_KEY}"}, examples, tally, module, failures)
            try:
                run()
            except Unsatisfiable:  # nothing to violate (no parameters, no body)
                continue
            except Exception as exc:  # a failing assertion: keep going, report all
                failures.append(f"{op.method} {op.path}: {type(exc).__name__}: {exc}"[:800])
    return failures


def _runner(op: Any, mode: GenerationMode, headers: dict, examples: int, tally: Any,
            module: str, failures: list[str]) -> Any:
    """One hypothesis test for one operation, mode and header set."""

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        tally(module, "inputs")
        if response.status_code == 503:
            tally(module, "503")  # a dependency reported absent; a 503 "internal_error" still fails below
        ctype = (response.headers.get("content-type") or [""])[0]
        if op.path == "/readyz":  # its 503 is the readiness shape: {"status", "reasons"}
            assert "json" in ctype and response.json()["status"] in ("ready", "unavailable")
            return
        if response.status_code >= 400:
            assert "json" in ctype, f"{op.method} {op.path}: error is {ctype}, not JSON"
            body = response.json()
            assert body["error"]["code"] and body["error"]["message"]
        if response.status_code >= 500:
            detail = response.json()["error"]
            if response.status_code != 503 or detail["code"] == "internal_error":
                tally(module, "5xx")
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code} {detail}: {case.as_curl_command()}")

    return run


@pytest.mark.parametrize("service", SERVICES)
def test_no_server_errors(service: str, settings: Any, tally: Any) -> None:
    app = build_app(service, settings)  # sentiment on a stub model: the real one is in test_api_hostile
    failures = fuzz_operations(app, tally, __name__)
    assert not failures, "\n".join(failures[:20])


def test_openapi_lists_every_route(settings: Any) -> None:
    """The document covers the whole URL map (a route missing from it is never fuzzed)."""
    app = build_app("base", settings)
    doc = app.test_client().get("/openapi.json").get_json()
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert path in doc["paths"], path


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "base"])  # the three with ops endpoints
def test_openapi_refs_resolve_and_ops_need_a_key(service: str, settings: Any) -> None:
    """Every ``$ref`` points into the document (a nested body model's did not), and the
    endpoints behind an API key say so."""
    doc = build_app(service, settings).test_client().get("/openapi.json").get_json()
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in doc["components"]["schemas"], ref
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    retrain = doc["paths"]["/v1/admin/retrain"]["post"]
    assert retrain["security"] == [{"bearer": []}] and "401" in retrain["responses"]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    jobs_query = [p["name"] for p in doc["paths"]["/v1/admin/jobs"]["get"]["parameters"] if p["in"] == "query"]
    assert jobs_query == ["limit"]  # query arguments are documented (and so fuzzed above)
    own = {"sentiment": ("/v1/alerts", "since"), "chatbot": ("/v1/chat/{session_id}/messages", "after"),
           "recommendations": ("/v1/users/{user_id}/recommendations", "k")}[service]
    assert own[1] in [p["name"] for p in doc["paths"][own[0]]["get"]["parameters"]]
