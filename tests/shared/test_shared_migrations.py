"""Alembic migrations up and down on SQLite and PostgreSQL (every branch, ``heads``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

SHARED_TABLES = {"api_keys", "audit_log", "model_versions", "jobs"}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    from shared.db import Database, current_revisions, downgrade, upgrade
    from shared.errors import Unavailable

    assert current_revisions(url) == []
    upgrade(url)
    heads = current_revisions(url)
    assert len(heads) >= 4 and all(isinstance(h, str) for h in heads)  # shared + one per service
    tables = _tables(url)
    assert tables >= SHARED_TABLES
    assert "alembic_version" in tables
    db = Database(url)
    db.ping()
    db.dispose()
    upgrade(url)  # idempotent
    downgrade(url, "base")
    assert _tables(url) - {"alembic_version"} == set() and current_revisions(url) == []
    db = Database(url)  # readiness reports the schema, not "ready" while every query fails
    db.ping()  # it answers...
    with pytest.raises(Unavailable, match="run `finpulse db upgrade`"):
        db.ready()  # ...with no schema
    db.dispose()
    upgrade(url)
    assert _tables(url) >= SHARED_TABLES


def test_migrations_sqlite(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'fp.db'}")


@pytest.mark.postgres
def test_migrations_postgres(postgres_url: str):
    """Runs in a throw-away database, so other tests' tables are never touched."""
    admin = postgres_url
    name = f"fp_mig_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _round_trip(admin.rsplit("/", 1)[0] + f"/{name}")
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def test_unreachable_database_is_one_line():
    from shared.db import Database
    from shared.errors import Unavailable

    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(Unavailable) as info:
        db.ping()
    assert "\n" not in info.value.message and "database unreachable" in info.value.message


@pytest.mark.parametrize("revision", ["heads", "base"])
def test_migrating_an_unreachable_database_is_one_line_either_way(revision):
    """``db upgrade`` said "cannot migrate database HOST/DB: ..."; ``db downgrade`` printed SQLAlchemy's
    "OperationalError: (psycopg.OperationalError) ...". Both say the first, without the password."""
    from shared.db import downgrade, upgrade
    from shared.errors import Unavailable

    url = "postgresql+psycopg://nobody:s3cret@127.0.0.1:1/none"
    with pytest.raises(Unavailable) as info:
        upgrade(url) if revision == "heads" else downgrade(url, revision)
    message = info.value.message
    assert message.startswith("cannot migrate database 127.0.0.1:1/none: "), message
    assert "\n" not in message and "s3cret" not in message and "OperationalError" not in message


@pytest.mark.postgres
def test_a_role_refused_the_tables_is_one_line_naming_the_database(postgres_url: str):
    """A role without CREATE on the schema (PostgreSQL 15's default for non-owners) got
    "ProgrammingError: (psycopg.errors.InsufficientPrivilege) ..." from both commands."""
    from shared.db import downgrade, upgrade
    from shared.errors import Unavailable

    name = f"fp_ro_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        conn.execute(text(f'CREATE ROLE "{name}" LOGIN'))
    base = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    owner = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as conn:
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        as_role = base.replace("://postgres@", f"://{name}@", 1)
        assert as_role != base
        for migrate in (lambda: upgrade(as_role), lambda: downgrade(as_role, "base")):
            with pytest.raises(Unavailable) as info:
                migrate()
            message = info.value.message
            assert message.startswith(f"cannot migrate database {base.split('@')[-1]}: permission denied"), message
            assert "\n" not in message and "ProgrammingError" not in message
            upgrade(base)  # as the owner: the next pass finds tables to go down from
    finally:
        owner.dispose()
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        engine.dispose()


@pytest.mark.parametrize("url", ["postgresql://", "postgresql://postgres:pw@127.0.0.1:5432"])
def test_a_postgres_url_without_a_database_is_refused(url):
    """libpq fell back to the database named after the OS user: a suite ran on the shared `root`."""
    from shared.db import Database
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="names no database") as info:
        Database(url)
    assert "pw" not in info.value.message


CONCURRENT_UPGRADES = """
import sys, threading
from shared.db import current_revisions, schema_heads, upgrade
failures = []
for n in range(6):
    url = f"sqlite:///{sys.argv[1]}/fp{n}.db"
    def run():
        try:
            upgrade(url)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(current_revisions(url)) == schema_heads(), current_revisions(url)
print(failures)
"""


