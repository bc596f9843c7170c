"""Scoring backlog and stored alerts on ``/metrics``, read from the database at scrape time.

Under ``finpulse up`` scoring and alert counters live in the Celery worker, so the
service's own counters never see the backlog; the database does, whichever process
scores. Each scrape runs three indexed queries; a database outage drops these metrics
from the scrape (logged once per outage) instead of failing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select

from services.sentiment.alerts import SEVERITY_RANK
from services.sentiment.models import Alert, Article, as_utc

log = logging.getLogger(__name__)
UNSCORED = "finpulse_news_unscored_articles"
OLDEST = "finpulse_news_oldest_unscored_age_seconds"
STORED_ALERTS = "finpulse_sentiment_stored_alerts"


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (GaugeMetricFamily(UNSCORED, "Stored articles not scored yet"),
            GaugeMetricFamily(OLDEST, "Seconds since the oldest unscored article arrived (0 if none)"),
            GaugeMetricFamily(STORED_ALERTS, "Stored (not retracted) alerts by severity", labels=["severity"]))


class BacklogCollector(Collector):
    """Reads the backlog of ``db`` (the latest sentiment app's: metrics are process-global)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._failing = False

    def describe(self) -> list[GaugeMetricFamily]:
        """Names without samples, so registering never touches the database."""
        return list(_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        unscored, oldest, alerts = _families()
        try:
            with self.db.session() as s:
                count, first = s.execute(select(func.count(), func.min(Article.ingested_at))
                                         .where(Article.scored_at.is_(None))).one()
                by_severity = dict(s.execute(select(Alert.severity, func.count())
                                             .where(Alert.retracted_at.is_(None)).group_by(Alert.severity)).all())
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on a database outage
            if not self._failing:
                reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning("sentiment backlog metrics left out of /metrics until the database can be read: %s",
                            reason)
            self._failing = True
            return
        self._failing = False
        unscored.add_metric([], count)
        oldest.add_metric([], max(0.0, (datetime.now(UTC) - as_utc(first)).total_seconds()) if first else 0.0)
        for severity in SEVERITY_RANK:
            alerts.add_metric([severity], by_severity.get(severity, 0))
        yield from (unscored, oldest, alerts)


_collector: BacklogCollector | None = None


def init_app(db: Any) -> BacklogCollector:
    """Register the collector once per process; a later app (tests build many) takes it over."""
    global _collector
    if _collector is None:
        _collector = BacklogCollector(db)
        REGISTRY.register(_collector)
    _collector.db = db
    return _collector
