"""Retrain jobs on the ``training`` queue: train, gate, promote, reporting into ``jobs``.

:func:`run_retrain` is the whole job and needs no Celery (the CLI calls it in-process);
the Celery task :func:`retrain` only hands it a job id. Progress (stage, epoch, step,
current metrics) and log lines go to the job row as the trainer reports them through
its ``callback``; a cancel request (``status = cancelling``) is seen at the next step.
"""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Any

from celery import shared_task

from shared.db import Database
from shared.errors import BadInput, FinPulseError
from shared.lifecycle import JobCancelled, get_job, promote, record_version, update_job

log = logging.getLogger(__name__)

TASK_NAME = "training.retrain"
PROGRESS_EVERY_S = 0.5  # at most two progress writes a second, whatever the step rate
# Keys of a retrain request that become SentimentTrainConfig fields directly.
CONFIG_KEYS = ("method", "epochs", "seed", "batch_size", "lr", "max_length", "time_budget_min",
               "text_field", "label_field", "skip_bad")


class _JobLogHandler(logging.Handler):
    """Collects the trainer's log lines so they are stored with the job."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")

    def drain(self) -> str | None:
        lines, self.lines = self.lines, []
        return "\n".join(lines) if lines else None


class _Reporter:
    """The trainer's callback: writes progress (throttled) and raises on cancel."""

    def __init__(self, db: Database, job_id: str, handler: _JobLogHandler):
        self.db, self.job_id, self.handler = db, job_id, handler
        self.last = 0.0
        self.stage: str | None = None

    def __call__(self, event: dict[str, Any] | None = None, **kw: Any) -> None:
        event = {**(event or {}), **kw}
        now = time.monotonic()
        important = event.get("stage") != self.stage or "metrics" in event
        if not important and now - self.last < PROGRESS_EVERY_S:
            return
        self.last, self.stage = now, event.get("stage", self.stage)
        status = update_job(self.db, self.job_id, progress=_jsonable(event), log_line=self.handler.drain())
        if status == "cancelling":
            raise JobCancelled(f"job {self.job_id} cancelled")

    def stage_(self, stage: str, message: str) -> None:
        self({"stage": stage}, message=message)
        update_job(self.db, self.job_id, log_line=message)


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


def train_eval_overlap(train_path: str, eval_texts: list[str], text_field: str = "text") -> int:
    """How many evaluation texts also occur in the training data (should be none)."""
    from data_connectors.base import iter_rows

    wanted = {t.strip().lower() for t in eval_texts}
    seen = set()
    for _, row in iter_rows(train_path):
        text = row.get(text_field)
        if isinstance(text, str) and text.strip().lower() in wanted:
            seen.add(text.strip().lower())
    return len(seen)


def _train_sentiment(settings: Any, params: dict[str, Any], reporter: _Reporter) -> Any:
    from training import SentimentTrainConfig, train_sentiment

    options = {k: params[k] for k in CONFIG_KEYS if params.get(k) is not None}
    options.update(params.get("options") or {})
    config = SentimentTrainConfig.from_dict({
        "train_path": params["data"], "dev_path": params.get("dev"), "domain": params["domain"],
        "task": params["task"], "promote_first": False, **options})
    kwargs = {}
    if "callback" in inspect.signature(train_sentiment).parameters:
        kwargs["callback"] = reporter
    return train_sentiment(config, settings, **kwargs)


TRAINERS = {"sentiment": _train_sentiment}


def run_retrain(job_id: str, settings: Any, db: Database | None = None) -> dict[str, Any]:
    """Run one retrain job to its end; the job row says how it went."""
    db = db or Database(settings.db_url)
    job = get_job(db, job_id)
    if job["status"] not in ("queued", "running", "cancelling"):
        return job  # a re-delivered task whose job already ended
    if job["status"] == "cancelling":
        update_job(db, job_id, status="cancelled", progress={"stage": "cancelled"})
        return get_job(db, job_id)
    params = job["params"] or {}
    handler = _JobLogHandler()
    reporter = _Reporter(db, job_id, handler)
    logging.getLogger("training").addHandler(handler)
    update_job(db, job_id, status="running")
    try:
        result = _retrain(settings, db, job_id, params, reporter)
        update_job(db, job_id, status="succeeded", result=result, log_line=handler.drain(),
                   progress={"stage": "done"})
    except JobCancelled:
        update_job(db, job_id, status="cancelled", progress={"stage": "cancelled"},
                   log_line="cancelled")
    except FinPulseError as exc:
        update_job(db, job_id, status="failed", error=exc.message, progress={"stage": "failed"},
                   log_line=f"failed: {exc.message}")
    except Exception as exc:  # the job must end in a state an operator can read
        log.exception("retrain job %s crashed", job_id)
        update_job(db, job_id, status="failed", error=f"{type(exc).__name__}: {exc}",
                   progress={"stage": "failed"}, log_line=f"crashed: {type(exc).__name__}: {exc}")
    finally:
        logging.getLogger("training").removeHandler(handler)
    return get_job(db, job_id)


def _retrain(settings: Any, db: Database, job_id: str, params: dict[str, Any],
             reporter: _Reporter) -> dict[str, Any]:
    """Train → register → gate → promote (if it passed or is forced)."""
    from shared.gate import load_domain_config, read_eval_set, run_gate

    trainer = TRAINERS.get(params.get("task", ""))
    if trainer is None:
        raise BadInput(f"retraining {params.get('task')!r} is not supported; "
                       f"supported: {', '.join(TRAINERS)}")
    reporter.stage_("training", f"training {params['domain']}/{params['task']} on {params['data']}")
    mv = trainer(settings, params, reporter)
    record_version(db, mv)
    reporter.stage_("gate", f"registered {mv.ref}; evaluating against production")
    extra: dict[str, Any] = {"job": job_id}
    config = load_domain_config(settings, mv.domain)
    eval_set = params.get("eval") or config.eval_set
    if eval_set:
        config.eval_set = Path(eval_set)
        texts, _ = read_eval_set(config)
        extra["train_eval_overlap"] = train_eval_overlap(params["data"], texts, config.text_field)
        if extra["train_eval_overlap"]:
            update_job(db, job_id, log_line=f"warning: {extra['train_eval_overlap']} evaluation "
                                            "texts also occur in the training data")
    report = run_gate(settings, mv, eval_set=eval_set, tolerance=params.get("tolerance"), extra=extra)
    update_job(db, job_id, log_line=f"gate {report['summary']}",
               progress={"stage": "gate", "metrics": report.get("candidate_metrics") and {
                   k: report["candidate_metrics"][k] for k in ("accuracy", "macro_f1")}})
    promoted = None
    force = bool(params.get("force"))
    if params.get("auto_promote", True) and (report["passed"] or force):
        reporter.stage_("promote", f"promoting {mv.ref}")
        promoted = promote(settings, db, mv.ref, actor=params.get("actor", "job"),
                           reason=params.get("reason") or f"retrain job {job_id}", force=force)
    return {"version": mv.ref, "path": str(mv.path), "gate": {
        k: report.get(k) for k in ("passed", "summary", "delta", "primary_metric", "production")},
        "promoted": promoted is not None, "production": promoted["production"] if promoted else None}


@shared_task(name=TASK_NAME, bind=True, ignore_result=True)
def retrain(self: Any, job_id: str) -> None:
    """Celery entry: ids in, the job row out (see :func:`run_retrain`)."""
    from shared.settings import get_settings

    settings = getattr(self.app.conf, "finpulse_settings", None) or get_settings()
    run_retrain(job_id, settings)