def test_threads_of_one_process_migrate_one_at_a_time(tmp_path):
    """Two retrain jobs in one worker each bring the schema up to date; Alembic's module-level
    ``op`` proxy, shared by threads, crashed the interpreter (SIGSEGV inside SQLite). In a
    child process, so a crash fails this test instead of ending the run."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", CONCURRENT_UPGRADES, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def _fresh_postgres(postgres_url: str) -> tuple[str, Any]:
    """A throw-away database's URL and a callable that drops it."""
    name = f"fp_mig_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return postgres_url.rsplit("/", 1)[0] + f"/{name}", drop


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_processes_migrate_a_fresh_database_one_at_a_time(backend, tmp_path, request):
    """Commands started together on a fresh FINPULSE_HOME (or a fresh PostgreSQL database)
    each created the same tables: "table news_articles already exists", a failed command."""
    import subprocess
    import sys
    import time

    from shared.db import current_revisions, schema_heads

    url, drop = (f"sqlite:///{tmp_path / 'fp.db'}", None) if backend == "sqlite" else \
        _fresh_postgres(request.getfixturevalue("postgres_url"))
    try:
        go = tmp_path / "go"  # the children import first, then start migrating together
        child = (f"import os, time\nfrom shared.db import upgrade\nwhile not os.path.exists({str(go)!r}): "
                 f"time.sleep(0.01)\nupgrade({url!r})")
        procs = [subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        time.sleep(3)
        go.touch()
        errors = [p.communicate(timeout=300)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [e.strip().splitlines()[-1:] for e in errors]
        assert set(current_revisions(url)) == schema_heads()
    finally:
        if drop:
            drop()


def _refuse_writes(backend: str, url: str) -> None:
    """Make ``url``'s database answer reads and refuse writes, as a replica or read-only file does."""
    if backend == "postgres":
        engine = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET default_transaction_read_only = on'))
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_readiness_fails_while_the_database_refuses_writes(backend, tmp_path, request):
    """/readyz said ready while every write to a read-only database failed with a 500."""
    from sqlalchemy import event

    from shared.db import Database, current_revisions, upgrade
    from shared.errors import Unavailable

    if backend == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'fp.db'}", lambda: None
    else:
        url, drop = _fresh_postgres(request.getfixturevalue("postgres_url"))
    try:
        upgrade(url)
        heads = current_revisions(url)
        db = Database(url)
        db.ready()  # writable: ready, and the probe changed nothing
        db.dispose()
        assert current_revisions(url) == heads
        _refuse_writes(backend, url)
        db = Database(url)
        if backend == "sqlite":  # root writes into a read-only file, so the connection refuses instead
            event.listen(db.engine, "connect", lambda conn, _rec: conn.execute("PRAGMA query_only=ON"))
        db.ping()  # it still answers reads...
        with pytest.raises(Unavailable, match="database refuses writes: .*read.?only"):
            db.ready()  # ...but is not ready
        db.dispose()
        assert current_revisions(url) == heads
    finally:
        drop()


@pytest.mark.postgres
def test_a_write_to_a_read_only_postgres_is_a_503(postgres_url: str, settings) -> None:
    """psycopg raises a read-only transaction as InternalError, which left as a 500 "internal error"."""
    from shared.db import Database, upgrade
    from shared.web import create_service_app

    url, drop = _fresh_postgres(postgres_url)
    try:
        upgrade(url)
        _refuse_writes("postgres", url)
        db = Database(url)
        app = create_service_app("testsvc", settings)

        @app.post("/v1/write")
        def write() -> Any:
            with db.session() as sess:
                sess.execute(text("UPDATE alembic_version SET version_num = version_num"))
            return {"ok": True}

        resp = app.test_client().post("/v1/write")
        assert resp.status_code == 503, resp.data[:300]
        assert resp.get_json()["error"]["code"] == "unavailable"
        db.dispose()
    finally:
        drop()


def test_sqlite_readiness_sees_a_file_made_unwritable_while_running(tmp_path) -> None:
    """A rolled-back probe never reached the file: /readyz said ready while every write was a 503."""
    import shutil
    import sqlite3
    import subprocess

    from shared.db import Database, upgrade
    from shared.errors import Unavailable

    path = tmp_path / "fp.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    db = Database(url)
    other = sqlite3.connect(path)
    before = other.execute("PRAGMA data_version").fetchone()[0]
    db.ready()
    assert other.execute("PRAGMA data_version").fetchone()[0] != before  # the probe reached the file
    other.close()
    files = [p for p in (path, tmp_path / "fp.db-wal") if p.exists()]
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", *map(str, files)], capture_output=True).returncode:
        db.dispose()
        pytest.skip("chattr +i is not available here (root writes through chmod), so the file cannot be "
                    "made unwritable under a running service; the data_version check above ran")
    try:
        with pytest.raises(Unavailable, match="database refuses writes"):
            db.ready()
    finally:
        subprocess.run([chattr, "-i", *map(str, files)], check=True)
        db.dispose()


def test_a_database_a_newer_release_migrated_is_named_as_such(any_db_url):
    """After a newer release migrated the database and the code went back a release, `db upgrade` said
    "revision 'heads': Can't locate revision identified by 'recs_0099'; give a revision id ..." (blaming
    its own argument) and /readyz said to run that same failing `finpulse db upgrade`."""
    from shared.db import Database, downgrade, upgrade
    from shared.errors import BadInput, Unavailable

    engine = create_engine(any_db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'recs_0099' WHERE version_num LIKE 'recs_%'"))
    engine.dispose()
    newer = "recs_0099 is a migration this FinPulse does not have (a newer release ran it)"
    for migrate in (lambda: upgrade(any_db_url), lambda: downgrade(any_db_url, "recommendations@-1")):
        with pytest.raises(BadInput) as info:
            migrate()
        assert newer in info.value.message and "give a revision id" not in info.value.message
    db = Database(any_db_url)
    try:
        with pytest.raises(Unavailable) as info:
            db.ready()
        assert newer in info.value.message and "run `finpulse db upgrade`" not in info.value.message
    finally:
        db.dispose()
