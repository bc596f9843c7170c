"""Retrain jobs on the ``training`` queue: train, gate, promote, reporting into ``jobs``.

:func:`run_retrain` is the whole job and needs no Celery (the CLI calls it in-process);
the Celery task :func:`retrain` only hands it a job id. The job's start and end are the
shared ones (:func:`shared.lifecycle.run_job`, :func:`~shared.lifecycle.gate_and_promote`);
:data:`TRAINERS` holds what differs per model task (sentiment classifiers, the chatbot's
sentence encoders). Progress (stage, epoch, step, current metrics) goes to the job row as
the trainer reports it through its ``callback``, where a cancel request (``status =
cancelling``) is seen at the next step; the trainer's log lines go there as it logs them,
each job's own only (several jobs may run at once in one worker's threads).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from celery import shared_task

from shared.db import Database
from shared.errors import BadInput
from shared.lifecycle import STOP, JobCancelled, gate_and_promote, job_stage, run_job, update_job

TASK_NAME = "training.retrain"
PROGRESS_EVERY_S = 0.5  # at most two progress writes a second, whatever the step rate


# The job the current thread (or task) is running; a handler takes only that job's records.
_CURRENT_JOB: ContextVar[str | None] = ContextVar("finpulse_training_job", default=None)


class _JobLogHandler(logging.Handler):
    """Writes the ``training`` logger's lines into one job's log, each as it is logged.

    The logger is the process's: with one handler per running job and nothing to tell them
    apart, two retrain jobs in a threads-pool worker each stored both trainers' lines. A
    handler takes only the records logged in its own job's context (:data:`_CURRENT_JOB`).
    Buffered until the next progress report, the trainer's last lines (``registered ...``)
    landed after the job's own gate and promotion lines; written at once, they keep their order.
    """

    def __init__(self, db: Database, job_id: str) -> None:
        super().__init__(logging.INFO)
        self.db, self.job_id = db, job_id

    def filter(self, record: logging.LogRecord) -> bool:
        return _CURRENT_JOB.get() == self.job_id and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            update_job(self.db, self.job_id, log_line=f"{record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a lost log line must not stop the training
            self.handleError(record)


class _Reporter:
    """The trainer's callback: writes progress (throttled) and raises on cancel.

    Progress is not the job's heartbeat (:func:`shared.lifecycle.run_job` beats from a
    thread): loading a model or exporting ONNX reports nothing for minutes.
    """

    def __init__(self, db: Database, job_id: str):
        self.db, self.job_id = db, job_id
        self.last = 0.0
        self.stage: str | None = None

    def __call__(self, event: dict[str, Any] | None = None, **kw: Any) -> None:
        event = {**(event or {}), **kw}
        now = time.monotonic()
        important = event.get("stage") != self.stage or "metrics" in event
        if not important and now - self.last < PROGRESS_EVERY_S:
            return
        self.last, self.stage = now, event.get("stage", self.stage)
        status = update_job(self.db, self.job_id, progress=_jsonable(event))
        if status in STOP:  # cancelling, or ended meanwhile (reaped as lost while this worker hung)
            raise JobCancelled(f"job {self.job_id} cancelled")


def _jsonable(event: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in event.items():
        if isinstance(v, str | int | float | bool | type(None)):
            out[k] = v
        elif isinstance(v, dict):
            out[k] = {str(a): (b if isinstance(b, str | int | float | bool) else str(b)) for a, b in v.items()}
        else:
            out[k] = str(v)
    return out


def _retrain_sentiment(settings: Any, db: Database, job_id: str, params: dict[str, Any],
                       reporter: _Reporter) -> dict[str, Any]:
    """Fine-tune a classifier, warn if the gate's evaluation texts leaked into training, gate it.

    The trainer gets the evaluation texts: its transfer stage leaves them out, and it counts
    those in the data it trained on as it read it (the request's fields, ``skip_bad``): a second,
    strict read of the training file failed the job on the bad rows training had skipped.
    """
    from shared.gate import load_domain_config, read_eval_set
    from training import train_sentiment
    from training.config import retrain_config

    config = retrain_config(params)
    domain = load_domain_config(settings, config.domain)
    eval_set = params.get("eval") or domain.eval_set
    texts = None
    if eval_set:
        domain.eval_set = Path(eval_set)
        texts, _ = read_eval_set(domain)
    mv = train_sentiment(config, settings, callback=reporter, eval_texts=texts)
    # named from now on: a failure after registration (the gate's) must not orphan the version
    update_job(db, job_id, result={"version": mv.ref, "path": str(mv.path)})
    # the int8 graph production is served with (FINPULSE_RUNTIME=auto): without it the promoted
    # version ran on torch, a fifth of the throughput, and under an explicit onnx runtime not at all
    from training.export import export_like_production

    export_like_production(settings, mv, note=lambda line: job_stage(db, job_id, "export", line))
    extra: dict[str, Any] = {}
    if texts is not None:
        extra["train_eval_overlap"] = mv.train_config()["train_eval_overlap"]
        if extra["train_eval_overlap"]:
            update_job(db, job_id, log_line=f"warning: {extra['train_eval_overlap']} evaluation "
                                            "texts also occur in the training data")
    return gate_and_promote(settings, db, job_id, mv, params, extra=extra,
                            progress_metrics=("accuracy", "macro_f1"))


def _retrain_embeddings(settings: Any, db: Database, job_id: str, params: dict[str, Any],
                        reporter: _Reporter) -> dict[str, Any]:
    from training.embeddings_retrain import retrain

    return retrain(settings, db, job_id, params, callback=reporter)


# task -> the job's work after "training" began: train, register, gate, promote.
TRAINERS: dict[str, Callable[[Any, Database, str, dict[str, Any], _Reporter], dict[str, Any]]] = {
    "sentiment": _retrain_sentiment, "embeddings": _retrain_embeddings}


def run_retrain(job_id: str, settings: Any, db: Database | None = None) -> dict[str, Any]:
    """Run one retrain job to its end; the job row says how it went.

    The ``training`` logger's lines logged by this job (not by another job running in the
    same process) go into the job's log as they come, in order with the job's own lines.
    """
    own = db is None
    db = db or Database(settings.db_url)
    trainer_log = logging.getLogger("training")
    if trainer_log.level == logging.NOTSET:  # INFO lines reach the job whatever the root's level
        trainer_log.setLevel(logging.INFO)
    handler = _JobLogHandler(db, job_id)
    token = _CURRENT_JOB.set(job_id)
    trainer_log.addHandler(handler)
    try:
        return run_job(db, job_id, lambda params: _retrain(settings, db, job_id, params))
    finally:
        trainer_log.removeHandler(handler)
        _CURRENT_JOB.reset(token)
        if own:
            db.dispose()


def _retrain(settings: Any, db: Database, job_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Train → register → gate → promote (if it passed or is forced), by the task's trainer."""
    trainer = TRAINERS.get(params.get("task", ""))
    if trainer is None:
        raise BadInput(f"retraining {params.get('task')!r} is not supported; "
                       f"supported: {', '.join(TRAINERS)}")
    job_stage(db, job_id, "training", f"training {params['domain']}/{params['task']} on {params['data']}")
    return trainer(settings, db, job_id, params, _Reporter(db, job_id))


@shared_task(name=TASK_NAME, bind=True, ignore_result=True)
def retrain(self: Any, job_id: str) -> None:
    """Celery entry: ids in, the job row out (see :func:`run_retrain`)."""
    from shared.settings import get_settings

    settings = getattr(self.app.conf, "finpulse_settings", None) or get_settings()
    run_retrain(job_id, settings)
