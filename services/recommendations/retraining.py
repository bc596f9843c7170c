"""Recommender retrain jobs: train → register → gate → promote, reported into the job row.

One way to retrain, whoever asks (``POST /v1/admin/retrain``, the six-hourly beat): with
``data`` the recommender is fitted on that interactions file; without, production is
refitted on its own training events plus every interaction stored since (what the
service has been folding in). The item catalogue (content features) is the request's
``items``, else production's: the file its lineage names for ``data``, its stored copy
for a refit. Either way the result is a new registry version, gated
against production on its offline NDCG@10 and promoted if it passes. Imports neither
Flask nor Celery: the task and the views hand it ids and parameters.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from data_connectors.interactions import (
    Interaction,
    Item,
    format_skips,
    read_interactions,
    read_items,
    textless_note,
)
from services.recommendations.pipeline import (
    RecsConfig,
    load_catalogue,
    load_config,
    load_interactions,
    train,
)
from services.recommendations.versions import TASK, register, registry
from shared.db import Database
from shared.errors import BadInput, Conflict
from shared.lifecycle import gate_and_promote, job_stage, run_job, update_job
from shared.registry import ModelVersion

# Retrain request fields that only text classifiers use: refused rather than ignored.
UNUSED_FIELDS = ("dev", "eval", "method", "epochs", "max_length", "time_budget_min")
CONFIG_FIELDS = {f.name for f in fields(RecsConfig)}
# Limits of the machine doing the fit, not choices of the model: a refit takes today's default
# (or the request's option), not the one production was fitted under.
RESOURCE_FIELDS = ("max_dense_items",)
MIN_COVERAGE = 0.1  # share of a retrain data's item ids its catalogue must know, else the job log warns


def recs_config(params: dict[str, Any], base: RecsConfig | None = None) -> RecsConfig:
    """``base`` (or the defaults) with the request's ``seed`` and ``options`` applied; resource
    limits always start from the defaults."""
    overrides = {k: v for k, v in (params.get("options") or {}).items() if k != "skip_bad"}
    unknown = sorted(set(overrides) - CONFIG_FIELDS)
    if unknown:
        raise BadInput(f"unknown recommender option(s) {unknown}; known: {sorted(CONFIG_FIELDS)}")
    if params.get("seed") is not None:
        overrides["seed"] = params["seed"]
    defaults = RecsConfig()
    values = {**vars(base or defaults), **{k: getattr(defaults, k) for k in RESOURCE_FIELDS}, **overrides}
    return RecsConfig(**values)  # a bad value is a BadInput naming the option and its range


def skip_bad_option(params: dict[str, Any]) -> bool:
    """``options.skip_bad``: true or false only (``"false"``, a truthy text, skipped the bad rows)."""
    value = (params.get("options") or {}).get("skip_bad", False)
    if not isinstance(value, bool):
        raise BadInput(f"option skip_bad must be true or false, got {value!r}")
    return value


def check_request(params: dict[str, Any]) -> None:
    """Reject a retrain the job would fail on, before it is queued: options, then the data file."""
    unused = [k for k in UNUSED_FIELDS if params.get(k) is not None]
    if unused:
        raise BadInput(f"recommendations retraining does not use {', '.join(unused)}; "
                       "send data, items, seed, options (recommender settings), tolerance, auto_promote, force, reason")
    recs_config(params)
    skip_bad = skip_bad_option(params)
    if params.get("data"):
        read_interactions(params["data"], skip_bad=skip_bad)  # raises BadRow naming file and line
    if params.get("items"):
        read_items(params["items"])  # a missing file or one without a usable item is a BadInput


def stored_since(db: Database | None, domain: str, after_id: int) -> tuple[list[Interaction], int]:
    """Interactions posted to the service after row ``after_id``, and the newest row id."""
    if db is None:
        return [], after_id
    from services.recommendations.models import RecsInteraction, restarted_below

    with db.session() as s:
        if restarted_below(s, after_id):  # a table made again, or another database: every row is new
            after_id = 0
        newest = int(s.execute(select(func.max(RecsInteraction.id))
                               .where(RecsInteraction.domain == domain)).scalar() or 0)
        rows = s.execute(select(RecsInteraction).where(RecsInteraction.domain == domain,
                                                       RecsInteraction.id > after_id,
                                                       RecsInteraction.id <= newest)).scalars()
        return [Interaction(r.user_id, r.item_id, r.rating, r.ts, r.event) for r in rows], newest


def drop_retired(db: Database | None, domain: str, event_lists: list[list[Interaction]],
                 items: list[Item] | None) -> tuple[list[list[Interaction]], list[Item] | None, list[str]]:
    """``event_lists`` and ``items`` without the domain's retired items (``DELETE /v1/items/{id}``),
    and the job log's line about them: a retired item must not come back with the next fit."""
    from services.recommendations.models import retired_ids

    retired = retired_ids(db, domain)
    if not retired:
        return event_lists, items, []
    kept = [[e for e in events if e.item_id not in retired] for events in event_lists]
    dropped = sum(len(a) - len(b) for a, b in zip(event_lists, kept, strict=True))
    if items is not None:
        items = [i for i in items if i.item_id not in retired]
    return kept, items, [f"left out {len(retired)} retired item(s) ({dropped} events)"]


