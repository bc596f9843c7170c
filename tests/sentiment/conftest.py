"""Sentiment fixtures: a migrated SQLite app with a known-answer scorer, and news builders."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

NEGATIVE = ("plunge", "fraud", "lawsuit", "recall", "loss", "collapse", "probe", "warning")
POSITIVE = ("record", "beat", "surge", "growth", "upgrade", "strong")


class KeywordRuntime:
    """Known answers: negative/positive keywords decide the label; counts every call."""

    labels = ["negative", "neutral", "positive"]

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        self.calls.append(len(texts))
        out = []
        for t in texts:
            low = t.lower()
            if any(w in low for w in NEGATIVE):
                scores = {"negative": 0.9, "neutral": 0.05, "positive": 0.05}
            elif any(w in low for w in POSITIVE):
                scores = {"negative": 0.05, "neutral": 0.15, "positive": 0.8}
            else:
                scores = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
            out.append({"label": max(scores, key=scores.get), "scores": scores})
        return out


@pytest.fixture
def stub_scorer():
    from services.sentiment.scoring import Scorer

    return Scorer("stub/sentiment@v1", KeywordRuntime())


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory):
    """Migrate once per session (all Alembic branches); tests copy the file."""
    from shared.db import upgrade

    path = tmp_path_factory.mktemp("sentiment-db") / "finpulse.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def migrated(settings, template_db):
    for suffix in ("", "-wal", "-shm"):
        src = template_db.with_name(template_db.name + suffix)
        if src.exists():
            shutil.copy(src, settings.home / f"finpulse.db{suffix}")
    return settings


@pytest.fixture
def app(migrated, redis_url, stub_scorer):
    from services.sentiment import create_app

    return create_app(migrated, scorer=stub_scorer)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def pipe(app):
    return app.extensions["sentiment"]


ROUTINE = ["{n} schedules annual meeting", "{n} names new board member", "{n} opens office in Austin",
           "{n} reports steady quarter, record growth in cloud", "{n} updates product line",
           "{n} hosts investor day"]


def history(tickers: list[str], start: datetime, days: int, per_day: int = 3) -> list[dict[str, Any]]:
    """A month of calm, cashtagged news for each ticker (mostly neutral, some positive)."""
    rows = []
    for d in range(days):
        for ti, t in enumerate(tickers):
            for k in range(per_day):
                title = ROUTINE[(d + k + ti) % len(ROUTINE)].format(n=f"${t}")
                at = start + timedelta(days=d, hours=9 + 2 * k + ti)
                rows.append({"id": f"{t}-{at:%m%d}-{k}", "source": f"wire{k % 2}", "published_at": at.isoformat(),
                             "title": title, "body": f"Note {k} about {t} on {at:%b %d}.",
                             "url": f"https://news.example/{t}/{at:%m%d}/{k}"})
    return rows


def burst(ticker: str, day: datetime, n: int = 8) -> list[dict[str, Any]]:
    words = ["fraud probe", "product recall", "lawsuit", "shares plunge", "profit warning", "accounting probe",
             "loss widens", "collapse fears", "fraud charges", "recall expands"]
    return [{"id": f"{ticker}-burst-{i}", "source": "wire0", "published_at": (day + timedelta(hours=8, minutes=20 * i))
             .isoformat(), "title": f"${ticker} {words[i % len(words)]} #{i}", "body": "Investors reacted badly.",
             "url": f"https://news.example/{ticker}/burst/{i}"} for i in range(n)]


def day_of(ticker: str, day: datetime, n: int, words: str = "fraud probe", first: int = 0,
           in_title: bool = True) -> list[dict[str, Any]]:
    """``n`` articles numbered from ``first`` on ``day``, 5 minutes apart from 06:00 (a day holds
    200), saying ``words`` (the scorer's keywords decide their label) with the cashtag in the
    title, or only in the body (less relevant) when not ``in_title``."""
    rows = []
    for i in range(first, first + n):
        title = f"${ticker} {words} #{i}" if in_title else f"Sector roundup: {words} #{i}"
        rows.append({"id": f"{ticker}-{words.replace(' ', '-')}-{i}", "source": "wire0",
                     "published_at": (day + timedelta(hours=6, minutes=5 * i)).isoformat(), "title": title,
                     "body": f"Coverage of ${ticker}." if not in_title else "Investors reacted.",
                     "url": f"https://news.example/{ticker}/{words.replace(' ', '-')}/{i}"})
    return rows


def mixed_day(ticker: str, day: datetime) -> list[dict[str, Any]]:
    """A day that opens with bad news and ends well: judged on its first articles it looks
    like a crash, judged whole it is a volume spike."""
    good = [{"id": f"{ticker}-good-{i}", "source": "wire1", "title": f"${ticker} record growth upgrade #{i}",
             "published_at": (day + timedelta(hours=14, minutes=10 * i)).isoformat(), "body": "Strong.",
             "url": f"https://news.example/{ticker}/good/{i}"} for i in range(6)]
    return burst(ticker, day, 4) + good


START = datetime(2024, 3, 1, tzinfo=UTC)
