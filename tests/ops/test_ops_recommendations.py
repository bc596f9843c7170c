"""Ops on the recommendations service: the contract's /v1/admin/* for recommender versions.

Regression for "the recommendations service lacks the contract's ops endpoints": retrain
(with a file, or a refit of production plus stored interactions), watch the job, gate,
promote and roll back, all serving the new production without a restart. Jobs run
in-process (the same function the Celery task calls) except in the worker test.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from ops_helpers import wait_job

from services.recommendations import create_app, retrain_task
from services.recommendations.retraining import run_retrain_job
from services.recommendations.versions import GATE_METRIC, TASK
from shared import lifecycle

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "interactions.tsv"
HEADER = "user_id\titem_id\trating\ttimestamp\n"


def sequential_users(path: Path) -> Path:
    """The sample plus new users x0..x12 walking forward through the items, as sample users do."""
    rows = [f"x{u}\tm{start + step}\t3\t{900_000_000 + 1000 * step}\n"
            for u, start in enumerate(range(1, 40, 3)) for step in range(10)]
    path.write_text(SAMPLE.read_text() + "".join(rows))
    return path


def noise(path: Path) -> str:
    """Random users and items: nothing to learn, so a far lower NDCG than production's."""
    rng = random.Random(0)
    return HEADER + "".join(f"n{u}\tm{rng.randint(1, 60)}\t1\t{1000 + j}\n" for u in range(40) for j in range(12))


def client_for(settings):
    """The real service app, its retrain jobs run in this process (the Celery task's function)."""
    from shared.admin import register_admin

    app = create_app(settings)
    register_admin(app, tasks={TASK: retrain_task(lambda job_id, s: run_retrain_job(job_id, s))},
                   domains=[settings.recommendations_domain])
    return app.test_client()


@pytest.fixture
def recs(settings, redis_url):
    """Migrated DB, ops and analyst keys, and v1 in production as `finpulse up` prepares it."""
    from services.recommendations.bootstrap import prepare
    from services.recommendations.versions import registry
    from shared.auth import create_key
    from shared.db import Database, upgrade

    upgrade(settings.db_url)
    db = Database(settings.db_url)
    prepare(settings, None)
    keys = {"ops": create_key(db, "carol", "ops"), "analyst": create_key(db, "dave", "analyst")}
    yield {"settings": settings, "db": db, "keys": keys, "registry": registry(settings),
           "domain": settings.recommendations_domain, "auth": {"Authorization": f"Bearer {keys['ops']}"}}
    db.dispose()


def served(client, user: str = "x0") -> dict:
    res = client.get(f"/v1/users/{user}/recommendations?k=5")
    assert res.status_code == 200, res.get_json()
    return res.get_json()