def refit_production(settings: Any, db: Database | None, domain: str, params: dict[str, Any],
                     output: Path) -> tuple[Path, list[str]]:
    """Production's own events plus every stored one since it was trained, fitted into ``output``
    with the request's ``items`` or production's catalogue."""
    prod = registry(settings).production(domain, TASK)
    if prod is None:
        raise Conflict(f"{domain}/{TASK} has no production version to refit; retrain with data")
    data = load_interactions(prod.path)
    events = [Interaction(data.user_ids[u], data.item_ids[i], float(r), int(t))
              for u, i, r, t in zip(data.users, data.items, data.ratings, data.times, strict=True)]
    lineage = prod.train_config()
    already = int(lineage.get("db_max_id") or 0)  # stored rows up to here are in its events
    new, newest = stored_since(db, domain, already)
    if params.get("items"):
        items, source, notes = request_items(params["items"])
    else:  # production's stored copy; its lineage goes on naming the file it came from
        items, notes = load_catalogue(prod.path), []
        source = {k: lineage[k] for k in ("items", "items_sha256") if k in lineage}
    (events, new), items, retired = drop_retired(db, domain, [events, new], items)
    path = train(events + new, output, items=items, config=recs_config(params, load_config(prod.path)),
                 lineage={"retrained_from": prod.ref, "db_max_id": newest, **source})
    return path, [f"refitted {prod.ref}'s {len(events)} events plus {len(new)} stored interactions", *notes,
                  *retired]


def request_items(path: str | Path) -> tuple[list[Item], dict[str, str], list[str]]:
    """The catalogue at ``path``, its lineage entries and the job log's lines about it."""
    from data_connectors.base import file_sha256

    items, report = read_items(path)
    return (items, {"items": str(path), "items_sha256": file_sha256(path)},
            [f"items: {len(items)} from {path}", *format_skips(report, path),
             *textless_note(items, path)])


def production_items(settings: Any, domain: str) -> tuple[list[Item] | None, dict[str, str], list[str]]:
    """The catalogue file production was trained with, when its lineage names one that is still
    usable: new data alone would otherwise drop the content features production has."""
    prod = registry(settings).production(domain, TASK)
    source = prod.train_config().get("items") if prod is not None else None
    if not source:
        why = f"{prod.ref} was trained without a catalogue" if prod is not None else "no production version"
        return None, {}, [f"items: none in the request and {why}; no content features (send \"items\" to add them)"]
    try:
        items, lineage, notes = request_items(source)
    except BadInput as exc:  # moved or rewritten since: train on, saying so
        return None, {}, [f"items: {prod.ref}'s catalogue is not usable any more ({exc.message}); "
                          "no content features (send \"items\")"]
    return items, lineage, [f"{notes[0]} (production {prod.ref}'s catalogue, reused)", *notes[1:]]


