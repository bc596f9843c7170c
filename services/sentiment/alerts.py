"""Alert rules on event time, stored once per ticker and bucket, pushed to Redis and a webhook
(retractions too, so a listener can drop what re-evaluation no longer supports).

After each scoring batch, :func:`evaluate` re-judges the buckets from the earliest one
that received articles on, and brings the stored alerts in line with that judgment.
A bucket raises at most one alert (the most severe rule; the others are named in the
message), and a cool-down keeps one event from raising several. An alert's id and time
come from the ticker and the bucket, so a backfill yields the same alerts as live arrival
(in any order or batching) and re-posting the same articles adds nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from services.sentiment.aggregate import Point, coverage, floor_time, load_rows, series, shift
from services.sentiment.ingest import EARLIEST, LATEST
from services.sentiment.models import Alert, ArticleTicker, Score, as_utc
from shared import webhooks
from shared.metrics import counter

log = logging.getLogger(__name__)
CHANNEL = "sentiment:alerts"  # on DB 0 finpulse:sentiment:alerts (shared.redis_client.channel)
SEVERITY_RANK = {"warn": 1, "critical": 2}
KIND_RANK = {"sentiment_shift": 3, "negative_burst": 2, "volume_spike": 1}
# An alert lists at most this many article ids (``article_count`` counts them all); which ones
# are kept: :func:`_article_ids`.
MAX_ARTICLE_IDS = 50
RAISED, UPDATED, RETRACTED = "raised", "updated", "retracted"  # what live channels hear of an alert
MAX_PASSES = 5  # judgments of one ticker per batch while concurrent scoring keeps changing its rows


@dataclass
class Judgement:
    """What live channels hear from one evaluation: alerts raised (new, or changed in kind or
    severity), alerts retracted, and alerts updated (same kind and severity, other numbers:
    the stream sends these, Redis and the webhook do not), each as :func:`to_json`."""

    raised: list[dict[str, Any]] = field(default_factory=list)
    retracted: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, list[datetime]] = field(default_factory=dict)  # ticker -> times still to judge

    def __iadd__(self, other: Judgement) -> Judgement:
        self.raised += other.raised
        self.retracted += other.retracted
        self.updated += other.updated
        self.failed.update(other.failed)
        return self


@dataclass(frozen=True)
class Rules:
    bucket_s: int = 86400
    baseline_days: float = 30
    alpha: float = 0.3
    min_articles: int = 3
    warn_z: float = 2.0
    critical_z: float = 3.0
    min_shift: float = 0.3
    burst_min: int = 5
    burst_share: float = 0.6
    volume_z: float = 3.0
    cooldown: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, s: Any) -> Rules:
        from services.sentiment.aggregate import bucket_seconds

        return cls(bucket_seconds(s.sentiment_bucket), s.sentiment_baseline_days, s.sentiment_ewma_alpha,
                   s.sentiment_min_articles, s.sentiment_warn_z, s.sentiment_critical_z, s.sentiment_min_shift,
                   s.sentiment_burst_min, s.sentiment_burst_share, s.sentiment_volume_z,
                   timedelta(hours=s.sentiment_cooldown_h))


def candidates(p: Point, rules: Rules) -> list[dict[str, Any]]:
    """Every rule ``p`` breaks, as alert fields (kind, severity, value, baseline, message)."""
    out = []
    if p.z is not None and abs(p.z) >= rules.warn_z and abs(p.sentiment - p.baseline) >= rules.min_shift:
        way = "fell" if p.z < 0 else "rose"
        out.append({"kind": "sentiment_shift", "severity": "critical" if abs(p.z) >= rules.critical_z else "warn",
                    "value": p.sentiment, "baseline": p.baseline,
                    "message": f"sentiment {way} to {p.sentiment:+.2f} (baseline {p.baseline:+.2f}, "
                               f"z={p.z:+.1f}) on {p.volume} articles"})
    if (p.negatives_z is not None and p.negatives >= rules.burst_min
            and p.negatives >= rules.burst_share * p.volume and p.negatives_z >= rules.volume_z):
        critical = p.negatives >= 2 * rules.burst_min and p.negatives_z >= 2 * rules.volume_z
        out.append({"kind": "negative_burst", "severity": "critical" if critical else "warn",
                    "value": float(p.negatives), "baseline": p.negatives_baseline,
                    "message": f"{p.negatives} negative articles of {p.volume} "
                               f"(baseline {p.negatives_baseline:.1f} per bucket)"})
    if p.volume_z is not None and p.volume >= max(rules.burst_min, rules.min_articles) \
            and p.volume_z >= rules.volume_z:
        out.append({"kind": "volume_spike", "severity": "critical" if p.volume_z >= 2 * rules.volume_z else "warn",
                    "value": float(p.volume), "baseline": p.volume_baseline,
                    "message": f"{p.volume} articles (baseline {p.volume_baseline:.1f} per bucket, "
                               f"z={p.volume_z:+.1f})"})
    return out


def choose(cands: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The one alert a bucket raises: most severe, then sentiment > burst > volume."""
    if not cands:
        return None
    best = max(cands, key=lambda c: (SEVERITY_RANK[c["severity"]], KIND_RANK[c["kind"]]))
    others = [c["kind"].replace("_", " ") for c in cands if c is not best]
    if others:
        best = {**best, "message": best["message"] + "; also " + ", ".join(others)}
    return best


