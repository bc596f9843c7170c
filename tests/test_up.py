"""``finpulse up``: starts the suite, answers /healthz, stops with no orphan; bad config is one line."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from tests.upkit import REPO, SERVICES, alive, free_ports, get_json, running_up, up_env


def test_up_starts_all_services_and_stops_without_orphans(home):
    """Own Redis on a free port (none answers there), SQLite, a worker, three services."""
    ports = free_ports(4)
    with running_up(up_env(home, ports), "--no-prepare") as proc:
        status, body = get_json(f"http://127.0.0.1:{ports[1]}/readyz")
        assert status in (200, 503) and "status" in body  # readiness answers, JSON either way
        import redis

        assert redis.Redis(port=ports[3], socket_connect_timeout=2).ping()  # the Redis it started
        assert (home / "finpulse.db").is_file()  # migrated
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "redis-server" in names and "worker" in names and names.count(" serve ") == 3
        assert "--beat" in names  # feed polling and the unscored sweep run under `up` too
        pids = [c.pid for c in children]
        # `up` prints the URLs once its own polling sees every service healthy, which can be a
        # moment after the kit's polling did: stopping it before then would leave nothing printed
        printed, _, _ = select.select([proc.stdout], [], [], 30)
        assert printed, "finpulse up printed no URLs within 30 s of its services answering"
        out = "".join(proc.stdout.readline() for _ in SERVICES)
    for name, port in zip(SERVICES, ports, strict=False):
        assert f"{name}" in out and f":{port}/" in out  # the URLs were printed on stdout
    assert proc.returncode == 0
    time.sleep(0.5)
    assert [p for p in pids if alive(p)] == []
    for port in ports:  # every port is free again
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def _run_up(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.cli", "up", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("finpulse: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_port_in_use_is_one_line_and_starts_nothing(home):
    ports = free_ports(4)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports[1]))
        busy.listen()
        line = _one_line(_run_up(up_env(home, ports), "--no-prepare"))
    assert str(ports[1]) in line and "FINPULSE_CHATBOT_PORT" in line
    assert not (home / "redis").exists()  # checked before anything started


def test_two_services_on_one_port_is_one_line_and_starts_nothing(home):
    """Regression (up QA): both started, one died with a traceback, exit 1, blaming the loser."""
    ports = free_ports(4)
    env = up_env(home, ports, FINPULSE_RECOMMENDATIONS_PORT=str(ports[1]))
    proc = _run_up(env, "--no-prepare")
    line = _one_line(proc)
    assert proc.returncode == 2 and "FINPULSE_CHATBOT_PORT and FINPULSE_RECOMMENDATIONS_PORT" in line
    assert not (home / "redis").exists()  # checked before anything started


def test_malformed_redis_url_is_one_line(home):
    line = _one_line(_run_up(up_env(home, free_ports(4), REDIS_URL="redis://localhost:port/0")))
    assert "REDIS_URL" in line


def test_a_redis_refusing_the_password_is_named_so(home, tmp_path):
    """Observability QA: a wrong password for a local Redis read "port 6393 of REDIS_URL is in use
    by something that is not this Redis: set REDIS_URL to a free port"."""
    import shutil

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_ports(1)[0]
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "rightpw",
                               "--save", "", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.1)
        for url in (f"redis://:wrongpw@127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0"):
            proc = _run_up(up_env(home, free_ports(4), REDIS_URL=url), "--no-prepare")
            line = _one_line(proc)
            assert proc.returncode == 2 and "refused its credentials" in line and "in use" not in line, line
            assert "wrongpw" not in line
    finally:
        server.terminate()
        server.wait(10)


