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
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert {"sentiment-sweep-unscored", "recommendations-retrain"} <= entries, entries