def test_retrain_with_data_then_refused_candidate_promote_and_rollback(recs, tmp_path):
    client, auth, domain = client_for(recs["settings"]), recs["auth"], recs["domain"]
    v1 = served(client)
    assert v1["model_version"] == f"{domain}/{TASK}@v1" and v1["strategy"] == "popularity"

    resp = client.post("/v1/admin/retrain", headers=auth, json={"data": str(sequential_users(tmp_path / "d.tsv"))})
    assert resp.status_code == 202, resp.get_json()
    job = wait_job(client, resp.get_json()["job_id"], auth)
    assert job["status"] == "succeeded", job
    assert job["result"]["version"] == f"{domain}/{TASK}@v2" and job["result"]["promoted"] is True
    assert job["result"]["gate"]["passed"] and job["result"]["gate"]["primary_metric"] == GATE_METRIC
    assert "trained on 631 interactions" in job["log"], job["log"]
    assert job["progress"]["stage"] == "done"
    v2 = recs["registry"].resolve_version(f"{domain}/{TASK}@v2")
    assert {"model", "ids.json", "interactions.npz", "gate.json"} <= {p.name for p in v2.path.iterdir()}
    assert v2.metrics()[GATE_METRIC] > 0.7 and v2.metrics()["gate_metric"] == GATE_METRIC
    lineage = v2.train_config()
    assert lineage["interactions_sha256"] and "git_commit" in lineage and lineage["config"]["ease_l2"] > 0
    after = served(client)  # the new production, without a restart
    assert after["model_version"] == f"{domain}/{TASK}@v2" and after["strategy"] == "personalised"
    assert client.get("/readyz").status_code == 200

    # An uploaded file of noise: registered as v3, refused by the gate, production untouched.
    resp = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                       data={"data": (io.BytesIO(noise(tmp_path).encode()), "noise.tsv")})
    job = wait_job(client, resp.get_json()["job_id"], auth)
    assert job["status"] == "succeeded" and job["result"]["version"] == f"{domain}/{TASK}@v3", job
    assert job["result"]["gate"]["passed"] is False and job["result"]["promoted"] is False
    assert served(client)["model_version"] == f"{domain}/{TASK}@v2"
    refused = client.post("/v1/admin/models/promote", headers=auth, json={"version": "v3"})
    assert refused.status_code == 409 and "gate" in refused.get_json()["error"]["message"]
    # another service's model, registered or not: a 403 (it was a 404 naming the server's registry path)
    foreign = client.post("/v1/admin/models/promote", headers=auth, json={"ref": "news/sentiment@v1"})
    assert foreign.status_code == 403, foreign.get_json()
    assert "registry" not in foreign.get_json()["error"]["message"]

    back = client.post("/v1/admin/models/rollback", headers=auth, json={})
    assert back.status_code == 200 and back.get_json()["production"] == f"{domain}/{TASK}@v1"
    assert served(client) == v1
    again = client.post("/v1/admin/models/promote", headers=auth, json={"ref": f"{domain}/{TASK}@v2"})
    assert again.status_code == 200, again.get_json()
    assert served(client) == after
    seen = {(e["action"], e["target"], e["outcome"])
            for e in client.get("/v1/admin/audit", headers=auth).get_json()["entries"]}
    assert {("model.promote", f"{domain}/{TASK}@v2", "ok"), ("model.promote", f"{domain}/{TASK}@v3", "refused"),
            ("model.rollback", f"{domain}/{TASK}@v1", "ok")} <= seen


def test_retrain_without_data_folds_stored_interactions_in(recs):
    from services.recommendations.pipeline import load_interactions

    client, auth, domain = client_for(recs["settings"]), recs["auth"], recs["domain"]
    events = [{"user_id": "late", "item_id": f"m{i}", "timestamp": 2_000_000_000 + i} for i in (5, 6, 7)]
    assert client.post("/v1/interactions", json=events).status_code == 201
    v1_events = len(load_interactions(recs["registry"].production(domain, TASK).path))

    for version in (2, 3):  # the second refit finds nothing new: no event counted twice
        job = wait_job(client, client.post("/v1/admin/retrain", headers=auth, json={}).get_json()["job_id"], auth)
        assert job["status"] == "succeeded" and job["result"]["promoted"], job
        mv = recs["registry"].production(domain, TASK)
        assert mv.version == version and mv.train_config()["db_max_id"] == 3
        assert mv.train_config()["retrained_from"] == f"{domain}/{TASK}@v{version - 1}"
        data = load_interactions(mv.path)
        assert len(data) == v1_events + 3 and "late" in data.user_ids
    assert served(client, "late")["model_version"] == f"{domain}/{TASK}@v3"


def test_scheduled_refit_is_an_ordinary_job(recs):
    from services.recommendations.tasks import retrain_task as beat_task
    from shared.celery_app import make_celery

    make_celery(recs["settings"])  # the task reads its settings from the current Celery app
    out = beat_task(recs["domain"])
    assert out["status"] == "succeeded" and out["result"]["version"] == f"{recs['domain']}/{TASK}@v2"
    job = lifecycle.get_job(recs["db"], out["id"])
    assert job["params"]["actor"] == "beat" and job["kind"] == f"retrain:{recs['domain']}/{TASK}"


@pytest.mark.parametrize("method,path", [
    ("post", "/v1/admin/retrain"), ("get", "/v1/admin/jobs/x"), ("post", "/v1/admin/models/promote"),
    ("post", "/v1/admin/models/rollback")])
def test_ops_endpoints_need_the_ops_key(recs, method, path):
    client = client_for(recs["settings"])
    for headers, status in (({}, 401), ({"Authorization": "Bearer fp_not-a-key"}, 401),
                            ({"Authorization": f"Bearer {recs['keys']['analyst']}"}, 403)):
        resp = getattr(client, method)(path, json={}, headers=headers)
        assert resp.status_code == status and resp.get_json()["error"]["code"] in ("unauthorized", "forbidden")
    assert lifecycle.list_jobs(recs["db"]) == []


