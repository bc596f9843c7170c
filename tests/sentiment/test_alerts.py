"""The key scenario: a month of calm history, a negative burst for one ticker, one alert."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import func, select

from services.sentiment.aggregate import Row, series
from services.sentiment.alerts import MAX_ARTICLE_IDS, list_alerts
from services.sentiment.models import Alert, Article, Score
from tests.sentiment.conftest import START, burst, day_of, history, mixed_day

TICKERS = ["ACME", "BOLT", "CRUX"]
BURST_DAY = START + timedelta(days=30)


def _scenario() -> list[dict]:
    return history(TICKERS, START, 30) + burst("ACME", BURST_DAY) + history(["BOLT", "CRUX"], BURST_DAY, 1)


def _alert_keys(alerts: list[dict]) -> set[tuple]:
    """Every field of each alert: value, baseline and article ids must match too, not only kind and time."""
    return {tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(a.items())) for a in alerts}



def test_burst_raises_one_alert_for_that_ticker_only(client, pipe) -> None:
    rows = _scenario()
    for day in range(31):  # live: one day at a time, in event-time order
        todays = [r for r in rows if r["published_at"][:10] == (START + timedelta(days=day)).date().isoformat()]
        assert client.post("/v1/news", json=todays).status_code == 202
    alerts = client.get("/v1/alerts").json["alerts"]
    on_burst_day = [a for a in alerts if a["at"].startswith(BURST_DAY.date().isoformat())]
    assert [a["ticker"] for a in on_burst_day] == ["ACME"]
    a = on_burst_day[0]
    assert set(a) == {"id", "ticker", "kind", "severity", "at", "value", "baseline", "message", "article_count",
                      "article_ids"}
    assert a["kind"] == "sentiment_shift" and a["severity"] == "critical" and a["value"] < a["baseline"]
    assert a["article_count"] == 8 and "on 8 articles" in a["message"]
    assert a["at"] == "2024-03-31T00:00:00Z"
    assert sorted(a["article_ids"]) == sorted(r["id"] for r in burst("ACME", BURST_DAY))
    assert alerts == sorted(alerts, key=lambda x: x["at"], reverse=True)  # newest first
    # posting everything again changes nothing
    with pipe.db.session() as s:
        before = [s.scalar(select(func.count()).select_from(m)) for m in (Article, Score, Alert)]
    again = client.post("/v1/news", json=rows)
    assert again.status_code == 202 and again.json["ids"] == []
    with pipe.db.session() as s:
        assert [s.scalar(select(func.count()).select_from(m)) for m in (Article, Score, Alert)] == before
    assert client.get("/v1/alerts").json["alerts"] == alerts
    for since in (BURST_DAY, BURST_DAY + timedelta(hours=10)):  # an alert covers its whole bucket
        got = client.get("/v1/alerts", query_string={"since": since.isoformat()}).json["alerts"]
        assert [x["id"] for x in got] == [a["id"]]
    assert client.get("/v1/alerts", query_string={"since": (BURST_DAY + timedelta(days=1)).isoformat()}
                      ).json["alerts"] == []


def test_backfill_gives_the_same_alerts_as_live(client, tmp_path, migrated, stub_scorer, monkeypatch) -> None:
    rows = _scenario()
    for day in range(31):
        todays = [r for r in rows if r["published_at"][:10] == (START + timedelta(days=day)).date().isoformat()]
        client.post("/v1/news", json=todays)
    live = client.get("/v1/alerts").json["alerts"]
    assert live

    # the same articles, shuffled in a file, replayed through the CLI into a fresh home
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in shuffled))
    home2 = tmp_path / "home2"
    home2.mkdir()
    monkeypatch.setenv("FINPULSE_HOME", str(home2))
    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    from services.sentiment.cli import news
    from shared.settings import reset_settings_cache

    reset_settings_cache()
    result = CliRunner().invoke(news, ["ingest", str(path), "--backfill", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["stored"] == len(rows) and report["rejected"] == 0 and report["scored"] == len(rows)
    from services.sentiment.pipeline import get_database

    backfilled = list_alerts(get_database(f"sqlite:///{home2 / 'finpulse.db'}"))
    assert _alert_keys(backfilled) == _alert_keys(live)


def test_a_window_starting_inside_the_alert_bucket_still_lists_the_alert(client) -> None:
    """Regression: window=36h put the start at noon of the burst day; its point was charted but
    its alert (at midnight) was left out of ``alerts``, so the chart had no marker."""
    client.post("/v1/news", json=_scenario())
    end = (BURST_DAY + timedelta(days=1)).isoformat()
    data = client.get("/v1/tickers/ACME/sentiment", query_string={"window": "36h", "end": end}).json
    assert data["points"][0]["at"] == "2024-03-31T00:00:00Z" == data["start"]  # start floored to its bucket
    assert [a["at"] for a in data["alerts"]] == ["2024-03-31T00:00:00Z"]


def test_cooldown_one_event_one_alert(client) -> None:
    rows = history(TICKERS, START, 30) + burst("ACME", BURST_DAY) + [
        {**r, "id": r["id"] + "-d2", "url": r["url"] + "/d2", "title": r["title"] + " (day 2)",
         "published_at": (BURST_DAY + timedelta(days=1, hours=2)).isoformat()} for r in burst("ACME", BURST_DAY)]
    client.post("/v1/news", json=rows)
    acme = client.get("/v1/alerts?ticker=ACME").json["alerts"]
    assert len(acme) == 1 and acme[0]["at"].startswith("2024-03-31")


def test_series_is_on_event_time_whatever_the_arrival_order(client) -> None:
    rows = history(["ACME"], START, 10, per_day=2)
    client.post("/v1/news", json=list(reversed(rows)))
    data = client.get("/v1/tickers/ACME/sentiment?window=10d&bucket=1d&articles=1").json
    assert [p["volume"] for p in data["points"]] == [2] * 10
    assert data["points"][0]["at"] == "2024-03-01T00:00:00Z"
    assert data["points"][3]["article_ids"] == ["ACME-0304-0", "ACME-0304-1"]
    hourly = client.get("/v1/tickers/ACME/sentiment?window=1d&bucket=1h").json
    assert len(hourly["points"]) == 24 and sum(p["volume"] for p in hourly["points"]) == 2
    arts = client.get("/v1/tickers/ACME/articles", query_string={"start": "2024-03-04", "end": "2024-03-05"}).json
    assert [a["id"] for a in arts["articles"]] == ["ACME-0304-1", "ACME-0304-0"] and arts["articles"][0]["scores"]


def test_ewma_and_z_score_known_answer() -> None:
    from datetime import UTC, datetime

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [Row(f"a{d}", t0 + timedelta(days=d, hours=1), 1.0, "neutral", 0.1 + 0.1 * (d % 2), 0.0, 0.3, "v")
            for d in range(10)]
    rows += [Row(f"b{i}", t0 + timedelta(days=10, hours=i), 1.0, "negative", 0.9, 0.0, 0.0, "v") for i in range(3)]
    pts = series(rows, t0 + timedelta(days=10), t0 + timedelta(days=11), 86400, baseline_days=30, alpha=0.5)
    p = pts[0]
    assert p.volume == 3 and abs(p.sentiment + 0.9) < 1e-9
    assert abs(p.baseline - 0.15) < 1e-9 and abs(p.baseline_std - 0.05) < 1e-9
    assert abs(p.z - (-0.9 - 0.15) / 0.15) < 1e-9  # std floored at 0.15
    ewma = None
    for d in range(10):
        day = 0.3 - (0.1 + 0.1 * (d % 2))
        ewma = day if ewma is None else 0.5 * day + 0.5 * ewma
    assert abs(p.ewma - (0.5 * -0.9 + 0.5 * ewma)) < 1e-9


def test_a_bucket_of_few_articles_is_judged_against_the_wider_swing_of_a_few_articles() -> None:
    """Sentiment QA: noise alone (random headlines, 2-10 a day) raised critical alerts on a busy
    ticker's 3-article weekend days, z-scored against the spread of its 10-article days' means.
    A mean of 3 articles is now judged against what 3 articles swing by; a typical bucket as before."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    draw = random.Random(5)  # 10 articles a day of mixed tone: days differ by chance, as real ones do
    rows = [Row(f"a{d}-{i}", t0 + timedelta(days=d, hours=1, minutes=i), 1.0, "neutral", max(-t, 0.0), 0.0,
                max(t, 0.0), "v") for d in range(20) for i, t in enumerate(draw.choices([-0.8, 0.0, 0.8], k=10))]

    def judged(day_tones: list[float]) -> tuple[float, float]:
        day = [Row(f"b{i}", t0 + timedelta(days=20, hours=i), 1.0, "negative", max(-t, 0.0), 0.0, max(t, 0.0), "v")
               for i, t in enumerate(day_tones)]
        p = series(rows + day, t0 + timedelta(days=20), t0 + timedelta(days=21), 86400)[0]
        assert p.baseline is not None and p.baseline_std is not None and p.z is not None
        return p.z, (p.sentiment - p.baseline) / max(p.baseline_std, 0.15)

    few, by_bucket_spread = judged([-0.8, -0.8, -0.8])
    assert by_bucket_spread < -3 < few < -1.5  # no longer critical: 3 articles swing wide
    typical, by_bucket_spread = judged([-0.8, -0.8, -0.8, -0.8, 0.0, 0.0, 0.0, -0.8, 0.0, -0.8])
    assert typical == by_bucket_spread  # a bucket of the usual size: as before (never narrower)


