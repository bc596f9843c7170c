"""``finpulse up``: the whole suite on one machine, stopped as one by Ctrl-C or SIGTERM.

Order: check the configuration and ports (nothing started yet), find or start Redis,
migrate the database, then start the children, each in its own process group: a
Celery worker, the three services under waitress and, on a first run, a background
preparation (train the sentiment model, call each service's ``bootstrap.prepare``).
The services answer ``/healthz`` at once; ``/readyz`` says what preparation is still
doing (``FINPULSE_HOME/run/prepare.json``). Children are also given a parent-death
signal, so even a killed ``up`` leaves no orphans behind.

The same module is the children's entry point: ``python -m shared.up serve NAME``,
``... worker [CELERY ARGS]`` and ``... prepare --services a,b``.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from shared.errors import ConfigError, FinPulseError, Unavailable
from shared.logs import configure_logging, say
from shared.settings import redact

if TYPE_CHECKING:
    from flask import Flask

    from shared.settings import Settings

log = logging.getLogger(__name__)

SERVICES = ("sentiment", "chatbot", "recommendations")
STOP_TIMEOUT_S = 10.0
MIN_UPTIME_S = float(os.environ.get("FINPULSE_UP_MIN_UPTIME_S", "10"))  # dying sooner: broken, not crashed
MAX_RESTARTS = 5  # per child within RESTART_WINDOW_S, then the suite stops
RESTART_WINDOW_S = 600.0
HEALTH_TIMEOUT_S = 60.0


def _say(message: str) -> None:
    say("up", message)


# -- checks before anything starts ----------------------------------------------------
def parse_services(value: str | None) -> list[str]:
    """``a,b`` to a list of known service names (all three when empty)."""
    if not value:
        return list(SERVICES)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown or not names:
        raise click.BadParameter(f"unknown service(s) {', '.join(unknown) or value!r}; "
                                 f"choose from {', '.join(SERVICES)}", param_hint="--services")
    return names


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(settings: Settings, services: list[str]) -> None:
    """Each service's port is its own and free; two set to one port failed only after the start,
    with a traceback, blaming whichever service lost the race."""
    taken: dict[int, str] = {}
    for name in services:
        port = settings.port_for(name)
        if port in taken:
            raise ConfigError(f"FINPULSE_{taken[port].upper()}_PORT and FINPULSE_{name.upper()}_PORT are both "
                              f"{port}: give each service a port of its own")
        taken[port] = name
        if not port_free(settings.host, port):
            raise ConfigError(f"port {port} ({name}) is already in use on {settings.host}: stop what "
                              f"uses it or set FINPULSE_{name.upper()}_PORT to a free port")


def check_database(settings: Settings) -> None:
    """Fail with one line when DATABASE_URL does not answer (SQLite always does)."""
    from shared.db import Database

    db = Database(settings.db_url)
    try:
        db.ping()
    except Unavailable as exc:
        raise ConfigError(f"DATABASE_URL {redact(settings.db_url)} is unreachable ({exc.message}); "
                          "fix it, or unset it to use SQLite under FINPULSE_HOME") from None
    finally:
        db.dispose()


# -- children ------------------------------------------------------------------------
def _child_setup(nice: int) -> Any:
    """Runs in the child before exec: die with the parent (Linux), lower priority."""

    try:
        prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: process groups alone
        prctl = None

    def setup() -> None:
        if prctl is not None:
            prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if nice:
            os.nice(nice)

    return setup


@dataclass
class Child:
    """One supervised process and what it takes to start it again."""

    name: str
    argv: list[str]
    essential: bool
    nice: int
    proc: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    restarts: list[float] = field(default_factory=list)  # monotonic times, newest last


class Supervisor:
    """Starts children in their own process groups and stops every group it started.

    An essential child that dies after it had come up (an OOM kill, a crash) is started
    again, so one worker's death does not take the chat widget down with it; one that dies
    within ``MIN_UPTIME_S`` of its start, or too often, stops the suite (it would only loop).
    """

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.children: list[Child] = []

    def _spawn(self, argv: list[str], nice: int) -> subprocess.Popen:
        # Children log to stderr: stdout carries only the URLs.
        return subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                                start_new_session=True, preexec_fn=_child_setup(nice))

    def start(self, name: str, argv: list[str], *, essential: bool = True, nice: int = 0) -> subprocess.Popen:
        proc = self._spawn(argv, nice)
        self.children.append(Child(name, argv, essential, nice, proc))
        _say(f"started {name} (pid {proc.pid})")
        return proc

    def supervise(self) -> str | None:
        """Why the suite must stop: the first essential child that exited and may not be restarted.

        Restarts the others on the way, and reaps finished non-essential children.
        """
        for child in self.children:
            code = child.proc.poll()
            if code is None or not child.essential:
                continue
            now = time.monotonic()
            recent = [t for t in child.restarts if now - t < RESTART_WINDOW_S]
            if now - child.started < MIN_UPTIME_S:
                return f"{child.name} exited with code {code} {now - child.started:.0f}s after it started"
            if len(recent) >= MAX_RESTARTS:
                return (f"{child.name} exited with code {code}, its {len(recent) + 1}th exit in "
                        f"{RESTART_WINDOW_S / 60:.0f} min")
            # its group may still hold grandchildren (a worker's pool): they go first
            self._stop([child], STOP_TIMEOUT_S)
            child.restarts = [*recent, now]
            child.proc, child.started = self._spawn(child.argv, child.nice), now
            _say(f"{child.name} exited with code {code}; started it again (pid {child.proc.pid}, "
                 f"restart {len(child.restarts)} of {MAX_RESTARTS} allowed in {RESTART_WINDOW_S / 60:.0f} min)")
        return None

    def stop_all(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every group, Redis last (a stopping worker still talks to it)."""
        self._stop([c for c in self.children if c.name != "redis"], timeout)
        self._stop([c for c in self.children if c.name == "redis"], timeout)
        self.children.clear()

    @staticmethod
    def _stop(children: list[Child], timeout: float) -> None:
        """SIGTERM each process group, wait, then SIGKILL what is left (grandchildren too)."""
        for c in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for c in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(max(0.1, deadline - time.monotonic()))
        for c in children:
            if c.proc.poll() is None:
                _say(f"{c.name} did not stop in {timeout:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(5)


def ensure_redis(settings: Settings, sup: Supervisor) -> None:
    """Use REDIS_URL when it answers; else start ``redis-server`` on its local port."""
    from shared.redis_client import is_up, ping

    url = settings.redis_url
    if url.startswith("memory://"):
        raise ConfigError("REDIS_URL memory:// is for tests only; use redis://HOST:PORT/DB")
    try:
        ping(url)
        _say(f"using Redis at {redact(url)}")
        return
    except Unavailable as exc:  # a Redis that answers but refuses the password is no port clash
        if any(word in exc.message.lower() for word in ("auth", "password")):
            raise ConfigError(f"the Redis at REDIS_URL {redact(url)} refused its credentials "
                              f"({exc.message.split(': ', 1)[-1]}): fix the password in REDIS_URL") from None
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if url.startswith("unix://") or host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"REDIS_URL {redact(url)} does not answer: start that Redis, or point "
                          "REDIS_URL at 127.0.0.1 so finpulse up starts its own")
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                              else None)
    if binary is None:
        raise ConfigError(f"no Redis answers at REDIS_URL {redact(url)} and redis-server is not installed "
                          "(apt-get install redis-server, or set REDIS_URL)")
    if not port_free("127.0.0.1", port):
        raise ConfigError(f"port {port} of REDIS_URL is in use by something that is not this Redis: "
                          "set REDIS_URL to a free port")
    data = settings.home / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
            "--save", "60 1", "--appendonly", "no", "--daemonize", "no",
            "--logfile", str(data / "redis.log")]
    if parts.password:
        argv += ["--requirepass", parts.password]
    proc = sup.start("redis", argv)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if is_up(url):
            _say(f"started Redis at {redact(url)} (data in {data})")
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise ConfigError(f"redis-server did not start on port {port}; see {data / 'redis.log'}")


