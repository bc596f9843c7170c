"""First-run preparation for ``finpulse up``: seed the news sample into an empty database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

log = logging.getLogger(__name__)
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "news.jsonl"


def prepare(settings: Any, data_dir: Path | None = None) -> None:
    """Ingest ``data/samples/news.jsonl`` when no article is stored yet; score it if a model exists.

    ``data_dir`` is accepted for the common bootstrap signature; the shipped sample is used
    so a first run never depends on the large data sets.
    """
    from data_connectors.news import open_source
    from services.sentiment.models import Article
    from services.sentiment.pipeline import Pipeline
    from shared.errors import Unavailable

    pipe = Pipeline(settings)
    with pipe.db.session() as s:
        if s.scalar(select(func.count()).select_from(Article)):
            return
    if not SAMPLE.is_file():
        log.warning("news sample %s missing; dashboard starts empty", SAMPLE)
        return
    rows = sorted(open_source(SAMPLE).read().rows, key=lambda r: str(r.get("published_at")))
    report = pipe.ingest(rows)
    try:
        out = pipe.score(report.stored, publish=False)
        log.info("seeded %d articles, scored %d, %d alerts", len(report.stored), out.articles, len(out.alerts))
    except Unavailable as exc:
        log.info("seeded %d articles unscored: %s", len(report.stored), exc.message)