def test_unreachable_database_is_one_line(home):
    env = up_env(home, free_ports(4), DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    line = _one_line(_run_up(env, "--no-prepare"))
    assert "DATABASE_URL" in line and "unreachable" in line


def test_unknown_service_is_a_usage_error(home):
    line = _one_line(_run_up(up_env(home, free_ports(4)), "--services", "sentiment,nope"))
    assert "nope" in line


def test_readiness_reports_preparation(settings):
    from shared.errors import Unavailable
    from shared.firstrun import preparation_check
    from shared.io import write_json

    check = preparation_check(settings, "chatbot")
    check()  # no preparation running: nothing to wait for
    write_json(settings.home / "run" / "prepare.json",
               {"chatbot": {"state": "running", "detail": "building the FAQ index"}})
    with pytest.raises(Unavailable, match="building the FAQ index"):
        check()
    write_json(settings.home / "run" / "prepare.json", {"chatbot": {"state": "done", "detail": "ok"}})
    check()


def test_first_run_training_reports_each_dev_evaluation_with_its_epoch():
    """Walkthrough QA: /readyz said "training news/sentiment on FILE" for the whole first run (25 minutes
    on a busy host) with nothing to tell how far it was; each dev evaluation is now its progress, and the
    per-step calls rewrite nothing."""
    from shared.firstrun import training_progress

    said: list[str] = []
    report = training_progress("training news/sentiment", said.append)
    report({"stage": "transfer", "epoch": 1, "epochs": 1, "step": 1, "total_steps": 9, "loss": 1.0})
    report({"stage": "transfer", "epoch": 1, "step": 9, "metrics": {"accuracy": 0.8, "macro_f1": 0.7512}})
    for step in range(1, 4):
        report({"stage": "training", "epoch": 1, "epochs": 5, "step": step, "total_steps": 30, "loss": 0.5})
    report({"stage": "training", "epoch": 1, "step": 3, "metrics": {"accuracy": 0.8, "macro_f1": 0.81234}})
    assert said == ["training news/sentiment: transfer stage epoch 1/1, dev macro-F1 0.7512",
                    "training news/sentiment: main stage epoch 1/5, dev macro-F1 0.8123"]


def test_scoring_without_a_model_while_up_prepares_it_says_so(settings):
    """Walkthrough QA: while `finpulse up` trained the first model, /v1/score, /readyz and the worker's
    sweep (every minute) said to "train one with `finpulse train sentiment` (or `finpulse up`)"."""
    from services.sentiment.scoring import load_scorer
    from shared.errors import Unavailable
    from shared.io import write_json

    with pytest.raises(Unavailable, match="train one with"):
        load_scorer(settings)
    write_json(settings.home / "run" / "prepare.json",
               {"sentiment": {"state": "running", "detail": "training news/sentiment: main stage epoch 2/5"}})
    with pytest.raises(Unavailable) as info:
        load_scorer(settings)
    assert "train one" not in info.value.message
    assert info.value.message == ("no sentiment model yet (finpulse up is preparing sentiment: training "
                                  "news/sentiment: main stage epoch 2/5)")


def test_sentiment_sample_and_data_choice(tmp_path):
    from shared.firstrun import SAMPLES, sentiment_training_files

    rows = [json.loads(line) for line in (SAMPLES / "sentiment.jsonl").read_text().splitlines()]
    assert len(rows) >= 60 and {r["label"] for r in rows} == {"negative", "neutral", "positive"}
    assert sentiment_training_files(None) == (SAMPLES / "sentiment.jsonl", None)
    (tmp_path / "fpb").mkdir()
    (tmp_path / "fpb" / "train.jsonl").write_text('{"text": "x", "label": "neutral"}\n')
    (tmp_path / "fpb" / "dev.jsonl").write_text('{"text": "y", "label": "neutral"}\n')
    assert sentiment_training_files(tmp_path) == (tmp_path / "fpb" / "train.jsonl", tmp_path / "fpb" / "dev.jsonl")


@pytest.mark.slow
def test_first_run_prepares_a_production_sentiment_model(settings):
    """Trains on the repository sample (no data folder) and promotes the first version."""
    pytest.importorskip("training", reason="training package not importable")
    from shared.firstrun import prepare_services
    from shared.registry import Registry

    try:
        from training import train_sentiment  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"training API not there yet: {exc}")
    s = settings.model_copy(update={"data_dir": settings.home / "no-data"})
    assert prepare_services(s, ["sentiment"]) == []
    production = Registry(s.registry_dir).production(s.sentiment_domain, "sentiment")
    assert production is not None
    # trained to the end of its schedule: a wall-clock budget on a busy host left a useless model
    assert json.loads((production.path / "train_config.json").read_text())["time_budget_min"] is None
    state = json.loads((s.home / "run" / "prepare.json").read_text())
    assert state["sentiment"]["state"] == "done"
    assert (s.home / "run" / "prepared" / "sentiment").is_file()