def alert_id(ticker: str, at: datetime) -> str:
    return f"{ticker}-{at:%Y%m%dT%H%M}"


def article_count(a: Alert) -> int:
    """Articles behind ``a``; an alert stored before the count was (sentiment_0004) has only its ids."""
    return a.article_count if a.article_count is not None else len(a.article_ids or [])


def to_json(a: Alert) -> dict[str, Any]:
    return {"id": a.id, "ticker": a.ticker, "kind": a.kind, "severity": a.severity,
            "at": as_utc(a.at).isoformat().replace("+00:00", "Z"), "value": round(a.value, 4),
            "baseline": round(a.baseline, 4), "message": a.message, "article_count": article_count(a),
            "article_ids": list(a.article_ids or [])}


def _article_ids(p: Point, rows_by_id: dict[str, Any], kind: str, value: float, baseline: float) -> list[str]:
    """The ids an alert lists, at most :data:`MAX_ARTICLE_IDS`, those that explain it first: for a
    sentiment shift the articles furthest in its direction (relevance x sentiment, as the bucket's
    mean weighs them), for a negative burst the most negative, for a volume spike the most
    relevant to the ticker; ties (and a volume spike's equals) in event-time order."""
    rows = [rows_by_id[i] for i in p.article_ids]  # event-time order
    if kind == "sentiment_shift":
        way = -1.0 if value < baseline else 1.0
        rows.sort(key=lambda r: -way * r.relevance * r.sentiment)
    elif kind == "negative_burst":
        rows.sort(key=lambda r: r.sentiment)
    else:
        rows.sort(key=lambda r: -r.relevance)
    return [r.article_id for r in rows[:MAX_ARTICLE_IDS]]


def _shown(a: Alert | dict[str, Any]) -> tuple[str, int]:
    """What an analyst reads of an alert beside its kind and severity: a change here is an update."""
    if isinstance(a, dict):
        return a["message"], a["article_count"]
    return a.message, article_count(a)


