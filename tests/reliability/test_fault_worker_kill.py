"""SIGKILL a Celery worker mid-batch: every task finishes on a restarted worker, none lost
or doubled. Runs the project's Celery configuration (late acks, reject on worker lost)
against a private redis-server; only the visibility timeout is shortened so redelivery
happens in seconds, not hours.

It once stalled under CPU load: a worker SIGKILLed inside kombu's unacked-restore sweep
left the sweep's mutex in Redis for its default 300 s, so the restarted worker could
restore nothing. ``rel_celery`` (like the production config) lets that mutex expire fast.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from faultkit import FULL, REPO, RedisServer, record_line, wait_for

pytestmark = pytest.mark.reliability
TASKS = 60 if FULL else 16
KILLS = 3 if FULL else 1
HERE = Path(__file__).resolve().parent


def start_worker(redis_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": f"{HERE}:{REPO}"}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rel_celery", "worker", "--pool", "threads",
         "--concurrency", "4", "-Q", "inference.cpu", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "--loglevel", "WARNING"],
        cwd=HERE, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def test_project_celery_config_survives_worker_loss(settings) -> None:
    from shared.celery_app import celery_config

    conf = celery_config(settings)
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1


def test_sigkill_worker_mid_batch(tmp_path: Path, private_redis: RedisServer, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    sys.path.insert(0, str(HERE))
    import rel_celery

    app = rel_celery.build_app()
    client = redis.Redis.from_url(private_redis.url)
    key = "rel:kill"
    for i in range(TASKS):
        app.send_task("rel.record", args=[key, i, 0.4], queue="inference.cpu")
    done = lambda: client.llen(f"{key}:results")  # noqa: E731
    log = tmp_path / "worker.log"
    killed_at = []
    for k in range(KILLS):
        worker = start_worker(private_redis.url, log)
        target = (k + 1) * TASKS // (KILLS + 2)
        wait_for(lambda t=target: done() >= t, 120, 0.05, what=f"{target} tasks done before kill {k + 1}")
        os.killpg(worker.pid, signal.SIGKILL)  # no warm shutdown: in-flight tasks stay unacked
        worker.wait(10)
        killed_at.append(done())
    worker = start_worker(private_redis.url, log)
    try:
        wait_for(lambda: done() >= TASKS, 120, 0.2, what=f"all {TASKS} tasks done after restart "
                 f"(done {done()}; log {log})")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    results = [int(x) for x in client.lrange(f"{key}:results", 0, -1)]
    runs = {int(k): int(v) for k, v in client.hgetall(f"{key}:runs").items()}
    redelivered = sum(1 for v in runs.values() if v > 1)
    lost = TASKS - len(set(results))
    record_line("fault", "Celery worker SIGKILL mid-batch", injected=KILLS, survived=KILLS if not lost else 0,
                requests=TASKS, lost=lost, redelivered=redelivered)
    assert sorted(results) == list(range(TASKS)), "a task result was lost or doubled"
    assert redelivered >= 1, f"no task was in flight at the kill ({killed_at}); the test proved nothing"