def test_late_history_still_judges_the_burst_day(client) -> None:
    """Burst posted before its history: the history's arrival re-judges the later buckets."""
    assert client.post("/v1/news", json=burst("ACME", BURST_DAY)).status_code == 202
    assert client.get("/v1/alerts").json["alerts"] == []  # no baseline yet
    shuffled = history(TICKERS, START, 30)
    random.Random(5).shuffle(shuffled)
    client.post("/v1/news", json=shuffled)
    alerts = client.get("/v1/alerts").json["alerts"]
    assert [(a["ticker"], a["at"]) for a in alerts] == [("ACME", "2024-03-31T00:00:00Z")]


def test_window_stats_from_prefix_sums_match_direct_numpy() -> None:
    """The O(1) baseline windows give the same count, mean and std as reading the window."""
    import numpy as np

    from services.sentiment.aggregate import _WindowStats

    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, 500)
    present = rng.random(500) > 0.4
    stats = _WindowStats(values, present)
    for i, lo in [(0, 0), (10, 0), (250, 100), (500, 0), (499, 498), (300, 299)]:
        window = values[lo:i][present[lo:i]]
        k, mean, std = stats(i, lo)
        assert k == window.size
        if window.size:
            assert abs(mean - window.mean()) < 1e-12 and abs(std - window.std()) < 1e-6
        else:
            assert (mean, std) == (0.0, 0.0)


