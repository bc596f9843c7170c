"""A real `finpulse worker` subprocess on Redis db 15: sentiment round trip, ping, poison tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from shared.inference import client_app
from shared.tasks import FAILED_LIST


@pytest.fixture
def worker(worker_settings, redis_url, unique):  # noqa: ANN001, ANN201
    """One worker on a private queue (other suites share db 15), stopped afterwards."""
    queue = f"test-workers-{unique}"
    env = {**os.environ, "FINPULSE_HOME": str(worker_settings.home), "REDIS_URL": redis_url,
           "FINPULSE_RUNTIME": "torch", "FINPULSE_MAX_BATCH_DELAY_MS": "20"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker", "--queues", queue, "--concurrency", "8",
         "--no-warm", "--loglevel", "WARNING", "--hostname", f"{queue}@test"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    app = client_app(worker_settings)
    yield app, queue, proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _get(result, timeout: float = 120):  # noqa: ANN001, ANN202
    return result.get(timeout=timeout, propagate=False)


def test_sentiment_round_trip_and_per_item_errors(worker):
    app, queue, proc = worker
    assert _get(app.send_task("shared.tasks.ping", queue=queue))["pong"] is True
    texts = ["record profit and strong growth beat expectations", "", 7,
             "profit fell sharply and the company warned of losses"]
    out = _get(app.send_task("shared.tasks.sentiment_scores", args=[texts], queue=queue))
    assert out["model"] == "news/sentiment@v1"
    rows = out["results"]
    assert rows[0]["label"] == "positive" and rows[3]["label"] == "negative"
    assert rows[1]["error"]["code"] == rows[2]["error"]["code"] == "bad_request"
    # Many one-text tasks at once are all answered (they meet in the worker's batcher).
    results = [app.send_task("shared.tasks.sentiment_scores", args=[[t]], queue=queue)
               for t in ["profit rose"] * 12]
    assert all(_get(r)["results"][0]["label"] in ("negative", "neutral", "positive") for r in results)
    assert proc.poll() is None


def test_poison_task_is_retried_then_recorded(worker, redis_url):
    import redis

    app, queue, proc = worker
    result = app.send_task("shared.tasks.sentiment_scores", args=[["x"]], kwargs={"model": "no/such"},
                           queue=queue)
    out = _get(result)
    assert result.state == "FAILURE" and "no/such" in str(out)
    recorded = [json.loads(x) for x in redis.Redis.from_url(redis_url).lrange(FAILED_LIST, 0, 50)]
    assert any(r["id"] == result.id for r in recorded)
    assert proc.poll() is None  # the worker survived
    started = time.monotonic()
    assert _get(app.send_task("shared.tasks.ping", queue=queue), 30)["pong"] is True
    assert time.monotonic() - started < 30


def test_worker_pools_by_device(settings):
    from services.worker import worker_argv

    cpu = worker_argv(settings, None, None, None, "INFO", None)
    assert cpu[cpu.index("--pool") + 1] == "threads" and "inference.cpu" in cpu[cpu.index("-Q") + 1]
    gpu = worker_argv(settings.model_copy(update={"device": "cuda"}), None, None, None, "INFO", "g@h")
    # threads on the GPU too: a solo pool would hand the dynamic batcher one task at a time
    assert gpu[gpu.index("--pool") + 1] == "threads" and gpu[gpu.index("-Q") + 1] == "inference.gpu"
    assert int(gpu[gpu.index("--concurrency") + 1]) > 1
    solo = worker_argv(settings, None, "solo", None, "INFO", None)
    assert "--concurrency" not in solo
