"""``finpulse prune``: the registry of kinds, jobs and audit retention, the CLI's output and errors, the beat."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from shared.db import Database, upgrade
from shared.models import AuditLog, Job
from shared.retention import DEFAULT_KINDS, KINDS, configured_days, kind, plan, prune

NOW = datetime(2025, 6, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=400)


def test_every_kind_resolves_to_its_owner_and_lists_its_tables() -> None:
    for name in KINDS:
        assert kind(name).name == name and kind(name).tables
    assert "audit" in KINDS and "audit" not in DEFAULT_KINDS  # the audit log goes only when named


def test_retention_is_off_by_default(settings) -> None:
    assert set(configured_days(settings).values()) == {0}
    assert plan(settings) == {}


def test_finished_jobs_go_running_ones_stay_and_audit_only_when_asked(any_db_url, settings) -> None:
    db = Database(any_db_url)
    with db.session() as s:
        s.add_all([Job(id="done", kind="retrain:news/sentiment", status="succeeded"),
                   Job(id="running", kind="retrain:news/sentiment", status="running"),
                   Job(id="recent", kind="retrain:news/sentiment", status="failed"),
                   AuditLog(actor="cli", action="keys.create", target="x", outcome="ok", at=OLD),
                   AuditLog(actor="cli", action="keys.create", target="y", outcome="ok", at=NOW)])
    with db.session() as s:
        s.execute(update(Job).where(Job.id.in_(["done", "running"])).values(updated_at=OLD))
        s.execute(update(Job).where(Job.id == "recent").values(updated_at=NOW))

    assert prune(db, settings, {"jobs": 30}, now=NOW) == [("jobs", 30, "jobs", 1), ("jobs", 30, "uploads", 0)]
    with db.session() as s:
        assert set(s.scalars(select(Job.id))) == {"running", "recent"}
        assert s.scalars(select(AuditLog.target)).all() == ["x", "y"]
    assert prune(db, settings, {"audit": 365}, now=NOW) == [("audit", 365, "audit_log", 1)]
    with db.session() as s:
        assert s.scalars(select(AuditLog.target)).all() == ["y"]


def test_uploads_go_with_their_jobs_and_only_when_nothing_needs_them(settings, tmp_path) -> None:
    """Files uploaded to retrain jobs (customer data) were never deleted, whatever the job retention.
    An old upload goes once no job that stays names it (its own job pruned, or no job at all: a
    request that died before its job was made) unless production's lineage reuses it as its catalogue;
    links, folders and the server's own files named by a job are never touched; a dry run counts."""
    from shared.io import write_json
    from shared.registry import get_registry

    upgrade(settings.db_url)
    db = Database(settings.db_url)
    uploads = settings.home / "uploads"
    uploads.mkdir()
    outside = tmp_path / "server-clicks.tsv"  # a server path a pruned job named: the server's file
    files = {name: uploads / name for name in ("pruned.tsv", "running.tsv", "shared.tsv", "catalogue.psv",
                                               "orphan.tsv", "fresh.tsv", "cancelled.tsv")}
    for path in [*files.values(), outside]:
        path.write_text("u1\ti1\t1\t1\n")
    (uploads / "link.tsv").symlink_to(outside)
    (uploads / "folder").mkdir()
    old = (NOW - timedelta(days=60)).timestamp()
    for path in [*(p for n, p in files.items() if n != "fresh.tsv"), uploads / "folder"]:
        os.utime(path, (old, old))
    os.utime(uploads / "link.tsv", (old, old), follow_symlinks=False)

    def job(id_: str, status: str, **params: object) -> Job:
        return Job(id=id_, kind="retrain:default/recommendations", status=status, params=params)

    with db.session() as s:
        s.add_all([job("done", "succeeded", data=str(files["pruned.tsv"]), items=str(files["catalogue.psv"])),
                   job("lost", "failed", data=str(outside), options={"pairs": str(files["shared.tsv"])}),
                   job("gone", "cancelled", data=str(files["cancelled.tsv"])),
                   job("running", "running", data=str(files["running.tsv"])),
                   # a later job sent the earlier upload's server path (the folder spelt another way)
                   job("recent", "succeeded", data=f"{uploads}/../uploads/shared.tsv")])
    with db.session() as s:
        s.execute(update(Job).where(Job.id != "recent").values(updated_at=NOW - timedelta(days=60)))
        s.execute(update(Job).where(Job.id == "recent").values(updated_at=NOW))
    registry = get_registry(settings)  # production was trained with the uploaded catalogue: reused by retrains
    version = registry.task_dir("default", "recommendations") / "v1"
    version.mkdir(parents=True)
    write_json(version / "train_config.json", {"items": str(files["catalogue.psv"]), "items_sha256": "x"})
    write_json(registry.pointer_path("default", "recommendations"), {"version": 1, "history": []})

    before = sorted(p.name for p in uploads.iterdir())
    assert prune(db, settings, {"jobs": 30}, now=NOW, dry_run=True) == [("jobs", 30, "jobs", 3),
                                                                        ("jobs", 30, "uploads", 3)]
    assert sorted(p.name for p in uploads.iterdir()) == before  # a dry run deletes nothing
    assert prune(db, settings, {"jobs": 30}, now=NOW) == [("jobs", 30, "jobs", 3), ("jobs", 30, "uploads", 3)]
    assert sorted(p.name for p in uploads.iterdir()) == ["catalogue.psv", "folder", "fresh.tsv", "link.tsv",
                                                         "running.tsv", "shared.tsv"]
    assert outside.read_text()  # named by a pruned job, but not an upload

    # production moves to a version trained without that catalogue: the next prune lets it go
    write_json(registry.pointer_path("default", "recommendations"), {"version": None, "history": []})
    assert prune(db, settings, {"jobs": 30}, now=NOW)[1] == ("jobs", 30, "uploads", 1)
    assert not files["catalogue.psv"].exists() and files["running.tsv"].exists()