def _wipe(pipe) -> None:
    from services.sentiment.models import ArticleTicker

    with pipe.db.session() as s:
        for model in (Alert, Score, ArticleTicker, Article):
            s.query(model).delete()


def test_alerts_do_not_depend_on_arrival_order_or_batching(pipe) -> None:
    """Regression (sentiment QA): live arrival one article at a time kept the alert judged on the
    bucket's first 3 articles (critical sentiment_shift, value -0.85, 3 ids) while a backfill
    judged the whole day (volume_spike, 10 ids); late history kept alerts its baseline no
    longer supports. Stored alerts must be a function of the articles alone."""
    rows = sorted(history(["ACME", "BOLT"], START, 30) + mixed_day("ACME", BURST_DAY)
                  + history(["ACME", "BOLT"], BURST_DAY + timedelta(days=1), 3), key=lambda r: r["published_at"])
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    outcomes, heard = {}, {}
    for mode, chunks in {"backfill": [rows], "live": [[r] for r in rows],
                         "shuffled": [shuffled[i:i + 25] for i in range(0, len(shuffled), 25)]}.items():
        _wipe(pipe)
        heard[mode] = []
        for chunk in chunks:
            heard[mode] += pipe.score(pipe.ingest(chunk).stored, publish=False).alerts
        outcomes[mode] = _alert_keys(list_alerts(pipe.db))
    assert outcomes["live"] == outcomes["backfill"] == outcomes["shuffled"]
    (alert,) = list_alerts(pipe.db)
    assert (alert["kind"], alert["at"], len(alert["article_ids"])) == ("volume_spike", "2024-03-31T00:00:00Z", 10)
    # live channels heard the early crash and then each change of kind or severity, under one id
    assert {a["id"] for a in heard["live"]} == {"ACME-20240331T0000"}
    assert (heard["live"][0]["kind"], heard["live"][-1]["kind"]) == ("sentiment_shift", "volume_spike")


