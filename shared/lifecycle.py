"""Model lifecycle: retrain jobs, promotion and rollback, each audited and announced.

The file registry stays the source of truth: promotion moves its ``production``
pointer atomically (:meth:`shared.registry.Registry.promote`), then mirrors the stage
into the ``model_versions`` table, tells every process serving the domain to reload
(:mod:`shared.reload`, Redis pub/sub) and writes an audit row. Jobs (``jobs`` table)
carry a retrain's progress, log and cancel flag between the web process and the worker;
:func:`run_job` and :func:`gate_and_promote` are the start and the end every retrain job
shares, whatever it trains. A running job's row is its heartbeat (``updated_at``, touched
every :data:`HEARTBEAT_S`); :func:`reap_lost_jobs` ends the jobs whose worker stopped
beating. Importable without Flask or Celery, so the CLI, the views and the tasks share it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import false, or_, select, update

from shared.auth import audit
from shared.db import Database, utc_iso
from shared.errors import BadInput, Conflict, FinPulseError, Forbidden, ModelNotFound, NotFound
from shared.registry import ModelVersion, Registry, get_registry

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running", "cancelling")
RUNNING = ("running", "cancelling")  # a worker has the job: its row must keep beating
FINAL = ("succeeded", "failed", "cancelled")
STOP = ("cancelling", *FINAL)  # a job whose row says this stops at its next step
MAX_LOG_CHARS = 200_000
# A running job touches its row this often, between progress reports too: model loading, an
# ONNX export or the gate report nothing for minutes, and must not look like a dead worker.
HEARTBEAT_S = 30.0
REAP_EVERY_S = 60.0  # how often a training worker looks for jobs whose worker died
REAPER = "reaper"  # the actor of the audit rows of jobs ended for a lost worker


class JobCancelled(Exception):
    """Raised inside a job when an operator asked to cancel it."""


# -- jobs ---------------------------------------------------------------------------
def create_job(db: Database, kind: str, params: dict[str, Any], *, actor: str) -> str:
    """Insert a queued job; returns its id."""
    from shared.models import Job

    job_id = uuid.uuid4().hex
    with db.session() as s:
        s.add(Job(id=job_id, kind=kind, status="queued", params={**params, "actor": actor},
                  progress={"stage": "queued"}, log=""))
    return job_id


def job_dict(job: Any) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "params": job.params,
            "progress": job.progress or {}, "result": job.result, "error": job.error,
            "log": job.log or "", "created_at": utc_iso(job.created_at), "updated_at": utc_iso(job.updated_at)}


def get_job(db: Database, job_id: str) -> dict[str, Any]:
    from shared.models import Job

    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job_dict(job)


def list_jobs(db: Database, limit: int = 20, *, tasks: Iterable[str] | None = None,
              domains: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Newest first; ``tasks``/``domains`` keep the retrain jobs of those models only."""
    from shared.models import Job

    query = select(Job)
    for names, pattern in ((tasks, "retrain:%/{}"), (domains, "retrain:{}/%")):
        if names is not None:
            query = query.where(or_(false(), *(Job.kind.like(pattern.format(_like_literal(n)), escape="\\")
                                               for n in names)))
    with db.session() as s:
        rows = s.scalars(query.order_by(Job.created_at.desc()).limit(limit)).all()
        return [job_dict(j) for j in rows]


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def job_model(job: dict[str, Any]) -> tuple[str, str] | None:
    """The (domain, task) a retrain job is about, from its kind ``retrain:DOMAIN/TASK``."""
    kind = str(job.get("kind", ""))
    if not kind.startswith("retrain:") or "/" not in kind:
        return None
    domain, _, task = kind.removeprefix("retrain:").partition("/")
    return domain, task


def update_job(db: Database, job_id: str, *, status: str | None = None,
               progress: dict[str, Any] | None = None, result: dict[str, Any] | None = None,
               error: str | None = None, log_line: str | None = None) -> str:
    """Apply changes to a job; returns its status (so callers see a cancel request)."""
    from shared.models import Job

    with db.session() as s:
        # the row locked till commit: the log is appended by read-modify-write, and a cancel
        # request or a concurrent writer's line would otherwise be lost (PostgreSQL; SQLite
        # serialises writers anyway)
        job = s.get(Job, job_id, with_for_update=True)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        _apply(job, status=status, progress=progress, result=result, error=error, log_line=log_line)
        return job.status


