"""Data retention: ``finpulse prune`` and its daily beat run delete rows older than a kind's limit.

Each kind of data belongs to its owner: the chatbot prunes transcripts and feedback, the sentiment
service news, the recommender interactions, each in its ``retention`` module; this module keeps
only the kinds of the tables every service shares (jobs, the audit log), the registry of kinds
(names to ``module:attribute``, as :mod:`shared.cli` maps commands) and the batched delete they
all use. A limit of 0 days (every default) keeps a kind forever; ``model_versions``, API keys and
the model registry are never pruned.
"""

from __future__ import annotations

import importlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from celery import shared_task
from sqlalchemy import Column, ColumnElement, Table, delete, func, or_, select
from sqlalchemy.exc import DBAPIError

from shared.errors import BadInput
from shared.settings import MAX_RETENTION_DAYS

if TYPE_CHECKING:
    from shared.db import Database
    from shared.settings import Settings

log = logging.getLogger(__name__)

# kind -> "module:attribute" of its :class:`Kind`, and what it deletes (the help text)
KINDS: dict[str, tuple[str, str]] = {
    "chat": ("services.chatbot.retention:CHAT", "chat transcripts and released handoff tickets"),
    "feedback": ("services.chatbot.retention:FEEDBACK", "chat feedback (thumbs-up rows are training pairs)"),
    "news": ("services.sentiment.retention:NEWS", "news articles with their tickers and scores, and alerts"),
    "interactions": ("services.recommendations.retention:INTERACTIONS", "posted recommendation interactions"),
    "jobs": ("shared.retention:JOBS", "finished retrain jobs, their logs and uploaded files"),
    "audit": ("shared.retention:AUDIT", "the audit log of admin actions"),
}
# What --older-than prunes without --only: the audit log is the record a bank answers to, so it
# goes only when named (or by its own setting).
DEFAULT_KINDS = ("chat", "feedback", "news", "interactions", "jobs")
PRUNE_TASK = "shared.retention.prune"
# the folder under FINPULSE_HOME where retrain uploads are kept (shared.admin), and the name its
# files are counted under beside the tables: they go with their jobs
UPLOADS = "uploads"
BATCH_RETRIES = 3  # a batch that lost a deadlock to a live writer is tried again


@dataclass(frozen=True)
class Kind:
    """One kind of data: the tables it deletes from and the function that does it.

    ``prune(db, cutoff, settings, batches)`` returns rows per table; ``check(settings, days)``
    says why a limit would break the owner (news: shorter than the alert baseline), or None.
    """

    name: str
    tables: tuple[str, ...]
    prune: Callable[[Database, datetime, Settings, Batches], dict[str, int]]
    check: Callable[[Settings, int], str | None] = lambda _settings, _days: None


@dataclass
class Batches:
    """Deletes in bounded transactions: ``size`` parent rows (and their children) at a time, so a
    large prune never holds a table's locks, or its ids in memory, for long."""

    size: int = 1000
    dry_run: bool = False

    def delete(self, db: Database, pk: Column, where: Sequence[ColumnElement[bool]],
               children: Sequence[Column] = ()) -> dict[str, int]:
        """Delete the rows of ``pk``'s table matching ``where``, and first the rows of ``children``
        (foreign-key columns) pointing at them; rows per table (to be deleted, on a dry run)."""
        table: Table = pk.table
        counts = {child.table.name: 0 for child in children} | {table.name: 0}
        if self.dry_run:
            with db.session() as s:
                doomed = select(pk).where(*where)
                for child in children:
                    counts[child.table.name] = s.scalar(select(func.count()).select_from(child.table)
                                                        .where(child.in_(doomed))) or 0
                counts[table.name] = s.scalar(select(func.count()).select_from(table).where(*where)) or 0
            return counts
        last: Any = None
        while True:
            ids = self._next_ids(db, pk, where, last)
            if not ids:
                return counts
            for name, n in self._delete_batch(db, pk, where, children, ids).items():
                counts[name] += n
            last = ids[-1]

    def _next_ids(self, db: Database, pk: Column, where: Sequence[ColumnElement[bool]], last: Any) -> list[Any]:
        # keyset on the primary key: each batch starts where the last ended, one pass over the table
        query = select(pk).where(*where).order_by(pk).limit(self.size)
        if last is not None:
            query = query.where(pk > last)
        with db.session() as s:
            return list(s.scalars(query))

    def _delete_batch(self, db: Database, pk: Column, where: Sequence[ColumnElement[bool]],
                      children: Sequence[Column], ids: list[Any]) -> dict[str, int]:
        from shared.db import lost_a_race

        # ``where`` again: a row that changed since it was listed (a handoff opened on the session) stays
        doomed = select(pk).where(pk.in_(ids), *where)
        for attempt in range(BATCH_RETRIES):
            try:
                with db.session() as s:
                    out = {child.table.name: s.execute(delete(child.table).where(child.in_(doomed))).rowcount
                           for child in children}
                    out[pk.table.name] = s.execute(delete(pk.table).where(pk.in_(ids), *where)).rowcount
                    return out
            except DBAPIError as exc:
                if not lost_a_race(exc) or attempt == BATCH_RETRIES - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))
        return {}


