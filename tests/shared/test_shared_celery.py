"""A real Celery worker process against real Redis runs a task round trip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@contextmanager
def running_worker(redis_url: str, queue: str, home: Path):
    """``python -m shared.up worker`` on a private queue, importing the test tasks."""
    env = {**os.environ, "REDIS_URL": redis_url, "FINPULSE_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.up", "worker", "--pool", "solo", "-Q", queue,
         "-I", "fp_test_tasks", "--without-mingle", "--without-gossip"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def worker(redis_url: str, unique: str, home: Path):
    queue = f"fp-test-{unique}"
    with running_worker(redis_url, queue, home) as proc:
        yield queue, proc


@pytest.fixture
def unix_redis():
    """A private redis-server listening on a Unix socket only (short path: sockets allow ~100 bytes)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    folder = Path(tempfile.mkdtemp(prefix="fpr", dir="/tmp"))
    sock = folder / "redis.sock"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--dir", str(folder),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sock.exists(), f"redis-server did not open {sock} within 10 s"
    yield sock
    proc.kill()
    proc.wait()
    shutil.rmtree(folder, ignore_errors=True)


def test_worker_round_trip(worker, settings, redis_url):
    from shared.celery_app import make_celery

    queue, proc = worker
    app = make_celery(settings.model_copy(update={"redis_url": redis_url}))
    result = app.send_task("fp_test.add", args=[2, 3], queue=queue)
    value = result.get(timeout=60)
    assert value["sum"] == 5
    assert value["pid"] == proc.pid  # the solo pool runs tasks in the worker process itself
    assert result.state == "SUCCESS"
    assert proc.poll() is None


def test_unix_socket_redis_url_carries_tasks_results_and_rate_limits(unix_redis: Path, settings, unique: str,
                                                                     home: Path):
    """REDIS_URL=unix:///PATH?db=N: redis-py's spelling, which kombu, Celery and limits each spell
    differently; all three must reach the same socket and database."""
    import redis
    from limits.storage import storage_from_string

    from shared.celery_app import make_celery
    from shared.redis_client import limiter_storage_uri

    url = f"unix://{unix_redis}?db=3"
    queue = f"fp-test-{unique}"
    with running_worker(url, queue, home) as proc:
        app = make_celery(settings.model_copy(update={"redis_url": url}))
        result = app.send_task("fp_test.add", args=[4, 5], queue=queue)
        assert result.get(timeout=60) == {"sum": 9, "pid": proc.pid}
    stored = redis.Redis(unix_socket_path=str(unix_redis), db=3)
    assert stored.exists(f"celery-task-meta-{result.id}")  # the result sits in database 3
    assert not redis.Redis(unix_socket_path=str(unix_redis), db=0).keys("celery-task-meta-*")
    assert storage_from_string(limiter_storage_uri(url)).check()


def test_finpulse_worker_answers_ping(redis_url: str, unique: str, home: Path, settings):
    """The production entry point (``finpulse worker``) runs ``shared.tasks.ping``."""
    pytest.importorskip("services.worker")
    from shared.celery_app import make_celery

    queue = f"fp-test-{unique}"
    env = {**os.environ, "REDIS_URL": redis_url, "FINPULSE_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "worker", "--pool", "solo", "-Q", queue,
                             "--no-warm"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        app = make_celery(settings.model_copy(update={"redis_url": redis_url}))
        value = app.send_task("shared.tasks.ping", queue=queue).get(timeout=60)
        assert value["pong"] is True and value["pid"] == proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


def test_worker_config_is_safe_for_long_tasks(settings):
    """acks_late + reject on worker loss, prefetch 1, a visibility timeout above any task."""
    from shared.celery_app import celery_config, worker_pool_args

    conf = celery_config(settings)
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] >= 3600
    gpu = worker_pool_args(settings.model_copy(update={"device": "cuda"}))
    assert gpu[:2] == ["--pool", "threads"] and gpu[gpu.index("-Q") + 1] == "inference.gpu"


def test_worker_entry_stops_on_sigterm(worker):
    _, proc = worker
    time.sleep(1)
    proc.terminate()
    assert proc.wait(20) is not None
