"""The Celery app: Redis as broker and result backend, queues per hardware, late acks.

Built by :func:`make_celery` (never at import time); :func:`celery_init_app` binds it
to a Flask app the way Flask's Celery example does, so tasks run in an app context. A
worker taking the training queue also ends the jobs of dead workers and sends again the queued
jobs whose task message Redis lost (:func:`start_job_reaper`); of the workers run with ``--beat``,
one at a time sends the schedule (:class:`BeatScheduler`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from celery import Celery, Task, signals
from celery.beat import PersistentScheduler

if TYPE_CHECKING:
    from flask import Flask

    from shared.settings import Settings

log = logging.getLogger(__name__)

QUEUE_CPU = "inference.cpu"
QUEUE_GPU = "inference.gpu"
QUEUE_TRAINING = "training"
QUEUES = (QUEUE_CPU, QUEUE_GPU, QUEUE_TRAINING)
TASK_THREADS = 32  # in-flight tasks per threads-pool worker: the dynamic batcher's supply of company

# Modules holding @shared_task functions; the worker imports them all.
TASK_MODULES = (
    "shared.tasks",
    "shared.retention",
    "services.sentiment.tasks",
    "services.chatbot.tasks",
    "services.recommendations.tasks",
    "training.tasks",
)


def inference_queue(settings: Settings) -> str:
    """Where this process sends inference tasks: FINPULSE_INFERENCE_QUEUE, else its own device's queue."""
    if settings.inference_queue != "auto":
        return QUEUE_GPU if settings.inference_queue == "gpu" else QUEUE_CPU
    return QUEUE_GPU if settings.device == "cuda" else QUEUE_CPU


def celery_urls(redis_url: str) -> tuple[str, str]:
    """(broker, result backend) URL for REDIS_URL: kombu and Celery spell redis-py's Unix socket
    ``unix:///PATH?db=N`` as ``socket:///PATH?virtual_host=N`` (kombu behind a transport prefix)."""
    from shared.celery_redis import KOMBU_ALIAS

    if not redis_url.startswith("unix://"):
        return redis_url, redis_url
    parts = urlsplit(redis_url)
    query = dict(parse_qsl(parts.query))
    query["virtual_host"] = query.pop("db", "0")
    socket = f"socket://{parts.netloc}{parts.path}?{urlencode(query)}"
    return f"{KOMBU_ALIAS}+{socket}", socket


def celery_config(settings: Settings) -> dict[str, Any]:
    infer = inference_queue(settings)
    # kombu's and Celery's Redis classes with fewer round trips per task (shared.celery_redis);
    # a memory:// URL (tests only) keeps the classes its scheme names
    plain = settings.redis_url.startswith(("redis://", "rediss://", "unix://"))
    broker, backend = celery_urls(settings.redis_url)
    return {
        "broker_url": broker,
        "broker_transport": "shared.celery_redis:Transport" if plain else None,
        "result_backend": f"shared.celery_redis:RedisBackend+{backend}" if plain else backend,
        "task_default_queue": QUEUE_CPU,
        "task_routes": {
            "training.*": {"queue": QUEUE_TRAINING},
            "*.train*": {"queue": QUEUE_TRAINING},
            "*.retrain*": {"queue": QUEUE_TRAINING},
            "*": {"queue": infer},
        },
        # A task is acknowledged after it ran, and re-queued if its worker dies mid-way.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One long task at a time per worker process: no task waits behind a training run.
        "worker_prefetch_multiplier": 1,
        "result_expires": settings.result_expires_s,
        # Above the longest task, or Redis would re-deliver a task that is still running.
        # unacked_mutex_expire: a worker killed mid restore-sweep blocks redelivery for a
        # minute at most, not kombu's default five.
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s,
                                     "socket_connect_timeout": 2, "unacked_mutex_expire": 60},
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout_s,
                                             "retry_policy": {"max_retries": 1, "interval_start": 0,
                                                              "interval_step": 0.2, "interval_max": 0.2}},
        # one beat per Redis database, however many workers run --beat (BeatScheduler)
        "beat_scheduler": "shared.celery_app:BeatScheduler",
        "broker_connection_retry_on_startup": True,
        # A service publishing while Redis is down must fail fast (its caller answers 202
        # "pending" or 503), not hang for kombu's default retries.
        "broker_connection_timeout": 2.0,
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                                      "interval_max": 0.2},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        "imports": [m for m in TASK_MODULES if _importable(m)],
    }


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def make_celery(settings: Settings, name: str = "finpulse") -> Celery:
    app = Celery(name)
    app.config_from_object(celery_config(settings))
    app.conf.finpulse_settings = settings
    app.set_default()
    return app


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Bind a Celery app to ``app``: tasks run inside its app context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(settings))
    celery.conf.finpulse_settings = settings
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def worker_pool_args(settings: Settings, queues: str | None = None, pool: str | None = None,
                     concurrency: int | None = None) -> list[str]:
    """Pool, queues and concurrency of a worker on the configured device.

    The threads pool on CPU and GPU alike: concurrent one-text tasks meet in the process's
    dynamic batcher (a solo pool would hand it one task at a time), and with no fork CUDA is
    initialised only in the worker process that loads the model.
    """
    pool = pool or "threads"
    queues = queues or (QUEUE_GPU if settings.device == "cuda" else f"{QUEUE_CPU},{QUEUE_TRAINING}")
    args = ["--pool", pool, "-Q", queues]
    if pool != "solo":
        args += ["--concurrency", str(concurrency or (TASK_THREADS if pool == "threads" else 2))]
    return args