def test_volume_baseline_does_not_depend_on_how_far_back_rows_were_loaded() -> None:
    """Regression: a bucket's volume baseline counted empty days only from the first row the
    caller loaded, so a weekday-only ticker got another baseline live (rows from 30 days back,
    starting on a weekend) than in a backfill, and in a 7d than in a 30d chart."""
    from datetime import UTC, datetime

    t0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday; no news at weekends
    rows = [Row(f"a{d}{k}", t0 + timedelta(days=d, hours=9 + k), 1.0, "neutral", 0.1, 0.8, 0.1, "v")
            for d in range(60) if (t0 + timedelta(days=d)).weekday() < 5 for k in range(2)]
    day = t0 + timedelta(days=35)  # its baseline window opens on a Saturday
    full = series(rows, t0, day + timedelta(days=1), 86400)[-1]  # judged from the start (a backfill)
    recent = series(rows, day, day + timedelta(days=1), 86400, since=t0)[0]  # from 30 days back (live)
    assert (full.at, recent.volume_baseline) == (day, full.volume_baseline)


def test_a_judgment_on_rows_read_before_a_concurrent_batch_does_not_stand(pipe, monkeypatch) -> None:
    """Regression: under `finpulse up` (32 scoring threads) an evaluation that read the bucket
    before another task's scores were committed stored its stale alert last (8 of 10 articles)."""
    import services.sentiment.alerts as alerts_mod

    rows = sorted(history(["ACME"], START, 30) + mixed_day("ACME", BURST_DAY), key=lambda r: r["published_at"])
    early, late = rows[:-2], rows[-2:]
    pipe.score(pipe.ingest(early).stored, publish=False)
    late_ids = pipe.ingest(late).stored
    real, calls = alerts_mod.load_rows, []

    def racing_load_rows(*args, **kw):
        got = real(*args, **kw)
        calls.append(len(got))
        if len(calls) == 1:  # the other task commits its scores and judges them meanwhile
            pipe.score(late_ids, publish=False)
        return got

    monkeypatch.setattr(alerts_mod, "load_rows", racing_load_rows)
    alerts_mod.evaluate_ticker(pipe.db, "ACME", [BURST_DAY], pipe.rules)
    (alert,) = list_alerts(pipe.db)
    assert len(alert["article_ids"]) == 10 and alert["value"] == 10.0


