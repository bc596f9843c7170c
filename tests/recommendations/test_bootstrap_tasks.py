"""First-run preparation and the periodic retrain task's wiring."""

from __future__ import annotations

from pathlib import Path

from services.recommendations.bootstrap import SAMPLE, prepare, training_files
from services.recommendations.serving import model_dir


def test_prepare_trains_the_sample_without_data(settings, capsys) -> None:
    prepare(settings, None)
    assert (model_dir(settings) / "ids.json").is_file()
    assert "model ready" in capsys.readouterr().err
    prepare(settings, None)  # second run: nothing to do
    assert "already" in capsys.readouterr().err


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