def kind(name: str) -> Kind:
    """The :class:`Kind` registered as ``name`` (imported from its owner)."""
    if name not in KINDS:
        raise BadInput(f"unknown kind {name!r}; kinds are {', '.join(KINDS)}")
    module, attr = KINDS[name][0].split(":")
    return getattr(importlib.import_module(module), attr)


def configured_days(settings: Settings) -> dict[str, int]:
    """Each kind's limit from the settings (``FINPULSE_RETENTION_<KIND>_DAYS``; 0: keep forever)."""
    return {name: int(getattr(settings, f"retention_{name}_days")) for name in KINDS}


def parse_kinds(text: str) -> list[str]:
    """``chat,news`` as kind names, in the order given; BadInput names an unknown one."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in KINDS]
    if unknown or not names:
        raise BadInput(f"unknown kind {', '.join(map(repr, unknown)) or repr(text)}; kinds are {', '.join(KINDS)}")
    return list(dict.fromkeys(names))


def plan(settings: Settings, only: Iterable[str] | None = None, older_than: int | None = None) -> dict[str, int]:
    """The limit in days of each kind to prune now: ``older_than`` for ``only`` (default
    :data:`DEFAULT_KINDS`), else the settings' limits of ``only`` (default every kind) that are set."""
    if older_than is not None:
        if not 1 <= older_than <= MAX_RETENTION_DAYS:
            raise BadInput(f"--older-than must be 1 to {MAX_RETENTION_DAYS} days, got {older_than}")
        days = {name: older_than for name in (only or DEFAULT_KINDS)}
    else:
        limits = configured_days(settings)
        days = {name: limits[name] for name in (only or KINDS) if limits[name] > 0}
    for name, n in days.items():
        problem = kind(name).check(settings, n)
        if problem:
            raise BadInput(problem + (f" (or leave {name} out with --only)" if older_than and not only else ""))
    return days


def prune(db: Database, settings: Settings, days: dict[str, int], *, dry_run: bool = False,
          batch_size: int | None = None, now: datetime | None = None,
          progress: Callable[[str], None] | None = None) -> list[tuple[str, int, str, int]]:
    """Prune each kind of ``days`` (see :func:`plan`); rows ``(kind, days, table, count)``."""
    now = now or datetime.now(UTC)
    batches = Batches(size=batch_size or settings.retention_batch_size, dry_run=dry_run)
    out = []
    for name, n in days.items():
        cutoff = now - timedelta(days=n)
        if progress:
            progress(f"{name}: {'counting' if dry_run else 'deleting'} rows older than {cutoff:%Y-%m-%d %H:%M} UTC")
        counts = kind(name).prune(db, cutoff, settings, batches)
        out += [(name, n, table, counts.get(table, 0)) for table in kind(name).tables]
    return out