def test_a_corrected_article_moves_its_alert_to_its_new_tickers_and_time(client, pipe) -> None:
    """Regression (sentiment QA): re-posting articles with changed text was ignored, so the
    alert stayed on the old text. Now the old ticker and time are judged again at once and
    the new ones when rescored."""
    client.post("/v1/news", json=history(["ACME", "BOLT"], START, 30) + burst("ACME", BURST_DAY))
    assert [(a["ticker"], a["at"]) for a in list_alerts(pipe.db)] == [("ACME", "2024-03-31T00:00:00Z")]
    moved = [{**r, "title": r["title"].replace("$ACME", "$BOLT")} for r in burst("ACME", BURST_DAY)]
    r = client.post("/v1/news", json=moved)
    assert len(r.json["updated"]) == len(moved) and r.json["ids"] == []
    assert [(a["ticker"], a["at"]) for a in list_alerts(pipe.db)] == [("BOLT", "2024-03-31T00:00:00Z")]
    later = [{**r, "published_at": (datetime.fromisoformat(r["published_at"]) + timedelta(days=1)).isoformat()}
             for r in moved]  # the same text, a day later: its old day no longer has it
    client.post("/v1/news", json=[{**r, "body": "Investors reacted badly, again."} for r in later])
    assert [(a["ticker"], a["at"]) for a in list_alerts(pipe.db)] == [("BOLT", "2024-04-01T00:00:00Z")]


def test_a_window_of_no_whole_buckets_gives_the_numbers_of_whole_ones(client) -> None:
    """Regression (analytics QA): window=36h loaded the baseline from mid-day, 30 days back, so
    the first point's volume_z differed from window=2d's, and ``start`` was left mid-bucket."""
    client.post("/v1/news", json=_scenario())
    end = (BURST_DAY + timedelta(days=1)).isoformat()
    short, whole = (client.get("/v1/tickers/ACME/sentiment", query_string={"window": w, "end": end}).json
                    for w in ("36h", "2d"))
    assert short["points"] == whole["points"] and short["points"][0]["volume_z"] is not None
    assert short["start"] == whole["start"] == short["points"][0]["at"] == "2024-03-31T00:00:00Z"


def test_cli_alerts_apply_the_bucket_rule_and_normalise_the_ticker(client, migrated) -> None:
    """Regression (analytics QA): ``news alerts --since`` inside the burst day listed nothing
    (GET /v1/alerts lists the day's alert) and ``--ticker '$acme'`` looked for "$ACME"."""
    from services.sentiment.cli import news

    client.post("/v1/news", json=_scenario())
    since = (BURST_DAY + timedelta(hours=10)).isoformat()
    result = CliRunner().invoke(news, ["alerts", "--since", since, "--ticker", "$acme"])
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.output.splitlines()]
    assert [(a["ticker"], a["at"]) for a in got] == [("ACME", "2024-03-31T00:00:00Z")]
    assert got == client.get("/v1/alerts", query_string={"since": since, "ticker": "$acme"}).json["alerts"]