def worker_argv() -> list[str]:
    """The workers engineer's ``finpulse worker`` when present, else this module's."""
    if importlib.util.find_spec("services.worker") is not None:
        # --beat: feed polling and the sweep of unscored articles run on a schedule
        return [sys.executable, "-m", "shared.cli", "worker", "--beat"]
    return [sys.executable, "-m", "shared.up", "worker"]


def wait_healthy(urls: dict[str, str], sup: Supervisor, timeout: float = HEALTH_TIMEOUT_S) -> list[str]:
    """Poll each ``/healthz`` until 200; returns the services still not healthy."""
    pending = dict(urls)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline and sup.supervise() is None:
        for name, base in list(pending.items()):
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    pending.pop(name)
        time.sleep(0.2)
    return list(pending)


# -- the command ----------------------------------------------------------------------
class _Stop(Exception):
    pass


def _raise_stop(signum: int, _frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


@click.command("up")
@click.option("--services", "services_opt", metavar="A,B", default=None,
              help="Start only these services (sentiment, chatbot, recommendations); default all.")
@click.option("--prepare/--no-prepare", default=True, show_default=True,
              help="On a first run, train/load what each service needs, in the background.")
@click.option("--worker/--no-worker", default=True, show_default=True, help="Start a Celery worker.")
def up(services_opt: str | None, prepare: bool, worker: bool) -> None:
    """Start the whole suite locally: Redis (when none answers at REDIS_URL), database
    migrations, a Celery worker and the three services (ports 8101/8102/8103 by default).

    Prints the service URLs on stdout once their /healthz answers; progress goes to
    stderr. A first run with an empty registry prepares the models from ../shared/data
    (or the samples under data/samples/) in the background; /readyz says what is still
    being prepared. Ctrl-C or SIGTERM stops everything it started.
    """
    from shared.db import upgrade
    from shared.firstrun import status_path
    from shared.settings import get_settings

    settings = get_settings()
    configure_logging(settings)  # JSON logs: its own progress lines are JSON too
    if weak := settings.weak_ops_key():
        _say(f"warning: {weak}")
    services = parse_services(services_opt)
    check_ports(settings, services)
    check_database(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    status_path(settings).unlink(missing_ok=True)  # readiness must not read a stale run's state

    env = {**os.environ, "FINPULSE_HOME": str(settings.home), "REDIS_URL": settings.redis_url,
           "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    for name in SERVICES:
        env[f"FINPULSE_{name.upper()}_PORT"] = str(settings.port_for(name))
    if settings.log_format == "json":  # transformers' "Loading weights" bars: no JSON lines
        env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    sup = Supervisor(env)
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, closed terminal
    previous = {sig: signal.signal(sig, _raise_stop) for sig in stop_signals}
    failure: str | None = None
    try:
        ensure_redis(settings, sup)
        _say(f"migrating {redact(settings.db_url)}")
        upgrade(settings.db_url)
        if worker:
            # With a worker running, news is scored on the inference queue in batches, not
            # inside the POST (an explicit FINPULSE_SENTIMENT_SCORING still wins).
            sup.env.setdefault("FINPULSE_SENTIMENT_SCORING", "celery")
            sup.start("worker", worker_argv())
        urls = {}
        for name in services:
            sup.start(name, [sys.executable, "-m", "shared.up", "serve", name])
            urls[name] = f"http://{settings.host}:{settings.port_for(name)}"
        if prepare:
            sup.start("prepare", [sys.executable, "-m", "shared.up", "prepare", "--services",
                                  ",".join(services)], essential=False, nice=10)
        slow = wait_healthy(urls, sup)
        if sup.supervise() is None:
            for name, base in urls.items():
                click.echo(f"{name:<16} {base}/")
            sys.stdout.flush()
            if slow:
                _say(f"still not healthy after {HEALTH_TIMEOUT_S:.0f}s: {', '.join(slow)}")
            _say("running; Ctrl-C stops everything")
        while (dead := sup.supervise()) is None:
            time.sleep(0.5)
        failure = f"{dead} (its log is above); stopped everything"
    except _Stop as stop:
        _say(f"{stop}: stopping")
    finally:
        for sig in stop_signals:  # a second Ctrl-C must not interrupt the clean-up
            signal.signal(sig, signal.SIG_IGN)
        sup.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        raise click.ClickException(failure)
    _say("stopped")


# -- children's entry points ----------------------------------------------------------------
def service_app(name: str, settings: Settings) -> Flask:
    """``services.<name>:create_app(settings)``, or the minimal app while it is absent."""
    from shared.firstrun import preparation_check
    from shared.web import add_readiness_check, create_service_app

    try:
        module = importlib.import_module(f"services.{name}")
        factory = module.create_app
    except (ModuleNotFoundError, AttributeError) as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name not in (f"services.{name}", "services"):
            raise
        app = create_service_app(name, settings)
        add_readiness_check(app, _redis_check(settings), "redis")
        add_readiness_check(app, _db_check(settings), "database")
    else:
        app = factory(settings)
    add_readiness_check(app, preparation_check(settings, name), "preparation")
    return app


def _redis_check(settings: Settings) -> Any:
    def redis() -> None:
        from shared.redis_client import ping

        ping(settings.redis_url)

    return redis


def _db_check(settings: Settings) -> Any:
    from shared.db import Database

    db = Database(settings.db_url)
    return db.ping


@click.group()
def child() -> None:
    """Entry points of the processes ``finpulse up`` starts."""


@child.command()
@click.argument("name", type=click.Choice(SERVICES))
def serve(name: str) -> None:
    """Serve one service with waitress on its configured port."""
    from waitress import serve as waitress_serve

    from shared.encoders import offline
    from shared.settings import get_settings

    offline()
    settings = get_settings()
    app = service_app(name, settings)
    if weak := settings.weak_ops_key():  # docker-compose starts each service alone: its log says it too
        logging.getLogger(__name__).warning(weak)
    waitress_serve(app, host=settings.host, port=settings.port_for(name), _quiet=True,
                   **waitress_options(name, app))


CONNECTION_LIMIT = 1000  # open connections per service (waitress: 100)
CHANNEL_TIMEOUT_S = 30  # an idle or half-sent connection is closed after this (waitress: 120)


def waitress_options(name: str, app: Any = None) -> dict[str, Any]:
    """How every service is served: 8 request threads, plus one for each long-lived response
    the app allows at once (``FINPULSE_STREAM_THREADS``: sentiment's alert streams), which
    would otherwise hold request threads. X-Forwarded-* reach the app: ProxyFix trusts exactly
    FINPULSE_TRUSTED_PROXIES hops of them, and without a declared proxy their presence is what
    keeps a local proxy's customers from passing for this host in the chat's rate limits
    (waitress strips them by default, unseen).

    Connections: waitress's defaults (100 at once, an idle one kept 120 s) let ~100 idle or
    half-sent connections from one client shut everyone out, /healthz included. 1000 are
    allowed and one silent for 30 s is closed; a request being answered never is (an alert
    stream, which also writes every 5 s; the chat widget's polls are requests of their own).
    poll(), not select(): select() fails on a descriptor past 1024."""
    streams = int(app.config.get("FINPULSE_STREAM_THREADS", 0)) if app is not None else 0
    return {"threads": 8 + streams, "ident": f"finpulse-{name}", "clear_untrusted_proxy_headers": False,
            "connection_limit": CONNECTION_LIMIT, "channel_timeout": CHANNEL_TIMEOUT_S, "asyncore_use_poll": True}


@child.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """A Celery worker (queues and pool from settings; CELERY_ARGS replace them)."""
    from shared.celery_app import make_celery, worker_pool_args
    from shared.encoders import offline
    from shared.settings import get_settings

    offline()
    settings = get_settings()
    app = make_celery(settings)
    args = list(celery_args) or worker_pool_args(settings)
    quiet = []
    if settings.log_format == "json":  # Celery's banner, warnings and shutdown line: plain lines among JSON
        from shared.logs import celery_json_output

        configure_logging(settings)
        celery_json_output()
        quiet = ["--quiet"]
    app.worker_main([*quiet, "worker", "--loglevel", settings.log_level, "--hostname", f"finpulse-{os.getpid()}@%h",
                     *args])


@child.command("prepare")
@click.option("--services", "services_opt", default=None)
def prepare_cmd(services_opt: str | None) -> None:
    """Prepare what each service needs on a first run (progress on stderr)."""
    from shared.encoders import offline
    from shared.firstrun import prepare_services
    from shared.logs import configure_logging
    from shared.settings import get_settings

    offline()
    settings = get_settings()
    configure_logging(settings)
    failed = prepare_services(settings, parse_services(services_opt))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    try:
        child(prog_name="python -m shared.up")
    except FinPulseError as exc:  # a bad setting: one line, as `finpulse` says it (docker-compose runs these)
        sys.exit(f"python -m shared.up: error: {exc.message.splitlines()[0] if exc.message else exc.code}")
