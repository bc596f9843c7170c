"""Publishing a trained model: registry version, first-version promotion, database mirror.

Shared by every trainer (sentiment, embeddings) so each registered version carries the
same lineage: data hashes, seed, method, base model and the code's git commit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.lifecycle import record_promotion
from shared.registry import ModelVersion, Registry


def git_commit() -> str | None:
    """The repository's HEAD commit (with ``-dirty`` when files changed), or None."""
    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def publish(
    settings: Any,
    domain: str,
    task: str,
    model_dir: str | Path,
    *,
    metrics: dict[str, Any],
    train_config: dict[str, Any],
    promote_first: bool = True,
) -> ModelVersion:
    """Register ``model_dir`` (moved into the registry) and mirror it to the database.

    The first version of a domain/task becomes ``production`` so services have
    something to serve; later versions wait for an explicit promote.
    """
    registry = Registry(settings.registry_dir)
    mv = registry.register(domain, task, model_dir, metrics=metrics, train_config=train_config)
    stage = "registered"
    if promote_first and registry.pointer(domain, task).get("version") is None:
        registry.promote(mv.ref, reason="first version")
        stage = "production"
    if stage == "production":  # mirrored and audited in one go, as every move of production is
        record_promotion(settings, mv, actor="train", reason="first version")
        return mv
    try:
        mirror_to_db(settings, mv, metrics, train_config, stage)
    except Exception as exc:  # the files are authoritative; a DB hiccup must not lose the model
        print(f"[train] warning: model_versions not updated ({type(exc).__name__}: {exc})",
              file=sys.stderr)
    return mv


def mirror_to_db(settings: Any, mv: ModelVersion, metrics: dict[str, Any] | None,
                 train_config: dict[str, Any] | None, stage: str) -> None:
    """Insert the version's metadata in ``model_versions`` (the files stay authoritative)."""
    from shared.db import Database, upgrade
    from shared.models import ModelRecord

    upgrade(settings.db_url)
    db = Database(settings.db_url)
    try:
        with db.session() as session:
            session.add(ModelRecord(domain=mv.domain, task=mv.task, version=mv.version,
                                    path=str(mv.path), metrics=metrics, train_config=train_config,
                                    stage=stage))
    finally:
        db.dispose()


def record_stage(settings: Any, mv: ModelVersion, stage: str) -> None:
    """Mark ``mv`` as ``stage`` in the database and demote the other versions of its task."""
    from sqlalchemy import update

    from shared.db import Database, upgrade
    from shared.models import ModelRecord

    upgrade(settings.db_url)
    db = Database(settings.db_url)
    try:
        with db.session() as session:
            session.execute(update(ModelRecord)
                            .where(ModelRecord.domain == mv.domain, ModelRecord.task == mv.task,
                                   ModelRecord.stage == "production")
                            .values(stage="registered"))
            session.execute(update(ModelRecord)
                            .where(ModelRecord.domain == mv.domain, ModelRecord.task == mv.task,
                                   ModelRecord.version == mv.version)
                            .values(stage=stage))
    finally:
        db.dispose()
