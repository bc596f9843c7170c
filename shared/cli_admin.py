"""Admin commands: database migrations and API keys."""

from __future__ import annotations

import click

from shared.settings import get_settings


@click.group()
def db() -> None:
    """Database migrations (SQLite under FINPULSE_HOME, or DATABASE_URL)."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations."""
    from shared.db import upgrade

    upgrade(get_settings().db_url, revision)
    click.echo("database up to date")


@db.command("downgrade")
@click.option("--revision", default="base", show_default=True)
def db_downgrade(revision: str) -> None:
    """Revert migrations."""
    from shared.db import downgrade

    downgrade(get_settings().db_url, revision)
    click.echo(f"database at {revision}")


@click.group()
def keys() -> None:
    """Create and revoke API keys (stored hashed; the key is shown once)."""


@keys.command("create")
@click.option("--name", required=True, help="Who holds the key.")
@click.option("--role", type=click.Choice(["analyst", "ops"]), required=True)
def keys_create(name: str, role: str) -> None:
    """Create a key and print it."""
    from shared.auth import create_key
    from shared.db import Database, upgrade

    settings = get_settings()
    upgrade(settings.db_url)
    click.echo(create_key(Database(settings.db_url), name, role))


@keys.command("revoke")
@click.option("--name", required=True)
def keys_revoke(name: str) -> None:
    """Revoke every key of NAME."""
    from shared.auth import revoke_key
    from shared.db import Database

    n = revoke_key(Database(get_settings().db_url), name)
    click.echo(f"revoked {n} key(s)")
