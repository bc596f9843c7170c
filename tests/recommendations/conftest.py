"""Known-answer data for recommenders: a checker-board of two user groups and two item groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_connectors.interactions import Interaction
from services.recommendations.recommenders.data import Interactions

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "interactions.tsv"
GROUP_SIZE = 10
SEEN = 7


def checkerboard_records(seed: int = 0) -> list[Interaction]:
    """Users ``a*`` touch only items ``A*``, users ``b*`` only ``B*``; each saw 7 of 10, in random order."""
    rng = np.random.default_rng(seed)
    rows = []
    for group in ("a", "b"):
        for u in range(GROUP_SIZE):
            items = rng.permutation(GROUP_SIZE)[:SEEN]
            for step, i in enumerate(items):
                rows.append(Interaction(f"{group}{u}", f"{group.upper()}{i}", 5.0, 1000 + 100 * u + step))
    return rows


@pytest.fixture(scope="session")
def checkerboard() -> Interactions:
    return Interactions.from_records(checkerboard_records())


def group_items(data: Interactions, group: str) -> set[int]:
    return {n for n, i in enumerate(data.item_ids) if i.startswith(group.upper())}


@pytest.fixture
def trained_dir(tmp_path: Path) -> Path:
    """A model trained on the repository's sample file, in its own directory."""
    from services.recommendations.pipeline import train_from_files

    path, _ = train_from_files(SAMPLE, tmp_path / "model")
    return path


@pytest.fixture
def production(settings, trained_dir: Path):
    """``trained_dir`` registered and promoted: the domain's production recommender."""
    from services.recommendations.versions import register, registry

    mv = register(settings, settings.recommendations_domain, trained_dir)
    registry(settings).promote(mv.ref)
    return mv


@pytest.fixture
def ops(settings, production):
    """The service with an ops key, its retrain jobs run in this process (the Celery task's function)."""
    from services.recommendations import create_app, retrain_task
    from services.recommendations.retraining import run_retrain_job
    from services.recommendations.versions import TASK
    from shared.admin import register_admin
    from shared.auth import create_key
    from shared.db import Database, upgrade

    upgrade(settings.db_url)
    db = Database(settings.db_url)
    app = create_app(settings)
    register_admin(app, tasks={TASK: retrain_task(lambda job_id, s: run_retrain_job(job_id, s))},
                   domains=[settings.recommendations_domain])
    yield {"client": app.test_client(), "db": db, "settings": settings,
           "auth": {"Authorization": f"Bearer {create_key(db, 'carol', 'ops')}"}}
    db.dispose()
