"""Promotion and rollback: gate-checked, forced with a reason, mirrored, announced, audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from shared import lifecycle
from shared.errors import BadInput, Conflict, ModelNotFound
from shared.gate import REPORT_NAME
from shared.models import ModelRecord
from shared.redis_client import channel
from shared.reload import CHANNEL


def _stages(db):
    with db.session() as s:
        return {r.version: r.stage for r in s.scalars(select(ModelRecord)).all()}


def test_refused_version_needs_force_and_reason(ops):
    settings, db, registry = ops["settings"], ops["db"], ops["registry"]
    v2 = registry.register("news", "sentiment", ops["v1"].path, move=False)
    (v2.path / REPORT_NAME).write_text(json.dumps({"passed": False, "summary": "refused: worse",
                                                     "production": "news/sentiment@v1"}))
    with pytest.raises(Conflict, match="failed its evaluation gate"):
        lifecycle.promote(settings, db, v2.ref, actor="alice")
    with pytest.raises(BadInput, match="forced promotion needs a reason"):  # a 400, as the retrain request's
        lifecycle.promote(settings, db, v2.ref, actor="alice", force=True)
    assert registry.production("news", "sentiment").version == 1
    out = lifecycle.promote(settings, db, v2.ref, actor="alice", force=True, reason="hotfix for #12")
    assert out["production"] == v2.ref and out["previous"] == "news/sentiment@v1"
    assert registry.production("news", "sentiment").version == 2
    assert _stages(db) == {2: "production"}
    outcomes = [(e["action"], e["outcome"]) for e in lifecycle.audit_entries(db)]
    assert outcomes == [("model.promote", "ok"), ("model.promote", "refused"), ("model.promote", "refused")]
    # promoting production again moves nothing and keeps its verdict (it was re-gated against
    # no production, which overwrote the report with "no production version")
    report = (v2.path / REPORT_NAME).read_text()
    again = lifecycle.promote(settings, db, v2.ref, actor="alice")
    assert again["unchanged"] and again["production"] == v2.ref and again["gate"] == "refused: worse"
    assert (v2.path / REPORT_NAME).read_text() == report
    assert registry.rollback("news", "sentiment").version == 1  # the history did not gain a v2 -> v2 step
    broken = registry.task_dir("news", "sentiment") / "v3"
    broken.mkdir()  # an empty version (made by hand): serving it would fail
    with pytest.raises(ModelNotFound, match="holds no model"):
        lifecycle.promote(settings, db, "news/sentiment@v3", actor="alice", force=True, reason="oops")
    assert registry.production("news", "sentiment").version == 1


def test_promotion_is_announced_on_redis(ops, monkeypatch):
    import redis

    settings, db, registry = ops["settings"], ops["db"], ops["registry"]
    v2 = registry.register("news", "sentiment", ops["v1"].path, move=False)
    (v2.path / REPORT_NAME).write_text(json.dumps({"passed": True, "summary": "ok",
                                                     "production": "news/sentiment@v1"}))
    calls = []
    import shared.inference

    monkeypatch.setattr(shared.inference, "invalidate", lambda: calls.append("invalidate"))
    sub = redis.Redis.from_url(settings.redis_url).pubsub()
    sub.subscribe(channel(settings.redis_url, CHANNEL))
    sub.get_message(timeout=1)
    lifecycle.promote(settings, db, v2.ref, actor="alice")
    msg = sub.get_message(timeout=2)
    while msg and msg["type"] != "message":
        msg = sub.get_message(timeout=2)
    sub.close()
    assert msg is not None
    assert json.loads(msg["data"]) == {"event": "promote", "domain": "news", "task": "sentiment", "version": 2}
    assert calls == ["invalidate"]  # the promoting process reloads too


def test_rollback_restores_previous_and_fails_cleanly_without_history(ops):
    settings, db, registry = ops["settings"], ops["db"], ops["registry"]
    with pytest.raises(Conflict):
        lifecycle.rollback(settings, db, "news", "sentiment", actor="alice")
    v2 = registry.register("news", "sentiment", ops["v1"].path, move=False)
    lifecycle.promote(settings, db, v2.ref, actor="alice", force=True, reason="test")
    out = lifecycle.rollback(settings, db, "news", "sentiment", actor="alice")
    assert out == {"production": "news/sentiment@v1", "version": 1, "previous": "news/sentiment@v2"}
    assert _stages(db)[1] == "production" and _stages(db)[2] != "production"
    assert [e["outcome"] for e in lifecycle.audit_entries(db) if e["action"] == "model.rollback"] == ["ok", "refused"]


def test_jobs_progress_and_cancel(ops):
    from training.tasks import run_retrain

    db = ops["db"]
    job_id = lifecycle.create_job(db, "retrain:news/sentiment", {"domain": "news", "task": "sentiment",
                                                                 "data": str(ops["data"]["train"])}, actor="alice")
    assert lifecycle.update_job(db, job_id, progress={"stage": "x", "step": 3}, log_line="hello") == "queued"
    assert lifecycle.cancel_job(db, job_id, actor="alice")["status"] == "cancelling"
    job = run_retrain(job_id, ops["settings"], db)  # a cancelled queued job never starts training
    assert job["status"] == "cancelled" and "hello" in job["log"] and "cancel requested by alice" in job["log"]
    with pytest.raises(Conflict):
        lifecycle.cancel_job(db, job_id, actor="alice")


def test_unsupported_task_fails_the_job_with_a_reason(ops):
    from training.tasks import run_retrain

    db = ops["db"]
    job_id = lifecycle.create_job(db, "retrain:news/ner", {"domain": "news", "task": "ner", "data": "x"},
                                  actor="alice")
    job = run_retrain(job_id, ops["settings"], db)
    assert job["status"] == "failed" and "not supported" in job["error"]


def test_concurrent_rollbacks_and_promotions_each_move_one_step_or_are_refused(ops):
    """Four rollbacks at once all answered 200, two reporting the same step, and the pointer
    moved three; six forced promotions at once lost versions from the history."""
    import threading

    settings, db, registry = ops["settings"], ops["db"], ops["registry"]
    versions = [registry.register("news", "sentiment", ops["v1"].path, move=False) for _ in range(5)]  # v2..v6
    for mv in versions:
        lifecycle.promote(settings, db, mv.ref, actor="alice", force=True, reason="setup")
    start, outcomes = threading.Barrier(4), []

    def rollback() -> None:
        start.wait()
        try:
            outcomes.append(lifecycle.rollback(settings, db, "news", "sentiment", actor="alice"))
        except Conflict as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=rollback) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    steps = [o for o in outcomes if isinstance(o, dict)]
    assert all("production moved meanwhile" in o for o in outcomes if isinstance(o, str)), outcomes
    pairs = sorted((o["previous"], o["production"]) for o in steps)
    assert len({prev for prev, _ in pairs}) == len(pairs)  # no step reported twice
    assert registry.production("news", "sentiment").version == 6 - len(steps)  # one pointer step per 200

    start, outcomes = threading.Barrier(len(versions)), []

    def promote(ref: str) -> None:
        start.wait()
        try:
            outcomes.append(lifecycle.promote(settings, db, ref, actor="bob", force=True, reason="race"))
        except Conflict as exc:
            outcomes.append(str(exc))

    before = registry.pointer("news", "sentiment")
    threads = [threading.Thread(target=promote, args=(mv.ref,)) for mv in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [o for o in outcomes if isinstance(o, dict) and not o.get("unchanged")]
    after = registry.pointer("news", "sentiment")
    # each promotion that answered ok is one step in the history, in the order they landed
    assert len(after["history"]) == len(before["history"]) + len(done)
    assert {o["production"] for o in done} >= {f"news/sentiment@v{after['version']}"}
