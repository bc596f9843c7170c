"""The sentiment pipeline in one place: ingest -> score -> alerts, for views, tasks and the CLI.

Views, Celery tasks and ``finpulse news ingest`` all call these methods, so a backfill
through the CLI and live arrival over HTTP run the same code.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from services.sentiment import alerts as alerts_mod
from services.sentiment.ingest import IngestReport, ingest
from services.sentiment.linking import Linker
from services.sentiment.models import as_utc
from services.sentiment.scoring import Scorer, load_scorer, model_ref, score_articles, unscored_ids
from shared.db import Database
from shared.errors import BadInput, Unavailable
from shared.metrics import counter, histogram

log = logging.getLogger(__name__)
# Redis hash: ticker -> {"times": [earliest, latest], "live"}, tickers whose judgment failed
OWED_JUDGMENTS = "finpulse:sentiment:owed-judgments"


@lru_cache(maxsize=4)
def get_linker(extra_csv: str | None) -> Linker:
    return Linker.from_files(extra_csv)


@lru_cache(maxsize=4)
def get_database(url: str) -> Database:
    """One engine per process for tasks and the CLI (the web app keeps its own)."""
    return Database(url)


@dataclass
class ScoreOutcome:
    articles: int = 0
    texts: int = 0
    batches: list[int] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    model_version: str | None = None
    # ticker -> event times scored and not judged (``score(..., judge=False)``): the caller's to judge
    touched: dict[str, list[datetime]] = field(default_factory=dict)


class Pipeline:
    """Settings, database, linker and scorer (injectable) bound together."""

    def __init__(self, settings: Any, db: Database | None = None, scorer: Scorer | None = None):
        self.settings = settings
        self.db = db or get_database(settings.db_url)
        self._scorer = scorer
        self.rules = alerts_mod.Rules.from_settings(settings)

    @property
    def linker(self) -> Linker:
        """The shipped company list plus ``FINPULSE_SENTIMENT_COMPANIES_CSV``'s. A broken list is the
        server's configuration, not a request's fault: it was a 400 to whoever posted news and a
        traceback in the worker; now a 503 naming the setting (readiness lists it, the worker leaves
        the articles to the sweep), until the file is mended (a failed read is not cached)."""
        extra = self.settings.sentiment_companies_csv
        try:
            return get_linker(str(extra) if extra else None)
        except BadInput as exc:
            raise Unavailable(f"FINPULSE_SENTIMENT_COMPANIES_CSV: {exc.message}") from None

    def scorer(self) -> Scorer:
        """The injected scorer, else the registry's production model (raises Unavailable)."""
        return self._scorer or load_scorer(self.settings)

    def score_texts(self, texts: list[str]) -> tuple[str, list[dict[str, Any]]]:
        """(model version, rows) for ``POST /v1/score``.

        The production model runs behind this process's dynamic batcher, so concurrent
        one-headline requests share forward passes instead of queueing for the cores; an
        injected scorer (tests, tools) is called directly.
        """
        if self._scorer is not None:
            return self._scorer.version, self._scorer.runtime.predict(texts, batch_size=self.settings.max_batch_size)
        from shared.inference import get_batcher

        load_scorer(self.settings)  # no model: the clear Unavailable (503) of the scorer
        loaded, batcher = get_batcher(self.settings, model_ref(self.settings), self.settings.runtime)
        return loaded.ref, batcher.predict(texts, timeout=self.settings.task_timeout_s)

    def ingest(self, rows: list[Any], now: datetime | None = None, publish: bool = True) -> IngestReport:
        """Store ``rows``; an updated article's old tickers and time are judged again at once
        (its new ones when :meth:`dispatch` has it scored, like a new article's)."""
        report = self._ingest(rows, now)
        articles = counter("finpulse_news_articles", "News rows by ingest outcome", ("outcome",))
        articles.labels("stored").inc(len(report.stored))
        articles.labels("updated").inc(len(report.updated))
        articles.labels("duplicate").inc(len(report.duplicates))
        articles.labels("rejected").inc(len(report.rejected))
        if report.vacated:
            self.judge(report.vacated, publish)
        return report

    def _ingest(self, rows: list[Any], now: datetime | None) -> IngestReport:
        return ingest(self.db, rows, self.linker, max_chars=self.settings.sentiment_max_article_chars,
                      skew_s=self.settings.sentiment_future_skew_s,
                      syndication_h=self.settings.sentiment_syndication_h, now=now)

    def score(self, ids: list[str], publish: bool = True, judge: bool = True) -> ScoreOutcome:
        """Score ``ids`` in batches, then judge alerts on the buckets they touched (``judge`` False:
        returned in ``touched`` instead, for a caller scoring many batches to judge once: ``news relink``)."""
        scorer = self.scorer()
        out = ScoreOutcome(model_version=scorer.version)
        step = self.settings.sentiment_score_batch
        if len(ids) > step:
            ids = self._in_event_order(ids)
        for start in range(0, len(ids), step):
            rep = score_articles(self.db, scorer, self.linker, ids[start:start + step],
                                 batch_size=self.settings.max_batch_size)
            if not rep.articles:
                continue
            out.articles += rep.articles
            out.texts += rep.texts
            out.batches.append(rep.articles)
            histogram("finpulse_news_score_batch", "Articles per scoring batch", (),
                      buckets=(1, 8, 16, 32, 64, 128, 256, 512)).observe(rep.articles)
            if judge:
                out.alerts += self.judge(rep.touched, publish)
            else:
                for ticker, times in rep.touched.items():
                    out.touched.setdefault(ticker, []).extend(times)
        return out

    def judge(self, touched: dict[str, list[datetime]], publish: bool = True) -> list[dict[str, Any]]:
        """Bring the stored alerts of ``touched`` (ticker -> event times) in line; returns the alerts
        raised (sent to live channels with the retractions unless ``publish`` is False: then they
        are stored quiet, so the SSE stream leaves them out too)."""
        judged = alerts_mod.evaluate(self.db, touched, self.rules, live=publish)
        if judged.failed:
            self._owe(judged.failed, publish)
        for a in judged.raised:
            counter("finpulse_sentiment_alerts", "Alerts raised", ("kind", "severity")).labels(
                a["kind"], a["severity"]).inc()
        if judged.retracted:
            counter("finpulse_sentiment_alerts_retracted", "Alerts retracted by re-evaluation", ()).inc(
                len(judged.retracted))
        if publish:
            alerts_mod.publish(self.settings, judged)
        return judged.raised

    def _owe(self, failed: dict[str, list[datetime]], live: bool) -> None:
        """Keep tickers whose judgment failed (a dropped database connection after their scores
        were committed) for the next sweep: the sweep takes unscored articles only, so nothing
        judged their buckets again until another article of the ticker came (PG QA)."""
        from shared.redis_client import get_redis

        try:
            client = get_redis(self.settings.redis_url)
            for ticker, times in failed.items():
                owed = json.loads(client.hget(OWED_JUDGMENTS, ticker) or "{}")
                # a judgment reads only the earliest and latest of its times
                at = sorted({*owed.get("times", []), *(as_utc(t).isoformat() for t in times)})
                client.hset(OWED_JUDGMENTS, ticker, json.dumps(
                    {"times": [at[0], at[-1]], "live": owed.get("live", False) or live}))
        except Exception as exc:  # Redis down too: the ticker's next article judges it again
            log.warning("could not keep %d tickers to judge again: %s", len(failed), exc)

    def judge_owed(self) -> list[dict[str, Any]]:
        """Judge again the tickers whose judgment failed (see :meth:`_owe`); returns the alerts raised."""
        from shared.redis_client import get_redis

        try:
            with get_redis(self.settings.redis_url).pipeline(transaction=True) as pipe:
                owed, _ = pipe.hgetall(OWED_JUDGMENTS).delete(OWED_JUDGMENTS).execute()
        except Exception as exc:  # kept there for the next sweep
            log.warning("could not read the tickers to judge again: %s", exc)
            return []
        raised: list[dict[str, Any]] = []
        for live in (False, True):
            touched = {(t.decode() if isinstance(t, bytes) else t): [datetime.fromisoformat(x) for x in o["times"]]
                       for t, o in ((t, json.loads(v)) for t, v in owed.items()) if bool(o["live"]) == live}
            if touched:
                raised += self.judge(touched, publish=live)
        return raised

    def _in_event_order(self, ids: list[str]) -> list[str]:
        """Score oldest first, so each bucket is judged against a baseline already scored."""
        from sqlalchemy import select

        from services.sentiment.models import Article

        order: dict[str, Any] = {}
        with self.db.session() as s:
            for start in range(0, len(ids), 500):
                for aid, at in s.execute(select(Article.id, Article.published_at)
                                         .where(Article.id.in_(ids[start:start + 500]))):
                    order[aid] = at
        return sorted(ids, key=lambda i: (order.get(i) is None, order.get(i) or 0, i))

    def sweep(self, limit: int = 5000, grace_s: float = 0.0) -> ScoreOutcome:
        """Score articles left unscored (worker crash, no model yet), oldest first, and judge
        the tickers whose judgment failed since the last sweep.

        ``grace_s``: skip articles that arrived this recently; their queued tasks score them,
        and a sweep that took them too scored a backlog twice.
        """
        before = datetime.now(UTC) - timedelta(seconds=grace_s) if grace_s else None
        ids = unscored_ids(self.db, limit, arrived_before=before)
        out = self.score(ids) if ids else ScoreOutcome()
        out.alerts += self.judge_owed()
        return out

    def dispatch(self, ids: list[str]) -> str:
        """Hand new ids to scoring as configured: 'scored', 'queued' or 'pending'."""
        mode = self.settings.sentiment_scoring
        if not ids or mode == "off":
            return "pending"
        if mode == "celery":
            try:
                enqueue(self.settings, ids)
                return "queued"
            except Exception as exc:  # broker down: the sweep picks them up later
                log.warning("could not queue %d articles for scoring: %s", len(ids), exc)
                return "pending"
        try:
            self.score(ids)
            return "scored"
        except Unavailable as exc:
            log.warning("articles stored unscored: %s", exc.message)
            return "pending"


def enqueue(settings: Any, ids: list[str]) -> None:
    """Queue scoring tasks of ``sentiment_score_batch`` ids on the inference queue."""
    from services.sentiment.tasks import score_articles_task
    from shared.celery_app import inference_queue

    step = settings.sentiment_score_batch
    for start in range(0, len(ids), step):
        score_articles_task.apply_async(args=[ids[start:start + step]], queue=inference_queue(settings))
