"""Per-ticker time series on event time (``published_at``), z-scored against the ticker's past.

For each bucket (hour or day): article volume, the relevance-weighted mean sentiment
(positive minus negative probability), its EWMA across buckets, and z-scores of sentiment,
volume and negative count against the ticker's own rolling baseline (default 30 days,
only buckets before the one judged). Pure functions over rows, so backfill and live
arrival give the same numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select

from services.sentiment.models import Article, ArticleTicker, Score, as_utc
from shared.errors import BadInput

BUCKETS = {"1h": 3600, "1d": 86400}
STD_FLOOR = 0.15  # a calm ticker's tiny spread must not turn small moves into big z-scores
MIN_BASELINE_BUCKETS = 7  # buckets with articles (a week of days) before any z-score is given
# ASCII digits only, nothing around them, as every number in a query (shared.web.int_arg): ``\d`` also took
# "３０d" and "٣٠d", and a strip() " 30d " (QA)
_DURATION = re.compile(r"([0-9]{1,4})([hdw])")


MAX_WINDOW = timedelta(days=3660)  # the longest series one request may ask for
# points one series may have: 3660d hourly was 87,840 points (18.7 MB, 4.5 s of CPU) for anyone
# who asked; 1h buckets cover ~416 days, 1d the whole MAX_WINDOW (the dashboard's 365d fits both)
MAX_POINTS = 10_000


def parse_duration(text: str, name: str = "window") -> timedelta:
    m = _DURATION.fullmatch(text or "")
    if not m:
        raise BadInput(f"{name} must look like 12h, 30d or 4w in ASCII digits, got {(text or '')[:20]!r}")
    n, unit = int(m.group(1)), m.group(2)
    delta = timedelta(hours=n) if unit == "h" else timedelta(days=n * (7 if unit == "w" else 1))
    if not timedelta(hours=1) <= delta <= MAX_WINDOW:
        raise BadInput(f"{name} must be between 1h and 3660d, got {text!r}")
    return delta


def bucket_seconds(bucket: str) -> int:
    if bucket not in BUCKETS:
        raise BadInput(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    return BUCKETS[bucket]


def shift(dt: datetime, delta: timedelta) -> datetime:
    """``dt + delta`` clamped to the datetime range, so window arithmetic near year 1 or 9999
    (an old stored article, a far ``end``) narrows the window instead of raising OverflowError."""
    try:
        return dt + delta
    except OverflowError:
        return (datetime.max if delta > timedelta(0) else datetime.min).replace(tzinfo=UTC)


def floor_time(dt: datetime, seconds: int) -> datetime:
    ts = int(as_utc(dt).timestamp())
    return datetime.fromtimestamp(ts - ts % seconds, UTC)


@dataclass
class Row:
    article_id: str
    published_at: datetime
    relevance: float
    label: str
    negative: float
    neutral: float
    positive: float
    model_version: str

    @property
    def sentiment(self) -> float:
        return self.positive - self.negative


@dataclass
class Point:
    at: datetime
    volume: int = 0
    sentiment: float | None = None
    ewma: float | None = None
    z: float | None = None
    baseline: float | None = None
    baseline_std: float | None = None
    negatives: int = 0
    negatives_baseline: float | None = None
    negatives_z: float | None = None
    volume_baseline: float | None = None
    volume_z: float | None = None
    article_ids: list[str] = field(default_factory=list)

    def to_dict(self, with_articles: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = self.at.isoformat().replace("+00:00", "Z")
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 4)
        if not with_articles:
            d.pop("article_ids")
        return d


def load_rows(db: Any, ticker: str, start: datetime, end: datetime, source: str | None = None) -> list[Row]:
    """Scored mentions of ``ticker`` with ``start <= published_at < end``."""
    q = (select(ArticleTicker.article_id, ArticleTicker.published_at, ArticleTicker.relevance, Score.label,
                Score.negative, Score.neutral, Score.positive, Score.model_version)
         .join(Score, and_(Score.article_id == ArticleTicker.article_id, Score.ticker == ArticleTicker.ticker))
         .where(ArticleTicker.ticker == ticker, ArticleTicker.published_at >= start,
                ArticleTicker.published_at < end)
         .order_by(ArticleTicker.published_at, ArticleTicker.article_id))  # ties too: ids in a fixed order
    if source:
        q = q.join(Article, Article.id == ArticleTicker.article_id).where(Article.source == source)
    with db.session() as s:
        return [Row(r[0], as_utc(r[1]), *r[2:]) for r in s.execute(q)]


def coverage(db: Any, ticker: str, source: str | None = None) -> tuple[datetime, datetime] | None:
    """Event times of the ticker's first and latest article (None when it has none)."""
    q = select(func.min(ArticleTicker.published_at), func.max(ArticleTicker.published_at)).where(
        ArticleTicker.ticker == ticker)
    if source:
        q = q.join(Article, Article.id == ArticleTicker.article_id).where(Article.source == source)
    with db.session() as s:
        first, latest = s.execute(q).one()
    return (as_utc(first), as_utc(latest)) if first is not None else None


