"""Retrain jobs without the worker: uploads, bad requests, cancelling a running job."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from ops_helpers import make_app

from shared import lifecycle


def test_upload_is_stored_and_queued(ops):
    queued: list[str] = []
    from shared.admin import register_admin
    from shared.web import create_service_app

    app = create_service_app("sentiment", ops["settings"])
    register_admin(app, tasks={"sentiment": lambda job_id, settings: queued.append(job_id)}, domains=["news"])
    client = app.test_client()
    auth = {"Authorization": f"Bearer {ops['keys']['ops']}"}
    data = ops["data"]["train"].read_bytes()
    resp = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                       data={"data": (io.BytesIO(data), "fresh.jsonl"), "epochs": "1",
                             "options": '{"batch_size": 8, "time_budget_min": null}'})
    assert resp.status_code == 202, resp.get_json()
    job = client.get(resp.get_json()["url"], headers=auth).get_json()
    assert queued == [job["id"]] and job["status"] == "queued" and job["params"]["epochs"] == 1
    assert job["params"]["options"] == {"batch_size": 8, "time_budget_min": None}  # a form carries options too
    stored = job["params"]["data"]
    assert stored.startswith(str(ops["settings"].home)) and Path(stored).read_bytes() == data
    assert client.get("/v1/admin/jobs", headers=auth).get_json()["jobs"][0]["id"] == job["id"]


def test_bad_retrain_requests_are_4xx_and_queue_nothing(ops):
    client = make_app(ops["settings"], "unused").test_client()
    auth = {"Authorization": f"Bearer {ops['keys']['ops']}"}
    cases = [({"data": "/nonexistent.jsonl"}, 400), ({}, 400), ({"data": str(ops["data"]["train"]), "epochs": 0}, 400),
             ({"data": str(ops["data"]["train"]), "domain": "social"}, 403),
             ({"data": str(ops["data"]["train"]), "task": "embeddings"}, 403),
             ({"data": str(ops["data"]["train"]), "bogus": 1}, 400),
             ({"data": str(ops["data"]["train"]), "force": True}, 400), ({"data": str(ops["data"]["train"]),
                                                                          "force": True, "reason": " "}, 400)]
    for body, status in cases:
        resp = client.post("/v1/admin/retrain", headers=auth, json=body)
        assert resp.status_code == status, (body, resp.get_json())
        assert set(resp.get_json()["error"]) == {"code", "message"}
    bad_form = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                           data={"data": (io.BytesIO(b"x"), "d.jsonl"), "auto_promote": "maybe"})
    assert bad_form.status_code == 400 and "auto_promote" in bad_form.get_json()["error"]["message"]
    for options in ("{batch_size: 8}", "[8]"):
        bad_form = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                               data={"data": (io.BytesIO(b"x"), "d.jsonl"), "options": options})
        assert bad_form.status_code == 400 and "options" in bad_form.get_json()["error"]["message"], options
    no_file = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data", data={"epochs": "1"})
    assert no_file.status_code == 400 and "needs a 'data' file" in no_file.get_json()["error"]["message"]  # was 415
    assert lifecycle.list_jobs(ops["db"]) == []
    assert client.get("/v1/admin/jobs/nope", headers=auth).status_code == 404
    assert client.post("/v1/admin/models/promote", headers=auth, json={"ref": "news/sentiment@v9"}).status_code == 404
    long_version = client.post("/v1/admin/models/promote", headers=auth, json={"version": "v" + "9" * 400})
    assert long_version.status_code == 400 and "version" in long_version.get_json()["error"]["message"]
    for loose in (True, 1.0):  # JSON true was promoted as version 1, 1.0 as 1
        resp = client.post("/v1/admin/models/promote", headers=auth, json={"version": loose, "force": True,
                                                                           "reason": "qa"})
        assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "validation_error", resp.get_json()


def test_cancel_stops_a_running_job_between_steps(ops):
    from training.tasks import run_retrain

    db = ops["db"]
    params = {"domain": "news", "task": "sentiment", "data": str(ops["data"]["train"]), "epochs": 50,
              "max_length": 16, "options": {"batch_size": 4, "num_threads": 1, "eval_every": 1.0}}
    job_id = lifecycle.create_job(db, "retrain:news/sentiment", params, actor="alice")
    thread = threading.Thread(target=run_retrain, args=(job_id, ops["settings"], db))
    thread.start()
    deadline = time.monotonic() + 300
    while lifecycle.get_job(db, job_id)["progress"].get("step", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    lifecycle.cancel_job(db, job_id, actor="alice")
    thread.join(timeout=300)
    job = lifecycle.get_job(db, job_id)
    assert job["status"] == "cancelled" and job["progress"]["stage"] == "cancelled"
    assert job["progress"]["step"] < 10  # stopped at the next step, not after 50 epochs
    assert [v.version for v in ops["registry"].versions("news", "sentiment")] == [1]  # nothing registered


def test_bootstrap_ops_key_and_openapi(ops):
    settings = ops["settings"].model_copy(update={"ops_key": "fp_bootstrap-secret"})
    client = make_app(settings, "unused").test_client()
    resp = client.get("/v1/admin/jobs", headers={"Authorization": "Bearer fp_bootstrap-secret"})
    assert resp.status_code == 200 and resp.get_json() == {"jobs": []}
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/v1/admin/retrain", "/v1/admin/jobs/{job_id}", "/v1/admin/models/promote",
                 "/v1/admin/models/rollback"):
        assert path in paths, path
    assert "requestBody" in paths["/v1/admin/retrain"]["post"]


def test_a_service_sees_and_cancels_only_its_own_jobs(ops):
    from shared.admin import register_admin
    from shared.web import create_service_app

    db = ops["db"]
    ours = lifecycle.create_job(db, "retrain:news/sentiment", {}, actor="alice")
    other_service = lifecycle.create_job(db, "retrain:default/recommendations", {}, actor="alice")
    other_domain = lifecycle.create_job(db, "retrain:social/sentiment", {}, actor="alice")
    lookalike = lifecycle.create_job(db, "retrain:nxws/sentiment", {}, actor="alice")  # '_' is a LIKE wildcard
    app = create_service_app("sentiment", ops["settings"])
    register_admin(app, tasks={"sentiment": lambda job_id, settings: None}, domains=["n_ws", "news"])
    client = app.test_client()
    auth = {"Authorization": f"Bearer {ops['keys']['ops']}"}
    assert [j["id"] for j in client.get("/v1/admin/jobs", headers=auth).get_json()["jobs"]] == [ours]
    for job_id in (other_service, other_domain, lookalike):
        assert client.get(f"/v1/admin/jobs/{job_id}", headers=auth).status_code == 404
        assert client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=auth).status_code == 404
        assert lifecycle.get_job(db, job_id)["status"] == "queued"  # untouched
    assert client.get(f"/v1/admin/jobs/{ours}", headers=auth).get_json()["id"] == ours
    assert len(lifecycle.list_jobs(db)) == 4  # unscoped (the CLI) it is every job


def test_a_bad_upload_is_named_as_sent_not_by_its_server_path(ops):
    """The error named the server's upload path (``.../uploads/<uuid>.jsonl:1``), not the sender's file."""
    from services.sentiment import create_app

    client = create_app(ops["settings"]).test_client()
    auth = {"Authorization": f"Bearer {ops['keys']['ops']}"}
    resp = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                       data={"data": (io.BytesIO(b"x"), "my-news.jsonl")})
    message = resp.get_json()["error"]["message"]
    assert resp.status_code == 400 and "uploaded my-news.jsonl:1:" in message, message
    assert "uploads" not in message and lifecycle.list_jobs(ops["db"]) == []
    assert not any((ops["settings"].home / "uploads").glob("*"))  # a refused upload is not kept


def _admin_client(settings, task: str, spec, domain: str):
    """A bare service with the ops endpoints of one model task and a bootstrap ops key (no model)."""
    from shared.admin import register_admin
    from shared.db import upgrade
    from shared.web import create_service_app

    upgrade(settings.db_url)
    app = create_service_app("svc", settings.model_copy(update={"ops_key": "boot-key-for-tests"}))
    register_admin(app, tasks={task: spec}, domains=[domain])
    return app.test_client()


AUTH = {"Authorization": "Bearer boot-key-for-tests"}


def test_admin_lists_refuse_a_limit_out_of_range_as_alerts_does(settings):
    """Regression: ?limit=0, -1 or 100000 were clamped to 1-500 silently; /v1/alerts answers 400."""
    client = _admin_client(settings, "sentiment", "unused", "news")
    for path in ("/v1/admin/jobs", "/v1/admin/audit"):
        for limit in ("0", "-1", "100000", "x"):
            resp = client.get(f"{path}?limit={limit}", headers=AUTH)
            assert resp.status_code == 400 and resp.get_json()["error"]["message"].startswith("limit must be"), \
                (path, limit, resp.get_json())
        assert client.get(f"{path}?limit=500", headers=AUTH).status_code == 200


def test_openapi_rollback_body_is_optional(settings):
    """Regression: rollback takes no body (this service's own model), yet its body was documented required."""
    doc = _admin_client(settings, "sentiment", "unused", "news").get("/openapi.json").get_json()
    assert doc["paths"]["/v1/admin/models/rollback"]["post"]["requestBody"]["required"] is False
    assert doc["paths"]["/v1/admin/models/promote"]["post"]["requestBody"]["required"] is True


def test_a_multipart_retrain_names_only_the_files_this_service_takes(settings):
    """Regression: sentiment and the chatbot said a retrain takes 'data' and 'items' files, and only the
    recommender takes an item catalogue."""
    from services.chatbot import retrain_task as chatbot_task
    from services.recommendations import retrain_task as recs_task
    from services.sentiment import retrain_task as sentiment_task

    cases = [("sentiment", sentiment_task, "news", ["'data'"]), ("embeddings", chatbot_task, "faq", ["'data'"]),
             ("recommendations", recs_task, "default", ["'data'", "'items'"])]
    for task, spec, domain, files in cases:
        client = _admin_client(settings, task, spec(lambda job_id, settings: None), domain)
        sent = ["extra", "items"] if len(files) == 1 else ["extra"]
        for field in sent:
            resp = client.post("/v1/admin/retrain", headers=AUTH, content_type="multipart/form-data",
                               data={"data": (io.BytesIO(b"x"), "d.jsonl"), field: (io.BytesIO(b"x"), "f.jsonl")})
            message = resp.get_json()["error"]["message"]
            assert resp.status_code == 400 and f"unknown file field(s) '{field}'" in message, (task, message)
            assert message.endswith("takes only " + " and ".join(files)), (task, message)