def test_a_crashed_child_is_started_again_and_the_suite_keeps_serving(home):
    """An OOM-killed worker or service comes back; the chat widget does not die with it."""
    ports = free_ports(4)
    env = up_env(home, ports, FINPULSE_UP_MIN_UPTIME_S="1")
    with running_up(env, "--no-prepare", "--services", "chatbot", services=("chatbot",)) as proc:
        time.sleep(1.5)
        for word in ("worker", " serve chatbot"):
            old = _children(proc, word)
            assert len(old) == 1
            old[0].kill()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and [c.pid for c in _children(proc, word)] in ([], [old[0].pid]):
                time.sleep(0.2)
            assert len(_children(proc, word)) == 1 and proc.poll() is None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _status(f"http://127.0.0.1:{ports[1]}/healthz") != 200:
            time.sleep(0.3)
        assert _status(f"http://127.0.0.1:{ports[1]}/healthz") == 200
    log = (home / "up.err").read_text()
    assert "worker exited with code -9; started it again" in log and "chatbot exited with code -9" in log


def _children(proc: subprocess.Popen, word: str) -> list[psutil.Process]:
    """``finpulse up``'s live direct children whose command line holds ``word``."""
    found = []
    for c in psutil.Process(proc.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if c.status() != psutil.STATUS_ZOMBIE and word in " ".join(c.cmdline()):
                found.append(c)
    return found


def _status(url: str) -> int | None:
    try:
        return get_json(url)[0]
    except OSError:
        return None


def test_json_logs_make_every_stderr_line_of_up_json(home):
    """A log shipper reading `up`'s stderr met plain `[up]`/`[prepare]` lines among the JSON ones,
    and the worker's: Celery's banner and its warning about running as root, and the chatbot's
    progress bars while it embeds its knowledge base (docs QA)."""
    ports = free_ports(4)
    env = up_env(home, ports, FINPULSE_LOG_FORMAT="json", FINPULSE_DATA_DIR=str(home / "no-data"))
    with running_up(env, "--services", "recommendations,chatbot", services=("recommendations", "chatbot")):
        deadline = time.monotonic() + 90  # the first run trains the sample recommender, embeds the sample KB
        # `up` says "running" after its own health poll, which may come after the test's: a
        # SIGTERM before it left no such line (a flaky failure)
        while not all(said in (home / "up.err").read_text()
                      for said in ("recommendations: done", "chatbot: done", "Ctrl-C")) \
                and time.monotonic() < deadline:
            time.sleep(0.3)
    lines = [ln for ln in (home / "up.err").read_text().splitlines() if ln.strip()]
    assert all(ln.startswith("{") for ln in lines), [ln for ln in lines if not ln.startswith("{")]
    records = [json.loads(ln) for ln in lines]
    said = {(r["logger"], r["message"]) for r in records}
    assert ("up", "running; Ctrl-C stops everything") in said and ("up", "stopped") in said
    assert ("prepare", "recommendations: done: prepared") in said
    assert any(r["logger"].startswith("celery") for r in records)  # the worker ran, and logged JSON
    assert any(logger == "recommendations" and " ready (" in message for logger, message in said)
    assert not any(r["logger"] == "alembic.runtime.plugins" for r in records)  # 7 noise lines per migrate


def test_idle_half_sent_connections_do_not_lock_a_service_out():
    """Regression: waitress's defaults (100 connections, an idle one kept 120 s) let one client's
    ~100 half-sent requests hold a service, /healthz included, for two minutes."""
    from flask import Flask

    from shared.up import waitress_options
    from tests.waitress_server import serving

    options = waitress_options("chatbot")
    assert options["connection_limit"] >= 1000 and options["channel_timeout"] <= 30  # SSE pings every 5 s
    assert options["asyncore_use_poll"]  # select() fails on a socket past descriptor 1024
    app = Flask(__name__)
    app.get("/healthz")(lambda: "ok")
    with serving(app, **options) as server:
        idle = []
        try:
            for _ in range(150):
                conn = socket.create_connection(("127.0.0.1", server.effective_port), timeout=3)
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
                idle.append(conn)
            with urllib.request.urlopen(f"http://127.0.0.1:{server.effective_port}/healthz", timeout=5) as resp:
                assert resp.status == 200
        finally:
            for conn in idle:
                conn.close()