class _WindowStats:
    """Count, mean and std of ``values[lo:i]`` where ``present``, from prefix sums.

    Every bucket asks for its trailing baseline window; prefix sums answer each in O(1)
    instead of re-reading the window (the alert check re-runs a ticker's series for every
    scored batch, so this was a quarter of ingest time).
    """

    def __init__(self, values: np.ndarray, present: np.ndarray):
        v = np.where(present, values, 0.0)
        self.n = np.concatenate(([0], np.cumsum(present, dtype=np.int64)))
        self.s = np.concatenate(([0.0], np.cumsum(v)))
        self.q = np.concatenate(([0.0], np.cumsum(v * v)))

    def __call__(self, i: int, lo: int) -> tuple[int, float, float]:
        k = int(self.n[i] - self.n[lo])
        if k <= 0:
            return 0, 0.0, 0.0
        mean = float(self.s[i] - self.s[lo]) / k
        var = float(self.q[i] - self.q[lo]) / k - mean * mean
        return k, mean, math.sqrt(var) if var > 1e-12 else 0.0  # below that: rounding, not spread


class _Sums:
    """Windowed sums (prefix sums, as :class:`_WindowStats`) of the articles' count, sentiment,
    squared sentiment and of 1/volume over the buckets that hold articles."""

    def __init__(self, *columns: np.ndarray):
        self.c = [np.concatenate(([0.0], np.cumsum(col))) for col in columns]

    def spread(self, i: int, lo: int, k: int, bucket_std: float, volume: int) -> float:
        """The standard deviation expected of a bucket mean of ``volume`` articles.

        A mean of 3 articles swings far more than one of 10, but the spread of bucket means is
        set by the typical bucket: noise alone raised critical alerts on a busy ticker's quiet
        weekend days. The spread splits into the day-to-day swing of the tone (what the bucket
        means vary by beyond their sampling noise) plus the articles' own spread over ``volume``.
        Never below the spread of bucket means: a busy day's articles mostly retell one story,
        so they are not as many independent draws as their count says.
        """
        n, total, squares, inverse = (float(c[i] - c[lo]) for c in self.c)
        if n <= 0:
            return bucket_std
        per_article = max(squares / n - (total / n) ** 2, 0.0)
        between = max(bucket_std * bucket_std - per_article * inverse / k, 0.0)
        return max(bucket_std, math.sqrt(between + per_article / volume))


