"""Ops endpoints every service mounts for its own models: one call in ``create_app``.

Usage (in a service's ``create_app``, after :func:`shared.web.create_service_app`)::

    from shared.admin import register_admin
    register_admin(app, tasks={"sentiment": "training.retrain"}, domains=[settings.sentiment_domain])

``tasks`` maps each model task the service owns to how a retrain is started: a Celery
task name (sent to the ``training`` queue with the job id) or a callable
``enqueue(job_id, settings)``, or a :class:`RetrainTask` when the task's retrain may go
without ``data`` (it then refits production on what production already knows) or its data
can be checked before anything is queued. ``domains`` limits which domains it manages
(None: any). Routes (``ops`` key unless said otherwise):

- ``POST /v1/admin/retrain`` JSON ``{"domain", "task", "data": path, "dev"?, "eval"?, "items"?, "method"?,
  "epochs"?, "seed"?, "options"?, "auto_promote"?, "force"?, "reason"?}`` or multipart with a
  ``data`` file (and an ``items`` file: a recommender's catalogue) and the other fields as form
  fields (``options`` as JSON text; another file field is a 400) → 202
  ``{"job_id", "status", "url"}`` (``data`` optional where the task says so)
- ``GET /v1/admin/jobs``, ``GET /v1/admin/jobs/<id>``, ``POST /v1/admin/jobs/<id>/cancel``
- ``POST /v1/admin/models/promote`` ``{"ref" | "domain","task","version", "force"?, "reason"?}``
- ``POST /v1/admin/models/rollback`` ``{"domain", "task"}``; both answer the move, with ``warning``
  when the new production lacks the ONNX export its services look for (:func:`shared.lifecycle.promote`)
- ``GET /v1/admin/models``, ``GET /v1/admin/audit``
- ``GET /v1/admin/monitoring`` and ``GET /ops`` (the ops page with plots): analyst key
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from flask import Blueprint, Flask, current_app, g, jsonify, render_template_string, request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from shared.auth import require_role
from shared.celery_app import QUEUE_TRAINING
from shared.errors import BadInput, Conflict, FinPulseError, Forbidden, NotFound, Unavailable
from shared.web import (
    Query,
    documented,
    format_validation_error,
    int_query,
    number_arg,
    parse_body,
    query_params,
    settings_of,
)

Enqueue = Callable[[str, Any], Any]
EXT = "finpulse_admin"
MAX_LIST = 500  # rows a list endpoint answers at most (?limit beyond is a 400, as on /v1/alerts)
MAX_HOURS = 24 * 30  # the monitoring views look back at most this far
JOBS_LIMIT = int_query("rows", 1, MAX_LIST, 20)
AUDIT_LIMIT = int_query("rows", 1, MAX_LIST, 100)
HOURS = Query("number", f"look-back window in hours, more than 0, up to {MAX_HOURS} (default 24)",
              minimum=0, maximum=MAX_HOURS, default=24, exclusive_minimum=True)
DOMAIN = ("string", "one domain (default: this service's)")
# the refusals every endpoint naming a domain/task answers (:func:`_scope`)
SCOPE_403 = "forbidden: a domain or task this service does not manage"
# an upload is saved under a fresh name with the sender's suffix, which the readers pick a format by;
# a suffix of other characters names no format, so it is left off (the first line decides either way)
PLAIN_SUFFIX = re.compile(r"\.[a-z0-9_-]{1,16}")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainTask:
    """How one model task is retrained, beyond where its job is sent."""

    start: str | Enqueue  # Celery task name (sent with the job id) or enqueue(job_id, settings)
    # a request without `data` refits production on what it already has (it must exist)
    data_optional: bool = False
    # check(params) raises BadInput on a bad data file or option, before any job exists
    check: Callable[[dict[str, Any]], None] | None = None
    # suffixes an uploaded `data` file may have, for a loader that knows its formats by suffix only
    # (the chatbot's knowledge base); None: any, read as a server path with that suffix is (a file
    # named otherwise, MovieLens' headerless u.data, by its first line)
    uploads: tuple[str, ...] | None = None
    # suffixes of an uploaded `items` catalogue (recommendations, whose `files` name it)
    item_uploads: tuple[str, ...] = (".jsonl", ".csv", ".tsv", ".ndjson", ".psv", ".item")
    # the files a multipart retrain may carry, as the fields whose server path they stand for
    # (recommendations adds its `items` catalogue; a service's errors name only its own)
    files: tuple[str, ...] = ("data",)


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str | None = Field(None, max_length=64)
    task: str | None = Field(None, max_length=64)
    data: str | None = Field(None, max_length=1000, description="training data path on the server")
    dev: str | None = Field(None, max_length=1000)
    eval: str | None = Field(None, max_length=1000, description="overrides the domain's evaluation set")
    # only recommendations reads it (its item catalogue); a task's check may refuse it, as for `dev`
    items: str | None = Field(None, max_length=1000, description="item catalogue path on the server (recommendations)")
    method: str | None = Field(None, pattern="^(full|lora)$")
    epochs: int | None = Field(None, ge=1, le=100)
    seed: int | None = None
    max_length: int | None = Field(None, ge=8, le=512)
    time_budget_min: float | None = Field(None, gt=0)
    options: dict[str, Any] | None = None
    tolerance: float | None = Field(None, ge=0, le=1)
    auto_promote: bool = True
    force: bool = False
    reason: str | None = Field(None, max_length=500)


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str | None = Field(None, max_length=200)
    domain: str | None = Field(None, max_length=64)
    task: str | None = Field(None, max_length=64)
    # strict: JSON true was read as version 1 and 1.0 as 1 (a bool or float is a 400)
    version: Annotated[str, Field(max_length=20)] | StrictInt | None = None
    force: bool = False
    reason: str | None = Field(None, max_length=500)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str | None = Field(None, max_length=64)
    task: str | None = Field(None, max_length=64)


def register_admin(app: Flask, *, tasks: Mapping[str, str | Enqueue | RetrainTask],
                   domains: Iterable[str] | None = None, queue: str = QUEUE_TRAINING) -> None:
    """Mount the ops endpoints and the ops page on ``app`` for the given model tasks."""
    from shared.db import init_app

    if not tasks:
        raise ValueError("register_admin needs at least one model task")
    if "db" not in app.extensions:
        init_app(app, settings_of(app))
    first = EXT not in app.extensions
    specs = {name: t if isinstance(t, RetrainTask) else RetrainTask(t) for name, t in tasks.items()}
    app.extensions[EXT] = {"tasks": specs, "domains": list(domains) if domains else None, "queue": queue}
    if first:  # a second call (tests, embedding apps) only changes the configuration
        app.register_blueprint(_blueprint())


def _conf() -> dict[str, Any]:
    return current_app.extensions[EXT]


def _scope(domain: str | None, task: str | None) -> tuple[str, str]:
    """The (domain, task) a request is about, defaulted and checked against this service."""
    conf = _conf()
    task = task or next(iter(conf["tasks"]))
    if task not in conf["tasks"]:
        raise Forbidden(f"this service manages {', '.join(conf['tasks'])} models, not {task!r}")
    domains = conf["domains"]
    domain = domain or (domains[0] if domains else None)
    if not domain:
        raise BadInput("field 'domain' is required")
    if domains and domain not in domains:
        raise Forbidden(f"this service manages domains {', '.join(domains)}, not {domain!r}")
    return domain, task


def _enqueue(task: str, job_id: str) -> None:
    target = _conf()["tasks"][task].start
    settings = settings_of()
    if callable(target):
        target(job_id, settings)
        return
    celery = current_app.extensions.get("celery")
    if celery is None:
        from shared.celery_app import make_celery

        celery = _conf().setdefault("celery", make_celery(settings))
    try:
        # the job row carries the outcome; a kept result would subscribe this thread to a
        # Redis channel nobody reads
        celery.send_task(target, args=[job_id], queue=_conf()["queue"], ignore_result=True)
    except Exception as exc:  # kombu's OperationalError, or Celery's bare RuntimeError after its publish retries
        log.warning("retrain job %s not queued: %s", job_id, exc)
        raise Unavailable("the task queue (Redis) is unreachable; retry later") from None


def _retrain_params(body: RetrainRequest, uploads: dict[str, Any], domain: str, task: str) -> dict[str, Any]:
    """The job's parameters once the data is where the worker reads it; bad data is a 4xx here."""
    spec: RetrainTask = _conf()["tasks"][task]
    params = body.model_dump(exclude_none=True) | {"domain": domain, "task": task}
    if "data" not in uploads and not body.data:
        if not spec.data_optional:
            raise BadInput("give the training data as 'data' (a server path) or upload a 'data' file")
        from shared.registry import get_registry

        if get_registry(settings_of()).production(domain, task) is None:
            raise Conflict(f"{domain}/{task} has no production version to refit; give the training data "
                           "as 'data' (a server path) or upload a 'data' file")
    elif "data" not in uploads and not Path(body.data).is_file():
        raise BadInput(f"training data {body.data!r}: no such file on the server")
    saved: dict[str, str] = {}  # server path -> the sender's file name, for errors
    try:
        for name, upload in uploads.items():
            params[name] = _save_upload(name, upload, spec.uploads if name == "data" else spec.item_uploads)
            saved[params[name]] = Path(upload.filename).name
        if spec.check is not None:
            spec.check(params)
    except Exception as exc:  # a refused upload is not kept
        for path, sent in saved.items():
            Path(path).unlink(missing_ok=True)
            if isinstance(exc, FinPulseError) and path in exc.message:  # the sender's name, not ours
                exc.message = exc.message.replace(path, f"uploaded {sent}")
        raise
    return params