def test_a_backfill_keeps_its_alerts_off_the_live_stream(client, tmp_path, migrated, stub_scorer,
                                                        monkeypatch) -> None:
    """Regression (analytics QA): ``news ingest --backfill`` pushed nothing to Redis or the webhook,
    but the SSE stream (it polls news_alerts.created_at) sent every backfilled alert live."""
    from datetime import UTC, datetime

    from services.sentiment.cli import news

    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    before = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _scenario()))
    result = CliRunner().invoke(news, ["ingest", str(path), "--backfill", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["alerts"] == 1, result.output
    assert [a["ticker"] for a in client.get("/v1/alerts").json["alerts"]] == ["ACME"]  # listed all the same
    client.post("/v1/news", json=burst("BOLT", BURST_DAY))  # a live alert beside it
    live = client.get("/v1/alerts/stream", query_string={"max_s": 1, "after": before}).get_data(as_text=True)
    replay = client.get("/v1/alerts/stream?max_s=1", headers={"Last-Event-ID": "0"}).get_data(as_text=True)
    for stream in (live, replay):
        sent = [json.loads(b.split("data: ", 1)[1])["ticker"] for b in stream.split("\n\n") if "event: alert" in b]
        assert sent == ["BOLT"], stream


def test_quiet_alerts_are_listed_not_streamed_until_a_live_change(any_db_url, settings, redis_url,
                                                                  stub_scorer) -> None:
    """The backfill's ``quiet`` flag (migration sentiment_0003) on SQLite and PostgreSQL."""
    from datetime import UTC, datetime

    from services.sentiment import create_app, queries

    pipe = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer
                      ).extensions["sentiment"]
    before = datetime.now(UTC) - timedelta(seconds=1)
    rows = history(["ACME"], START, 30) + burst("ACME", BURST_DAY)
    pipe.score(pipe.ingest(rows, publish=False).stored, publish=False)  # what --backfill does
    assert [(a["ticker"], a["kind"]) for a in list_alerts(pipe.db)] == [("ACME", "sentiment_shift")]
    assert queries.alerts_created_after(pipe.db, before) == []
    assert queries.alerts_to_replay(pipe.db, after=(before, ""), limit=10) == []
    good = [r for r in mixed_day("ACME", BURST_DAY) if "good" in r["id"]]  # live: the day turns mixed
    pipe.score(pipe.ingest(good).stored)
    assert [(e["alert"]["kind"], e["retracted"]) for e in queries.alerts_created_after(pipe.db, before)] == [
        ("volume_spike", False)]


def test_an_earlier_syndicated_copy_arriving_late_moves_the_alert_to_its_day(pipe) -> None:
    """Regression (analytics QA): the first copy to arrive was counted, so a burst whose wire copies
    came in after midnight alerted on the next day live, and on its own day in a backfill."""
    late = [{**r, "id": r["id"] + "-b", "url": r["url"] + "/b", "source": "wireB",
             "published_at": (BURST_DAY + timedelta(days=1, minutes=30 + i)).isoformat()}
            for i, r in enumerate(burst("ACME", BURST_DAY))]
    early = [{**r, "published_at": (BURST_DAY + timedelta(hours=22, minutes=i)).isoformat()}
             for i, r in enumerate(burst("ACME", BURST_DAY))]
    calm = history(["ACME"], START, 30)
    outcomes = {}
    for mode, chunks in {"live": [calm, late, early], "backfill": [calm + early + late]}.items():
        _wipe(pipe)
        for chunk in chunks:
            pipe.score(pipe.ingest(chunk).stored)
        outcomes[mode] = _alert_keys(list_alerts(pipe.db))
    assert outcomes["live"] == outcomes["backfill"]
    assert [a["at"] for a in list_alerts(pipe.db)] == ["2024-03-31T00:00:00Z"]
    with pipe.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.retracted_at.is_(None))) == 1


def test_an_alert_counts_all_its_articles_and_lists_those_that_explain_it(client, pipe) -> None:
    """Regression (analyst QA, 20k articles): an alert kept the first 50 ids by time and nothing
    else, so the dashboard (counting ids) showed "50 articles" under a spike of 87. Now
    ``article_count`` has them all, and the 50 ids are the most relevant (a spike), or the
    furthest in the shift's direction: a rise listed its least positive articles first."""
    client.post("/v1/news", json=history(["ACME", "BOLT"], START, 30))
    # ACME: 40 articles naming it in passing, then 47 about it (more relevant, published later)
    spike = (day_of("ACME", BURST_DAY, 40, "names new supplier", in_title=False)
             + day_of("ACME", BURST_DAY, 47, "names new supplier", first=40))
    # BOLT: 10 routine articles first, then 55 glowing ones: sentiment rose
    rise = day_of("BOLT", BURST_DAY, 10, "updates product line") + day_of("BOLT", BURST_DAY, 55, "record beat", 10)
    assert client.post("/v1/news", json=spike + rise).status_code == 202
    alerts = {a["ticker"]: a for a in client.get("/v1/alerts").json["alerts"]}
    acme, bolt = alerts["ACME"], alerts["BOLT"]
    assert (acme["kind"], acme["article_count"], acme["value"]) == ("volume_spike", 87, 87.0)
    assert acme["message"].startswith("ACME: 87 articles") and len(acme["article_ids"]) == MAX_ARTICLE_IDS
    about = [r["id"] for r in spike[40:]]
    assert acme["article_ids"] == about + [r["id"] for r in spike[:3]]  # then the earliest in passing
    assert (bolt["kind"], bolt["article_count"]) == ("sentiment_shift", 65) and bolt["value"] > bolt["baseline"]
    assert bolt["article_ids"] == [r["id"] for r in rise[10:10 + MAX_ARTICLE_IDS]]  # the glowing ones
    assert "on 65 articles" in bolt["message"]


