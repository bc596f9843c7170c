"""The analyst's scenario end to end, through `finpulse up` and HTTP only.

A real (tiny) fine-tuned classifier is the production model; `finpulse up` starts its own
Redis, SQLite, a Celery worker (scoring runs on the inference queue, not in the request)
and the sentiment service. A month of calm cashtagged news for three tickers, then a burst
of bad news for one: one alert, for that ticker, on the burst day; re-posting changes nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.upkit import free_ports, get_json, request_json, running_up, up_env

TICKERS = ("ACME", "BOLT", "CRUX")
START = datetime(2024, 3, 1, tzinfo=UTC)
BURST_DAY = START + timedelta(days=30)
# Phrased like the tiny model's training rows, so its labels are the known ones.
CALM = ["{t}: the company will hold its annual meeting in May",
        "{t} said the company will hold its annual meeting in May",
        "{t}: company will hold annual meeting in May"]
BAD = "{t}: profit fell sharply and the company warned of losses ({i})"


def _history() -> list[dict]:
    rows = []
    for d in range(30):
        for ti, t in enumerate(TICKERS):
            for k in range(2):
                at = START + timedelta(days=d, hours=9 + 3 * k + ti)
                rows.append({"id": f"{t}-{d}-{k}", "source": "wire", "published_at": at.isoformat(),
                             "title": CALM[(d + k) % len(CALM)].format(t=f"${t}"), "body": f"Notice {d}-{k}.",
                             "url": f"https://news.example/{t}/{d}/{k}"})
    return rows


def _burst_day() -> list[dict]:
    rows = [{"id": f"ACME-burst-{i}", "source": "wire", "published_at": (BURST_DAY + timedelta(hours=8, minutes=15 * i))
             .isoformat(), "title": BAD.format(t="$ACME", i=i), "body": f"Filing {i}.",
             "url": f"https://news.example/ACME/burst/{i}"}
            for i in range(6)]
    for t in TICKERS[1:]:  # the others have an ordinary day
        rows += [{"id": f"{t}-30-{k}", "source": "wire", "published_at": (BURST_DAY + timedelta(hours=10 + k))
                  .isoformat(), "title": CALM[k].format(t=f"${t}"), "body": f"Notice 30-{k}.",
                  "url": f"https://news.example/{t}/30/{k}"}
                 for k in range(2)]
    return rows


def _scored(base: str, ticker: str) -> int:
    """Articles of ``ticker`` that carry a stored score (the list also shows unscored ones)."""
    arts = get_json(f"{base}/v1/tickers/{ticker}/articles?limit=1000")[1]["articles"]
    return sum(a["label"] is not None for a in arts)


def _wait_scored(base: str, expected: dict[str, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = {t: _scored(base, t) for t in expected}
        if got == expected:
            return
        time.sleep(0.5)
    pytest.fail(f"scores not stored within {timeout:.0f} s: have {got}, want {expected}")


@pytest.mark.slow
def test_month_of_history_then_a_burst_gives_one_alert_through_up(home: Path, tiny_sentiment_model: Path) -> None:
    from shared.registry import Registry

    Registry(home / "registry").promote(
        Registry(home / "registry").register("news", "sentiment", tiny_sentiment_model, move=False).ref)
    ports = free_ports(4)
    base = f"http://127.0.0.1:{ports[0]}"
    with running_up(up_env(home, ports), "--no-prepare", "--services", "sentiment", services=("sentiment",)):
        status, body = request_json("POST", f"{base}/v1/news", _history())
        assert status == 202 and len(body["ids"]) == 180 and body["scoring"] == "queued"
        _wait_scored(base, {t: 60 for t in TICKERS})
        assert get_json(f"{base}/v1/alerts")[1]["alerts"] == []  # a calm month raises nothing

        status, body = request_json("POST", f"{base}/v1/news", _burst_day())
        assert status == 202 and body["scoring"] == "queued"
        _wait_scored(base, {"ACME": 66, "BOLT": 62, "CRUX": 62})
        alerts = get_json(f"{base}/v1/alerts")[1]["alerts"]
        on_burst_day = [a for a in alerts if a["at"].startswith(BURST_DAY.date().isoformat())]
        series = get_json(f"{base}/v1/tickers/ACME/sentiment?window=35d&end=2024-04-01T00:00:00Z")[1]
        assert [a["ticker"] for a in on_burst_day] == ["ACME"], (alerts, series["points"][-2:])
        assert on_burst_day[0]["value"] < on_burst_day[0]["baseline"]  # the tone turned negative
        assert sorted(on_burst_day[0]["article_ids"]) == sorted(f"ACME-burst-{i}" for i in range(6))
        arts = get_json(f"{base}/v1/tickers/ACME/articles?limit=6")[1]["articles"]
        assert {a["model_version"] for a in arts} == {"news/sentiment@v1"}  # scored by the production model

        status, body = request_json("POST", f"{base}/v1/news", _history() + _burst_day())
        assert status == 202 and body["ids"] == []  # every row a duplicate
        time.sleep(1.0)
        assert get_json(f"{base}/v1/alerts")[1]["alerts"] == alerts
        assert {t: _scored(base, t) for t in TICKERS} == {"ACME": 66, "BOLT": 62, "CRUX": 62}
