"""Promotion and rollback: gate-checked, forced with a reason, mirrored, announced, audited."""

from __future__ import annotations

import json
import random
import time

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
    assert lifecycle.audit_entries(db)[0]["outcome"] == "unchanged"  # asked for, audited (concurrency QA)
    assert (v2.path / REPORT_NAME).read_text() == report
    assert registry.rollback("news", "sentiment").version == 1  # the history did not gain a v2 -> v2 step
    broken = registry.task_dir("news", "sentiment") / "v3"
    broken.mkdir()  # an empty version (made by hand): serving it would fail
    with pytest.raises(ModelNotFound, match="holds no model"):
        lifecycle.promote(settings, db, "news/sentiment@v3", actor="alice", force=True, reason="oops")
    (broken / "metrics.json").write_text('{"macro_f1": 0.9}')  # ops QA: figures alone passed the check
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


def _production_rows(db, domain="news", task="sentiment"):
    with db.session() as s:
        return sorted(r.version for r in s.scalars(select(ModelRecord).where(
            ModelRecord.domain == domain, ModelRecord.task == task, ModelRecord.stage == "production")).all())


def test_racing_promotions_and_rollbacks_leave_the_database_naming_the_pointers_version(ops, monkeypatch):
    """The database mirror was written after the pointer lock was released, so racing moves
    landed out of order: the pointer said v2 while model_versions said v4 (or both)."""
    import threading

    settings, db, registry = ops["settings"], ops["db"], ops["registry"]
    versions = [registry.register("news", "sentiment", ops["v1"].path, move=False) for _ in range(4)]  # v2..v5
    lifecycle.promote(settings, db, versions[0].ref, actor="alice", force=True, reason="setup")
    mirror, pause, stale = lifecycle._mirror, random.Random(0), []

    def slow_mirror(db_, mv, stage):  # a busy database: the moment where racing moves overtook
        time.sleep(pause.uniform(0, 0.01))
        if stage == "production" and registry.pointer(mv.domain, mv.task)["version"] != mv.version:
            stale.append(mv.ref)  # recording a production the pointer has already left
        mirror(db_, mv, stage)

    monkeypatch.setattr(lifecycle, "_mirror", slow_mirror)
    for round_ in range(2):
        def move(i: int, round_: int = round_) -> None:
            for attempt in range(4):  # one after another, so several moves per round succeed
                try:
                    if (i + attempt) % 2:
                        lifecycle.rollback(settings, db, "news", "sentiment", actor="bob")
                    else:
                        ref = versions[(i + attempt + round_) % len(versions)].ref
                        lifecycle.promote(settings, db, ref, actor="alice", force=True, reason="race")
                except Conflict:
                    pass  # refused: production moved meanwhile, or no history left

        threads = [threading.Thread(target=move, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pointer = registry.pointer("news", "sentiment")["version"]
        assert not stale, f"round {round_}: mirrored after the pointer moved on: {stale}"
        assert _production_rows(db) == [pointer], f"round {round_}"
        # the audit log's last move names what serves
        moves = [e for e in lifecycle.audit_entries(db, limit=500)
                 if e["action"] in ("model.promote", "model.rollback") and e["outcome"] == "ok"]
        assert moves[0]["target"] == f"news/sentiment@v{pointer}", f"round {round_}"


def test_a_move_interrupted_before_its_database_record_is_mended_and_audited_by_the_next(ops):
    """A promotion killed after the pointer moved left serving on v3 while the database said
    v2 production, with no audit row; the next promotion or rollback records what it found."""
    settings, db, registry = ops["settings"], ops["db"], ops["registry"]
    v2, v3, v4 = (registry.register("news", "sentiment", ops["v1"].path, move=False) for _ in range(3))
    lifecycle.promote(settings, db, v2.ref, actor="alice", force=True, reason="setup")
    registry.promote(v3.ref, reason="killed before its mirror")  # what a SIGKILL at that moment leaves
    assert _production_rows(db) == [2]
    lifecycle.promote(settings, db, v4.ref, actor="alice", force=True, reason="next")
    assert _production_rows(db) == [4]
    entries = lifecycle.audit_entries(db)
    assert [(e["action"], e["target"]) for e in entries[:2]] == [
        ("model.promote", "news/sentiment@v4"), ("model.reconcile", "news/sentiment@v3")]
    assert entries[1]["detail"]["database_production"] == ["v2"]
    registry.rollback("news", "sentiment")  # killed again, a rollback this time: v3 serves
    out = lifecycle.rollback(settings, db, "news", "sentiment", actor="bob")  # v3 -> v2
    assert out["production"] == "news/sentiment@v2" and _production_rows(db) == [2]
    assert lifecycle.audit_entries(db)[1]["action"] == "model.reconcile"


def test_a_retrain_whose_promotion_loses_a_race_still_reports_its_version(ops, monkeypatch):
    """A job that passed its gate but found production moved at the last moment ended
    `failed` with no result: its registered, gated version was named nowhere."""
    settings, db, registry = ops["settings"], ops["db"], ops["registry"]
    v2, v3 = (registry.register("news", "sentiment", ops["v1"].path, move=False) for _ in range(2))
    real_locked, moved = registry.pointer_locked, []

    def someone_promotes_first(domain, task):
        if not moved:  # a person promotes v3 just after the job read production
            moved.append(True)
            registry.promote(v3.ref, reason="by hand")
        return real_locked(domain, task)

    monkeypatch.setattr(registry, "pointer_locked", someone_promotes_first)
    monkeypatch.setattr(lifecycle, "get_registry", lambda *_: registry)
    job_id = lifecycle.create_job(db, "retrain:news/sentiment", {}, actor="alice")
    result = lifecycle.gate_and_promote(settings, db, job_id, v2, {"actor": "alice", "force": True,
                                                                   "reason": "race"})
    assert result["version"] == v2.ref and result["promoted"] is False
    assert "production moved meanwhile (now v3)" in result["promotion_refused"]
    assert result["production"] == v3.ref and registry.production("news", "sentiment").version == 3
    assert "not promoted: " in lifecycle.get_job(db, job_id)["log"]