def test_bad_retrain_requests_are_4xx_json_and_lose_nothing(recs, tmp_path):
    client, auth, domain = client_for(recs["settings"]), recs["auth"], recs["domain"]
    assert client.post("/v1/interactions", json={"user_id": "u1", "item_id": "m2", "timestamp": 5}).status_code == 201
    before = served(client, "u1")
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "u1\tm1\t5\t100\nu1\tm2\tfive\t101\n")
    cases = [({"data": str(tmp_path / "missing.tsv")}, 400, "no such file"),
             ({"data": str(bad)}, 400, f"{bad}:3: rating 'five' is not a number"),
             ({"domain": "elsewhere"}, 403, "manages domains"),
             ({"task": "sentiment"}, 403, "recommendations models"),
             ({"options": {"neighbours": 5}}, 400, "unknown recommender option"),
             ({"options": {"ease_l2": -1}}, 400, "ease_l2 must be positive"),
             # KB QA: "false" (a truthy text) skipped the bad rows and registered a version
             ({"data": str(bad), "options": {"skip_bad": "false"}}, 400, "skip_bad must be true or false, got 'false'"),
             ({"epochs": 3}, 400, "does not use epochs")]
    for body, status, words in cases:
        resp = client.post("/v1/admin/retrain", headers=auth, json=body)
        assert resp.status_code == status and words in resp.get_json()["error"]["message"], (body, resp.get_json())
    for name in ("bad.tsv", "bad.txt"):
        resp = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                           data={"data": (io.BytesIO(bad.read_bytes()), name)})
        assert resp.status_code == 400 and set(resp.get_json()["error"]) == {"code", "message"}
    assert not list((recs["settings"].home / "uploads").glob("*"))  # a refused upload is not kept
    assert client.post("/v1/admin/models/promote", headers=auth, json={"version": 9}).status_code == 404
    assert client.post("/v1/admin/models/rollback", headers=auth, json={}).status_code == 409
    assert lifecycle.list_jobs(recs["db"]) == []
    assert [v.version for v in recs["registry"].versions(domain, TASK)] == [1]
    assert served(client, "u1") == before  # the stored interaction is still folded in


def test_refit_needs_a_production_version(settings, redis_url):
    from shared.auth import create_key
    from shared.db import Database, upgrade

    upgrade(settings.db_url)
    key = create_key(Database(settings.db_url), "erin", "ops")
    resp = client_for(settings).post("/v1/admin/retrain", headers={"Authorization": f"Bearer {key}"}, json={})
    assert resp.status_code == 409 and "no production version" in resp.get_json()["error"]["message"]


def test_retrain_job_runs_on_a_celery_worker(recs, worker, tmp_path):
    from shared.admin import register_admin

    app = create_app(recs["settings"])  # the Celery job task, as `finpulse up` serves it
    register_admin(app, tasks={TASK: retrain_task()}, domains=[recs["domain"]], queue=worker["queue"])
    client, auth = app.test_client(), recs["auth"]
    resp = client.post("/v1/admin/retrain", headers=auth, json={"data": str(sequential_users(tmp_path / "d.tsv"))})
    job = wait_job(client, resp.get_json()["job_id"], auth, timeout=120)
    assert job["status"] == "succeeded", (job, worker["log"].read_text()[-3000:])
    assert served(client)["model_version"] == f"{recs['domain']}/{TASK}@v2"
    gate = json.loads((recs["registry"].resolve(f"{recs['domain']}/{TASK}@v2") / "gate.json").read_text())
    assert gate["production"] == f"{recs['domain']}/{TASK}@v1" and gate["primary_metric"] == GATE_METRIC


def test_a_job_cancelled_while_queued_never_starts(recs):
    db, domain = recs["db"], recs["domain"]
    job_id = lifecycle.create_job(db, f"retrain:{domain}/{TASK}", {"domain": domain, "task": TASK}, actor="carol")
    lifecycle.cancel_job(db, job_id, actor="carol")
    job = run_retrain_job(job_id, recs["settings"], db)
    assert job["status"] == "cancelled" and "before it started" in job["log"]
    assert run_retrain_job(job_id, recs["settings"], db)["status"] == "cancelled"  # a re-delivery: left alone
    assert [v.version for v in recs["registry"].versions(domain, TASK)] == [1]


