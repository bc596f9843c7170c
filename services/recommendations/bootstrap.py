"""First-run preparation for ``finpulse up``: a production recommender for the served domain.

The first version is registered and promoted like any other (``DOMAIN/recommendations/v1``);
a model left in ``recs/<domain>/current`` by an older install is imported as that version
instead of training a new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.lifecycle import record_promotion
from shared.logs import say

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "interactions.tsv"


def training_files(data_dir: Path | None) -> tuple[Path, Path | None]:
    """MovieLens-100K (with its item titles) when the data folder has it, else the sample."""
    if data_dir is not None:
        ratings = Path(data_dir) / "ml100k" / "ratings.tsv"
        if ratings.is_file():
            items = ratings.parent / "items.psv"
            return ratings, items if items.is_file() else None
    return SAMPLE, None


def prepare(settings: Any, data_dir: Path | None) -> None:
    """Register and promote ``<domain>/recommendations/v1`` unless production already exists."""
    import tempfile

    from services.recommendations.pipeline import train_from_files
    from services.recommendations.versions import TASK, import_legacy, register, registry

    domain, reg = settings.recommendations_domain, registry(settings)
    current = reg.production(domain, TASK)
    if current is not None:
        say("recommendations", f"{current.ref} already in production")
        return
    imported = import_legacy(settings, domain)
    if imported is not None:
        say("recommendations", f"imported the older install's model as {imported.ref}")
        return
    ratings, items = training_files(data_dir)
    say("recommendations", f"training on {ratings}" + (f" with items {items}" if items else ""))
    reg.task_dir(domain, TASK).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=reg.task_dir(domain, TASK), prefix=".train-") as tmp:
        path, notes = train_from_files(ratings, Path(tmp) / "model", items)
        for line in notes:
            say("recommendations", f"{line}")
        mv = register(settings, domain, path)
    reg.promote(mv.ref, reason="first run of finpulse up")
    record_promotion(settings, mv, actor="finpulse-up", reason="first run of finpulse up")
    say("recommendations", f"{mv.ref} ready ({mv.path})")