def run(settings: Settings, kinds: Iterable[str] | None = None, *, actor: str, dry_run: bool = False,
        older_than: int | None = None, batch_size: int | None = None,
        progress: Callable[[str], None] | None = None) -> list[tuple[str, int, str, int]]:
    """Plan, prune and (unless a dry run) record it in the audit log: what the CLI and beat call."""
    from shared.auth import audit
    from shared.db import Database, upgrade

    days = plan(settings, kinds, older_than)
    if not days:
        return []
    upgrade(settings.db_url)
    db = Database(settings.db_url)
    try:
        rows = prune(db, settings, days, dry_run=dry_run, batch_size=batch_size, progress=progress)
        if not dry_run:
            audit(db, actor, "prune", ",".join(days), "ok",
                  {"days": days, "deleted": {table: n for _, _, table, n in rows}})
        return rows
    finally:
        db.dispose()


def daily_entry(settings: Settings, name: str, task: str, kinds: Sequence[str]) -> dict[str, Any]:
    """A beat entry running ``task`` daily at ``FINPULSE_RETENTION_HOUR`` (UTC) when any of
    ``kinds`` has a limit; none otherwise, so an unconfigured suite schedules nothing."""
    from celery.schedules import crontab

    limits = configured_days(settings)
    if not any(limits[k] > 0 for k in kinds):
        return {}
    return {name: {"task": task, "schedule": crontab(minute=15, hour=settings.retention_hour)}}


def run_scheduled(settings: Settings, kinds: Sequence[str]) -> dict[str, int]:
    """The beat's run for ``kinds`` (their configured limits): rows deleted per table, logged."""
    rows = run(settings, kinds, actor="beat")
    deleted = {table: n for _, _, table, n in rows}
    log.info("retention: %s", ", ".join(f"{t} {n}" for t, n in deleted.items()) or "nothing configured")
    return deleted


# ---- the kinds of the shared tables ----

def _prune_jobs(db: Database, cutoff: datetime, settings: Settings, batches: Batches) -> dict[str, int]:
    from shared.lifecycle import FINAL
    from shared.models import Job

    jobs = Job.__table__.c
    # a queued or running job is never old: its worker still writes to the row
    counts = batches.delete(db, jobs.id, [jobs.status.in_(FINAL), jobs.updated_at < cutoff])
    # the jobs that stay (on a dry run: would stay); NULL-safe, so a row the delete leaves is one kept here
    kept = or_(jobs.status.not_in(FINAL), jobs.updated_at.is_(None), jobs.updated_at >= cutoff)
    counts[UPLOADS] = _prune_uploads(db, cutoff, settings, batches, kept)
    return counts


def _prune_uploads(db: Database, cutoff: datetime, settings: Settings, batches: Batches,
                   kept: ColumnElement[bool]) -> int:
    """Delete (count, on a dry run) the files ``POST /v1/admin/retrain`` saved under ``FINPULSE_HOME/uploads``
    that outlived their job: uploaded before ``cutoff`` and named by no job that stays (a queued or
    running one reads it; a job sent with a path into the folder shares it) nor, as its ``items``, by a
    production version's lineage (a retrain with data and no items reuses production's catalogue file).
    Only plain files directly in that folder: a path a job names elsewhere is the server's own file."""
    folder = settings.home / UPLOADS
    try:
        old = [p for p in folder.iterdir() if _plain_file_before(p, cutoff)] if folder.is_dir() else []
        if not old:
            return 0
        named = _named_paths(db, settings, kept)
    except (OSError, ValueError) as exc:  # an unreadable folder or registry: keep every upload, say why
        log.warning("retention: uploads kept, their users could not be read: %s", exc)
        return 0
    count = 0
    for path in old:
        if _resolved(str(path)) in named:
            continue
        if not batches.dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("retention: upload %s not deleted: %s", path, exc)
                continue
        count += 1
    return count


def _plain_file_before(path: Path, cutoff: datetime) -> bool:
    """Whether ``path`` is a regular file (not a link, not a folder) last written before ``cutoff``."""
    try:
        info = path.lstat()
    except OSError:  # gone meanwhile (a refused upload is deleted by its request)
        return False
    return stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff.timestamp()