def _save_upload(name: str, upload: Any, suffixes: tuple[str, ...] | None) -> str:
    """Store one uploaded file where the worker reads it (a fresh name, the sender's suffix, which
    the readers pick their format by); an empty one is refused, as a file without rows is."""
    suffix = Path(upload.filename).suffix.lower()
    if suffixes is not None and suffix not in suffixes:
        raise BadInput(f"uploaded {name} file must be one of {', '.join(suffixes)}, got {suffix or 'no suffix'!r}")
    path = settings_of().home / "uploads" / f"{uuid.uuid4().hex}{suffix if PLAIN_SUFFIX.fullmatch(suffix) else ''}"
    path.parent.mkdir(parents=True, exist_ok=True)
    upload.save(path)
    if path.stat().st_size == 0:
        path.unlink()
        raise BadInput(f"uploaded {name} file {Path(upload.filename).name} is empty")
    return str(path)


def _retrain_body() -> tuple[RetrainRequest, dict[str, Any]]:
    """JSON body, or a multipart form whose ``data`` file is the training set (and ``items`` file
    the recommender's catalogue); the uploads come back by field."""
    if request.files or request.mimetype == "multipart/form-data":  # a form without a file: say what is missing
        files = list(dict.fromkeys(f for spec in _conf()["tasks"].values() for f in spec.files))
        unknown = sorted(set(request.files) - set(files))
        if unknown:  # as an unknown text field is: a file sent for nothing is refused, not dropped
            raise BadInput(f"unknown file field(s) {', '.join(map(repr, unknown))}; a retrain here takes only "
                           f"{' and '.join(map(repr, files))}")
        form: dict[str, Any] = {k: v for k, v in request.form.items() if v != ""}
        both = [k for k in files if k in form and k in request.files]
        if both:
            raise BadInput(f"send {both[0]!r} either as a server path or as a file, not both")
        if "options" in form:  # a form field is text: the options object comes as JSON
            try:
                form["options"] = json.loads(form["options"])
            except ValueError:
                raise BadInput("options: a multipart form's 'options' field must be a JSON object, "
                               f"got {form['options'][:80]!r}") from None
        try:
            body = RetrainRequest.model_validate(form)
        except ValidationError as exc:  # name the field, as a JSON body's error does
            raise BadInput(format_validation_error(exc), code="validation_error") from None
        # a part without a file name is a form's file input left empty: no upload
        uploads = {k: f for k in files if (f := request.files.get(k)) is not None and f.filename}
        # as in a JSON body, `data` may be a server path, and a task that refits production needs
        # none: a refit with an uploaded catalogue alone, or a server path beside an uploaded `items`,
        # was refused; an empty file input still is (a chooser left blank is no request to refit)
        spec = _conf()["tasks"].get(body.task or next(iter(_conf()["tasks"])))
        refits = spec is not None and spec.data_optional and "data" not in request.files
        if "data" not in uploads and not body.data and not refits:
            raise BadInput("multipart retrain needs a 'data' file")
        return body, uploads
    return parse_body(RetrainRequest), {}