def _apply(job: Any, *, status: str | None = None, progress: dict[str, Any] | None = None,
           result: dict[str, Any] | None = None, error: str | None = None, log_line: str | None = None) -> None:
    """Change a locked job row. An ended job only gains log lines: one the reaper ended while
    its worker hung keeps that outcome (its retrain may have been sent again meanwhile)."""
    if job.status not in FINAL:
        if status is not None and not (job.status == "cancelling" and status == "running"):
            job.status = status
        if progress is not None:
            job.progress = {**(job.progress or {}), **progress}
        if result is not None:
            job.result = result
        if error is not None:
            job.error = error
    if log_line is not None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        job.log = ((job.log or "") + f"{stamp} {log_line}\n")[-MAX_LOG_CHARS:]
    job.updated_at = datetime.now(UTC)


def cancel_job(db: Database, job_id: str, *, actor: str) -> dict[str, Any]:
    """Ask a job to stop; a queued job stops before it starts, a running one between steps."""
    status = get_job(db, job_id)["status"]
    if status not in ACTIVE:
        raise Conflict(f"job {job_id} is already {status}")
    update_job(db, job_id, status="cancelling", log_line=f"cancel requested by {actor}")
    audit(db, actor, "job.cancel", job_id, "requested")
    return get_job(db, job_id)


def job_stage(db: Database, job_id: str, stage: str, message: str) -> None:
    """Record that a job entered ``stage``; raises :class:`JobCancelled` if it was asked to stop
    (or was ended meanwhile, as lost)."""
    if update_job(db, job_id, progress={"stage": stage}, log_line=message) in STOP:
        raise JobCancelled(f"job {job_id} cancelled")


MODEL_FILES = ("config.json", "ids.json")  # one of them in every version that holds a model


def run_job(db: Database, job_id: str, work: Callable[[dict[str, Any]], dict[str, Any]], *,
            heartbeat_s: float = HEARTBEAT_S) -> dict[str, Any]:
    """Run ``work(params)`` as job ``job_id`` to its end; the row says how it went (raises only an
    interrupt, after ending the job as cancelled).

    Only a queued job starts: a re-delivered task (its worker died) finds its job ended, or
    running elsewhere, and leaves it alone; one cancelled while queued ends without starting.
    While ``work`` runs, the row beats every ``heartbeat_s`` (see :func:`reap_lost_jobs`).
    """
    params = _claim(db, job_id)
    if params is None:
        return get_job(db, job_id)
    with _heartbeat(db, job_id, heartbeat_s):
        try:
            result = work(params)
            _end(db, job_id, "succeeded", result=result, progress={"stage": "done"})
        except JobCancelled:
            _end(db, job_id, "cancelled", progress={"stage": "cancelled"}, log_line="cancelled")
        except FinPulseError as exc:
            _end(db, job_id, "failed", error=exc.message, progress={"stage": "failed"},
                 log_line=f"failed: {exc.message}")
        except Exception as exc:  # the job must end in a state an operator can read
            log.exception("job %s crashed", job_id)
            _end(db, job_id, "failed", error=f"{type(exc).__name__}: {exc}",
                 progress={"stage": "failed"}, log_line=f"crashed: {type(exc).__name__}: {exc}")
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM of `ops retrain` run in the foreground: it stayed
            # "running" for good (no worker here reaps lost jobs), and `ops cancel` left it "cancelling"
            _end(db, job_id, "cancelled", progress={"stage": "cancelled"},
                 log_line="interrupted (Ctrl-C or SIGTERM) before it finished")
            raise
    return get_job(db, job_id)


def _claim(db: Database, job_id: str) -> dict[str, Any] | None:
    """The job's params if this delivery may run it, now ``running``; else None.

    Decided under the row lock, so two deliveries of one task never both start it.
    """
    from shared.models import Job

    with db.session() as s:
        job = s.get(Job, job_id, with_for_update=True)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if job.status == "queued":
            _apply(job, status="running", progress={"stage": "starting"})
            return dict(job.params or {})
        if job.status == "cancelling":
            _apply(job, status="cancelled", progress={"stage": "cancelled"}, log_line="cancelled before it started")
        else:  # its row is no business of this delivery (touching it would fake a heartbeat)
            log.warning("job %s is %s: this delivery of its task does not run it", job_id, job.status)
        return None