def _named_paths(db: Database, settings: Settings, kept: ColumnElement[bool]) -> set[str]:
    """The files named by the parameters of the jobs matching ``kept`` and by each production
    version's ``items`` lineage, resolved."""
    from shared.models import Job
    from shared.registry import get_registry

    jobs = Job.__table__.c
    named: set[str] = set()
    with db.session() as s:
        for params in s.execute(select(jobs.params).where(kept).execution_options(yield_per=500)).scalars():
            named.update(filter(None, map(_resolved, _strings(params))))
    registry = get_registry(settings)
    for domain, task in {(mv.domain, mv.task) for mv in registry.all_versions()}:
        prod = registry.production(domain, task)
        items = prod.train_config().get("items") if prod is not None else None
        if isinstance(items, str) and (path := _resolved(items)):
            named.add(path)
    return named


def _strings(value: Any) -> Iterable[str]:
    """Every text in a job's parameters, however nested (``data``, ``items``, ``options.pairs``, ...)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _resolved(text: str) -> str | None:
    """``text`` as an absolute path with links resolved, or None when it is no path."""
    try:
        return os.path.realpath(os.path.expanduser(text)) if text and "\0" not in text else None
    except (OSError, ValueError):
        return None


def _prune_audit(db: Database, cutoff: datetime, _settings: Settings, batches: Batches) -> dict[str, int]:
    from shared.models import AuditLog

    log_ = AuditLog.__table__.c
    return batches.delete(db, log_.id, [log_.at < cutoff])


JOBS = Kind("jobs", ("jobs", UPLOADS), _prune_jobs)
AUDIT = Kind("audit", ("audit_log",), _prune_audit)


@shared_task(name=PRUNE_TASK, ignore_result=True)
def prune_shared_task() -> dict[str, int]:
    """Daily: the shared tables' configured retention (jobs, audit log)."""
    from celery import current_app

    from shared.settings import get_settings

    settings = getattr(current_app.conf, "finpulse_settings", None) or get_settings()
    return run_scheduled(settings, ("jobs", "audit"))


@click.command("prune")
@click.option("--older-than", type=click.IntRange(1, MAX_RETENTION_DAYS), default=None, metavar="DAYS",
              help="Delete rows older than DAYS of every kind chosen (default: each kind's "
                   "FINPULSE_RETENTION_<KIND>_DAYS setting).")
@click.option("--only", default=None, metavar="KINDS",
              help=f"Comma-separated kinds: {', '.join(KINDS)} (default: with --older-than all but audit; "
                   "else every kind with a retention setting).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=None,
              help="Rows per transaction (default: FINPULSE_RETENTION_BATCH_SIZE).")
def prune_command(older_than: int | None, only: str | None, dry_run: bool, batch_size: int | None) -> None:
    """Delete old chat transcripts, feedback, news, interactions, finished jobs or audit entries.

    Prints, per table, how many rows were (or, with --dry-run, would be) deleted.
    """
    from shared.cli_ops import cli_actor
    from shared.settings import get_settings

    try:
        kinds = parse_kinds(only) if only is not None else None
    except BadInput as exc:
        raise click.BadParameter(exc.message, param_hint="'--only'") from None
    settings = get_settings()
    rows = run(settings, kinds, actor=cli_actor(), dry_run=dry_run, older_than=older_than,
               batch_size=batch_size, progress=lambda line: click.echo(line, err=True))
    if not rows:
        unset = ", ".join(f"FINPULSE_RETENTION_{k.upper()}_DAYS" for k in (kinds or ["<KIND>"]))
        click.echo(f"nothing to prune: no retention setting ({unset}) is set for "
                   f"{', '.join(kinds) if kinds else 'any kind'}; give --older-than DAYS", err=True)
        return
    click.echo(f"{'kind':<13} {'days':>5}  {'table':<22} {'would delete' if dry_run else 'deleted':>12}")
    for name, days, table, n in rows:
        click.echo(f"{name:<13} {days:>5}  {table:<22} {n:>12}")