def test_ops_cli_retrains_recommenders_with_the_endpoints_checks(recs, tmp_path):
    """`finpulse ops retrain --task recommendations` refits (no --data needed) and refuses bad files."""
    from click.testing import CliRunner

    from shared.cli import cli

    domain = recs["domain"]
    done = CliRunner().invoke(cli, ["ops", "retrain", "--domain", domain, "--task", TASK])
    assert done.exit_code == 0, done.output
    job = json.loads(done.stdout)  # stderr names the job first
    assert done.stderr == f"job {job['id']}: running here (finpulse ops job {job['id']} shows it)\n"
    assert job["status"] == "succeeded" and job["result"]["version"] == f"{domain}/{TASK}@v2", job
    assert recs["registry"].production(domain, TASK).version == 2
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "u1\tm1\tfive\t1\n")
    refused = CliRunner().invoke(cli, ["ops", "retrain", "--domain", domain, "--task", TASK, "--data", str(bad)])
    assert "bad.tsv:2: rating 'five' is not a number" in str(refused.exception)  # main() prints it as one line
    assert [v.version for v in recs["registry"].versions(domain, TASK)] == [1, 2]  # nothing registered
    bare = tmp_path / "bare.tsv"
    bare.write_text("title\nA film with no id\n")  # no usable item
    no_items = CliRunner().invoke(cli, ["ops", "retrain", "--domain", domain, "--task", TASK, "--items", str(bare)])
    assert "bare.tsv" in str(no_items.exception), no_items.output  # the catalogue is checked as over HTTP
    assert [v.version for v in recs["registry"].versions(domain, TASK)] == [1, 2]
    no_data = CliRunner().invoke(cli, ["ops", "retrain", "--domain", "news", "--task", "sentiment"])
    assert "retraining sentiment needs --data" in str(no_data.exception)


def test_models_show_gives_a_recommenders_lineage_and_own_metrics(recs):
    """`finpulse models show` printed null accuracy/F1 and no data for recommenders, hiding
    the interactions file, its hash, the refit source and NDCG/HR."""
    from click.testing import CliRunner

    from shared.cli import cli

    domain = recs["domain"]
    shown = json.loads(CliRunner().invoke(cli, ["models", "show", f"{domain}/{TASK}@v1"]).stdout)
    assert shown["interactions"] == str(SAMPLE) and len(shown["interactions_sha256"]) == 64
    assert shown["metrics"][GATE_METRIC] > 0 and "hr@10" in shown["metrics"] and "accuracy" not in shown["metrics"]
    assert shown["config"]["ease_l2"] > 0
    CliRunner().invoke(cli, ["ops", "retrain", "--domain", domain, "--task", TASK])
    refit = json.loads(CliRunner().invoke(cli, ["models", "show", f"{domain}/{TASK}@v2"]).stdout)
    assert refit["retrained_from"] == f"{domain}/{TASK}@v1" and "db_max_id" in refit


def catalogue(path: Path) -> Path:
    """Titles and a genre for the sample's items m1..m60."""
    path.write_text("item_id\ttitle\tcategories\n" + "".join(f"m{i}\tMovie {i}\tdrama\n" for i in range(1, 61)))
    return path