def _blueprint() -> Blueprint:
    from shared import lifecycle
    from shared.db import get_db

    bp = Blueprint("admin", __name__)

    @bp.post("/v1/admin/retrain")
    @documented(status=202, body=RetrainRequest, multipart=True, needs=("queue",), errors={
        400: "bad_request: no training data, no such file on the server, or a bad row, file or option",
        403: SCOPE_403, 409: "conflict: a retrain without data, and no production version to refit"})
    @require_role("ops")
    def retrain() -> Any:
        """Start a retrain job (train → evaluation gate → promotion) on the training queue."""
        body, uploads = _retrain_body()
        if body.force and not (body.reason or "").strip():  # as `finpulse ops retrain --force`
            raise BadInput("'force' needs a 'reason' (it goes into the audit log)")
        domain, task = _scope(body.domain, body.task)
        params = _retrain_params(body, uploads, domain, task)
        db = get_db()
        job_id = lifecycle.create_job(db, f"retrain:{domain}/{task}", params, actor=g.actor)
        lifecycle.update_job(db, job_id, log_line=f"queued by {g.actor}")
        try:
            _enqueue(task, job_id)
        except Unavailable as exc:  # a 500 left the job "queued" for ever: nothing would run it
            lifecycle.update_job(db, job_id, status="failed", error=f"not queued: {exc.message}")
            raise
        lifecycle.audit(db, g.actor, "model.retrain", f"{domain}/{task}", "queued", {"job": job_id})
        return jsonify({"job_id": job_id, "status": "queued", "url": f"/v1/admin/jobs/{job_id}"}), 202

    @bp.get("/v1/admin/jobs")
    @documented(needs=("database",))
    @query_params(limit=JOBS_LIMIT)
    @require_role("ops")
    def jobs() -> Any:
        """Recent jobs, newest first."""
        return jsonify({"jobs": _own_jobs(limit=JOBS_LIMIT.read("limit"))})

    @bp.get("/v1/admin/jobs/<job_id>")
    @documented(errors={404: "not_found: no job with this id on this service"})
    @require_role("ops")
    def job(job_id: str) -> Any:
        """One job: status, progress (stage, epoch, step, metrics), result, log."""
        return jsonify(_own_job(job_id))

    @bp.post("/v1/admin/jobs/<job_id>/cancel")
    @documented(status=202, errors={404: "not_found: no job with this id on this service",
                                    409: "conflict: the job has already finished"})
    @require_role("ops")
    def cancel(job_id: str) -> Any:
        """Cancel a queued or running job (it stops at its next step)."""
        _own_job(job_id)
        return jsonify(lifecycle.cancel_job(get_db(), job_id, actor=g.actor)), 202

    @bp.post("/v1/admin/models/promote")
    @documented(body=PromoteRequest, errors={
        400: "bad_request: neither 'ref' nor 'version', or a forced promotion without a reason",
        403: SCOPE_403, 404: "model_not_found: no such version, or it holds no model",
        409: "conflict: the version failed its evaluation gate (force it with a reason), or production "
             "moved meanwhile (nothing changed; retry)"})
    @require_role("ops")
    def promote() -> Any:
        """Move `production` to a version that passed its gate (or forced, with a reason).

        The answer carries `warning` when the version lacks the ONNX export its services look for."""
        body = parse_body(PromoteRequest)
        ref = body.ref
        if ref is None:
            domain, task = _scope(body.domain, body.task)
            if body.version is None:
                raise BadInput("give 'ref' (DOMAIN/TASK@vN) or 'version'")
            ref = f"{domain}/{task}@{body.version}"  # the registry reads @5 and @v5 alike
        else:
            from shared.registry import get_registry

            named = ref.strip().split("@", 1)[0].split("/")
            if len(named) == 2:  # DOMAIN/TASK: another service's model is a 403, not looked up (a 404)
                _scope(*named)
            mv = get_registry(settings_of()).resolve_version(ref)
            _scope(mv.domain, mv.task)
        return jsonify(lifecycle.promote(settings_of(), get_db(), ref, actor=g.actor,
                                         reason=body.reason, force=body.force))

    @bp.post("/v1/admin/models/rollback")
    @documented(body=RollbackRequest, body_required=False, errors={  # no body: this service's own model
        403: SCOPE_403, 404: "model_not_found: no model registered for this domain and task",
        409: "conflict: no earlier production version, or production moved meanwhile (retry)"})
    @require_role("ops")
    def rollback() -> Any:
        """Restore the previous production version.

        The answer carries `warning` as a promotion's does."""
        body = parse_body(RollbackRequest) if request.content_length else RollbackRequest()
        domain, task = _scope(body.domain, body.task)
        return jsonify(lifecycle.rollback(settings_of(), get_db(), domain, task, actor=g.actor))

    @bp.get("/v1/admin/models")
    @documented()  # the registry on disk: no database, no Redis
    @require_role("ops")
    def models() -> Any:
        """Versions of this service's models with production and gate verdicts."""
        return jsonify({"models": _models()})

    @bp.get("/v1/admin/audit")
    @documented(needs=("database",))
    @query_params(limit=AUDIT_LIMIT)
    @require_role("ops")
    def audit_log() -> Any:
        """The audit log, newest first."""
        return jsonify({"entries": lifecycle.audit_entries(get_db(), limit=AUDIT_LIMIT.read("limit"))})

    @bp.get("/v1/admin/monitoring")
    @documented(needs=("redis",))  # the monitoring figures live there
    @query_params(hours=HOURS, domain=DOMAIN)
    @require_role("analyst")
    def monitoring() -> Any:
        """Drift, confidence and chatbot figures per domain and version, with alerts."""
        from shared.monitoring import overview

        return jsonify(overview(settings_of(), window_s=_window(), domains=_domains()))

    @bp.get("/ops")
    @documented(needs=("redis",))  # the monitoring figures live there
    @query_params(hours=HOURS, domain=DOMAIN)
    @require_role("analyst")
    def ops_page() -> Any:
        """The ops page: jobs, models, monitoring plots and alerts."""
        from shared.monitoring import overview, plot_png

        data = overview(settings_of(), window_s=_window(), domains=_domains())
        plots = [(f"{s['domain']}/{s['task']}@{s['version']}", base64.b64encode(plot_png(s)).decode())
                 for s in data["series"][:12]]
        return render_template_string(OPS_PAGE, data=data, plots=plots, models=_models(), num=_shown_number,
                                      jobs=_own_jobs(limit=10))

    return bp


