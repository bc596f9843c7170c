"""Scheduled feed polling: conditional GET per feed, new entries through the pipeline."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from data_connectors.news.rss import FeedSource
from services.sentiment.models import FeedState
from shared.errors import FinPulseError

log = logging.getLogger(__name__)


def poll_feed(pipe: Any, url: str) -> dict[str, Any]:
    """Fetch ``url`` unless unchanged (ETag/Last-Modified), ingest and dispatch what is new or changed."""
    with pipe.db.session() as s:
        state = s.get(FeedState, url) or FeedState(url=url)
        etag, modified = state.etag, state.modified
    try:
        batch = FeedSource(url, etag=etag, modified=modified).read()
        status = "not modified" if batch.not_modified else f"{len(batch.rows)} entries"
        for warning in batch.warnings:
            log.warning("feed %s", warning)
    except FinPulseError as exc:
        batch, status = None, f"error: {exc.message}"
    stored = updated = 0
    if batch is not None and not batch.not_modified:
        report = pipe.ingest(batch.rows)
        stored, updated = len(report.stored), len(report.updated)
        pipe.dispatch(report.to_score)
    with pipe.db.session() as s:
        state = s.get(FeedState, url) or FeedState(url=url)
        if batch is not None:
            state.etag = batch.etag or state.etag
            state.modified = batch.modified or state.modified
        state.polled_at = datetime.now(UTC)
        state.last_status = status
        s.merge(state)
    return {"url": url, "status": status, "stored": stored, "updated": updated}


def poll_all(pipe: Any) -> dict[str, Any]:
    results = [poll_feed(pipe, url) for url in pipe.settings.sentiment_feeds]
    return {"feeds": results}