def test_retrain_with_data_keeps_productions_item_catalogue(recs, tmp_path, cheap_encoder):
    """Regression for "a retrain with data drops production's item catalogue": `"items"` is accepted
    (checked before queueing), and without it the catalogue file production was trained with is
    reused while it exists; the job log says which."""
    client, auth, domain = client_for(recs["settings"]), recs["auth"], recs["domain"]
    data, items = str(sequential_users(tmp_path / "d.tsv")), catalogue(tmp_path / "items.tsv")
    bare = tmp_path / "bare.tsv"
    bare.write_text("title\nA film with no id\n")
    for body, words in (({"data": data, "items": str(tmp_path / "gone.tsv")}, "no such file"),
                        ({"items": str(bare)}, "no usable items")):
        resp = client.post("/v1/admin/retrain", headers=auth, json=body)
        assert resp.status_code == 400 and words in resp.get_json()["error"]["message"], resp.get_json()
    assert lifecycle.list_jobs(recs["db"]) == []

    def retrain(body: dict) -> tuple[dict, object]:
        job = wait_job(client, client.post("/v1/admin/retrain", headers=auth, json=body).get_json()["job_id"], auth)
        assert job["status"] == "succeeded", job
        return job, recs["registry"].resolve_version(job["result"]["version"])

    job, v2 = retrain({"data": data})  # v1 (the sample, as `finpulse up` trains it) has no catalogue
    assert f"{domain}/{TASK}@v1 was trained without a catalogue; no content features" in job["log"], job["log"]
    assert not (v2.path / "items.jsonl").exists() and "items" not in v2.train_config()
    job, v3 = retrain({"data": data, "items": str(items), "force": True, "reason": "add the catalogue"})
    assert f"items: 60 from {items}" in job["log"] and recs["registry"].production(domain, TASK).version == 3
    assert (v3.path / "items.jsonl").is_file() and v3.train_config()["items"] == str(items)

    job, v4 = retrain({"data": data})
    assert f"items: 60 from {items} (production {domain}/{TASK}@v3's catalogue, reused)" in job["log"], job["log"]
    assert (v4.path / "items.jsonl").is_file()
    assert v4.train_config()["items_sha256"] == v3.train_config()["items_sha256"]
    job, v5 = retrain({})  # a refit keeps production's stored catalogue and goes on naming its file
    assert (v5.path / "items.jsonl").is_file() and v5.train_config()["items"] == str(items)

    items.unlink()
    job, v6 = retrain({"data": data})
    assert "catalogue is not usable any more" in job["log"] and "no such file" in job["log"], job["log"]
    assert not (v6.path / "items.jsonl").exists() and "items" not in v6.train_config()


def test_a_refit_takes_todays_resource_limits_not_productions(recs):
    """Regression (left open in session 17): a refit kept the max_dense_items its production
    version was fitted under, so lowering the default (20,000 -> 5,000, for memory) never
    reached versions refitted from older ones."""
    from services.recommendations.pipeline import RecsConfig

    client, auth, domain = client_for(recs["settings"]), recs["auth"], recs["domain"]
    prod = recs["registry"].production(domain, TASK)
    stored = json.loads((prod.path / "train_config.json").read_text())
    stored["config"].update(max_dense_items=20_000, ease_l2=123.0)  # as fitted under an older default
    (prod.path / "train_config.json").write_text(json.dumps(stored))
    job = wait_job(client, client.post("/v1/admin/retrain", headers=auth, json={}).get_json()["job_id"], auth)
    assert job["status"] == "succeeded", job
    config = recs["registry"].resolve_version(f"{domain}/{TASK}@v2").train_config()["config"]
    # the resource limit is today's; the model's own choice (ease_l2) is kept
    assert (config["max_dense_items"], config["ease_l2"]) == (RecsConfig().max_dense_items, 123.0)
    job = wait_job(client, client.post("/v1/admin/retrain", headers=auth,
                                       json={"options": {"max_dense_items": 7}}).get_json()["job_id"], auth)
    assert recs["registry"].resolve_version(f"{domain}/{TASK}@v3").train_config()["config"]["max_dense_items"] == 7


def answers(client) -> dict[str, list[str]]:
    """Every id a few users, a newcomer and a few similar lists are answered with."""
    out = {}
    for user in ("1", "2", "3", "nobody-yet"):
        out[f"user {user}"] = client.get(f"/v1/users/{user}/recommendations?k=10").get_json()["items"]
    for item in ("m1", "m2", "m20"):
        out[f"similar {item}"] = [r["item_id"] for r in
                                  client.get(f"/v1/items/{item}/similar?k=10").get_json()["items"]]
    return out


