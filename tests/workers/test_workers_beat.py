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


def test_two_workers_with_beat_send_each_entry_once(tmp_path: Path, unique: str) -> None:
    """Worker QA: two workers started with --beat on one Redis (a second `finpulse up`, an ops
    `finpulse worker --beat` beside up's) each sent every entry: the six-hourly recommender refit
    made two versions, feeds were polled twice. One beat holds the lock and sends; the other waits,
    and takes over when the holder's process is gone. A private redis-server: the lock is per DB."""
    import shutil
    import signal
    import socket

    import redis

    from shared.celery_app import BEAT_LOCK

    server = shutil.which("redis-server")
    if server is None:
        import pytest

        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis_proc = subprocess.Popen([server, "--port", str(port), "--save", "", "--appendonly", "no",
                                   "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
    procs: list[subprocess.Popen] = []
    logs = [tmp_path / f"beat{i}.log" for i in range(2)]
    try:
        for i, log in enumerate(logs):
            home = tmp_path / f"home{i}"
            home.mkdir()
            env = {**os.environ, "FINPULSE_HOME": str(home), "REDIS_URL": url}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "shared.cli", "worker", "--beat", "--pool", "solo", "--queues",
                 f"beat-{unique}", "--no-warm", "--loglevel", "INFO", "--hostname", f"beat{i}-{unique}@test"],
                env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
            time.sleep(0.5)

        def sends() -> list[int]:
            return [log.read_text(errors="replace").count("Sending due task sentiment-sweep-unscored") for log in logs]

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(sends()) < 1:
            assert all(p.poll() is None for p in procs), [log.read_text()[-2000:] for log in logs]
            time.sleep(1)
        time.sleep(20)  # both beats are up and ticking by now: a second sender would have sent
        first = sends()
        assert sorted(first) == [0, 1], (first, [log.read_text()[-2000:] for log in logs])
        holder = first.index(1)
        assert client.get(BEAT_LOCK)
        os.killpg(procs[holder].pid, signal.SIGKILL)  # its lock stays behind, till its TTL
        procs[holder].wait(10)
        other = 1 - holder
        # taken over at its next tick (at most after the lock's 30 s TTL), then sent once the entry is due
        # again (60 s: the schedule the dead holder last saved, or a fresh one)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and sends()[other] < 1:
            time.sleep(1)
        assert sends()[other] >= 1, logs[other].read_text()[-3000:]
        assert "runs the schedule" in logs[other].read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        redis_proc.terminate()
        redis_proc.wait(10)


def test_a_beat_that_takes_over_keeps_its_schedule_in_the_file(settings, redis_url: str, unique: str,  # noqa: ANN001
                                                               tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Worker QA: a beat started while another held the lock (a worker container restarted, its old
    lock not yet expired; Redis down at start) ran the schedule from memory once it took over, and
    never wrote the schedule file: a later restart read the stale file and re-sent long entries."""
    from datetime import timedelta

    import redis

    import shared.celery_app as celery_app

    lock = f"finpulse:beat:lock:test-{unique}"
    monkeypatch.setattr(celery_app, "BEAT_LOCK", lock)
    app = celery_app.make_celery(settings)
    app.conf.beat_schedule = {"every-second": {"task": "rq.none", "schedule": timedelta(seconds=1)}}
    client = redis.Redis.from_url(redis_url)
    client.set(lock, "another-host:1|123|dead", ex=1)  # its holder is gone; the lock has yet to expire
    sent: list[str] = []

    class Beat(celery_app.BeatScheduler):
        def apply_async(self, entry, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            sent.append(entry.name)

    schedule = tmp_path / "celerybeat-schedule"
    beat = Beat(app=app, schedule_filename=str(schedule))
    try:
        assert beat.tick() == Beat.CHECK_S and not sent  # another holds it: nothing sent
        time.sleep(1.5)
        deadline = time.monotonic() + 10
        while not sent and time.monotonic() < deadline:
            beat.tick()
            time.sleep(0.2)
        assert sent
    finally:
        beat.close()
        client.delete(lock)
    with shelve.open(str(schedule), flag="r") as db:
        assert db["entries"]["every-second"].total_run_count >= 1
