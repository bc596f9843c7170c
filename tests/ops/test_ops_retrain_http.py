"""Issue 8 done-when: retrain news over HTTP, gate promotes / refuses, rollback, audit, access."""

from __future__ import annotations

import json

import pytest
from ops_helpers import make_app, wait_job

# Two epochs of four steps at a raised LR, one thread: enough to learn (or mislearn) 30
# obvious rows whatever the head's init (one epoch at the default LR lands near 0.7).
TINY = {"epochs": 2, "max_length": 24, "options": {"batch_size": 8, "patience": 0, "eval_every": 1.0,
                                                   "lr": 3e-4, "num_threads": 1}}
TEXTS = ["shares plunged after a weak quarter", "the board met on Tuesday", "the bank doubled its profit"]


def test_retrain_gate_promote_refuse_rollback_audit(ops, worker):
    app = make_app(ops["settings"], worker["queue"])
    client = app.test_client()
    auth = {"Authorization": f"Bearer {ops['keys']['ops']}"}
    before = client.post("/v1/score", json={"texts": TEXTS}).get_json()
    assert before["model_version"] == "news/sentiment@v1"

    # A good data set: trained on the worker, gated against v1 on the eval set, promoted.
    resp = client.post("/v1/admin/retrain", headers=auth, json={
        "domain": "news", "task": "sentiment", "data": str(ops["data"]["train"]), **TINY})
    assert resp.status_code == 202, resp.get_json()
    job = wait_job(client, resp.get_json()["job_id"], auth)
    assert job["status"] == "succeeded", (job, worker["log"].read_text()[-3000:])
    assert job["result"]["version"] == "news/sentiment@v2"
    assert job["result"]["gate"]["passed"] is True and job["result"]["promoted"] is True
    assert job["progress"]["stage"] == "done" and "gate passed" in job["log"]
    gate = json.loads((ops["registry"].resolve("news/sentiment@v2") / "gate.json").read_text())
    assert gate["production"] == "news/sentiment@v1" and gate["candidate_metrics"]["macro_f1"] >= 0.8
    after = client.post("/v1/score", json={"texts": TEXTS}).get_json()
    assert after["model_version"] == "news/sentiment@v2"  # served without restart
    assert after["results"] != before["results"]

    # A deliberately worse data set: trained and registered, but the gate refuses it.
    resp = client.post("/v1/admin/retrain", headers=auth, json={
        "data": str(ops["data"]["bad"]), **TINY})
    job = wait_job(client, resp.get_json()["job_id"], auth)
    assert job["status"] == "succeeded", job
    assert job["result"]["version"] == "news/sentiment@v3"
    assert job["result"]["gate"]["passed"] is False and job["result"]["promoted"] is False
    assert job["result"]["production"] == "news/sentiment@v2"  # what still serves, not null
    assert client.post("/v1/score", json={"texts": TEXTS}).get_json()["model_version"] == "news/sentiment@v2"
    refused = client.post("/v1/admin/models/promote", headers=auth, json={"ref": "news/sentiment@v3"})
    assert refused.status_code == 409 and "gate" in refused.get_json()["error"]["message"]

    # Rollback restores v1's answers exactly.
    resp = client.post("/v1/admin/models/rollback", headers=auth, json={"domain": "news", "task": "sentiment"})
    assert resp.status_code == 200 and resp.get_json()["production"] == "news/sentiment@v1"
    assert client.post("/v1/score", json={"texts": TEXTS}).get_json() == before

    entries = client.get("/v1/admin/audit", headers=auth).get_json()["entries"]
    seen = {(e["action"], e["target"], e["outcome"]) for e in entries}
    assert ("model.promote", "news/sentiment@v2", "ok") in seen
    assert ("model.promote", "news/sentiment@v3", "refused") in seen
    assert ("model.rollback", "news/sentiment@v1", "ok") in seen
    assert all(e["actor"] in ("alice",) for e in entries)


@pytest.mark.parametrize("method,path", [
    ("post", "/v1/admin/retrain"), ("get", "/v1/admin/jobs/x"), ("post", "/v1/admin/models/promote"),
    ("post", "/v1/admin/models/rollback"), ("get", "/v1/admin/audit")])
def test_admin_endpoints_need_an_ops_key(ops, method, path):
    client = make_app(ops["settings"], "unused").test_client()
    anonymous = getattr(client, method)(path, json={})
    assert anonymous.status_code == 401 and anonymous.get_json()["error"]["code"] == "unauthorized"
    analyst = getattr(client, method)(path, json={}, headers={"Authorization": f"Bearer {ops['keys']['analyst']}"})
    assert analyst.status_code == 403
    wrong = getattr(client, method)(path, json={}, headers={"Authorization": "Bearer fp_not-a-key"})
    assert wrong.status_code == 401
