"""``finpulse recs``: train, recommend and evaluate recommenders from files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from shared.errors import BadInput


def _note(message: str) -> None:
    click.echo(message, err=True)


@click.group()
def recs() -> None:
    """Recommendations: train on interactions, recommend for users, evaluate."""


@recs.command("train")
@click.option("--interactions", "interactions_path", required=True, type=click.Path(dir_okay=False),
              help="TSV/CSV/JSONL with user_id, item_id[, rating, timestamp]; a header line is optional "
                   "(MovieLens u.data has none).")
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--items", "items_path", type=click.Path(dir_okay=False),
              help="Item catalogue with text (JSONL/CSV/TSV, MovieLens items.psv, MIND news.tsv).")
@click.option("--skip-bad", is_flag=True, help="Skip (and count) bad interaction rows instead of failing on the first.")
def train_cmd(interactions_path: str, output: str, items_path: str | None, skip_bad: bool) -> None:
    """Fit the hybrid recommender and write it to OUTPUT (atomically)."""
    from services.recommendations.pipeline import train_from_files

    path, notes = train_from_files(interactions_path, output, items_path, skip_bad=skip_bad, note=_note)
    for line in notes:
        _note(line)
    metrics = json.loads((path / "metrics.json").read_text())
    _note(f"fitted on {metrics['interactions']} interactions, {metrics['users']} users, "
          f"{metrics['items']} items in {metrics['fit_seconds']} s")
    click.echo(str(path))


def resolve_model(ref: str) -> tuple[Path, str | None]:
    """A directory as given, else the registered version ``DOMAIN/TASK@vN`` it names, and that
    version's domain (None for a directory)."""
    from shared.errors import ModelNotFound
    from shared.registry import get_registry

    path = Path(ref)
    if path.exists():
        return path, None
    try:
        mv = get_registry().resolve_version(ref)
        return mv.path, mv.domain
    except ModelNotFound as exc:
        raise ModelNotFound(f"{ref} is neither a model directory nor a registered version ({exc.message})") \
            from None


def read_user_ids(path: str) -> list[str]:
    """One user id per line; blank lines skipped; a ``user_id`` header line is tolerated.

    Read as every input is: a BOM would otherwise make the first id unknown ("\ufeff1"), and a
    byte that is not UTF-8 is named by its line.
    """
    from data_connectors.base import iter_lines

    users = [ln.strip().split("\t")[0] for _, ln in iter_lines(path) if ln.strip()]
    if users and users[0] in ("user_id", "user", "userId"):
        users = users[1:]
    if not users:  # an empty output would pass for "no recommendations" downstream
        raise BadInput(f"{path}: no user ids (one a line)")
    return users


def as_served(model: Any, domain: str) -> list[int]:
    """Make ``model`` answer as the service does: add the interactions posted to it since the fit
    (the database of the settings), so the CLI never recommends what a user has since posted, and
    return the indices of the items retired there, which no answer names (the CLI named them);
    without a readable database, says so and goes on with the model alone."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.recommendations.models import retired_ids
    from services.recommendations.recommenders.data import is_positive
    from services.recommendations.retraining import stored_since
    from shared.db import Database
    from shared.settings import get_settings

    db = Database(get_settings().db_url)
    try:
        events, _ = stored_since(db, domain, int(model.config.get("db_max_id") or 0))
        retired = retired_ids(db, domain)
    except SQLAlchemyError as exc:
        _note(f"stored interactions and retired items not read ({str(exc).splitlines()[0]}); the model alone")
        return []
    finally:
        db.dispose()
    model.add_many((e.user_id, e.item_id, e.timestamp, is_positive(e.rating, e.event)) for e in events)
    if events:
        _note(f"{len(events)} interactions posted to the service since the fit count as seen")
    return [model.item_index[i] for i in retired if i in model.item_index]


@recs.command("recommend")
@click.option("--model", "model_dir", required=True, metavar="DIR|REF",
              help="Model directory written by `recs train`, or a registry REF such as "
                   "default/recommendations@production.")
@click.option("--users", "users_path", required=True, type=click.Path(dir_okay=False),
              help="File with one user id per line.")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="JSONL to write.")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000), help="Items per user.")
def recommend_cmd(model_dir: str, users_path: str, output: str, k: int) -> None:
    """Top-K unseen items for each user id (unknown users get popular items)."""
    from services.recommendations.pipeline import TrainedModel
    from shared.io import check_output_outside, check_writable, write_jsonl

    path, domain = resolve_model(model_dir)
    check_output_outside(output, path, "model")
    check_writable(output, [users_path])
    users = read_user_ids(users_path)  # a bad file fails before the model loads
    model = TrainedModel(path)
    # a registered version: what users posted to the service counts too, and what ops retired there
    exclude = as_served(model, domain) if domain is not None else []
    recs_ = model.recommend(users, k, exclude=exclude)
    unknown = sum(1 for u in users if not model.has_evidence(u))
    n = write_jsonl(output, ({"user_id": u, "items": items} for u, items in zip(users, recs_, strict=True)))
    if unknown:
        _note(f"{unknown} unknown users got popularity results")
    _note(f"wrote {n} rows to {output}")  # stderr: --output /dev/stdout must stay pure JSONL


@recs.command("eval")
@click.option("--interactions", "interactions_path", required=True, type=click.Path(dir_okay=False))
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also run implicit's default ALS on the same split.")
@click.option("--skip-bad", is_flag=True, help="Skip (and count) bad interaction rows instead of failing on the first.")
def eval_cmd(interactions_path: str, k: int, baseline: bool, skip_bad: bool) -> None:
    """Leave-last-out evaluation, full ranking: HR@K, NDCG@K, coverage (JSON on stdout).

    A bad row fails it, as it fails ``recs train``: figures from a silently trimmed file mislead.
    """
    from data_connectors.interactions import format_skips, read_interactions
    from services.recommendations.evaluation import evaluate, evaluate_implicit_als
    from services.recommendations.pipeline import RecsConfig, build_hybrid
    from services.recommendations.recommenders.data import Interactions

    rows, report = read_interactions(interactions_path, skip_bad=skip_bad)
    for line in format_skips(report, interactions_path):
        _note(line)
    data = Interactions.from_records(rows)
    config = RecsConfig()
    result = {"finpulse": evaluate(data, lambda: build_hybrid(config, data.n_items), k)}
    if baseline:
        result["implicit_als"] = evaluate_implicit_als(data, k)
        for metric in ("hr", "ndcg"):
            base = result["implicit_als"][metric]
            result[f"{metric}_ratio"] = result["finpulse"][metric] / base if base else None
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