def _finpulse(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "FINPULSE_HOME": str(home), **env}
    for name in ("FINPULSE_DEBUG", "DATABASE_URL"):
        full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "shared.cli", "prune", *args], env=full,
                          capture_output=True, text=True, timeout=120)


def test_cli_dry_run_counts_then_prune_deletes_and_is_audited(home: Path) -> None:
    url = f"sqlite:///{home / 'finpulse.db'}"
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        s.add_all([Job(id=f"j{i}", kind="retrain:x", status="succeeded") for i in range(3)])
    with db.session() as s:
        s.execute(update(Job).values(updated_at=datetime.now(UTC) - timedelta(days=60)))

    dry = _finpulse(home, "--older-than", "45", "--only", "jobs", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[1].split() == ["jobs", "45", "jobs", "3"]
    assert dry.stdout.splitlines()[2].split() == ["jobs", "45", "uploads", "0"]
    assert "would delete" in dry.stdout.splitlines()[0]
    done = _finpulse(home, "--only", "jobs", "--batch-size", "2", FINPULSE_RETENTION_JOBS_DAYS="45")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split() == ["jobs", "45", "jobs", "3"]
    with db.session() as s:
        assert s.scalars(select(Job.id)).all() == []
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "prune")).one()
    assert entry.detail == {"days": {"jobs": 45}, "deleted": {"jobs": 3, "uploads": 0}}


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--older-than", "-3"], {}, "'--older-than': -3 is not in the range"),
    (["--older-than", "0"], {}, "'--older-than': 0 is not in the range"),
    (["--older-than", "40", "--only", "chat,gossip"], {}, "unknown kind 'gossip'"),
    (["--older-than", "10"], {}, "news retention of 10 days must exceed"),
    ([], {"FINPULSE_RETENTION_CHAT_DAYS": "-1"}, "FINPULSE_RETENTION_CHAT_DAYS"),
    ([], {"FINPULSE_RETENTION_NEWS_DAYS": "7"}, "FINPULSE_RETENTION_NEWS_DAYS (7) must exceed"),
    # a cutoff before year 1 does not exist: it was an OverflowError, exit 1
    (["--older-than", "1000000", "--only", "jobs"], {}, "'--older-than': 1000000 is not in the range"),
    ([], {"FINPULSE_RETENTION_JOBS_DAYS": "999999999999"}, "FINPULSE_RETENTION_JOBS_DAYS"),
])
def test_cli_bad_input_is_one_line_and_exit_2(home: Path, args: list[str], env: dict[str, str], says: str) -> None:
    proc = _finpulse(home, *args, **env)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("finpulse: error:")]
    assert len(errors) == 1 and says in errors[0], proc.stderr


def test_beat_runs_the_prune_daily_only_for_configured_kinds(settings, redis_url: str) -> None:
    from celery.schedules import crontab

    from services.worker import beat_schedules
    from shared.celery_app import make_celery

    assert not {k for k in beat_schedules(settings) if k.endswith("-prune")}  # off: nothing scheduled
    configured = settings.model_copy(update={"retention_chat_days": 30, "retention_news_days": 90,
                                             "retention_audit_days": 3650, "retention_hour": 4})
    entries = beat_schedules(configured)
    assert {k for k in entries if k.endswith("-prune")} == {"chatbot-prune", "sentiment-prune", "shared-prune"}
    assert entries["chatbot-prune"]["schedule"] == crontab(minute=15, hour=4)

    app = make_celery(configured)
    app.loader.import_default_modules()
    for name in ("chatbot-prune", "sentiment-prune", "shared-prune"):
        assert entries[name]["task"] in app.tasks, name


def test_the_scheduled_task_prunes_with_the_settings_limits(settings, redis_url: str) -> None:
    from services.chatbot import handoff
    from services.chatbot.models import ChatMessage
    from services.chatbot.tasks import prune_task
    from shared.celery_app import make_celery

    configured = settings.model_copy(update={"retention_chat_days": 30})
    upgrade(configured.db_url)
    db = Database(configured.db_url)
    handoff.record_turns(db, "s1", [("user", "hello", None), ("bot", "hi", None)])
    with db.session() as s:
        s.execute(update(ChatMessage).values(created_at=datetime.now(UTC) - timedelta(days=31)))
    make_celery(configured)
    assert prune_task() == {"chat_messages": 2, "chat_handoffs": 0}  # feedback has no limit: kept
    with db.session() as s:
        assert s.scalars(select(AuditLog.actor).where(AuditLog.action == "prune")).all() == ["beat"]


def test_only_a_kind_without_a_setting_names_that_setting(home: Path) -> None:
    """It said no kind had a setting, while feedback had one."""
    proc = _finpulse(home, "--only", "interactions", FINPULSE_RETENTION_FEEDBACK_DAYS="60")
    assert proc.returncode == 0, proc.stderr
    assert "FINPULSE_RETENTION_INTERACTIONS_DAYS" in proc.stderr and "for interactions" in proc.stderr