def _own_jobs(limit: int) -> list[dict[str, Any]]:
    """This service's retrain jobs: another service's are its own ops' business."""
    from shared import lifecycle
    from shared.db import get_db

    return lifecycle.list_jobs(get_db(), limit=limit, tasks=_conf()["tasks"], domains=_conf()["domains"])


def _own_job(job_id: str) -> dict[str, Any]:
    """One of this service's jobs; another service's is a 404 here, as if it did not exist."""
    from shared import lifecycle
    from shared.db import get_db

    job = lifecycle.get_job(get_db(), job_id)
    model = lifecycle.job_model(job)
    domains = _conf()["domains"]
    if model is None or model[1] not in _conf()["tasks"] or (domains and model[0] not in domains):
        raise NotFound(f"no job {job_id!r} on this service")
    return job


def _domains() -> list[str] | None:
    """``?domain=`` narrows the monitoring views; else this service's domains (None: all)."""
    asked = request.args.get("domain")
    return [asked] if asked else _conf()["domains"]


def _window() -> float:
    hours = number_arg("hours", 24)  # ASCII decimals only: float() took "１", " 5", "nan" and "1e3"
    if not 0 < hours <= MAX_HOURS:
        raise BadInput(f"hours must be in (0, {MAX_HOURS}]")
    return hours * 3600


