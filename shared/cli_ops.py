"""``finpulse ops``: the model lifecycle from the command line (same functions as the HTTP API).

``retrain`` runs the whole job (train → gate → promote) in this process by default, or
queues it for a worker with ``--queue``; ``promote`` is gated (unlike the plain
``finpulse models promote``); every action is audited with the actor ``cli:<user>``.
"""

from __future__ import annotations

import getpass
import json
import signal
from typing import Any

import click

from shared.settings import get_settings


def cli_database() -> Any:
    """The suite's database, migrated: every CLI lifecycle action is recorded there."""
    from shared.db import Database, upgrade

    settings = get_settings()
    upgrade(settings.db_url)
    return Database(settings.db_url)


def cli_actor() -> str:
    """Who the audit log names for a command-line action."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _echo(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.group()
def ops() -> None:
    """Retrain a domain behind the evaluation gate, promote, roll back, watch production."""


# Each service's retrain spec (shared.admin.RetrainTask) by model task, so the CLI checks and
# starts a job exactly as that service's POST /v1/admin/retrain does; the tasks `ops retrain` takes.
SERVICE_SPECS = {"sentiment": "services.sentiment:retrain_task", "embeddings": "services.chatbot:retrain_task",
                 "recommendations": "services.recommendations:retrain_task"}


@ops.command("retrain")
@click.option("--domain", required=True)
@click.option("--task", default="sentiment", show_default=True,
              type=click.Choice(list(SERVICE_SPECS)))  # --task bogus made a job that failed
@click.option("--data", "data", type=click.Path(exists=True, dir_okay=False),
              help="Training data: labelled texts (sentiment), the knowledge base (embeddings) or "
                   "interactions (recommendations; without it production is refitted on what it has).")
@click.option("--dev", type=click.Path(exists=True, dir_okay=False),
              help="Dev data (sentiment: early stopping; embeddings: query→id pairs the gate scores acc@1 on).")
@click.option("--eval", "eval_set", type=click.Path(exists=True, dir_okay=False),
              help="Evaluation set of the gate (default: the domain's configured one).")
@click.option("--items", type=click.Path(exists=True, dir_okay=False),
              help="Item catalogue (recommendations; with --data and without it, production's is reused).")
@click.option("--method", type=click.Choice(["full", "lora"]))
@click.option("--epochs", type=click.IntRange(1, 100))
@click.option("--seed", type=int)
@click.option("--no-promote", is_flag=True, help="Gate only; leave production alone.")
@click.option("--force", is_flag=True, help="Promote even if the gate refuses (needs --reason).")
@click.option("--reason")
@click.option("--queue", "queued", is_flag=True, help="Send to the training queue instead of running here.")
def retrain(domain: str, task: str, data: str, dev: str | None, eval_set: str | None, items: str | None,
            method: str | None, epochs: int | None, seed: int | None, no_promote: bool, force: bool, reason: str | None,
            queued: bool) -> None:
    """Retrain DOMAIN's TASK model, gate it against production, promote it if it passes."""
    from pkgutil import resolve_name

    from shared.errors import BadInput
    from shared.lifecycle import create_job

    if force and not (reason or "").strip():
        raise BadInput("--force needs --reason (it goes into the audit log)")
    from shared.registry import get_registry

    get_registry().task_dir(domain, task)  # a bad name is refused before a job record exists
    spec = _retrain_spec(task)
    if not data and not spec.data_optional:
        raise BadInput(f"retraining {task} needs --data")
    params = {k: v for k, v in {"domain": domain, "task": task, "data": data, "dev": dev, "eval": eval_set,
                                "items": items, "method": method, "epochs": epochs, "seed": seed, "force": force,
                                "reason": reason, "auto_promote": not no_promote}.items() if v is not None}
    if spec.check is not None:
        spec.check(params)  # the HTTP endpoint's checks: a bad file or option is refused before a job exists
    db, settings = cli_database(), get_settings()
    job_id = create_job(db, f"retrain:{domain}/{task}", params, actor=cli_actor())
    if queued:
        from shared.celery_app import QUEUE_TRAINING, make_celery

        make_celery(settings).send_task(spec.start, args=[job_id], queue=QUEUE_TRAINING,
                                           ignore_result=True)  # the job row carries the outcome
        click.echo(job_id)
        return
    from shared.signals import interrupt_on_sigterm

    click.echo(f"job {job_id}: running here (finpulse ops job {job_id} shows it)", err=True)
    previous = interrupt_on_sigterm()  # SIGTERM ends the job as Ctrl-C does (it died silently, "running")
    try:
        job = resolve_name(JOB_RUNNERS[spec.start])(job_id, settings, db)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _echo({k: job[k] for k in ("id", "status", "result", "error")})
    if job["status"] != "succeeded":
        raise click.ClickException(job["error"] or job["status"])