@signals.worker_ready.connect(weak=False, dispatch_uid="finpulse-job-reaper")
def start_job_reaper(sender: Any = None, **_: Any) -> None:
    """In a worker taking the training queue: end the retrain jobs whose worker died
    (:func:`shared.lifecycle.start_reaper`), at start and every minute.

    Not a beat entry: a deployment need not run ``--beat`` (compose's workers do not). Every
    training worker reaping is safe: each job is ended once, under its row lock.
    """
    app = getattr(sender, "app", None)
    if app is None or QUEUE_TRAINING not in (app.amqp.queues.consume_from or {}):
        return
    from shared.db import Database
    from shared.lifecycle import start_reaper
    from shared.settings import get_settings

    settings = getattr(app.conf, "finpulse_settings", None) or get_settings()
    db = Database(settings.db_url)
    start_reaper(db, settings.job_stale_s, requeue=lambda: requeue_lost_jobs(app, db, settings))


def _training_messages(client: Any) -> list[str]:
    """Every retrain task message Redis holds: waiting in the training queue (each priority) or
    taken by a worker and not yet acknowledged; bodies decoded."""
    import base64
    import json

    raw = [*client.hvals("unacked")]
    for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169"):  # kombu's priority steps
        raw += client.lrange(QUEUE_TRAINING + suffix, 0, -1)
    texts = []
    for item in raw:
        text = item.decode(errors="replace") if isinstance(item, bytes) else str(item)
        try:
            message = json.loads(text)
            message = message[0] if isinstance(message, list) else message  # unacked: [message, exchange, key]
            text += base64.b64decode(message["body"]).decode(errors="replace")
        except Exception:  # noqa: BLE001, S112 - not base64 or not a message: the raw text is searched
            pass
        texts.append(text)
    return texts


def requeue_lost_jobs(app: Celery, db: Any, settings: Settings) -> list[str]:
    """Send again each retrain job still ``queued`` after ``FINPULSE_JOB_STALE_S`` whose task message
    Redis no longer holds (Redis restarted without its data, flushed, or failed over): it stayed
    ``queued`` for good, nothing left to start it. Sending twice is harmless: only a queued job starts."""
    from pkgutil import resolve_name

    from shared.cli_ops import SERVICE_SPECS
    from shared.lifecycle import job_model, stale_queued_jobs, update_job
    from shared.redis_client import get_redis

    jobs = stale_queued_jobs(db, settings.job_stale_s)
    if not jobs:
        return []
    messages = _training_messages(get_redis(settings.redis_url))
    sent = []
    for job in jobs:
        model = job_model(job)
        if any(job["id"] in text for text in messages) or model is None or model[1] not in SERVICE_SPECS:
            continue
        start = resolve_name(SERVICE_SPECS[model[1]])().start
        if not isinstance(start, str):
            continue
        app.send_task(start, args=[job["id"]], queue=QUEUE_TRAINING, ignore_result=True)
        update_job(db, job["id"], log_line="its task message was lost (Redis restarted or flushed); sent again")
        log.warning("job %s was queued with no task message left in Redis; sent again", job["id"])
        sent.append(job["id"])
    return sent


