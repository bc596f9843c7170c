"""Scoring: articles (by id) -> one score per linked ticker, stored with the model version.

The scorer is injectable (anything with ``version`` and ``runtime.predict``), so tests use
a known-answer stub or a tiny real model and production uses the registry's
``production`` version through :func:`shared.inference.get_model`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError

from services.sentiment.language import scored_languages, skip_reason
from services.sentiment.linking import Linker, split_sentences
from services.sentiment.models import Article, ArticleTicker, Score, as_utc

log = logging.getLogger(__name__)
LEAD_CHARS = 300  # title plus lead: enough for the tone, short enough for ~200 articles/s


class Predictor(Protocol):
    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]: ...


@dataclass(frozen=True)
class Scorer:
    """A model version label, the runtime that predicts with it, and the languages it reads
    (``FINPULSE_SENTIMENT_LANGUAGES``; None: every one): an article in another is left unscored."""

    version: str
    runtime: Predictor
    languages: frozenset[str] | None = frozenset({"en"})

    def skips(self, art: Any) -> str | None:
        """Why article ``art`` is not to be scored by this model (its language), or None."""
        return skip_reason(getattr(art, "language", None), self.languages)


def model_ref(settings: Any) -> str:
    return f"{settings.sentiment_domain}/sentiment@production"


def load_scorer(settings: Any) -> Scorer:
    """The production sentiment model of the configured domain (cached per process)."""
    from shared.errors import Unavailable
    from shared.inference import get_model
    from shared.registry import get_registry

    ref = model_ref(settings)
    try:
        loaded = get_model(get_registry(settings), ref, kind=settings.runtime, device=settings.device)
    except Unavailable:
        from shared.firstrun import preparation_check

        try:  # `finpulse up` training the first model: said so, not "train one" (walkthrough QA)
            preparation_check(settings, "sentiment")()
        except Unavailable as preparing:
            raise Unavailable(f"no sentiment model yet (finpulse up is {preparing.message})") from None
        raise Unavailable(f"no sentiment model registered for {settings.sentiment_domain}/sentiment; "
                          "train one with `finpulse train sentiment` (or `finpulse up`)") from None
    return Scorer(loaded.ref, loaded.runtime, scored_languages(settings))


@dataclass
class ScoreReport:
    articles: int = 0
    texts: int = 0
    batch_size: int = 0
    skipped: int = 0  # claimed unscored: a language the model does not read
    # ticker -> event times of the newly scored articles (what alert evaluation needs)
    touched: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))


def lead(title: str, body: str, max_chars: int = LEAD_CHARS) -> str:
    return " ".join([title, *split_sentences(body)[:2]]).strip()[:max_chars]


def ticker_texts(art: Any, tickers: list[str], linker: Linker) -> dict[str, str]:
    """Ticker -> text of an article (anything with ``title`` and ``body``): what scoring and ``news
    relink`` score. A lone ticker the title names (or one the text never names) gets title plus
    lead; otherwise :meth:`Linker.texts_for`: a ticker only the body mentions gets its own sentences,
    also when it is the only one (finance QA: a wrap "Stocks slump as Fed worries mount" scored AAPL,
    up 2% in its last sentence, on the slump)."""
    if not tickers:
        return {"": lead(art.title, art.body)}
    if len(tickers) == 1 and tickers[0] in linker.mentions(art.title):
        return {tickers[0]: lead(art.title, art.body)}
    return linker.texts_for(tickers, art.title, art.body, LEAD_CHARS)


def predict_texts(scorer: Scorer, texts: list[str], batch_size: int) -> dict[str, dict]:
    """Text -> prediction, each distinct text run once (an article's tickers often share one)."""
    unique = list(dict.fromkeys(texts))
    return dict(zip(unique, scorer.runtime.predict(unique, batch_size=batch_size) if unique else [], strict=True))


def score_row(article_id: str, ticker: str, version: str, pred: dict, at: datetime) -> Score:
    """The stored score of one (article, ticker) prediction."""
    sc = pred["scores"]
    return Score(article_id=article_id, ticker=ticker, model_version=version, label=pred["label"],
                 negative=float(sc.get("negative", 0.0)), neutral=float(sc.get("neutral", 0.0)),
                 positive=float(sc.get("positive", 0.0)), scored_at=at)


def unscored_ids(db: Any, limit: int = 1000, arrived_before: datetime | None = None,
                 among: list[str] | None = None) -> list[str]:
    """Unscored articles (``among`` these ids, when given), arrived before ``arrived_before``."""
    with db.session() as s:
        q = select(Article.id).where(Article.scored_at.is_(None))
        if arrived_before is not None:
            q = q.where(Article.ingested_at <= arrived_before)
        if among is not None:
            q = q.where(Article.id.in_(among))
        rows = s.execute(q.order_by(Article.published_at).limit(limit))
        return [r[0] for r in rows]


def score_articles(db: Any, scorer: Scorer, linker: Linker, ids: list[str], batch_size: int = 64) -> ScoreReport:
    """Score the still-unscored articles among ``ids``; idempotent (scored ones are skipped)."""
    report = ScoreReport(batch_size=batch_size)
    with db.session() as s:
        arts = list(s.scalars(select(Article).where(Article.id.in_(ids), Article.scored_at.is_(None))))
        if not arts:
            return report
        links: dict[str, list[str]] = defaultdict(list)
        for at in s.scalars(select(ArticleTicker).where(ArticleTicker.article_id.in_([a.id for a in arts]))):
            links[at.article_id].append(at.ticker)
    # an article in a language the model does not read is claimed without scores: not in series or alerts
    skipped = {a.id: why for a in arts if (why := scorer.skips(a))}
    jobs = [(a, t, text) for a in arts if a.id not in skipped
            for t, text in ticker_texts(a, sorted(links[a.id]), linker).items()]
    preds = predict_texts(scorer, [text for _, _, text in jobs], batch_size)
    now = datetime.now(UTC)
    try:
        with db.session() as s:
            # rows locked in id order, as ingest locks them: two tasks claiming versions of the
            # same articles in scan order deadlocked on PostgreSQL (PG QA); SQLite ignores it
            s.execute(select(Article.id).where(Article.id.in_([a.id for a in arts])).order_by(Article.id)
                      .with_for_update())
            # claim first: only articles still unscored and still carrying the text just scored.
            # One updated meanwhile (new text, scores dropped) is left to its own scoring task;
            # one updated after the claim waits for this commit (row lock) and then drops these scores.
            claimed = set(s.scalars(update(Article).where(
                tuple_(Article.id, Article.content_hash).in_([(a.id, a.content_hash) for a in arts]),
                Article.scored_at.is_(None)).values(scored_at=now).returning(Article.id)
                .execution_options(synchronize_session=False)))
            if len(claimed) < len(arts):
                log.info("%d of %d articles changed or were scored elsewhere while scoring; their scores "
                         "are not written", len(arts) - len(claimed), len(arts))
            arts = [a for a in arts if a.id in claimed]
            for aid in sorted(claimed & skipped.keys()):
                s.execute(update(Article).where(Article.id == aid).values(skip_reason=skipped[aid])
                          .execution_options(synchronize_session=False))
            for art, ticker, text in jobs:
                if art.id not in claimed:
                    continue
                s.add(score_row(art.id, ticker, scorer.version, preds[text], now))
                if ticker:
                    report.touched[ticker].append(as_utc(art.published_at))
    except IntegrityError:  # another worker scored them meanwhile
        log.info("articles already scored by another worker; skipping %d", len(arts))
        return ScoreReport(batch_size=batch_size)
    report.skipped = sum(1 for a in arts if a.id in skipped)
    report.articles = len(arts) - report.skipped
    report.texts = len({text for art, _, text in jobs if art.id in claimed})
    return report