def _end(db: Database, job_id: str, status: str, **changes: Any) -> None:
    """Write the job's outcome; a job ended meanwhile (reaped as lost) keeps its own, noted."""
    now = update_job(db, job_id, status=status, **changes)
    if now != status:
        log.warning("job %s finished %s after it was ended as %s", job_id, status, now)
        update_job(db, job_id, log_line=f"its worker finished it ({status}) after it was ended as {now}")


@contextlib.contextmanager
def _heartbeat(db: Database, job_id: str, every_s: float) -> Iterator[None]:
    """Touch the job's row every ``every_s`` while the block runs, from a thread of its own:
    a step without progress reports is alive as long as its process is."""
    stop = _repeat(lambda: _touch(db, job_id), every_s, f"heartbeat of job {job_id}", now=False)
    try:
        yield
    finally:
        stop.set()


def _touch(db: Database, job_id: str) -> bool:
    """Stamp a running job's ``updated_at``; False once it is not running (nothing to keep alive)."""
    from shared.models import Job

    with db.session() as s:
        hit = s.execute(update(Job).where(Job.id == job_id, Job.status.in_(RUNNING))
                        .values(updated_at=datetime.now(UTC)))
        return bool(hit.rowcount)


def _repeat(call: Callable[[], object], every_s: float, name: str, *, now: bool) -> threading.Event:
    """Call ``call`` every ``every_s`` (and at once if ``now``) in a daemon thread, till the
    returned event is set or it returns False; a failed call is logged, and tried again."""
    stop = threading.Event()

    def loop() -> None:
        wait = 0.0 if now else every_s
        while not stop.wait(wait):
            wait = every_s
            try:
                if call() is False:
                    return
            except Exception as exc:  # noqa: BLE001 - a database blip must not end the thread
                log.warning("%s failed: %s", name, exc)

    threading.Thread(target=loop, name=name, daemon=True).start()
    return stop


def reap_lost_jobs(db: Database, stale_s: float) -> list[dict[str, Any]]:
    """End the running and cancelling jobs whose row has not beaten for ``stale_s``; returns them.

    Their worker died (kill -9, out of memory, a lost host): late acks keep its task on the
    broker, which re-delivers it only after the visibility timeout (hours), and the job read
    ``running`` (or ``cancelling``) till then. A running one fails, saying so; a cancelling
    one is cancelled, as asked. Each is audited.
    """
    from shared.models import Job

    cutoff = datetime.now(UTC) - timedelta(seconds=stale_s)
    with db.session() as s:
        rows = s.scalars(select(Job).where(Job.status.in_(RUNNING), Job.updated_at < cutoff)
                         .with_for_update()).all()
        reasons: dict[str, str] = {}
        for job in rows:
            changes = _lost(job)
            reasons[job.id] = changes["log_line"]
            _apply(job, **changes)
        reaped = [job_dict(j) for j in rows]
    for job in reaped:
        log.warning("job %s ended: %s", job["id"], reasons[job["id"]])
        audit(db, REAPER, "job.lost", job["id"], job["status"], {"reason": reasons[job["id"]], "stale_s": stale_s})
    return reaped


def _lost(job: Any) -> dict[str, Any]:
    """The changes that end a job whose worker stopped beating."""
    if job.status == "cancelling" and (job.progress or {}).get("stage") == "queued":
        return {"status": "cancelled", "progress": {"stage": "cancelled"},
                "log_line": "cancelled before a worker took it"}
    lost = f"worker lost (no heartbeat since {utc_iso(job.updated_at)})"
    if job.status == "cancelling":
        error = f"{lost}; cancelled as requested"
        return {"status": "cancelled", "error": error, "progress": {"stage": "cancelled"}, "log_line": error}
    error = f"{lost}; send the retrain again"
    return {"status": "failed", "error": error, "progress": {"stage": "failed"}, "log_line": f"failed: {error}"}


def stale_queued_jobs(db: Database, older_than_s: float) -> list[dict[str, Any]]:
    """The queued jobs untouched for ``older_than_s``: candidates whose task message may be gone."""
    from shared.models import Job

    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    with db.session() as s:
        rows = s.scalars(select(Job).where(Job.status == "queued", Job.updated_at < cutoff)).all()
        return [job_dict(j) for j in rows]


