"""First-run preparation for ``finpulse up``: train the served recommender if there is none."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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
    """Train ``FINPULSE_HOME/recs/<domain>/current`` unless a model is already there."""
    from services.recommendations.pipeline import train_from_files
    from services.recommendations.serving import model_dir

    target = model_dir(settings)
    if (target / "ids.json").is_file():
        print(f"[recommendations] model already in {target}", file=sys.stderr)
        return
    ratings, items = training_files(data_dir)
    print(f"[recommendations] training on {ratings}" + (f" with items {items}" if items else ""),
          file=sys.stderr)
    path, notes = train_from_files(ratings, target, items)
    for line in notes:
        print(f"[recommendations] {line}", file=sys.stderr)
    print(f"[recommendations] model ready in {path}", file=sys.stderr)
