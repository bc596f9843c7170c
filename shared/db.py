"""SQLAlchemy engine, sessions and Alembic migrations (SQLite by default, PostgreSQL by URL).

Tables live with their owners (``shared/models.py``, ``services/<name>/models.py``), all on
one :class:`Base`; each owner keeps its Alembic revisions in its own ``migrations/versions``
folder as a separate branch, and :func:`upgrade` applies every branch (``heads``).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from shared.errors import BadInput, ConfigError, Unavailable
from shared.io import file_lock
from shared.settings import redact

if TYPE_CHECKING:
    from flask import Flask

    from shared.settings import Settings

# Packages whose ``models`` module and ``migrations/versions`` folder take part.
MODEL_PACKAGES = ("shared", "services.sentiment", "services.chatbot", "services.recommendations")


class Base(DeclarativeBase):
    """Declarative base of every FinPulse table."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite ``url``; None for another database or an in-memory one."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except SQLAlchemyError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout for multi-process use."""
    try:
        if url.startswith("sqlite"):
            path = sqlite_file(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if not make_url(url).database:  # libpq would fall back to a database named after the OS user
            raise ConfigError(f"DATABASE_URL {redact(url)} names no database: end it with /DBNAME")
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                             connect_args={"connect_timeout": 5})
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigError(f"DATABASE_URL {url!r} is not usable: {exc}") from None


# PostgreSQL's deadlock_detected and serialization_failure: one of two racing transactions is
# chosen to fail; run again, it succeeds. A conflict to retry, not an outage.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def lost_a_race(exc: BaseException) -> bool:
    """Whether ``exc`` ended a transaction that a concurrent one won: a unique key it stored
    first (IntegrityError) or a deadlock PostgreSQL broke by failing this side."""
    return isinstance(exc, IntegrityError) or (
        isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES)


def import_models() -> None:
    """Import every ``models`` module so ``Base.metadata`` knows all tables."""
    for pkg in MODEL_PACKAGES:
        with contextlib.suppress(ModuleNotFoundError):
            import_module(f"{pkg}.models")


class Database:
    """One engine and session factory per process."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commit on success, roll back on error."""
        sess = self.sessionmaker()
        try:
            yield sess
            sess.commit()
        except BaseException:
            sess.rollback()
            raise
        finally:
            sess.close()

    def ping(self) -> None:
        """Raise :class:`Unavailable` with the reason when the database does not answer."""
        self.revisions()

    def ready(self) -> None:
        """Readiness: the database answers with this FinPulse's schema (after a ``db downgrade``
        readiness said ready while every query failed with a 500)."""
        current, wanted = self.revisions(), schema_heads()
        if current != wanted:
            at = (f"database schema at {', '.join(sorted(current)) or 'nothing'}, "
                  f"this FinPulse needs {', '.join(sorted(wanted))}")
            newer = sorted(current - known_revisions())
            if newer:  # `db upgrade` cannot help: it fails on the revision it does not know
                raise Unavailable(f"{at}; {NEWER_SCHEMA.format(newer=', '.join(newer))}")
            raise Unavailable(f"{at}: run `finpulse db upgrade`")
        self.check_writable()

    def check_writable(self) -> None:
        """Raise :class:`Unavailable` when the database answers reads but refuses writes (a
        PostgreSQL replica or read-only transaction default, a read-only SQLite file or mount):
        readiness said ready while every ingest failed. The probe rewrites the schema row in a
        transaction; a write lock held elsewhere is busy, not refusing. On PostgreSQL the probe is
        rolled back (the refusal comes at the statement); SQLite's is committed, a no-op change,
        since a rolled-back one never reaches the file: a file made unwritable while the service
        ran (a filesystem remounted read-only) was not seen."""
        try:
            with self.engine.connect() as conn:  # leaving the block uncommitted rolls the probe back
                conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
                if self.engine.dialect.name == "sqlite":
                    conn.commit()
        except (SQLAlchemyError, OSError) as exc:
            reason = _reason(exc)
            if "locked" not in reason:  # SQLite's "database is locked": another writer, after the busy timeout
                raise Unavailable(f"database refuses writes: {reason}") from None

    def revisions(self) -> set[str]:
        """The migration revisions stored in the database (empty before the first upgrade)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                try:
                    return {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
                except SQLAlchemyError:
                    return set()
        except (SQLAlchemyError, OSError) as exc:
            raise Unavailable(f"database unreachable: {_reason(exc)}") from None

    def dispose(self) -> None:
        self.engine.dispose()


def _reason(exc: BaseException) -> str:
    """The driver's first line of a database error, without SQLAlchemy's wrapping."""
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


def init_app(app: Flask, settings: Settings) -> Database:
    """Attach a :class:`Database` to ``app`` (``app.extensions['db']``)."""
    db = Database(settings.db_url)
    app.extensions["db"] = db
    return db


def get_db(app: Flask | None = None) -> Database:
    from flask import current_app

    return (app or current_app).extensions["db"]


# -- migrations ---------------------------------------------------------------
# Alembic's ``context`` and ``op`` are module-level proxies: two migrations run by threads of
# one process (retrain jobs in a Celery worker) swap each other's connection mid-run, which
# crashed the interpreter inside SQLite. One migration at a time per process.
_MIGRATION_LOCK = threading.RLock()


@contextlib.contextmanager
def _migrating(url: str) -> Iterator[None]:
    """One migration at a time: per process (above) and, on SQLite, across processes: two
    commands started together on a fresh FINPULSE_HOME each created the same tables ("table
    ... already exists"). PostgreSQL's take an advisory lock instead (``migrations/env.py``)."""
    with _MIGRATION_LOCK, contextlib.ExitStack() as stack:
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # a read-only folder: nothing migrates there, reads need no lock
                stack.enter_context(file_lock(path.with_name(f"{path.name}.migrate-lock")))
        yield


def _version_locations() -> list[str]:
    locations = []
    for pkg in MODEL_PACKAGES:
        try:
            mod = import_module(pkg)
        except ModuleNotFoundError:
            continue
        for base in getattr(mod, "__path__", []):  # a package still without __init__ has no __file__
            folder = Path(base) / "migrations" / "versions"
            if folder.is_dir():
                locations.append(str(folder))
    return locations


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("version_locations", " ".join(_version_locations()))
    cfg.set_main_option("path_separator", "space")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# PostgreSQL's insufficient_privilege: a role that may not create (or change) the tables
INSUFFICIENT_PRIVILEGE = "42501"


@contextlib.contextmanager
def _database_named(url: str) -> Iterator[None]:
    """A database that cannot be reached, or that refuses the role the migration's DDL, as one line
    naming the database (never the password): ``db downgrade`` printed SQLAlchemy's
    "OperationalError: (psycopg.OperationalError) ..." and both commands a role's refusal as
    "ProgrammingError: (psycopg.errors.InsufficientPrivilege) ..."."""
    try:
        yield
    except DBAPIError as exc:
        denied = getattr(exc.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE
        if not (isinstance(exc, OperationalError) or denied):
            raise
        where, reason = redact(url).split("@")[-1], _reason(exc)
        if denied:
            reason += " (run the migrations as a role that owns the schema and its tables)"
        raise Unavailable(f"cannot migrate database {where}: {reason}") from None


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply migrations up to ``revision`` (all branches by default)."""
    from alembic import command

    with _database_named(url), _migrating(url), _revision_named(revision, url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    with _database_named(url), _migrating(url), _revision_named(revision, url):
        command.downgrade(alembic_config(url), revision)


NEWER_SCHEMA = ("{newer} is a migration this FinPulse does not have (a newer release ran it): run that release, "
                "or first its `finpulse db downgrade` to this one's revisions")


def _newer_revisions(url: str) -> list[str]:
    """The revisions stored in the database at ``url`` that no migration of this code names."""
    try:
        return sorted(set(current_revisions(url)) - known_revisions())
    except Exception:  # noqa: BLE001 - only a better message is lost
        return []


@contextlib.contextmanager
def _revision_named(revision: str, url: str | None = None) -> Iterator[None]:
    """Alembic's refusal of a revision as one line naming what it takes (it printed
    "CommandError: Can't locate revision identified by 'x'"); a database a newer release migrated
    is named as such (``db upgrade`` blamed its own argument: "revision 'heads': Can't locate
    revision identified by 'recs_0003'; give a revision id ...")."""
    from alembic.util import CommandError

    try:
        yield
    except (CommandError, AssertionError) as exc:  # alembic asserts on BRANCH@-N from a branch not applied
        newer = _newer_revisions(url) if url is not None else []
        if newer:
            raise BadInput(f"cannot migrate the database: {NEWER_SCHEMA.format(newer=', '.join(newer))}") from None
        reason = str(exc).splitlines()[0] if str(exc) else "the database has no such migration to go back from"
        heads = ", ".join(sorted(schema_heads()))
        raise BadInput(f"revision {revision!r}: {reason}; give a revision id "
                       f"(the newest: {heads}), BRANCH@-N (e.g. chatbot@-1) or base") from None


@functools.cache
def schema_heads() -> frozenset[str]:
    """The migration heads this code expects (one per branch), read once per process."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every migration revision this code has, in any branch."""
    from alembic.script import ScriptDirectory

    return frozenset(rev.revision for rev in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions())


def current_revisions(url: str) -> list[str]:
    """The revisions the database at ``url`` is at (one per migration branch), sorted."""
    db = Database(url)
    try:
        return sorted(db.revisions())
    finally:
        db.dispose()


def utc_iso(ts: datetime | None) -> str | None:
    """ISO-8601 with its offset: a DateTime column comes back naive from SQLite, and naive
    here always means UTC (PostgreSQL hands back the same instant with +00:00)."""
    if ts is None:
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).isoformat()