def start_reaper(db: Database, stale_s: float, every_s: float = REAP_EVERY_S,
                 requeue: Callable[[], object] | None = None) -> threading.Event:
    """Reap lost jobs now and every ``every_s`` in a daemon thread; set the event to stop.

    Now: a worker restarted after a kill ends what a longer outage left. Every ``every_s``:
    restarted within seconds, it still finds its own last job beating, stale only later.
    ``requeue`` (the Celery worker's) then sends again the queued jobs whose task message was lost.
    """
    def once() -> None:
        reap_lost_jobs(db, stale_s)
        if requeue is not None:
            requeue()

    return _repeat(once, every_s, "job reaper", now=True)


def gate_and_promote(settings: Any, db: Database, job_id: str, mv: ModelVersion, params: dict[str, Any],
                     extra: dict[str, Any] | None = None, *,
                     production_metrics: dict[str, float] | None = None,
                     progress_metrics: Sequence[str] = ()) -> dict[str, Any]:
    """The end of a retrain job: gate ``mv`` against production, promote it if it passed (or forced).

    ``extra`` goes into the gate report; ``production_metrics`` is production measured by
    the job on the candidate's held-out data (see :func:`shared.gate.run_gate`);
    ``progress_metrics`` names the candidate's gate figures the job's progress shows.
    """
    record_version(db, mv)
    try:
        return _gate_and_promote(settings, db, job_id, mv, params, extra, production_metrics, progress_metrics)
    except JobCancelled:  # too late to register nothing: the log names what is left, unpromoted
        update_job(db, job_id, log_line=f"cancelled after {mv.ref} was registered: it stays registered "
                                        "and is not promoted (promote it by hand if wanted)")
        raise


def _gate_and_promote(settings: Any, db: Database, job_id: str, mv: ModelVersion, params: dict[str, Any],
                      extra: dict[str, Any] | None, production_metrics: dict[str, float] | None,
                      progress_metrics: Sequence[str]) -> dict[str, Any]:
    """:func:`gate_and_promote` once ``mv`` is recorded; raises :class:`JobCancelled` at a stage."""
    from shared.gate import run_gate

    job_stage(db, job_id, "gate", f"registered {mv.ref}; evaluating against production")
    report = run_gate(settings, mv, eval_set=params.get("eval"), tolerance=params.get("tolerance"),
                      extra={"job": job_id, **(extra or {})}, production_metrics=production_metrics)
    shown = {k: v for k, v in (report.get("candidate_metrics") or {}).items() if k in progress_metrics}
    update_job(db, job_id, log_line=f"gate {report['summary']}", progress={"metrics": shown} if shown else None)
    promoted, refused = None, None
    force = bool(params.get("force"))
    if params.get("auto_promote", True) and (report["passed"] or force):
        job_stage(db, job_id, "promote", f"promoting {mv.ref}")
        try:
            promoted = promote(settings, db, mv.ref, actor=params.get("actor", "job"),
                               reason=params.get("reason") or f"retrain job {job_id}", force=force)
        except Conflict as exc:
            # production moved while this job gated (another job, a person): the job did its
            # work, and its result must name the version it registered for a person to judge
            refused = str(exc)
            update_job(db, job_id, log_line=f"not promoted: {refused}")
    if promoted is not None:
        production = promoted["production"]
        if promoted.get("warning"):
            update_job(db, job_id, log_line=f"warning: {promoted['warning']}")
    else:  # what still serves: a refused candidate's job said null, as if nothing did
        current = get_registry(settings).production(mv.domain, mv.task)
        production = current.ref if current is not None else None
    return {"version": mv.ref, "path": str(mv.path), "gate": {
        k: report.get(k) for k in ("passed", "summary", "delta", "primary_metric", "production")},
        "promoted": promoted is not None, "production": production,
        **({"promotion_refused": refused} if refused else {}),
        **({"warning": promoted["warning"]} if promoted and promoted.get("warning") else {})}


# -- model_versions mirror ----------------------------------------------------------
def _mirror(db: Database, mv: ModelVersion, stage: str) -> None:
    """Upsert the version's row with ``stage``; demote the previous production row."""
    from shared.models import ModelRecord

    with db.session() as s:
        rows = s.scalars(select(ModelRecord).where(ModelRecord.domain == mv.domain,
                                                   ModelRecord.task == mv.task)).all()
        mine = next((r for r in rows if r.version == mv.version), None)
        if mine is None:
            mine = ModelRecord(domain=mv.domain, task=mv.task, version=mv.version,
                               path=str(mv.path), metrics=mv.metrics() or None,
                               train_config=mv.train_config() or None)
            s.add(mine)
        if stage == "production":
            for r in rows:
                if r is not mine and r.stage == "production":
                    r.stage = "archived"
        mine.stage = stage