def _models() -> list[dict[str, Any]]:
    from shared.gate import load_report
    from shared.registry import get_registry

    registry, conf, out = get_registry(settings_of()), _conf(), []
    for mv in registry.all_versions():
        if mv.task not in conf["tasks"] or (conf["domains"] and mv.domain not in conf["domains"]):
            continue
        prod = registry.production(mv.domain, mv.task)
        gate = load_report(mv.path) or {}
        out.append({"ref": mv.ref, "production": bool(prod and prod.version == mv.version),
                    "gate": gate.get("summary"), "passed": gate.get("passed"),
                    "metrics": {k: v for k, v in mv.metrics().items() if isinstance(v, int | float)}})
    return out


def _shown_number(value: Any) -> str:
    """A figure as the ops page shows it: blank when not measured (it showed Python's None),
    whole numbers whole (it showed users=40.0000), others to four decimals."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}"


OPS_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>FinPulse ops</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.critical{color:#b00}.warn{color:#b60}</style>
</head><body><h1>FinPulse ops</h1>
<h2>Alerts</h2>{% if not data.alerts %}<p>none</p>{% endif %}<ul>
{% for a in data.alerts %}<li class="{{a.severity}}">{{a.severity}}: {{a.message}}</li>{% endfor %}</ul>
<h2>Models</h2>{% if not models %}<p>none</p>{% else %}<table><tr><th>version</th><th>production</th><th>gate</th>
<th>metrics</th></tr>
{% for m in models %}<tr><td>{{m.ref}}</td><td>{{'yes' if m.production else ''}}</td><td>{{m.gate or ''}}</td>
<td>{% for k, v in m.metrics.items() %}{{k}}={{num(v)}} {% endfor %}</td></tr>{% endfor %}</table>{% endif %}
<h2>Jobs</h2>{% if not jobs %}<p>none</p>{% else %}<table><tr><th>id</th><th>kind</th><th>status</th><th>stage</th>
<th>epoch</th><th>step</th></tr>
{% for j in jobs %}<tr><td>{{j.id[:8]}}</td><td>{{j.kind}}</td><td>{{j.status}}</td><td>{{j.progress.stage}}</td>
<td>{{j.progress.epoch}}</td><td>{{j.progress.step}}</td></tr>{% endfor %}</table>{% endif %}
<h2>Monitoring (last window)</h2>{% if not data.series %}<p>none</p>{% else %}<table><tr><th>series</th><th>n</th>
<th>PSI</th><th>low-confidence</th><th>handoff</th><th>thumbs-down</th></tr>{% for s in data.series %}<tr>
<td>{{s.domain}}/{{s.task}}@{{s.version}}</td><td>{{s.n or s.chats or 0}}</td><td>{{num(s.psi)}}</td>
<td>{{num(s.low_confidence_rate)}}</td><td>{{num(s.handoff_rate)}}</td>
<td>{{num(s.thumbs_down_rate)}}</td></tr>{% endfor %}
</table>{% endif %}
{% for name, png in plots %}<img alt="monitoring plots of {{name}}" src="data:image/png;base64,{{png}}">{% endfor %}
</body></html>"""
