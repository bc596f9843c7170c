"""A retrain job whose worker died (kill -9) ends within minutes, and its task is never run twice.

The worker's late-acked task came back only after the visibility timeout (6 h), the job read
``running`` with frozen progress till then, a cancel left it ``cancelling`` for good, and the
re-delivered task ran the whole retrain again.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from shared import lifecycle
from shared.db import Database
from shared.models import Job


@pytest.fixture
def db(any_db_url):
    database = Database(any_db_url)
    yield database
    database.dispose()


def _job(db: Database, status: str, age_s: float, stage: str = "training") -> str:
    """A job row as its worker left it: ``status`` at ``stage``, last heard from ``age_s`` ago."""
    job_id = lifecycle.create_job(db, "retrain:news/sentiment", {"domain": "news", "task": "sentiment"},
                                  actor="alice")
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            status=status, progress={"stage": stage, "step": 7},
            updated_at=datetime.now(UTC) - timedelta(seconds=age_s)))
    return job_id


def _wait(what: str, check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_reaper_ends_jobs_whose_heartbeat_is_old(db):
    running = _job(db, "running", 600)
    cancelling = _job(db, "cancelling", 600)
    never_taken = _job(db, "cancelling", 600, stage="queued")  # cancelled while queued; no worker took it
    alive = _job(db, "running", 20)
    queued = _job(db, "queued", 600, stage="queued")  # waiting on the broker: not the reaper's business

    reaped = lifecycle.reap_lost_jobs(db, stale_s=180)

    assert sorted(j["id"] for j in reaped) == sorted([running, cancelling, never_taken])
    failed = lifecycle.get_job(db, running)
    assert failed["status"] == "failed" and failed["progress"]["stage"] == "failed"
    assert failed["error"].startswith("worker lost (no heartbeat since ")
    assert failed["error"].endswith("; send the retrain again") and failed["error"] in failed["log"]
    assert failed["progress"]["step"] == 7  # where it stopped stays readable
    gone = lifecycle.get_job(db, cancelling)
    assert gone["status"] == "cancelled" and gone["error"].startswith("worker lost (no heartbeat since ")
    assert lifecycle.get_job(db, never_taken)["status"] == "cancelled"
    assert "cancelled before a worker took it" in lifecycle.get_job(db, never_taken)["log"]
    assert lifecycle.get_job(db, alive)["status"] == "running"
    assert lifecycle.get_job(db, queued)["status"] == "queued"
    audits = {(e["actor"], e["action"], e["target"], e["outcome"]) for e in lifecycle.audit_entries(db)}
    assert audits == {(lifecycle.REAPER, "job.lost", running, "failed"),
                      (lifecycle.REAPER, "job.lost", cancelling, "cancelled"),
                      (lifecycle.REAPER, "job.lost", never_taken, "cancelled")}
    assert lifecycle.reap_lost_jobs(db, stale_s=180) == []  # ended once
    assert lifecycle.get_job(db, alive)["status"] == "running"


def test_a_live_job_with_a_running_heartbeat_is_not_reaped(db):
    """A step that reports no progress for longer than the stale limit (model loading, an ONNX
    export, the gate) lives as long as its worker does: the heartbeat is a thread."""
    release, seen = threading.Event(), []

    def silent_step(params: dict) -> dict:
        release.wait(30)
        return {"ok": True}

    job_id = lifecycle.create_job(db, "retrain:news/sentiment", {}, actor="alice")
    worker = threading.Thread(target=lambda: seen.append(
        lifecycle.run_job(db, job_id, silent_step, heartbeat_s=0.1)))
    worker.start()
    try:
        _wait("the job to start", lambda: lifecycle.get_job(db, job_id)["status"] == "running")
        for _ in range(8):  # 2 s of silence: twice the stale limit since the job started
            time.sleep(0.25)
            assert lifecycle.reap_lost_jobs(db, stale_s=1.0) == []
        assert lifecycle.get_job(db, job_id)["status"] == "running"
    finally:
        release.set()
        worker.join(30)
    assert seen[0]["status"] == "succeeded" and seen[0]["result"] == {"ok": True}
    assert lifecycle.audit_entries(db) == []


def test_a_redelivered_task_for_a_failed_job_does_not_run(db, settings, monkeypatch):
    """The broker re-delivers a dead worker's task after its visibility timeout: the job was
    reaped by then, and the task must leave it as it is (before, it retrained from scratch)."""
    import training.tasks

    ran: list[str] = []
    monkeypatch.setattr(training.tasks, "_retrain", lambda settings, db, job_id, params: ran.append(job_id))
    lost = _job(db, "running", 600)
    lifecycle.reap_lost_jobs(db, stale_s=180)
    before = lifecycle.get_job(db, lost)
    elsewhere = _job(db, "running", 5)  # still beating on another worker
    stamp = lifecycle.get_job(db, elsewhere)["updated_at"]

    for job_id in (lost, elsewhere):
        training.tasks.run_retrain(job_id, settings, db)  # what the task runs

    assert ran == []
    assert lifecycle.get_job(db, lost) == before  # still failed, error and log as the reaper left them
    assert lifecycle.get_job(db, elsewhere)["updated_at"] == stamp  # no fake heartbeat either


def test_a_job_ended_as_lost_keeps_that_outcome_when_its_worker_wakes(db):
    """A worker that hung (not died) past the limit finds its job ended: it stops at its next
    step, and its late outcome does not overwrite what the operator was told."""
    hung, resumed = threading.Event(), threading.Event()

    def work(params: dict) -> dict:
        hung.set()
        resumed.wait(30)
        lifecycle.job_stage(db, job_id, "gate", "evaluating")  # the zombie's next step
        return {"promoted": True}

    job_id = lifecycle.create_job(db, "retrain:news/sentiment", {}, actor="alice")
    worker = threading.Thread(target=lifecycle.run_job, args=(db, job_id, work), kwargs={"heartbeat_s": 3600})
    worker.start()
    hung.wait(10)
    time.sleep(0.05)
    assert [j["id"] for j in lifecycle.reap_lost_jobs(db, stale_s=0)] == [job_id]
    resumed.set()
    worker.join(30)
    job = lifecycle.get_job(db, job_id)
    assert job["status"] == "failed" and job["error"].startswith("worker lost") and job["result"] is None
    assert "after it was ended as failed" in job["log"]


def test_a_training_worker_reaps_at_start_and_periodically(settings, monkeypatch):
    from shared.celery_app import QUEUE_CPU, QUEUE_TRAINING, make_celery, start_job_reaper

    started: list[tuple[str, float]] = []
    monkeypatch.setattr(lifecycle, "start_reaper",  # and it sends again the jobs whose message was lost
                        lambda db, stale_s, requeue: started.append((db.url, stale_s)) if callable(requeue) else None)
    for queues in ([QUEUE_CPU], [QUEUE_CPU, QUEUE_TRAINING]):
        app = make_celery(settings)
        app.amqp.queues.select(queues)
        start_job_reaper(sender=SimpleNamespace(app=app))
    assert started == [(settings.db_url, settings.job_stale_s)]  # the inference-only worker runs none


def test_start_reaper_reaps_at_once(db):
    lost = _job(db, "running", 600)
    stop = lifecycle.start_reaper(db, stale_s=180, every_s=3600)
    try:
        _wait("the first pass", lambda: lifecycle.get_job(db, lost)["status"] == "failed")
    finally:
        stop.set()


def test_an_interrupted_job_ends_cancelled_and_the_interrupt_goes_on(db):
    """Ops QA: Ctrl-C or SIGTERM of `ops retrain` in the foreground left its job "running" for good
    (no worker here reaps lost jobs) and a later `ops cancel` left it "cancelling"."""
    job_id = lifecycle.create_job(db, "retrain:news/sentiment", {"domain": "news"}, actor="alice")

    def work(_params):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lifecycle.run_job(db, job_id, work)
    job = lifecycle.get_job(db, job_id)
    assert (job["status"], job["progress"]["stage"]) == ("cancelled", "cancelled")
    assert "interrupted (Ctrl-C or SIGTERM) before it finished" in job["log"]


def test_a_queued_job_whose_task_message_was_lost_is_sent_again(db, settings, redis_url):
    """Worker QA: Redis restarted without its data (or flushed) while a retrain waited on the
    training queue: its message was gone and the job read ``queued`` for good. The training
    worker's reaper sends such a job again once it has been queued for FINPULSE_JOB_STALE_S
    with no message left in Redis (never one that still waits there, nor a fresh one)."""
    import json

    import redis

    from shared.celery_app import QUEUE_TRAINING, make_celery, requeue_lost_jobs

    client = redis.Redis.from_url(redis_url)
    app = make_celery(settings)
    lost = _job(db, "queued", 600, stage="queued")
    waiting = _job(db, "queued", 600, stage="queued")
    fresh = _job(db, "queued", 5, stage="queued")
    app.send_task("training.retrain", args=[waiting], queue=QUEUE_TRAINING, ignore_result=True)
    try:
        assert requeue_lost_jobs(app, db, settings) == [lost]
        bodies = [json.loads(m) for m in client.lrange(QUEUE_TRAINING, 0, -1)]
        sent = [b for b in bodies if b["headers"]["task"] == "training.retrain" and lost in b["headers"]["argsrepr"]]
        assert len(sent) == 1
        job = lifecycle.get_job(db, lost)
        assert job["status"] == "queued" and "sent again" in job["log"]
        assert "sent again" not in lifecycle.get_job(db, waiting)["log"] + lifecycle.get_job(db, fresh)["log"]
        assert requeue_lost_jobs(app, db, settings) == []  # its row was touched; its message is there now
    finally:
        for item in client.lrange(QUEUE_TRAINING, 0, -1):
            if lost.encode() in item or waiting.encode() in item:
                client.lrem(QUEUE_TRAINING, 0, item)