def test_a_retired_item_is_never_served_again_and_left_out_of_refits(recs, tmp_path) -> None:
    """Regression (cross-service QA): after a KB entry was deleted or an article superseded, its
    id went on being recommended, even after a refit (which kept production's events)."""
    from services.recommendations.pipeline import load_interactions
    from services.recommendations.versions import registry

    client, auth = client_for(recs["settings"]), recs["auth"]
    before = answers(client)
    newcomer_top = before["user nobody-yet"][0]  # the most popular item
    similar_top = before["similar m1"][0]
    for headers, status in (({}, 401), ({"Authorization": f"Bearer {recs['keys']['analyst']}"}, 403)):
        assert client.delete(f"/v1/items/{newcomer_top}", headers=headers).status_code == status

    for item in (newcomer_top, similar_top, newcomer_top):  # retiring twice is no error
        res = client.delete(f"/v1/items/{item}", headers=auth)
        assert res.status_code == 200 and res.get_json() == {"item_id": item, "retired": True}
    retired = {newcomer_top, similar_top}
    after = answers(client)
    for name, items in after.items():
        assert not retired & set(items), name
        assert len(items) == len(before[name]), name  # the lists are refilled, not shortened
    assert before["user nobody-yet"][1] == after["user nobody-yet"][0]

    # forced: without its two most popular items the sample's refit scores lower than production
    res = client.post("/v1/admin/retrain", headers=auth, json={"force": True, "reason": "retired items"})
    job = wait_job(client, res.get_json()["job_id"], auth)
    assert job["status"] == "succeeded" and job["result"]["promoted"], job
    assert "left out 2 retired item(s)" in job["log"], job["log"]
    mv = registry(recs["settings"]).production(recs["settings"].recommendations_domain, TASK)
    assert mv.version == 2 and not retired & set(load_interactions(mv.path).item_ids)
    assert not retired & {i for items in answers(client).values() for i in items}

    # a retrain on a file that still holds them leaves them out too
    data = tmp_path / "clicks.tsv"
    data.write_text(SAMPLE.read_text())
    res = client.post("/v1/admin/retrain", headers=auth, json={"data": str(data), "force": True,
                                                                "reason": "retired items"})
    assert res.status_code == 202, res.get_json()
    job = wait_job(client, res.get_json()["job_id"], auth)
    assert job["status"] == "succeeded" and "left out 2 retired item(s)" in job["log"], job
    mv = registry(recs["settings"]).production(recs["settings"].recommendations_domain, TASK)
    assert mv.version == 3 and not retired & set(load_interactions(mv.path).item_ids)