def catalogue_coverage(rows: list[Interaction], items: list[Item] | None, source: str) -> list[str]:
    """The job log's warning when the catalogue knows under :data:`MIN_COVERAGE` of the data's item ids:
    production's reused for another dataset (MovieLens data on a MIND model) gave no item content
    features, silently."""
    wanted = {r.item_id for r in rows}
    if items is None or not wanted:
        return []
    known = len(wanted & {i.item_id for i in items})
    if known >= MIN_COVERAGE * len(wanted):
        return []
    return [f"warning: the catalogue ({source}) has {known} of the data's {len(wanted)} item ids "
            f"({known / len(wanted):.1%}): almost no content features; send \"items\" for this data"]


def train_from_request(settings: Any, domain: str, params: dict[str, Any], output: Path,
                       db: Database | None = None) -> tuple[Path, list[str]]:
    """Fit on the request's interactions file (bad rows skipped only with ``options.skip_bad``)
    and its ``items``, else production's catalogue file."""
    from data_connectors.base import file_sha256

    source = params["data"]
    rows, report = read_interactions(source, skip_bad=skip_bad_option(params))
    items, item_lineage, item_notes = (request_items(params["items"]) if params.get("items")
                                       else production_items(settings, domain))
    coverage = catalogue_coverage(rows, items, params.get("items") or "production's, reused")
    (rows,), items, retired = drop_retired(db, domain, [rows], items)
    path = train(rows, output, items=items, config=recs_config(params),
                 lineage={"interactions": str(source), "interactions_sha256": file_sha256(source), **item_lineage})
    notes = "; ".join(format_skips(report, source))
    return path, [f"trained on {len(rows)} interactions from {source}" + (f" ({notes})" if notes else ""),
                  *item_notes, *coverage, *retired]


def retrain(settings: Any, db: Database, job_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The job's work: a candidate version, gated and (if it passes) promoted."""
    domain = params["domain"]
    source = params.get("data") or "production's events plus stored interactions"
    job_stage(db, job_id, "training", f"training {domain}/{TASK} on {source}")
    reg = registry(settings)
    reg.task_dir(domain, TASK).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=reg.task_dir(domain, TASK), prefix=".train-") as tmp:
        output = Path(tmp) / "model"
        if params.get("data"):
            path, notes = train_from_request(settings, domain, params, output, db)
        else:
            path, notes = refit_production(settings, db, domain, params, output)
        for line in notes:
            update_job(db, job_id, log_line=line)
        job_stage(db, job_id, "evaluating", "offline evaluation (leave-last-out) for the gate")
        mv: ModelVersion = register(settings, domain, path, before_move=lambda: job_stage(
            db, job_id, "registering", "evaluated; registering the candidate"))  # cancelled meanwhile: nothing
    update_job(db, job_id, progress={"metrics": {k: v for k, v in mv.metrics().items()
                                                 if k.startswith(("hr@", "ndcg@"))}})
    return gate_and_promote(settings, db, job_id, mv, stale_refit(settings, db, job_id, mv, params))


def stale_refit(settings: Any, db: Database, job_id: str, mv: ModelVersion, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``auto_promote`` off when ``mv`` refitted a version that is no longer production.

    A refit holds the events of the production it started from; a rollback, a promotion or another
    retrain that moved production while it ran was silently undone when it passed the gate (the beat's
    refit of a version just rolled back put that version's events back in service). It is still
    registered and gated, for a person to promote by hand."""
    base = None if params.get("data") else mv.train_config().get("retrained_from")
    current = registry(settings).production(mv.domain, mv.task)
    if not base or (current is not None and current.ref == base):
        return params
    now = current.ref if current is not None else "none"
    update_job(db, job_id, log_line=f"not promoting: production moved from {base} to {now} while this refit of "
                                    f"{base} ran; refit again to build on {now}, or promote {mv.ref} by hand")
    return {**params, "auto_promote": False}


def run_retrain_job(job_id: str, settings: Any, db: Database | None = None) -> dict[str, Any]:
    """Run one retrain job to its end; the job row says how it went."""
    own = db is None
    db = db or Database(settings.db_url)
    try:
        return run_job(db, job_id, lambda params: retrain(settings, db, job_id, params))
    finally:
        if own:
            db.dispose()