def record_version(db: Database, mv: ModelVersion, stage: str = "registered") -> None:
    """Make sure a registered version has its ``model_versions`` row (idempotent)."""
    _mirror(db, mv, stage)


def record_promotion(settings: Any, mv: ModelVersion, *, actor: str, reason: str) -> None:
    """A promotion made by the registry alone (a first version, the first run of ``finpulse up``)
    in the database as :func:`promote` records one: its row's stage and an audit entry. Best
    effort: the pointer file decides what serves, a database hiccup must not fail the run."""
    db = None
    try:
        from shared.db import upgrade

        upgrade(settings.db_url)
        db = Database(settings.db_url)
        _mirror(db, mv, "production")
        audit(db, actor, "model.promote", mv.ref, "ok", {"reason": reason, "previous": None})
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the model is promoted
        log.warning("promotion of %s not recorded in the database: %s", mv.ref, exc)
    finally:
        if db is not None:
            db.dispose()


# -- announcing ---------------------------------------------------------------------
def announce(settings: Any, mv: ModelVersion, event: str = "promote") -> None:
    """Tell every process serving ``mv``'s domain to reload; never fails the promotion."""
    try:
        from shared.reload import publish_model_change

        heard = publish_model_change(settings, mv.domain, mv.task, mv.version, event=event)
        log.info("announced %s %s to %d process(es)", event, mv.ref, heard)
    except Exception as exc:  # the pointer moved; readers re-resolve it on their next call
        log.warning("reload announcement for %s failed: %s", mv.ref, exc)


# -- promotion and rollback ---------------------------------------------------------
def promote(settings: Any, db: Database, ref: str, *, actor: str, reason: str | None = None,
            force: bool = False, registry: Registry | None = None) -> dict[str, Any]:
    """Promote ``ref`` if its gate report passed (or ``force`` with a reason); audited.

    A version without a gate report, or whose report compared it with a version that is
    no longer production, is evaluated first (:func:`shared.gate.run_gate`).
    """
    from shared.gate import load_report, run_gate

    registry = registry or get_registry(settings)
    target = ref
    try:
        mv = registry.resolve_version(ref)
        target = mv.ref
        # a Hugging Face model's config or a recommender's ids: metrics.json alone passed, and serving broke
        if not any((mv.path / name).is_file() for name in MODEL_FILES):
            raise ModelNotFound(f"{mv.ref}: {mv.path} holds no model; promoting it would break serving")
        if force and not (reason or "").strip():
            raise BadInput("a forced promotion needs a reason (it goes into the audit log)")
        seen = registry.pointer(mv.domain, mv.task).get("version")  # what the gate compares against
        previous = registry.production(mv.domain, mv.task)
        if previous is not None and previous.version == mv.version:
            # nothing moves: re-gating it against no production would overwrite its real verdict;
            # the request is still audited (someone asked for production to be this version)
            audit(db, actor, "model.promote", mv.ref, "unchanged", {"reason": reason, "force": force})
            return {"production": mv.ref, "version": mv.version, "previous": mv.ref, "unchanged": True,
                    "reason": reason, "force": force, "gate": (load_report(mv.path) or {}).get("summary")}
        against = previous.ref if previous else None
        report = load_report(mv.path)
        if not force and (report is None or report.get("production") != against):
            report = run_gate(settings, mv, registry=registry)  # none yet, or production moved since
        if not force and not report.get("passed"):
            raise Conflict(f"{mv.ref} failed its evaluation gate: {report.get('summary')}; "
                           "force it with a reason to promote anyway")
        detail = {"reason": reason, "force": force,
                  "previous": previous.ref if previous else None,
                  "gate": (report or {}).get("summary")}
        with registry.pointer_locked(mv.domain, mv.task) as current:
            _reconcile(db, registry, mv.domain, mv.task, current, actor)
            # only over the production the gate compared with: a concurrent promotion is a 409
            registry.promote(mv.ref, reason=reason or ("forced" if force else "gate passed"),
                             expect=seen, locked=current)
            _record_move(db, actor, "model.promote", mv, detail)
    except Exception as exc:
        audit(db, actor, "model.promote", target, "refused" if isinstance(exc, BadInput | Conflict | Forbidden)
              else "error", {"reason": reason, "force": force, "error": str(exc)[:500]})
        raise
    announce(settings, mv)
    warning = _export_warning(settings, mv, previous)
    log.info("promoted %s (was %s) by %s%s", mv.ref, detail["previous"], actor, _logged(warning))
    return {"production": mv.ref, "version": mv.version, **detail, **warning}