def evaluate_ticker(db: Any, ticker: str, times: list[datetime], rules: Rules, live: bool = True) -> Judgement:
    """Judge ``ticker`` again from the earliest bucket of ``times`` on; returns what live channels hear.
    ``live`` False (a backfill): what it raises, changes or retracts is stored quiet, off the stream.

    A bucket's numbers depend only on itself and earlier buckets, so alerts before the
    earliest touched bucket stand. From there to the ticker's latest article every bucket is
    judged again in event order (a late article moves later baselines, and an alert raised
    or retracted moves the next ones' cool-down) and the stored alerts are made to match:
    new ones stored, changed ones updated in place (a bucket first judged on part of its
    articles), ones no longer raised retracted. So the stored alerts depend on the articles
    only, never on their arrival order or batching: a backfill equals live arrival.
    Returned: the new alerts and those whose kind or severity changed (re-sent under the
    same id), the retracted ones, and those updated (message or article count changed, kind
    and severity not); an alert's last state across the repeated judgments below is what
    counts, except that one raised and then updated is still raised.

    A ticker with no articles left has its alerts from the earliest bucket on retracted.

    Times outside the plausible range (a year-0001 article stored before ingest refused
    them) are skipped: their window arithmetic would overflow and sink the whole batch.
    """
    plausible = [as_utc(t) for t in times if EARLIEST <= as_utc(t) < LATEST]
    if len(plausible) < len(times):
        log.warning("%s: %d article(s) with an implausible published_at left out of alert evaluation",
                    ticker, len(times) - len(plausible))
    if not plausible:
        return Judgement()
    lo = floor_time(min(plausible), rules.bucket_s)
    heard: dict[str, tuple[dict[str, Any], str]] = {}  # id -> (alert, what happened to it)
    for _ in range(MAX_PASSES):
        # Scoring tasks run concurrently: one judging rows read before another's scores were
        # committed could store a stale judgment last. So judge again until the rows behind the
        # judgment are still the rows there after storing it.
        span = coverage(db, ticker)
        if span is None:  # its last articles went (an update or a relink unlinked them): nothing holds its alerts
            try:
                for a, change in _reconcile(db, ticker, lo, [], {}, rules, live):
                    heard[a["id"]] = (a, change)
            except (IntegrityError, StaleDataError):  # a concurrent evaluation changed them first
                continue
            break
        hi = floor_time(min(max(span[1], *plausible), shift(LATEST, -timedelta(seconds=rules.bucket_s))),
                        rules.bucket_s) + timedelta(seconds=rules.bucket_s)
        start = lo - timedelta(days=rules.baseline_days)
        before = _fingerprint(db, ticker, start, hi)
        rows = load_rows(db, ticker, start, hi)
        points = series(rows, lo, hi, rules.bucket_s, rules.baseline_days, rules.alpha, rules.min_articles,
                        since=max(span[0], EARLIEST))
        try:
            for a, change in _reconcile(db, ticker, lo, points, {r.article_id: r for r in rows}, rules, live):
                if change == UPDATED and heard.get(a["id"], (None, ""))[1] == RAISED:
                    change = RAISED  # listeners have not heard the raise yet
                heard[a["id"]] = (a, change)
        except (IntegrityError, StaleDataError):  # a concurrent evaluation changed them first: judge again
            continue
        if _fingerprint(db, ticker, start, hi) == before:
            break
    else:  # the next batch of this ticker judges it again
        log.warning("%s: articles kept changing during %d alert evaluations; left to the next batch", ticker,
                    MAX_PASSES)
    return Judgement(*([a for a, change in heard.values() if change == c] for c in (RAISED, RETRACTED, UPDATED)))


def _fingerprint(db: Any, ticker: str, start: datetime, end: datetime) -> tuple[int, int | None]:
    """Count and newest id of the ticker's scores in ``[start, end)``: changes when scores do."""
    with db.session() as s:
        return tuple(s.execute(select(func.count(), func.max(Score.id)).join(
            ArticleTicker, and_(Score.article_id == ArticleTicker.article_id, Score.ticker == ArticleTicker.ticker))
            .where(ArticleTicker.ticker == ticker, ArticleTicker.published_at >= start,
                   ArticleTicker.published_at < end)).one())


def _reconcile(db: Any, ticker: str, lo: datetime, points: list[Point], by_id: dict[str, Any],
               rules: Rules, live: bool = True) -> list[tuple[dict[str, Any], str]]:
    """Store, update and retract ``ticker``'s alerts from ``lo`` on to match ``points``;
    returns the (alert, RAISED | UPDATED | RETRACTED) pairs live channels hear.

    A retracted alert is kept as a tombstone (``retracted_at``, and ``created_at`` moved to
    now so the stream sends the retraction); raised again, the tombstone comes back to life.
    Every change the stream would send is marked ``quiet`` unless ``live``: the stream reads
    ``created_at``, so a backfill's alerts reached it though Redis and the webhook stayed silent.
    A live update (what :func:`_shown` reads changed, kind and severity not) moves ``created_at``
    too, keeping the raise's time in ``raised_at``, so an open dashboard stops showing the old
    numbers; a backfill's update is stored without moving it (the stream stays silent).
    """
    heard: list[tuple[dict[str, Any], str]] = []
    now = datetime.now(UTC)
    with db.session() as s:
        stored = {as_utc(a.at): a for a in s.scalars(select(Alert).where(
            Alert.ticker == ticker, Alert.at >= lo - rules.cooldown))}
        raised = [at for at, a in stored.items() if at < lo and a.retracted_at is None]  # before the range: final
        kept: set[datetime] = set()
        for p in points:
            best = choose(candidates(p, rules)) if p.volume else None
            if best is None or any(p.at - e <= rules.cooldown for e in raised):
                continue
            raised.append(p.at)
            kept.add(p.at)
            value, baseline = float(best["value"]), float(best["baseline"] or 0.0)
            fields = {"kind": best["kind"], "severity": best["severity"], "value": value, "baseline": baseline,
                      "message": f"{ticker}: {best['message']}", "article_count": p.volume,
                      "article_ids": _article_ids(p, by_id, best["kind"], value, baseline)}
            old = stored.get(p.at)
            if old is None:
                alert = Alert(id=alert_id(ticker, p.at), ticker=ticker, at=p.at, quiet=not live, **fields)
                s.add(alert)
                s.flush()
                heard.append((to_json(alert), RAISED))
                continue
            if old.retracted_at is None and all(getattr(old, k) == v for k, v in fields.items()):
                continue
            louder = old.retracted_at is not None or (old.kind, old.severity) != (fields["kind"], fields["severity"])
            updated = not louder and _shown(old) != _shown(fields)
            for k, v in fields.items():
                setattr(old, k, v)
            if louder:  # the stream follows created_at: an alert that changed meaning is sent again
                old.created_at, old.raised_at, old.retracted_at, old.quiet = now, None, None, not live
                heard.append((to_json(old), RAISED))
            elif updated and live:  # sent again as an update; a quiet one (a backfill's) goes live with it
                old.raised_at, old.created_at, old.quiet = old.raised_at or old.created_at, now, False
                heard.append((to_json(old), UPDATED))
        for at, old in stored.items():
            if at >= lo and at not in kept and old.retracted_at is None:  # the bucket or its past changed
                old.retracted_at = old.created_at = now
                old.quiet = not live
                heard.append((to_json(old), RETRACTED))
    return heard