def test_an_alert_stored_before_its_count_is_served_with_its_ids_count(client, pipe) -> None:
    """An alert stored before ``article_count`` (migration sentiment_0004) has none: it is served
    with the number of its ids, and the next judgment of its bucket stores the true count."""
    client.post("/v1/news", json=history(["ACME"], START, 30) + day_of("ACME", BURST_DAY, 60))
    with pipe.db.session() as s:
        old = s.scalars(select(Alert)).one()
        old.article_count = None
    (a,) = client.get("/v1/alerts").json["alerts"]
    assert (a["article_count"], len(a["article_ids"])) == (MAX_ARTICLE_IDS, MAX_ARTICLE_IDS)
    client.post("/v1/news", json=day_of("ACME", BURST_DAY, 1, first=60))
    (a,) = client.get("/v1/alerts").json["alerts"]
    assert a["article_count"] == 61 and "on 61 articles" in a["message"]


def test_an_alert_whose_numbers_change_is_updated_not_raised_again(pipe) -> None:
    """Regression (analyst QA): an alert re-judged on more articles (same kind and severity) was
    stored but never sent again, so an open dashboard kept "21 articles (z=+7.7)" while the API
    said 26 (z=+10.1). The change is now an update: stream position moved, raise time kept."""
    from services.sentiment import queries
    from services.sentiment.alerts import Rules, evaluate

    before = datetime.now(UTC) - timedelta(seconds=1)
    pipe.score(pipe.ingest(history(["ACME"], START, 30)).stored, publish=False)
    raised = pipe.score(pipe.ingest(day_of("ACME", BURST_DAY, 8)).stored).alerts
    assert [(a["kind"], a["severity"], a["article_count"]) for a in raised] == [("sentiment_shift", "critical", 8)]
    (first,) = queries.alerts_created_after(pipe.db, before)
    assert first["raised_at"] == first["created_at"]
    assert pipe.score(pipe.ingest(day_of("ACME", BURST_DAY, 4, first=8)).stored).alerts == []  # none raised
    (event,) = queries.alerts_created_after(pipe.db, before)
    assert (event["alert"]["id"], event["alert"]["article_count"]) == (raised[0]["id"], 12)
    assert event["raised_at"] == first["created_at"] < event["created_at"]  # moved on the stream, raised then
    assert "on 12 articles" in event["alert"]["message"] and not event["retracted"]
    again = evaluate(pipe.db, {"ACME": [BURST_DAY]}, Rules.from_settings(pipe.settings))
    assert (again.raised, again.updated, again.retracted) == ([], [], [])  # nothing new: nothing heard
    pipe.score(pipe.ingest(day_of("ACME", BURST_DAY, 3, first=12)).stored, publish=False)  # a backfill's
    assert queries.alerts_created_after(pipe.db, event["created_at"]) == []  # stored, kept off the stream
    assert list_alerts(pipe.db)[0]["article_count"] == 15


def test_cli_score_with_nothing_to_score_names_no_model(migrated) -> None:
    """Docs QA: with nothing to score it said "scored 0 articles with -"."""
    from services.sentiment.cli import news

    result = CliRunner().invoke(news, ["score"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "scored 0 articles; new alerts 0"