def series(rows: list[Row], start: datetime, end: datetime, bucket_s: int, baseline_days: float = 30,
           alpha: float = 0.3, min_articles: int = 3, since: datetime | None = None) -> list[Point]:
    """Points for the buckets in ``[start, end)``; ``rows`` must reach back ``baseline_days``.

    ``since`` is the ticker's first article: volume baselines count empty buckets from there
    on only. Without it the first row given stands in, which makes the baselines depend on
    how far back the caller happened to load (a weekend at the start of the loaded range).
    """
    first = floor_time(shift(start, -timedelta(days=baseline_days)), bucket_s)
    n_buckets = max(0, math.ceil((end - first).total_seconds() / bucket_s))
    pts = [Point(first + timedelta(seconds=i * bucket_s)) for i in range(n_buckets)]
    wsum, wsent = np.zeros(n_buckets), np.zeros(n_buckets)
    asum, asq = np.zeros(n_buckets), np.zeros(n_buckets)  # per-article sums: the articles' own spread
    for r in rows:
        i = int((r.published_at - first).total_seconds() // bucket_s)
        if 0 <= i < n_buckets:
            p = pts[i]
            p.volume += 1
            p.negatives += r.label == "negative"
            p.article_ids.append(r.article_id)
            wsum[i] += r.relevance
            wsent[i] += r.relevance * r.sentiment
            asum[i] += r.sentiment
            asq[i] += r.sentiment * r.sentiment
    vol = np.array([p.volume for p in pts], dtype=float)
    neg = np.array([p.negatives for p in pts], dtype=float)
    has = vol > 0
    sent = np.where(wsum > 0, wsent / np.maximum(wsum, 1e-9), 0.0)
    data_idx = np.flatnonzero(has)
    first_data = int(data_idx[0]) if data_idx.size else n_buckets
    if since is not None:
        first_data = min(max(0, int((floor_time(since, bucket_s) - first).total_seconds() // bucket_s)), first_data)
    window = int(baseline_days * 86400 // bucket_s)
    everywhere = np.ones(n_buckets, dtype=bool)
    sent_stats, vol_stats, neg_stats = (_WindowStats(sent, has), _WindowStats(vol, everywhere),
                                        _WindowStats(neg, everywhere))
    articles = _Sums(vol, asum, asq, np.where(has, 1.0 / np.maximum(vol, 1.0), 0.0))
    ewma = None
    for i, p in enumerate(pts):
        if has[i]:
            p.sentiment = float(sent[i])
            ewma = p.sentiment if ewma is None else alpha * p.sentiment + (1 - alpha) * ewma
        p.ewma = ewma
        lo = max(i - window, first_data)
        k, mean, std = sent_stats(i, lo)
        if k >= MIN_BASELINE_BUCKETS:
            p.baseline, p.baseline_std = mean, std
            if p.volume >= min_articles:
                p.z = (float(sent[i]) - mean) / max(articles.spread(i, lo, k, std, p.volume), STD_FLOOR)
            _, vmean, vstd = vol_stats(i, lo)
            p.volume_baseline = vmean
            p.volume_z = (p.volume - vmean) / max(vstd, math.sqrt(max(vmean, 1.0)))
            _, nmean, nstd = neg_stats(i, lo)
            p.negatives_baseline = nmean
            p.negatives_z = (p.negatives - nmean) / max(nstd, math.sqrt(max(nmean, 1.0)))
    return [p for p in pts if p.at >= floor_time(start, bucket_s)]


def ticker_series(db: Any, ticker: str, *, window: timedelta, bucket: str, end: datetime | None = None,
                  source: str | None = None, settings: Any = None, start: datetime | None = None) -> dict[str, Any]:
    """The series the API returns: window ends at ``end`` or at the ticker's latest article.

    A ``start`` replaces the window, so a chart can be asked for a fixed period (a quarter)
    without the caller working out its length. Either way the start is floored to its bucket
    before the baseline rows are loaded: from a mid-bucket start they missed part of the first
    baseline bucket, so ``window=36h`` gave other z-scores than ``window=2d`` for the same day.
    """
    bucket_s = bucket_seconds(bucket)
    baseline_days = getattr(settings, "sentiment_baseline_days", 30)
    span = coverage(db, ticker, source)
    if end is None:
        end = span[1] if span else datetime.now(UTC)
    end = shift(floor_time(end, bucket_s), timedelta(seconds=bucket_s))
    if start is None:  # a window that is no whole number of buckets (36h) starts inside one
        start = floor_time(shift(end, -window), bucket_s)
    else:
        start = floor_time(start, bucket_s)
        if start >= end:
            raise BadInput(f"start must lie before end ({end.isoformat().replace('+00:00', 'Z')}), "
                           f"got {start.isoformat().replace('+00:00', 'Z')}")
        if end - start > MAX_WINDOW:
            raise BadInput(f"start must lie at most 3660 days before end, got {(end - start).days} days")
    points = (end - start) // timedelta(seconds=bucket_s)
    if points > MAX_POINTS:
        raise BadInput(f"that series has {points} {bucket} points; the limit is {MAX_POINTS} (about "
                       f"{MAX_POINTS * bucket_s // 86400} days of {bucket} buckets): ask for bucket=1d "
                       "or a shorter window")
    rows = load_rows(db, ticker, shift(start, -timedelta(days=baseline_days)), end, source)
    pts = series(rows, start, end, bucket_s, baseline_days, getattr(settings, "sentiment_ewma_alpha", 0.3),
                 getattr(settings, "sentiment_min_articles", 3), since=span[0] if span else None)
    return {"ticker": ticker, "bucket": bucket, "start": start.isoformat().replace("+00:00", "Z"),
            "end": end.isoformat().replace("+00:00", "Z"), "points": pts,
            "model_versions": sorted({r.model_version for r in rows if r.published_at >= start})}