def test_a_retired_item_can_be_restored(recs, tmp_path) -> None:
    """Ops QA: retiring was for good (a mistaken DELETE could only be undone in the database)."""
    client, auth = client_for(recs["settings"]), recs["auth"]
    before = answers(client)
    top = before["user nobody-yet"][0]
    assert client.delete(f"/v1/items/{top}", headers=auth).status_code == 200
    assert top not in answers(client)["user nobody-yet"]
    # KB QA: `recs recommend --model DOMAIN/recommendations@production` still named a retired item
    from click.testing import CliRunner

    from services.recommendations.cli import recs as recs_cli

    (tmp_path / "u.txt").write_text("nobody-yet\n")
    res = CliRunner().invoke(recs_cli, ["recommend", "--model", f"{recs['domain']}/{TASK}@production", "--users",
                                        str(tmp_path / "u.txt"), "--output", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o.jsonl").read_text())["items"] == answers(client)["user nobody-yet"]
    for headers, status in (({}, 401), ({"Authorization": f"Bearer {recs['keys']['analyst']}"}, 403)):
        assert client.post(f"/v1/items/{top}/restore", headers=headers).status_code == status
    res = client.post(f"/v1/items/{top}/restore", headers=auth)
    assert res.status_code == 200 and res.get_json() == {"item_id": top, "retired": False, "restored": True}
    assert answers(client) == before  # served again, where it was
    again = client.post(f"/v1/items/{top}/restore", headers=auth).get_json()
    assert again == {"item_id": top, "retired": False, "restored": False}  # no error, and it says so
    entries = client.get("/v1/admin/audit", headers=auth).get_json()["entries"]
    assert [(e["action"], e["outcome"]) for e in entries if e["action"] == "recs.restore_item"] == [
        ("recs.restore_item", "not retired"), ("recs.restore_item", "ok")]
    # the next refit keeps its events: the retrain log leaves nothing out
    job = wait_job(client, client.post("/v1/admin/retrain", headers=auth,
                                       json={"force": True, "reason": "restored"}).get_json()["job_id"], auth)
    assert job["status"] == "succeeded" and "retired" not in job["log"], job


def _job(recs, params: dict) -> str:
    domain = recs["domain"]
    return lifecycle.create_job(recs["db"], f"retrain:{domain}/{TASK}", {"domain": domain, "task": TASK, **params},
                                actor="carol")


def test_a_job_cancelled_while_evaluating_registers_nothing(recs, tmp_path, monkeypatch):
    """Regression: a retrain cancelled while its candidate was evaluated still registered it
    (the cancel flag was read only at the gate stage, after registering)."""
    from services.recommendations import versions

    job_id = _job(recs, {"data": str(sequential_users(tmp_path / "d.tsv"))})
    real = versions.offline_metrics

    def cancelled_meanwhile(model_dir, *args, **kwargs):
        lifecycle.cancel_job(recs["db"], job_id, actor="carol")  # the operator, during the evaluation
        return real(model_dir, *args, **kwargs)

    monkeypatch.setattr(versions, "offline_metrics", cancelled_meanwhile)
    job = run_retrain_job(job_id, recs["settings"], recs["db"])
    assert job["status"] == "cancelled" and job["result"] is None, job
    assert [v.version for v in recs["registry"].versions(recs["domain"], TASK)] == [1]
    assert not any(p.name.startswith(".train-") for p in recs["registry"].task_dir(recs["domain"], TASK).iterdir())


def test_a_cancel_after_registering_says_so_and_does_not_promote(recs, tmp_path, monkeypatch):
    """A cancel that arrives once the version is registered cannot undo it: the log names the version
    left registered, and it is neither gated nor promoted (the log said only "cancelled")."""
    domain = recs["domain"]
    job_id = _job(recs, {"data": str(sequential_users(tmp_path / "d.tsv"))})
    real = lifecycle.record_version

    def cancelled_meanwhile(db, mv, *args, **kwargs):
        real(db, mv, *args, **kwargs)
        lifecycle.cancel_job(db, job_id, actor="carol")

    monkeypatch.setattr(lifecycle, "record_version", cancelled_meanwhile)
    job = run_retrain_job(job_id, recs["settings"], recs["db"])
    assert job["status"] == "cancelled", job
    assert f"cancelled after {domain}/{TASK}@v2 was registered: it stays registered and is not promoted" in job["log"]
    assert recs["registry"].production(domain, TASK).version == 1


def test_a_catalogue_that_knows_none_of_the_datas_items_is_warned_about(recs, tmp_path, cheap_encoder):
    """Regression: a retrain with data but no items reused production's catalogue without a word when
    none of the data's item ids were in it (MovieLens data on a MIND model: no content features)."""
    client, auth = client_for(recs["settings"]), recs["auth"]
    data = str(sequential_users(tmp_path / "d.tsv"))
    foreign = tmp_path / "other.tsv"  # another dataset's ids
    foreign.write_text("item_id\ttitle\tcategories\n" + "".join(f"N{i}\tNews {i}\tnews\n" for i in range(1, 61)))

    def retrain(body: dict) -> dict:
        resp = client.post("/v1/admin/retrain", headers=auth, json=body)
        assert resp.status_code == 202, resp.get_json()
        job = wait_job(client, resp.get_json()["job_id"], auth)
        assert job["status"] == "succeeded", job
        return job

    job = retrain({"data": data, "items": str(foreign), "force": True, "reason": "a news catalogue"})
    assert f"warning: the catalogue ({foreign}) has 0 of the data's 60 item ids (0.0%)" in job["log"], job["log"]
    job = retrain({"data": data})  # production's catalogue, reused
    assert "warning: the catalogue (production's, reused) has 0 of the data's 60 item ids" in job["log"], job["log"]
    job = retrain({"data": data, "items": str(catalogue(tmp_path / "items.tsv"))})
    assert "warning: the catalogue" not in job["log"], job["log"]


def test_a_candidate_evaluated_on_no_users_is_not_refused_on_its_zero_ndcg(recs, tmp_path):
    """Regression: a candidate whose data gives no user a held-out event was "refused: ndcg@10 0.0000
    vs production ..." as if it were a bad model; the gate says it has nothing to judge on."""
    once = tmp_path / "once.tsv"  # every user one event: nobody to hold an event out for
    once.write_text(HEADER + "".join(f"o{u}\tm{u % 60 + 1}\t4\t{1000 + u}\n" for u in range(80)))
    job = run_retrain_job(_job(recs, {"data": str(once)}), recs["settings"], recs["db"])
    assert job["status"] == "succeeded", job
    summary = job["result"]["gate"]["summary"]
    assert job["result"]["gate"]["passed"] is False and job["result"]["promoted"] is False
    assert summary.startswith(f"refused: {recs['domain']}/{TASK}@v2 has no {GATE_METRIC} to judge "
                              "(evaluated on 0 users"), summary
    assert "0.0000" not in summary