BEAT_LOCK = "finpulse:beat:lock"
_BEAT_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] or (ARGV[3] ~= '' and held == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return {1, ARGV[1]}
end
return {0, held}
"""
_BEAT_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _host_id() -> str:
    """This host and PID namespace: where a lock holder's pid can be looked up (containers with one
    hostname, or none set, do not share pids)."""
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return f"{socket.gethostname()}:{ns}"


class _MemoryStore(dict):
    """The schedule state of a beat that found another one running: never written to the shared file."""

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


class BeatScheduler(PersistentScheduler):
    """Celery's persistent beat scheduler, sending only while it holds the deployment's beat lock.

    Two workers started with ``--beat`` on one Redis (a second ``finpulse up``, a scaled
    ``worker-cpu``, an ops ``finpulse worker --beat`` beside ``finpulse up``'s) each sent every
    entry: the six-hourly recommender refit made two versions, feeds were polled twice, and two
    beats with one ``FINPULSE_HOME`` wrote the same schedule file. The lock (``finpulse:beat:lock``
    in the broker's database, ``LOCK_TTL_S``, renewed every tick) lets one beat send; another
    waits, without opening the schedule file, and takes over when the holder stops beating (a
    holder on this host whose process is gone at once, e.g. a worker restarted after a kill).
    """

    LOCK_TTL_S = 30
    CHECK_S = 10.0  # a tick renews the lock at least this often

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._holder = f"{_host_id()}|{os.getpid()}|{uuid.uuid4().hex[:8]}"
        self._held: bool | None = None  # unknown until the first claim
        self._redis: Any = None
        self._lock_failing = False
        super().__init__(*args, **kwargs)

    def _client(self) -> Any:
        from shared.redis_client import get_redis

        if self._redis is None:  # one client for the beat's life (get_redis makes a new pool each call)
            settings = getattr(self.app.conf, "finpulse_settings", None)
            self._redis = get_redis(settings.redis_url if settings is not None else self.app.conf.broker_url)
        return self._redis

    def _dead_local_holder(self, held: str) -> str:
        """``held`` when it names a process of this host that is gone (its lock may go at once)."""
        host, _, rest = held.partition("|")
        pid = rest.partition("|")[0]
        if host != _host_id() or not pid.isdigit() or int(pid) == os.getpid():
            return ""
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return held
        except OSError:  # alive, another user's
            return ""
        try:  # a zombie answers kill(0): killed with its worker, never reaped where PID 1 reaps nothing (containers)
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
            state = stat.rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return ""
        return held if state in ("Z", "X") else ""

    def holds_lock(self) -> bool:
        """Claim or renew the beat lock; False while another live beat holds it."""
        try:
            client = self._client()
            held = client.get(BEAT_LOCK)
            dead = self._dead_local_holder(held.decode()) if held else ""
            got, holder = client.eval(_BEAT_CLAIM, 1, BEAT_LOCK, self._holder, self.LOCK_TTL_S, dead)
        except Exception as exc:  # noqa: BLE001 - Redis down: nothing can be sent anyway
            if not self._lock_failing:  # once per outage, not every tick
                log.warning("beat could not check its lock (%s); keeping its last state", exc)
            self._lock_failing = True
            return bool(self._held)
        self._lock_failing = False
        got = bool(got)
        if got != self._held:
            if got:
                log.info("beat: this worker runs the schedule (lock %s)", BEAT_LOCK)
            else:
                holder = holder.decode() if isinstance(holder, bytes) else holder
                log.warning("beat: another worker runs the schedule (%s holds %s); this one sends nothing "
                            "until it stops", holder, BEAT_LOCK)
        self._held = got
        return got

    def _open_schedule(self) -> Any:
        if self.holds_lock():
            return super()._open_schedule()
        return _MemoryStore()  # the holder owns the file (two writers corrupt a dbm file)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.holds_lock():
            return self.CHECK_S
        if isinstance(self._store, _MemoryStore):
            # took over (the holder stopped, or Redis was down at start): the schedule file is this
            # beat's now; kept in memory, a restarted beat read the stale file and re-sent long entries
            self.setup_schedule()
            self._heap = None
        return min(super().tick(*args, **kwargs), self.CHECK_S)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._held:
                try:
                    self._client().eval(_BEAT_RELEASE, 1, BEAT_LOCK, self._holder)
                except Exception as exc:  # noqa: BLE001
                    log.warning("beat could not release its lock: %s", exc)
                self._held = False