# A job's Celery task -> the function it runs, for jobs run in this process.
JOB_RUNNERS = {"training.retrain": "training.tasks:run_retrain",
               "services.recommendations.tasks.retrain_job": "services.recommendations.retraining:run_retrain_job"}


def _retrain_spec(task: str) -> Any:
    from pkgutil import resolve_name

    return resolve_name(SERVICE_SPECS[task])()


@ops.command("job")
@click.argument("job_id")
@click.option("--log", "show_log", is_flag=True, help="Print the job's log instead.")
def job(job_id: str, show_log: bool) -> None:
    """Show a job's status and progress."""
    from shared.lifecycle import get_job

    info = get_job(cli_database(), job_id)
    if show_log:
        click.echo(info["log"], nl=False)
    else:
        _echo({k: v for k, v in info.items() if k != "log"})


@ops.command("cancel")
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    from shared.lifecycle import cancel_job

    _echo(cancel_job(cli_database(), job_id, actor=cli_actor())["status"])


@ops.command("gate")
@click.argument("ref")
@click.option("--eval", "eval_set", type=click.Path(exists=True, dir_okay=False))
def gate(ref: str, eval_set: str | None) -> None:
    """Evaluate REF against production and store its gate report (gate.json).

    Exits 1 when the gate refuses REF, so a script can run `ops gate REF && ops promote REF`.
    """
    from shared.gate import load_report, run_gate
    from shared.registry import get_registry

    settings = get_settings()
    registry = get_registry(settings)
    mv = registry.resolve_version(ref)
    current = registry.production(mv.domain, mv.task)
    report = load_report(mv.path) if current is not None and current.version == mv.version else None
    if report is not None:  # gated again it met no production and overwrote its verdict against the one it replaced
        click.echo(f"{mv.ref} is production: its gate report is the one it was promoted with (not redone)", err=True)
    else:
        report = run_gate(settings, mv, eval_set=eval_set)
    _echo({k: v for k, v in report.items() if k != "reference"})
    if not report["passed"]:
        click.echo(f"finpulse: gate refused {report['candidate']}: {report['summary']}", err=True)
        raise SystemExit(1)


@ops.command("promote")
@click.argument("ref")
@click.option("--force", is_flag=True)
@click.option("--reason")
def promote(ref: str, force: bool, reason: str | None) -> None:
    """Promote REF if its gate passed (or --force --reason)."""
    from shared.lifecycle import promote as do_promote

    _echo(do_promote(get_settings(), cli_database(), ref, actor=cli_actor(), reason=reason, force=force))


@ops.command("rollback")
@click.argument("target", metavar="DOMAIN/TASK")
def rollback(target: str) -> None:
    """Restore DOMAIN/TASK's previous production version."""
    from shared.errors import BadInput
    from shared.lifecycle import rollback as do_rollback

    if target.count("/") != 1:
        raise BadInput(f"expected DOMAIN/TASK, got {target!r}")
    domain, task = target.split("/")
    _echo(do_rollback(get_settings(), cli_database(), domain, task, actor=cli_actor()))


@ops.command("domain")
@click.argument("domain")
@click.option("--eval-set", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--tolerance", type=click.FloatRange(0, 1), default=0.01, show_default=True)
@click.option("--metric", type=click.Choice(["macro_f1", "accuracy"]), default="macro_f1", show_default=True)
def domain(domain: str, eval_set: str, tolerance: float, metric: str) -> None:
    """Name DOMAIN's evaluation set and gate tolerance (FINPULSE_HOME/domains/DOMAIN.json)."""
    from pathlib import Path

    from shared.gate import DomainConfig, save_domain_config

    path = save_domain_config(get_settings(), DomainConfig(domain, eval_set=Path(eval_set).resolve(),
                                                           tolerance=tolerance, primary_metric=metric))
    click.echo(str(path))


@ops.command("monitor")
@click.option("--hours", type=click.FloatRange(0.01, 720), default=24, show_default=True)
def monitor(hours: float) -> None:
    """Production figures per domain and version (PSI, low-confidence, handoff) and alerts."""
    from shared.monitoring import overview

    data = overview(get_settings(), window_s=hours * 3600)
    for s in data["series"]:
        s.pop("timeline", None)
        s.pop("reference", None)
    _echo(data)