def evaluate(db: Any, touched: dict[str, list[datetime]], rules: Rules, live: bool = True) -> Judgement:
    """Raised and retracted alerts of every touched ticker; one ticker failing never loses the
    others' (its articles are scored and stored already; the error is logged and counted, and
    the ticker is returned in ``failed`` for the pipeline to judge again).
    ``live`` False: a backfill's judgment, stored quiet (see :func:`_reconcile`)."""
    new = Judgement()
    for ticker in sorted(touched):
        try:
            new += evaluate_ticker(db, ticker, touched[ticker], rules, live=live)
        except Exception:
            log.exception("alert evaluation failed for %s; other tickers go on", ticker)
            counter("finpulse_sentiment_alert_errors", "Tickers whose alert evaluation failed", ()).inc()
            new.failed[ticker] = list(touched[ticker])
    return new


def list_alerts(db: Any, *, since: datetime | None = None, ticker: str | None = None, limit: int = 100,
                bucket_s: int = 0, before: tuple[datetime, str] | None = None) -> list[dict[str, Any]]:
    """Alerts newest first (by event time, then id: a total order), optionally from ``since`` on,
    for one ticker, and after ``before`` (the ``(at, id)`` of the last alert of a previous page).

    An alert covers its bucket ``[at, at + bucket_s)``, so ``since`` inside the burst day
    still finds that day's alert. Ids hold the ticker, so one bucket's alerts stay by ticker.
    """
    q = select(Alert).where(Alert.retracted_at.is_(None)).order_by(Alert.at.desc(), Alert.id).limit(limit)
    if since is not None:
        q = (q.where(Alert.at > shift(since, -timedelta(seconds=bucket_s))) if bucket_s
             else q.where(Alert.at >= since))
    if ticker:
        q = q.where(Alert.ticker == ticker)
    if before is not None:
        q = q.where(or_(Alert.at < before[0], and_(Alert.at == before[0], Alert.id > before[1])))
    with db.session() as s:
        return [to_json(a) for a in s.scalars(q)]


def publish(settings: Any, judged: Judgement) -> None:
    """Push raised and retracted alerts to Redis pub/sub (a retraction is the alert with
    ``"retracted": true``) and the webhook (``{"alerts": [...], "retracted": [...]}``, in the
    background and in order: ``shared.webhooks``); never raises. Updates are left out: an
    alert's count moves with every scored batch of its bucket, and these listeners read every
    message as a new or changed alert (the SSE stream sends them as ``event: update``)."""
    messages = judged.raised + [{**a, "retracted": True} for a in judged.retracted]
    if not messages:
        return
    try:
        from shared.redis_client import channel, get_redis

        client, name = get_redis(settings.redis_url), channel(settings.redis_url, CHANNEL)
        for m in messages:
            client.publish(name, json.dumps(m))
    except Exception as exc:  # a Redis outage must not fail ingest; alerts are in the DB
        log.warning("could not publish %d alert events to Redis: %s", len(messages), exc)
    if settings.sentiment_webhook_url:
        webhooks.send(settings.sentiment_webhook_url, {"alerts": judged.raised, "retracted": judged.retracted})
