"""Two retrain jobs at once in one worker process: each log holds its own trainer's lines, in order.

The Celery worker runs its tasks in threads; the trainer logs to the process's ``training``
logger, and each job's capture took every job's lines (``transfer stage: ...``, ``data: N train``,
``model: ...`` of the other), buffered until the next progress report, so its last lines
(``registered ...``) came after the job's own gate and promotion lines.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from shared import lifecycle


@pytest.fixture
def two_jobs(settings, redis_url, any_db_url, tiny_sentiment_model, news_data):
    """A production v1 and two queued retrain jobs, on SQLite and PostgreSQL."""
    from shared.db import Database
    from shared.gate import DomainConfig, save_domain_config
    from shared.registry import get_registry

    settings = settings.model_copy(update={"db_url": any_db_url})
    db = Database(any_db_url)
    registry = get_registry(settings)
    v1 = registry.register("news", "sentiment", tiny_sentiment_model, move=False, metrics={"macro_f1": 1.0})
    registry.promote(v1.ref)
    save_domain_config(settings, DomainConfig("news", eval_set=news_data["eval"], tolerance=1.0))
    train = [json.loads(line) for line in news_data["train"].read_text().splitlines()]
    jobs = {}
    for name, rows in (("a", train), ("b", train[:24])):  # "data: 27 train" vs "data: 21 train"
        data = Path(news_data["train"]).with_name(f"train-{name}.jsonl")
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        transfer = data.with_name(f"transfer-{name}.jsonl")
        transfer.write_text(data.read_text())
        params = {"domain": "news", "task": "sentiment", "data": str(data), "max_length": 16, "epochs": 1,
                  "options": {"batch_size": 8, "num_threads": 1, "eval_every": 1.0, "transfer_data": str(transfer),
                              "time_budget_min": None}}
        jobs[name] = (lifecycle.create_job(db, "retrain:news/sentiment", params, actor="alice"), data, transfer)
    yield settings, db, jobs
    db.dispose()


def test_concurrent_jobs_log_only_their_own_trainer_lines_in_order(two_jobs) -> None:
    from training.tasks import run_retrain

    settings, db, jobs = two_jobs
    start = threading.Barrier(2)

    def run(job_id: str) -> None:
        start.wait()
        run_retrain(job_id, settings, db)

    threads = [threading.Thread(target=run, args=(job_id,)) for job_id, _, _ in jobs.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    logs = {}
    for name, (job_id, _, _) in jobs.items():
        job = lifecycle.get_job(db, job_id)
        assert job["status"] == "succeeded", (job["error"], job["log"])
        logs[name] = (job, [line.split(" ", 1)[1] for line in job["log"].splitlines()])
    for name, other in (("a", "b"), ("b", "a")):
        job, lines = logs[name]
        _, data, transfer = jobs[name]
        _, other_data, other_transfer = jobs[other]
        trainer = [line for line in lines if line.startswith("training: ")]
        assert f"training: transfer stage: 1 epoch(s) on {transfer} before {data}" in trainer, lines
        assert not any(str(other_transfer) in line or str(other_data) in line for line in lines), lines
        assert sum(line.startswith("training: data: ") for line in trainer) == 2  # its stage and its main run
        assert sum(line.startswith("training: model: ") for line in trainer) == 2
        assert sum(line.startswith("training: registered news/sentiment@") for line in trainer) == 1
        version = job["result"]["version"]
        order = [next(i for i, line in enumerate(lines) if line.startswith(prefix)) for prefix in (
            f"training {'news/sentiment'} on {data}", "training: transfer stage: 1 epoch",
            f"training: registered {version}", f"registered {version}; evaluating against production", "gate ")]
        assert order == sorted(order), lines  # the trainer's lines before the job's gate lines
    rows = {name: [line for line in lines if line.startswith("training: data: ")][-1]
            for name, (_, lines) in logs.items()}
    assert rows == {"a": "training: data: 27 train, 3 dev rows", "b": "training: data: 21 train, 3 dev rows"}
