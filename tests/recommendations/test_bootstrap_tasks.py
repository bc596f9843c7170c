"""First-run preparation, the import of an older install's model, the retrain schedule."""

from __future__ import annotations

import shutil
from pathlib import Path

from services.recommendations.bootstrap import SAMPLE, prepare, training_files
from services.recommendations.versions import GATE_METRIC, TASK, import_legacy, legacy_dir, registry


def test_prepare_registers_and_promotes_v1(settings, capsys) -> None:
    old = legacy_dir(settings, settings.recommendations_domain)
    prepare(settings, None)
    mv = registry(settings).production(settings.recommendations_domain, TASK)
    assert mv is not None and mv.version == 1 and (mv.path / "ids.json").is_file()
    assert mv.metrics()["gate_metric"] == GATE_METRIC and 0 < mv.metrics()[GATE_METRIC] <= 1
    assert mv.train_config()["interactions_sha256"]
    assert "ready" in capsys.readouterr().err
    # audited and mirrored as every move of production (observability QA: `finpulse audit` was empty)
    from shared.db import Database
    from shared.lifecycle import audit_entries

    db = Database(settings.db_url)
    (entry,) = audit_entries(db)
    assert (entry["actor"], entry["action"], entry["target"]) == ("finpulse-up", "model.promote", mv.ref)
    db.dispose()
    prepare(settings, None)  # second run: nothing to do
    assert "already in production" in capsys.readouterr().err
    assert not old.exists()  # nothing written to the pre-registry location


def test_older_install_model_is_imported_once(settings, trained_dir: Path) -> None:
    from services.recommendations import create_app
    from shared.db import upgrade

    upgrade(settings.db_url)
    old = legacy_dir(settings, settings.recommendations_domain)
    shutil.copytree(trained_dir, old)  # where installs before the registry kept it
    body = create_app(settings).test_client().get("/v1/users/u1/recommendations").get_json()
    assert body["model_version"] == f"{settings.recommendations_domain}/{TASK}@v1"
    mv = registry(settings).production(settings.recommendations_domain, TASK)
    assert mv.train_config()["imported_from"] == str(old) and GATE_METRIC in mv.metrics()
    assert import_legacy(settings, settings.recommendations_domain) is None
    prepare(settings, None)
    assert [v.version for v in registry(settings).versions(settings.recommendations_domain, TASK)] == [1]


def test_training_files_prefer_movielens(tmp_path: Path) -> None:
    assert training_files(None) == (SAMPLE, None)
    (tmp_path / "ml100k").mkdir()
    (tmp_path / "ml100k" / "ratings.tsv").write_text("user_id\titem_id\trating\ttimestamp\n")
    assert training_files(tmp_path)[0] == tmp_path / "ml100k" / "ratings.tsv"


def test_retrain_task_is_scheduled(settings) -> None:
    from services.recommendations.tasks import beat_schedule, retrain_task

    entry = beat_schedule(settings)["recommendations-retrain"]
    assert entry["task"] == retrain_task.name
    assert entry["args"] == (settings.recommendations_domain,)


def test_scheduled_refit_without_production_does_nothing(settings) -> None:
    from services.recommendations.tasks import retrain_task
    from shared.celery_app import make_celery

    make_celery(settings)
    assert retrain_task(settings.recommendations_domain) is None
