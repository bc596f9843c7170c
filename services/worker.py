"""The Celery worker entry point: ``finpulse worker [--queues Q] [--pool P] [--concurrency N]``.

Workers default to the threads pool with many threads, so concurrent one-text tasks
meet in the process's dynamic batcher. GPU workers (``--device cuda``) take
``inference.gpu``: one process per GPU, which initialises CUDA itself when it loads its
first model (threads, no fork). Each worker serves Prometheus metrics on its own port
and listens for hot-reload announcements.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from shared.celery_app import TASK_THREADS

log = logging.getLogger(__name__)


def worker_argv(settings: Any, queues: str | None, pool: str | None, concurrency: int | None,
                loglevel: str, hostname: str | None) -> list[str]:
    """The ``celery worker`` arguments for these options and the configured device."""
    from shared.celery_app import worker_pool_args

    argv = ["worker", *worker_pool_args(settings, queues, pool, concurrency), "--loglevel", loglevel,
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if hostname:
        argv += ["--hostname", hostname]
    return argv


def start_observability(settings: Any, queues: list[str], metrics_port: int | None) -> None:
    """Metrics port with queue depths, and the hot-reload subscriber, in this process."""
    from prometheus_client import Gauge, start_http_server

    from shared.metrics import _get_or_create
    from shared.redis_client import get_redis
    from shared.reload import start_subscriber

    depth = _get_or_create(Gauge, "finpulse_queue_depth", "Messages waiting in a Celery queue", ("queue",))

    def _llen(queue: str) -> float:
        try:
            return float(get_redis(settings.redis_url).llen(queue))
        except Exception:  # noqa: BLE001 - a scrape must not fail on a Redis blip
            return float("nan")

    for queue in queues:
        depth.labels(queue).set_function(lambda q=queue: _llen(q))
    if metrics_port:
        start_http_server(metrics_port, addr=settings.host)
        log.info("worker metrics on http://%s:%d/metrics", settings.host, metrics_port)
    start_subscriber(settings.redis_url)


@click.command("worker")
@click.option("--queues", "-Q", default=None, help="Comma-separated queues (default: by device).")
@click.option("--pool", "-P", type=click.Choice(["threads", "solo", "prefork"]), default=None,
              help="threads (default: feeds the dynamic batcher) or solo.")
@click.option("--concurrency", "-c", type=click.IntRange(1, 1024), default=None,
              help=f"Threads/processes (threads pool default {TASK_THREADS}).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus metrics on this port (0/unset: off).")
@click.option("--runtime", type=click.Choice(["torch", "onnx", "onnx-int8"]), default=None,
              help="Inference runtime (default: the runtime setting).")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None)
@click.option("--warm/--no-warm", default=True, help="Load the sentiment model before taking tasks.")
@click.option("--loglevel", "-l", default=None, help="Celery's log level (default: FINPULSE_LOG_LEVEL, INFO).")
@click.option("--hostname", "-n", default=None, help="Celery node name (unique per worker).")
@click.option("--beat", is_flag=True, help="Also run the periodic schedule (feed polling, recs retraining, "
              "retention when set); "
              "one worker per deployment.")
def worker(queues: str | None, pool: str | None, concurrency: int | None, metrics_port: int | None,
           runtime: str | None, device: str | None, warm: bool, loglevel: str | None, hostname: str | None,
           beat: bool) -> None:
    """Run a Celery worker for inference (and training) tasks."""
    from celery import signals

    from shared.celery_app import make_celery
    from shared.settings import load_settings

    overrides = {k: v for k, v in {"runtime": runtime, "device": device}.items() if v}
    settings = load_settings(**overrides)
    app = make_celery(settings)
    # the setting, as the services take it: the worker logged INFO whatever FINPULSE_LOG_LEVEL said
    argv = worker_argv(settings, queues, pool, concurrency, loglevel or settings.log_level, hostname)
    queue_names = argv[argv.index("-Q") + 1].split(",")
    if beat:
        app.conf.beat_schedule = beat_schedules(settings)
        argv += ["--beat", "--schedule", str(settings.home / "run" / "celerybeat-schedule")]
        (settings.home / "run").mkdir(parents=True, exist_ok=True)
    if "prefork" in argv and metrics_port:
        log.warning("prefork pool: the metrics port covers the parent process only; prefer threads")

    from shared.inference import configure_runtimes

    # ORT threads must not spin between batches: Celery's own threads need those cores.
    configure_runtimes(spinning=False)

    if settings.log_format == "json":
        from shared.logs import celery_json_output, configure_logging

        configure_logging(settings)  # before Celery warns (as root) or prints
        celery_json_output()
        argv = ["--quiet", *argv]  # Celery's banner: 20 plain lines in the JSON stream
        # a receiver of setup_logging makes Celery leave logging alone: its own plain handlers
        # wrote every worker line (task received, reloads, errors) outside the JSON stream
        @signals.setup_logging.connect(weak=False)
        def _json_logs(**_: Any) -> None:
            from shared.logs import configure_logging

            configure_logging(settings)

    @signals.worker_ready.connect(weak=False)
    def _ready(**_: Any) -> None:
        start_observability(settings, queue_names, metrics_port)
        if warm:
            _warm(settings)

    app.worker_main(argv)


def beat_schedules(settings: Any) -> dict[str, Any]:
    """Every service's periodic tasks. They go on the app before the worker starts: the beat
    reads ``beat_schedule`` once, when it builds its scheduler, which it does before sending
    ``beat_init``, so entries added by a handler of that signal never ran."""
    from services.chatbot.tasks import beat_schedule as chatbot_schedule
    from services.recommendations.tasks import beat_schedule as recs_schedule
    from services.sentiment.tasks import beat_schedule as sentiment_schedule
    from shared.retention import PRUNE_TASK, daily_entry

    return {**sentiment_schedule(settings), **recs_schedule(settings), **chatbot_schedule(settings),
            **daily_entry(settings, "shared-prune", PRUNE_TASK, ("jobs", "audit"))}


def _warm(settings: Any) -> None:
    """Load the serving model now, so the first task does not pay for it (absent: later)."""
    from shared.errors import FinPulseError
    from shared.inference import get_batcher

    try:
        loaded, _ = get_batcher(settings)
        log.info("worker ready with %s (%s on %s)", loaded.ref, settings.runtime, settings.device)
    except FinPulseError as exc:
        log.warning("no model loaded yet: %s", exc.message)
