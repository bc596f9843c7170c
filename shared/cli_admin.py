"""Admin commands: database migrations and API keys."""

from __future__ import annotations

import click

from shared.auth import ROLES
from shared.settings import get_settings


@click.group()
def db() -> None:
    """Database migrations (SQLite under FINPULSE_HOME, or DATABASE_URL)."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations."""
    from shared.db import current_revisions, upgrade

    url = get_settings().db_url
    upgrade(url, revision)
    click.echo(f"database at {', '.join(current_revisions(url)) or 'base'}")


@db.command("downgrade")
@click.option("--revision", required=True,
              help="Where to go back to: a revision id, BRANCH@-1, or 'base' (drops every table).")
def db_downgrade(revision: str) -> None:
    """Revert migrations (the data of the tables they made is lost; every other command upgrades
    again on its next start)."""
    from shared.db import current_revisions, downgrade

    url = get_settings().db_url
    downgrade(url, revision)
    click.echo(f"database at {', '.join(current_revisions(url)) or 'base'}")


@click.group()
def keys() -> None:
    """Create and revoke API keys (stored hashed; the key is shown once)."""


@keys.command("create")
@click.option("--name", required=True, help="Who holds the key.")
@click.option("--role", type=click.Choice(list(ROLES)), required=True,
              help="analyst: read alerts and monitoring; feed: post news, texts and interactions "
                   "(with FINPULSE_FEED_KEY_REQUIRED); ops: everything.")
def keys_create(name: str, role: str) -> None:
    """Create a key and print it."""
    from shared.auth import audit, create_key
    from shared.cli_ops import cli_actor, cli_database

    db = cli_database()
    key = create_key(db, name, role)
    audit(db, cli_actor(), "keys.create", name, "ok", {"role": role})
    click.echo(key)


@keys.command("revoke")
@click.option("--name", required=True)
def keys_revoke(name: str) -> None:
    """Revoke every key of NAME."""
    from shared.auth import audit, revoke_key
    from shared.cli_ops import cli_actor, cli_database
    from shared.errors import NotFound

    db = cli_database()
    n = revoke_key(db, name)
    if not n:  # a typo must not read as done
        raise NotFound(f"no active key named {name!r} (see `finpulse keys list`)")
    audit(db, cli_actor(), "keys.revoke", name, "ok", {"revoked": n})
    click.echo(f"revoked {n} key(s)")


@keys.command("list")
def keys_list() -> None:
    """List keys (names and roles; the keys themselves are never stored)."""
    from sqlalchemy import select

    from shared.db import Database, upgrade
    from shared.models import ApiKey

    settings = get_settings()
    upgrade(settings.db_url)
    with Database(settings.db_url).session() as s:
        rows = s.scalars(select(ApiKey).order_by(ApiKey.id)).all()
        width = max([20, *(len(k.name) for k in rows)])  # a longer name pushed its row's columns out of line
        click.echo(f"{'name':<{width}} {'role':<8} {'created':<26} revoked")
        for k in rows:
            click.echo(f"{k.name:<{width}} {k.role:<8} {str(k.created_at)[:19]:<26} {str(k.revoked_at or '')[:19]}")


@click.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def audit(limit: int, as_json: bool) -> None:
    """Print the audit log of admin actions, newest first (who, what, when, outcome)."""
    import json

    from shared.db import Database, upgrade
    from shared.lifecycle import audit_entries

    settings = get_settings()
    upgrade(settings.db_url)
    entries = audit_entries(Database(settings.db_url), limit=limit)
    if entries and not as_json:  # a header, as `keys list` and `models list` have
        click.echo(f"{'at (UTC)':<19}  {'actor':<16} {'action':<16} {'outcome':<8} target")
    for e in entries:
        if as_json:
            click.echo(json.dumps(e, default=str))
        else:
            click.echo(f"{e['at'][:19]}  {e['actor']:<16} {e['action']:<16} {e['outcome']:<8} {e['target'] or ''}")
