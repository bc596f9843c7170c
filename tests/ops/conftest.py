"""Ops fixtures: a migrated database with keys, tiny news data, a production model, an app."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NEG = ["profit fell sharply and the company warned of losses", "sales dropped and the firm cut jobs",
       "shares plunged after a weak quarter", "the bank reported a heavy loss", "revenue declined again"]
NEU = ["the company will hold its annual meeting in May", "the firm is based in Helsinki",
       "the board met on Tuesday", "the report is published in English", "the office moved to a new building"]
POS = ["record profit and strong growth beat expectations", "sales rose strongly and margins improved",
       "shares jumped after a record quarter", "the bank doubled its profit", "revenue grew sharply again"]


def _rows(texts: list[str], label: str, suffixes: list[str]) -> list[dict]:
    return [{"text": f"{t}{s}", "label": label} for t in texts for s in suffixes]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def news_data(tmp_path: Path) -> dict[str, Path]:
    """Good training rows, deliberately bad ones (shuffled labels) and a separate eval set."""
    train = (_rows(NEG, "negative", ["", " this year"]) + _rows(NEU, "neutral", ["", " this year"])
             + _rows(POS, "positive", ["", " this year"]))
    bad = [dict(r) for r in train]
    labels = ["negative", "neutral", "positive"]
    for i, r in enumerate(bad):  # every label wrong: worse than production for sure
        r["label"] = labels[(labels.index(r["label"]) + 1 + i % 2) % 3]
    random.Random(0).shuffle(bad)
    evals = (_rows(NEG, "negative", [", analysts said"]) + _rows(NEU, "neutral", [", analysts said"])
             + _rows(POS, "positive", [", analysts said"]))
    return {"train": _write(tmp_path / "train.jsonl", train), "bad": _write(tmp_path / "bad.jsonl", bad),
            "eval": _write(tmp_path / "eval.jsonl", evals)}


@pytest.fixture
def ops(settings, redis_url, tiny_sentiment_model, news_data):
    """Migrated DB, ops and analyst keys, the news domain file and a production v1."""
    from shared.auth import create_key
    from shared.db import Database, upgrade
    from shared.gate import DomainConfig, save_domain_config
    from shared.registry import get_registry

    upgrade(settings.db_url)
    db = Database(settings.db_url)
    registry = get_registry(settings)
    v1 = registry.register("news", "sentiment", tiny_sentiment_model, move=False,
                           metrics={"macro_f1": 1.0}, train_config={"note": "fixture"})
    registry.promote(v1.ref)
    save_domain_config(settings, DomainConfig("news", eval_set=news_data["eval"], tolerance=0.05))
    keys = {"ops": create_key(db, "alice", "ops"), "analyst": create_key(db, "bob", "analyst")}
    yield {"settings": settings, "db": db, "registry": registry, "keys": keys, "v1": v1, "data": news_data}
    db.dispose()


@pytest.fixture
def worker(settings, redis_url, unique):
    """A real Celery worker subprocess consuming a queue of its own (on the test's home)."""
    queue = f"training-test-{unique}"
    env = {**os.environ, "FINPULSE_HOME": str(settings.home), "REDIS_URL": settings.redis_url,
           "PYTHONPATH": str(HERE), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env.pop("DATABASE_URL", None)
    log = open(settings.home / "worker.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["nice", sys.executable, "-m", "celery", "-A", "worker_app", "worker", "-Q", queue,
         "--pool", "solo", "--concurrency", "1", "-l", "INFO", "--without-gossip", "--without-mingle",
         "--without-heartbeat"], env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)
    yield {"queue": queue, "proc": proc, "log": settings.home / "worker.log"}
    proc.send_signal(signal.SIGQUIT)  # cold shutdown: the worker is idle by now
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
