"""The Celery app: Redis as broker and result backend, queues per hardware, late acks.

Built by :func:`make_celery` (never at import time); :func:`celery_init_app` binds it
to a Flask app the way Flask's Celery example does, so tasks run in an app context. A
worker taking the training queue also ends the jobs of dead workers (:func:`start_job_reaper`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from celery import Celery, Task, signals

if TYPE_CHECKING:
    from flask import Flask

    from shared.settings import Settings

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
    start_reaper(Database(settings.db_url), settings.job_stale_s)
