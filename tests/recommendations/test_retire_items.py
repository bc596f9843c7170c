"""Retiring items: ``DELETE /v1/items/{id}`` (ops) takes an id out of every answer and every refit."""

from __future__ import annotations

import pytest

from services.recommendations import create_app, retrain_task
from services.recommendations.retraining import run_retrain_job
from services.recommendations.versions import TASK
from tests.ops.ops_helpers import wait_job
from tests.recommendations.conftest import SAMPLE


@pytest.fixture
def recs(settings, redis_url):
    """Migrated DB, ops and analyst keys, v1 in production, an app whose retrain jobs run here."""
    from services.recommendations.bootstrap import prepare
    from shared.admin import register_admin
    from shared.auth import create_key
    from shared.db import Database, upgrade

    upgrade(settings.db_url)
    db = Database(settings.db_url)
    prepare(settings, None)
    keys = {"ops": create_key(db, "carol", "ops"), "analyst": create_key(db, "dave", "analyst")}
    app = create_app(settings)
    register_admin(app, tasks={TASK: retrain_task(lambda job_id, s: run_retrain_job(job_id, s))},
                   domains=[settings.recommendations_domain])
    yield {"client": app.test_client(), "settings": settings, "db": db, "keys": keys,
           "auth": {"Authorization": f"Bearer {keys['ops']}"}}
    db.dispose()


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

    client, auth = recs["client"], recs["auth"]
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
