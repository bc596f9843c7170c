"""``finpulse worker --beat`` (what ``finpulse up`` runs) schedules every service's periodic tasks."""

from __future__ import annotations

import os
import shelve
import subprocess
import sys
import time
from pathlib import Path


def test_embedded_beat_schedules_the_unscored_sweep_and_the_recs_refit(home: Path, redis_url: str,
                                                                       unique: str) -> None:
    """The beat persists the schedule it runs; an empty one means articles whose first scoring
    failed were never scored again (the entries used to be added after the beat had read them)."""
    env = {**os.environ, "FINPULSE_HOME": str(home), "REDIS_URL": redis_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker", "--beat", "--pool", "solo", "--queues", f"beat-{unique}",
         "--no-warm", "--loglevel", "INFO", "--hostname", f"beat-{unique}@test"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    schedule = home / "run" / "celerybeat-schedule"
    entries: set[str] = set()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not {"sentiment-sweep-unscored", "recommendations-retrain"} <= entries:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(1)
            if list(schedule.parent.glob(f"{schedule.name}*")):
                try:
                    with shelve.open(str(schedule), flag="r") as db:
                        entries = set(db.get("entries", {}))
                except Exception:  # noqa: BLE001 - the beat may be writing it right now
                    continue
    finally:
        _stop(proc)
    assert {"sentiment-sweep-unscored", "recommendations-retrain"} <= entries, entries


def test_a_worker_logs_json_lines_when_asked(home: Path, redis_url: str, unique: str) -> None:
    """Observability QA: with FINPULSE_LOG_FORMAT=json every worker line (task received, reloads,
    errors, its start) was Celery's plain `[time: LEVEL/MainProcess] ...` format."""
    import json
    import threading

    env = {**os.environ, "FINPULSE_HOME": str(home), "REDIS_URL": redis_url, "FINPULSE_LOG_FORMAT": "json",
           "TZ": "America/New_York"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker", "--pool", "solo", "--queues", f"json-{unique}",
         "--no-warm", "--loglevel", "INFO", "--hostname", f"json-{unique}@test"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not any("ready" in ln for ln in lines):
            time.sleep(0.5)
    finally:
        _stop(proc)
        reader.join(10)
    logged = [ln for ln in lines if ln.strip()]
    assert any("ready" in ln for ln in logged), logged[-20:]
    records = [json.loads(ln) for ln in logged if ln.lstrip().startswith("{")]
    plain = [ln for ln in logged if ": INFO/" in ln or ": WARNING/" in ln or ": ERROR/" in ln]
    assert records and not plain, plain[:5]
    assert all(r["ts"].endswith("Z") and "." in r["ts"] for r in records)  # UTC, not the host's zone


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