def rollback(settings: Any, db: Database, domain: str, task: str, *, actor: str,
             registry: Registry | None = None) -> dict[str, Any]:
    """Restore the previous production version; audited and announced."""
    registry = registry or get_registry(settings)
    target = f"{domain}/{task}"
    try:
        seen = registry.pointer(domain, task).get("version")
        current = registry.production(domain, task)
        detail = {"previous": current.ref if current else None}
        with registry.pointer_locked(domain, task) as pointer:
            _reconcile(db, registry, domain, task, pointer, actor)
            # one step back from the production read here, or a 409: concurrent rollbacks each
            # reported the same step while the pointer moved fewer
            mv = registry.rollback(domain, task, expect=seen, locked=pointer)
            _record_move(db, actor, "model.rollback", mv, detail)
    except Exception as exc:
        audit(db, actor, "model.rollback", target, "refused" if isinstance(exc, Conflict) else "error",
              {"error": str(exc)[:500]})
        raise
    announce(settings, mv, event="rollback")
    warning = _export_warning(settings, mv, current)
    log.info("rolled back %s to %s by %s%s", target, mv.ref, actor, _logged(warning))
    return {"production": mv.ref, "version": mv.version, **detail, **warning}


def _export_warning(settings: Any, mv: ModelVersion, previous: ModelVersion | None) -> dict[str, str]:
    """``{"warning": ...}`` when the new production lacks the ONNX graph its services look for
    (:func:`shared.runtimes.missing_export_warning`), else ``{}``. The CLI, the HTTP answer and a
    retrain job's log all show it: services fell to torch, or failed, with nobody told."""
    from shared.runtimes import missing_export_warning

    try:
        warning = missing_export_warning(mv, previous, runtime=getattr(settings, "runtime", "auto"),
                                         device=getattr(settings, "device", "cpu"))
    except OSError as exc:  # the pointer has moved: a check of the files must not fail the move
        log.warning("could not check %s for its ONNX export: %s", mv.ref, exc)
        return {}
    return {} if warning is None else {"warning": warning}


def _logged(warning: dict[str, str]) -> str:
    """The warning as the end of the move's INFO line: a WARNING record of its own would reach a
    CLI's stderr a second time through Python's last-resort handler (the CLI prints the result's)."""
    return f"; warning: {warning['warning']}" if warning else ""


def _record_move(db: Database, actor: str, action: str, mv: ModelVersion, detail: dict[str, Any]) -> None:
    """The database's record of a pointer move, written while the pointer lock is still held:
    written after the release, concurrent moves' mirrors landed out of order and left a
    production row that the pointer did not name."""
    _mirror(db, mv, "production")
    audit(db, actor, action, mv.ref, "ok", detail)


def _reconcile(db: Database, registry: Registry, domain: str, task: str, pointer: dict[str, Any],
               actor: str) -> None:
    """Mend a mirror that names another production than the pointer (held locked by the caller).

    A promotion or rollback killed between its pointer move and its database record left
    the move unmirrored and unaudited; the next one under the lock records what it finds.
    A database without a production row of the domain/task (versions promoted by the
    registry alone, e.g. on first run) is left as it is.
    """
    from shared.models import ModelRecord

    version = pointer.get("version")
    with db.session() as s:
        listed = sorted(s.scalars(select(ModelRecord.version).where(
            ModelRecord.domain == domain, ModelRecord.task == task, ModelRecord.stage == "production")).all())
    if version is None or not listed or listed == [version]:
        return
    mv = ModelVersion(domain, task, int(version), registry.task_dir(domain, task) / f"v{version}")
    _mirror(db, mv, "production")
    audit(db, actor, "model.reconcile", mv.ref, "ok",
          {"database_production": [f"v{v}" for v in listed],
           "reason": "the pointer had moved without its database record (an interrupted promotion or rollback)"})
    log.warning("%s: database said production %s, the pointer v%s; mended", f"{domain}/{task}", listed, version)


def audit_entries(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    """The newest audit rows, for the CLI and the ops page."""
    from shared.models import AuditLog

    with db.session() as s:
        rows = s.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)).all()
        return [{"at": utc_iso(r.at),
                 "actor": r.actor, "action": r.action, "target": r.target,
                 "outcome": r.outcome, "detail": r.detail} for r in rows]
