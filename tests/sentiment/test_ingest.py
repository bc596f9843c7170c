from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.sentiment.models import Article, ArticleTicker, Score, as_utc


def _count(pipe, model) -> int:
    with pipe.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def art(i: int, **kw):
    row = {"id": f"a{i}", "source": "wire", "published_at": "2024-05-01T10:00:00Z",
           "title": f"$ACME item {i}", "body": f"Body {i}.", "url": f"https://x.example/{i}"}
    row.update(kw)
    return row


def test_post_news_stores_links_and_scores_with_model_version(client, pipe) -> None:
    r = client.post("/v1/news", json=art(1, published_at="2024-05-01T12:00:00+02:00"))
    assert r.status_code == 202 and r.json["ids"] == ["a1"] and r.json["scoring"] == "scored"
    with pipe.db.session() as s:
        a = s.get(Article, "a1")
        assert a.published_at.replace(tzinfo=UTC) == datetime(2024, 5, 1, 10, tzinfo=UTC)  # normalised to UTC
        assert s.scalar(select(ArticleTicker.ticker)) == "ACME"
        assert s.scalar(select(Score.model_version)) == "stub/sentiment@v1"


def test_duplicates_by_id_url_and_syndicated_copy_count_once(client, pipe) -> None:
    first = art(1, title="$ACME wins contract", body="Acme signed a deal.")
    rows = [first,
            art(2, url="https://x.example/1/?utm_source=feed#top"),  # same URL once normalised
            {**art(3, title="$ACME WINS contract!", body="Acme signed a deal"), "source": "other"},  # syndicated
            art(1, title="different text, same id"),
            art(4, title="$ACME wins contract", body="Acme signed a deal.", published_at="2024-05-20T10:00:00Z")]
    r = client.post("/v1/news", json=rows)
    assert r.status_code == 202
    assert r.json["ids"] == ["a1", "a4"]  # the same text weeks later is news again
    reasons = {d["index"]: d["reason"] for d in r.json["duplicates"]}
    assert reasons == {1: "duplicate url", 2: "duplicate content (syndicated copy)", 3: "duplicate id"}
    assert r.json["article_ids"] == ["a1", "a1", "a1", "a1", "a4"]  # each row's stored id, in order
    again = client.post("/v1/news", json=rows)
    assert again.status_code == 202 and again.json["ids"] == [] and len(again.json["duplicates"]) == 5
    assert again.json["article_ids"] == r.json["article_ids"]  # a retry still learns every stored id
    assert _count(pipe, Article) == 2 and _count(pipe, Score) == 2


def test_an_id_typed_with_a_combining_accent_is_the_same_id_as_the_composed_one(client, pipe) -> None:
    """i18n QA: "café-1" with a combining accent (NFD) would have been stored beside the NFC one."""
    nfc, nfd = "caf\u00e9-1", "cafe\u0301-1"
    first = client.post("/v1/news", json={**art(1, title="$ACME wins contract"), "id": nfd})
    assert first.status_code == 202 and first.json["ids"] == [nfc]
    again = client.post("/v1/news", json={**art(1, title="$ACME wins contract"), "id": nfc})
    assert again.json["ids"] == [] and again.json["duplicates"][0]["reason"] == "duplicate id"
    assert _count(pipe, Article) == 1


def test_rows_without_id_are_told_apart_by_url_or_by_text_and_time(client, pipe) -> None:
    """Regression (sentiment QA): a row without id took its id from its text alone, so another
    URL with the same words weeks later was dropped as a "duplicate id", and after a story's
    text was edited a new URL carrying its first text overwrote it."""
    def post(url, title, day):
        row = {"source": "wire", "published_at": f"2024-03-{day:02d}T10:00:00Z", "title": title}
        return client.post("/v1/news", json={**row, "url": url} if url else row).json

    first = post("https://over.example/A", "$ACME story first draft", 1)["article_ids"][0]
    assert post("https://over.example/A", "$ACME story corrected", 1)["updated"] == [first]
    other = post("https://over.example/B", "$ACME story first draft", 20)  # another URL, its own story
    assert other["stored"] == 1 and other["ids"] != [first] and other["updated"] == []
    with pipe.db.session() as s:
        a = s.get(Article, first)
        assert (a.url, a.title) == ("https://over.example/A", "$ACME story corrected")
    later = post("https://rec.example/2", "$ACME recurring headline", 1), post("https://rec.example/3",
                                                                              "$ACME recurring headline", 25)
    assert [r["stored"] for r in later] == [1, 1]  # the same words weeks later are news again
    # no url: the same headline is one article within the syndication window, another outside it
    assert post(None, "$ACME weekly update", 1)["stored"] == 1
    assert post(None, "$ACME weekly update", 2)["duplicates"][0]["reason"] == "duplicate content (syndicated copy)"
    assert post(None, "$ACME weekly update", 15)["stored"] == 1
    assert post(None, "$ACME weekly update", 15)["duplicates"][0]["reason"] == "duplicate id"  # a retry


def test_a_concurrent_insert_of_the_same_url_is_judged_against_the_stored_article(client, pipe) -> None:
    """Two requests race with one URL under different ids: the loser's row must name the
    winner's id (it named its own, which was never stored), and its text, if other, is a new
    version of the winner's article (it was dropped as a duplicate)."""
    from services.sentiment.ingest import IngestReport, _ingest_one_by_one, normalise

    assert client.post("/v1/news", json=art(1)).json["article_ids"] == ["a1"]  # the winner
    window = timedelta(hours=72)
    same, other = (normalise(row, pipe.linker, now=datetime.now(UTC), max_chars=100_000, skew_s=300)
                   for row in (art(2, title="$ACME item 1", body="Body 1.", url="https://x.example/1"),
                               art(3, url="https://x.example/1")))  # checked before a1 existed, then inserted
    report = _ingest_one_by_one(pipe.db, [(0, same), (1, other)], IngestReport(), window)
    assert (report.stored, report.updated, report.to_dict()["article_ids"]) == ([], ["a1"], ["a1", "a1"])
    assert [(d["index"], d["reason"], d["duplicate_of"]) for d in report.duplicates] == [(0, "duplicate url", "a1")]
    with pipe.db.session() as s:
        assert s.get(Article, "a1").title == "$ACME item 3" and _count(pipe, Article) == 1


def test_bad_rows_are_rejected_with_reasons_and_good_rows_still_stored(client, pipe, migrated) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    rows = [art(1), art(2, published_at=None), art(3, published_at="not a date"), art(4, published_at=future),
            art(5, title="", body="  "), art(6, body="x" * (migrated.sentiment_max_article_chars + 1)),
            art(7, title="bad\tcontrol\x07only"), "not an object", art(8, tickers=[1, 2]), art(9)]
    r = client.post("/v1/news", json=rows)
    assert r.status_code == 202, r.json
    assert r.json["ids"] == ["a1", "a7", "a9"]  # control characters repaired
    assert r.json["article_ids"] == ["a1", *[None] * 5, "a7", None, None, "a9"]  # None: rejected
    reasons = {x["index"]: x["reason"] for x in r.json["rejected"]}
    assert reasons[1] == "missing published_at"
    assert "unparseable" in reasons[2] and "future" in reasons[3] and "empty text" in reasons[4]
    assert "oversize" in reasons[5] and "object" in reasons[7] and "tickers" in reasons[8]
    assert _count(pipe, Article) == 3
    # a lone surrogate (not encodable as UTF-8) makes the JSON body itself a 400, never a 500
    r = client.post("/v1/news", data=b'[{"title": "bad \\udcff", "published_at": "2024-01-01"}]',
                    content_type="application/json")
    assert r.status_code == 400
    # ... and in a list it is that row's fault alone: the good rows are stored (the whole request
    # was a 400 "not valid UTF-8 JSON"); a NUL is a control character like the others, removed
    body = ('[{"id": "s1", "source": "w", "title": "good row", "published_at": "2024-01-01"},'
            ' {"id": "s2", "source": "w", "title": "bad \\udcff", "published_at": "2024-01-01"},'
            ' {"id": "s3", "source": "w", "title": "nul \\u0000 row", "published_at": "2024-01-01"}]')
    r = client.post("/v1/news", data=body.encode(), content_type="application/json")
    assert r.status_code == 202 and r.json["ids"] == ["s1", "s3"], r.json
    assert [x["index"] for x in r.json["rejected"]] == [1] and "UTF-8" in r.json["rejected"][0]["reason"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_news_not_sent_as_json_is_a_415_and_stores_nothing(client, pipe, content_type) -> None:
    """Regression: the body was read as JSON whatever its type, so any web page could post news
    (and raise alerts) with a form or a no-cors fetch, which need no CORS preflight."""
    r = client.post("/v1/news", data=json.dumps(art(1)), content_type=content_type)
    assert r.status_code == 415 and r.json["error"]["code"] == "unsupported_media_type", r.json
    assert _count(pipe, Article) == 0
    ok = client.post("/v1/news", data=json.dumps(art(1)), content_type="application/json; charset=utf-8")
    assert ok.status_code == 202 and ok.json["ids"] == ["a1"]


def test_malformed_requests_are_4xx_json_never_500(client) -> None:
    bad = [client.post("/v1/news", data=b"{not json", content_type="application/json"),
           client.post("/v1/news", data=b'{"title": "\xff\xfe"}', content_type="application/json"),
           client.post("/v1/news", json=[]), client.post("/v1/news", json=42),
           client.post("/v1/news", json={"title": "no date"}),
           client.get("/v1/tickers/$$$/sentiment"), client.get("/v1/tickers/ACME/sentiment?window=forever"),
           client.get("/v1/alerts?since=yesterday-ish"), client.get("/v1/alerts?limit=0")]
    for r in bad:
        assert 400 <= r.status_code < 500, r.data
        assert set(r.json["error"]) == {"code", "message"}
    deep = ('{"title": ' * 2000 + '"x"' + "}" * 2000).encode()  # valid JSON, too deep to use
    r = client.post("/v1/news", data=deep, content_type="application/json")
    assert r.status_code == 400 and "nested too deeply" in r.json["error"]["message"], r.json


def test_explicit_tickers_override_linking(client, pipe) -> None:
    client.post("/v1/news", json=art(1, title="Apple and $MSFT news", tickers=["$bolt", "ACME"]))
    with pipe.db.session() as s:
        assert sorted(s.scalars(select(ArticleTicker.ticker))) == ["ACME", "BOLT"]


def test_tickers_with_as_many_articles_are_listed_by_symbol(any_db_url, settings, redis_url, stub_scorer) -> None:
    """PG QA: ties came back in the backend's own order (ALFA, QQQX, BETA on PostgreSQL), so
    which of them made the 200-ticker list depended on the database."""
    from services.sentiment import create_app, queries

    pipe = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer
                      ).extensions["sentiment"]
    pipe.ingest([art(i, title=f"${t} update", tickers=[t]) for i, t in enumerate(["ZETA", "QQQX", "ALFA", "BETA"])]
                + [art(9, title="$MIDL", tickers=["MIDL"]), art(10, title="$MIDL again", tickers=["MIDL"])])
    assert [t["ticker"] for t in queries.tickers(pipe.db)["tickers"]] == ["MIDL", "ALFA", "BETA", "QQQX", "ZETA"]


def _symbols(n: int) -> list[str]:
    """``n`` distinct all-caps symbols no stoplist knows: QAA, QAB, ..."""
    return [f"Q{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(n)]


def test_a_row_giving_more_than_50_tickers_is_rejected_naming_the_limit(client, pipe) -> None:
    """Security QA: a row with 1000 tickers cost 22 s of scoring CPU; the limit is per article."""
    r = client.post("/v1/news", json=art(1, tickers=_symbols(51)))
    assert r.status_code == 400 and r.json["error"]["code"] == "all_rejected"
    assert r.json["rejected"][0]["reason"] == "too many tickers: 51 (limit 50 per article)"
    fifty = _symbols(50)
    r = client.post("/v1/news", json=art(2, tickers=[*fifty, *(f"${t.lower()}" for t in fifty)]))  # same 50 twice
    assert r.status_code == 202 and r.json["ids"] == ["a2"]
    with pipe.db.session() as s:
        assert sorted(s.scalars(select(ArticleTicker.ticker))) == fifty


def test_of_more_than_50_linked_tickers_the_most_relevant_50_are_kept(client, pipe) -> None:
    """Linked from the text, the row is no client's mistake: stored, with its title's tickers first."""
    body = " ".join(f"${t}" for t in _symbols(60)) + " rallied; Microsoft was flat."
    r = client.post("/v1/news", json=art(1, title="$ACME leads a broad rally", body=body))
    assert r.status_code == 202 and r.json["ids"] == ["a1"] and r.json["rejected"] == []
    with pipe.db.session() as s:
        kept = dict(s.execute(select(ArticleTicker.ticker, ArticleTicker.relevance)).tuples().all())
    assert set(kept) == {"ACME", *_symbols(49)} and kept["ACME"] == 1.0  # MSFT, a name in passing, is dropped


def test_unscored_articles_are_picked_up_by_the_sweep(migrated, redis_url, stub_scorer) -> None:
    from services.sentiment import create_app

    off = migrated.model_copy(update={"sentiment_scoring": "off"})
    client = create_app(off, scorer=stub_scorer).test_client()
    assert client.post("/v1/news", json=[art(1), art(2)]).json["scoring"] == "pending"
    pipe = create_app(migrated, scorer=stub_scorer).extensions["sentiment"]
    assert _count(pipe, Score) == 0
    assert pipe.sweep().articles == 2 and _count(pipe, Score) == 2
    assert pipe.sweep().articles == 0  # idempotent


def test_broker_down_stores_articles_and_answers_fast(migrated, stub_scorer) -> None:
    """Celery scoring with Redis unreachable: 202 'pending' within seconds, rows kept for the sweep."""
    import time

    from services.sentiment import create_app
    from tests.upkit import free_ports

    dead = migrated.model_copy(update={"sentiment_scoring": "celery",
                                       "redis_url": f"redis://127.0.0.1:{free_ports(1)[0]}/0"})
    client = create_app(dead, scorer=stub_scorer).test_client()
    started = time.monotonic()
    r = client.post("/v1/news", json=[art(1), art(2)])
    assert r.status_code == 202 and r.json["scoring"] == "pending" and len(r.json["ids"]) == 2
    assert time.monotonic() - started < 8  # was ~19 s of kombu retries
    pipe = create_app(migrated, scorer=stub_scorer).extensions["sentiment"]
    assert pipe.sweep().articles == 2 and _count(pipe, Score) == 2


def test_backfill_replays_in_event_time_whatever_the_date_format() -> None:
    """Regression: `news ingest --backfill` sorted published_at as text, so RFC 2822 dates went by
    weekday name and "+02:00" times out of order; it now sorts on the parsed event time."""
    from services.sentiment.cli import _sort_key

    rows = [{"published_at": "Wed, 01 May 2024 09:00:00 +0000"}, {"published_at": "2024-05-01T10:00:00+02:00"},
            {"published_at": "Tue, 30 Apr 2024 23:00:00 -0300"}, {"published_at": "garbage"},
            {"published_at": 1714546800}]  # 07:00Z
    assert [rows.index(r) for r in sorted(rows, key=_sort_key)] == [2, 4, 1, 0, 3]


def test_a_date_missing_its_year_month_or_day_is_refused_not_filled_from_today(client) -> None:
    """dateutil fills what a text lacks from today: "March" was stored as March the 6th of
    this year, "12" as the 12th of this month; an alerts ?since=5 answered 200."""
    from services.sentiment.ingest import Rejected, parse_time

    for vague in ("March", "12", "5", "2026-03", "10:30"):
        with pytest.raises(Rejected, match="not a full date"):
            parse_time(vague)
        r = client.post("/v1/news", json={"source": "qa", "title": "vague", "published_at": vague})
        assert r.status_code == 400 and "published_at" in r.get_json()["error"]["message"], vague
        assert client.get(f"/v1/alerts?since={vague}").status_code == 400, vague
    for full, iso in (("2026-12-01", "2026-12-01T00:00:00+00:00"), ("Dec 3 2026", "2026-12-03T00:00:00+00:00"),
                      ("Thu, 03 Dec 2026 10:00:00 GMT", "2026-12-03T10:00:00+00:00"),
                      ("1764900000", "2025-12-05T02:00:00+00:00"), ("1764900000000", "2025-12-05T02:00:00+00:00")):
        assert parse_time(full).isoformat() == iso, full


def _scores(pipe, aid: str) -> dict[str, str]:
    with pipe.db.session() as s:
        return dict(s.execute(select(Score.ticker, Score.label).where(Score.article_id == aid)).all())


def test_a_repost_with_changed_text_updates_relinks_and_rescores(client, pipe) -> None:
    """Regression (sentiment QA): a known id with other text answered "duplicate" and the
    score stayed on the old text. Identical re-posts still change nothing."""
    assert client.post("/v1/news", json=art(1, title="$ACME schedules meeting")).json["ids"] == ["a1"]
    assert _scores(pipe, "a1") == {"ACME": "neutral"}
    fixed = art(1, title="$BOLT fraud probe", body="NASDAQ:CRUX too.", published_at="2024-05-02T10:00:00Z")
    r = client.post("/v1/news", json=fixed)
    assert r.status_code == 202, r.json
    assert (r.json["ids"], r.json["updated"], r.json["duplicates"], r.json["article_ids"]) == ([], ["a1"], [], ["a1"])
    assert r.json["scoring"] == "scored"
    # re-linked, old scores gone; CRUX, only in the body, is scored on its own sentence
    assert _scores(pipe, "a1") == {"BOLT": "negative", "CRUX": "neutral"}
    with pipe.db.session() as s:
        a = s.get(Article, "a1")
        assert (a.title, as_utc(a.published_at)) == ("$BOLT fraud probe", datetime(2024, 5, 2, 10, tzinfo=UTC))
        assert {t.published_at.replace(tzinfo=UTC).day for t in s.scalars(select(ArticleTicker))} == {2}
        score_ids = sorted(s.scalars(select(Score.id)))
    again = client.post("/v1/news", json=fixed)  # the same text again: a pure duplicate
    assert (again.json["updated"], again.json["duplicates"][0]["reason"]) == ([], "duplicate id")
    with pipe.db.session() as s:
        assert sorted(s.scalars(select(Score.id))) == score_ids
    # explicit tickers of the new version replace linking; a row without id is matched by its url
    r = client.post("/v1/news", json={**fixed, "id": None, "title": "$BOLT recall", "tickers": ["DUNE"]})
    assert (r.json["updated"], r.json["article_ids"]) == (["a1"], ["a1"])
    assert _scores(pipe, "a1") == {"DUNE": "negative"} and _count(pipe, Article) == 1


def test_an_update_landing_while_its_old_text_is_scored_gets_its_own_scores(any_db_url, settings, redis_url,
                                                                             stub_scorer) -> None:
    """Regression (left open in session 17): a new version stored while a scoring task was still
    predicting the old text got the old text's scores and was never scored again. On SQLite and
    PostgreSQL: scores are written only for articles claimed with the text that was scored."""
    from services.sentiment import create_app
    from services.sentiment.scoring import score_articles

    pipe = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer
                      ).extensions["sentiment"]
    pipe.ingest([art(1, title="$ACME schedules meeting"), art(2)])
    runtime, predict = stub_scorer.runtime, stub_scorer.runtime.predict

    def predict_while_a1_is_updated(texts, batch_size=32):
        out = predict(texts, batch_size)  # the old text's answers ...
        assert pipe.ingest([art(1, title="$ACME fraud probe")]).updated == ["a1"]  # ... while a1 changes
        return out

    runtime.predict = predict_while_a1_is_updated
    rep = score_articles(pipe.db, stub_scorer, pipe.linker, ["a1", "a2"])
    runtime.predict = predict
    assert rep.articles == 1 and _scores(pipe, "a1") == {} and _scores(pipe, "a2") == {"ACME": "neutral"}
    with pipe.db.session() as s:
        assert s.get(Article, "a1").scored_at is None  # left for the new version's own scoring
    assert score_articles(pipe.db, stub_scorer, pipe.linker, ["a1"]).articles == 1
    assert _scores(pipe, "a1") == {"ACME": "negative"}


def test_two_versions_in_one_batch_first_wins_and_a_repost_changes_nothing(client, pipe) -> None:
    client.post("/v1/news", json=art(1))
    rows = [art(1, title="$ACME version two"), art(1, title="$ACME version three")]
    r = client.post("/v1/news", json=rows)
    assert r.json["updated"] == ["a1"] and [d["index"] for d in r.json["duplicates"]] == [1]
    again = client.post("/v1/news", json=rows)
    assert again.json["updated"] == [] and len(again.json["duplicates"]) == 2
    with pipe.db.session() as s:
        assert s.get(Article, "a1").title == "$ACME version two"


def test_an_update_is_rescored_through_celery_under_up(client, pipe, monkeypatch) -> None:
    client.post("/v1/news", json=art(1))
    queued: list[list[str]] = []
    monkeypatch.setattr("services.sentiment.pipeline.enqueue", lambda settings, ids: queued.append(ids))
    pipe.settings = pipe.settings.model_copy(update={"sentiment_scoring": "celery"})
    r = client.post("/v1/news", json=[art(1, title="$ACME fraud probe"), art(2)])
    assert r.json["scoring"] == "queued" and queued == [["a2", "a1"]]
    with pipe.db.session() as s:
        assert s.get(Article, "a1").scored_at is None and _scores(pipe, "a1") == {}
    assert pipe.sweep().articles == 2 and _scores(pipe, "a1") == {"ACME": "negative"}


def test_cli_ingest_of_a_changed_file_updates(pipe, migrated, tmp_path, monkeypatch, stub_scorer) -> None:
    import json

    from click.testing import CliRunner

    from services.sentiment.cli import news

    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    path = tmp_path / "news.jsonl"
    path.write_text(json.dumps(art(1)) + "\n" + json.dumps(art(2)) + "\n")
    first = json.loads(CliRunner().invoke(news, ["ingest", str(path), "--json"]).output)
    path.write_text(json.dumps(art(1, body="Acme fraud probe widens.")) + "\n" + json.dumps(art(2)) + "\n")
    second = json.loads(CliRunner().invoke(news, ["ingest", str(path), "--json"]).output)
    assert (first["stored"], first["updated"]) == (2, 0)
    assert (second["stored"], second["updated"], second["duplicates"], second["scored"]) == (0, 1, 1, 1)
    assert _scores(pipe, "a1") == {"ACME": "negative"}
    path.write_text("\n\n")  # an input without rows is an error, as for every command (it exited 0)
    empty = CliRunner().invoke(news, ["ingest", str(path)])
    assert empty.exit_code != 0 and "no articles in it" in str(empty.exception)


def _post_at_once(app, rows: list[dict], monkeypatch) -> list[dict]:
    """POST each row from a thread of its own, every request reading what is stored before any
    of them writes: the race QA found (all take the row for new), made certain."""
    import contextlib
    import threading

    from services.sentiment import ingest as ingest_mod

    read, first, existing = threading.Barrier(len(rows)), threading.local(), ingest_mod._existing

    def existing_then_meet(session, items):
        found = existing(session, items)
        if not getattr(first, "met", False):  # a request's first read only; a re-judging read runs free
            first.met = True
            # on PostgreSQL a request posting the same text as another waits for that one's content
            # lock before it reads (the race cannot happen): the first gives up meeting them
            with contextlib.suppress(threading.BrokenBarrierError):
                read.wait(timeout=1)
        return found

    monkeypatch.setattr(ingest_mod, "_existing", existing_then_meet)
    answers: list[dict] = [{} for _ in rows]

    def post(k: int) -> None:
        r = app.test_client().post("/v1/news", json=rows[k])
        answers[k] = {"status": r.status_code, **r.get_json()}

    threads = [threading.Thread(target=post, args=(k,)) for k in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


@pytest.mark.parametrize("key", ["id", "url", "stored id"])
def test_concurrent_posts_of_an_article_end_as_if_posted_one_after_another(
        any_db_url, settings, redis_url, stub_scorer, monkeypatch, key) -> None:
    """Regression (QA): four requests posting one new id (or url) at once with four texts: one was
    stored, the other three answered "duplicate (concurrent insert)" and their texts were dropped.
    Now it ends as some order of them: one stored (none for a stored id), the others new versions,
    the last text scored. On SQLite and PostgreSQL."""
    from services.sentiment import create_app

    app = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer)
    pipe = app.extensions["sentiment"]
    rows = [{"id": f"w-1-{k}" if key == "url" else "w-1", "source": "qa", "published_at": "2026-12-02T11:00:00Z",
             "url": "https://qa.example/w-1" if key == "url" else None,
             "title": f"Variant {k}: Acme $ACME shares {('surge', 'plunge')[k % 2]} {k}"} for k in range(4)]
    if key == "stored id":
        assert pipe.ingest([{**rows[0], "title": "Acme $ACME schedules meeting"}]).stored == ["w-1"]
    answers = _post_at_once(app, rows, monkeypatch)
    assert all(a["status"] == 202 and not a["duplicates"] for a in answers), answers
    stored = [aid for a in answers for aid in a["ids"]]
    assert len(stored) == (key != "stored id"), answers
    aid = stored[0] if stored else "w-1"
    assert sorted(a["updated"] for a in answers) == [[]] * len(stored) + [[aid]] * (4 - len(stored)), answers
    assert all(a["article_ids"] == [aid] for a in answers), answers
    with pipe.db.session() as s:
        (title,) = s.scalars(select(Article.title)).all()
    assert title in [r["title"] for r in rows]
    assert _scores(pipe, aid) == {"ACME": "positive" if "surge" in title else "negative"}


def test_concurrent_identical_posts_of_a_new_article_store_one_row(any_db_url, settings, redis_url, stub_scorer,
                                                                   monkeypatch) -> None:
    from services.sentiment import create_app

    app = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer)
    row = {"id": "w-2", "source": "qa", "published_at": "2026-12-02T11:00:00Z", "title": "Acme $ACME shares surge"}
    answers = _post_at_once(app, [row] * 4, monkeypatch)
    assert sorted(a["ids"] for a in answers) == [[], [], [], ["w-2"]], answers
    assert all(a["article_ids"] == ["w-2"] and not a["updated"] for a in answers), answers
    assert sum(len(a["duplicates"]) for a in answers) == 3
    assert _count(app.extensions["sentiment"], Article) == 1


def test_concurrent_copies_of_a_story_under_other_ids_store_one(any_db_url, settings, redis_url, stub_scorer,
                                                                monkeypatch) -> None:
    """Reliability QA (PostgreSQL): ten wires posting one story at once under their own ids each
    found no copy stored and stored theirs (3 of 10 kept), multiplying the ticker's volume; one after
    another, the copies were duplicates of the first. Now the same on SQLite and PostgreSQL."""
    from services.sentiment import create_app

    app = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer)
    rows = [{"id": f"sy-{k}", "source": f"wire{k}", "published_at": "2026-12-02T11:00:00Z",
             "title": "$ACME Acme wins big contract", "body": "Same text."} for k in range(5)]
    answers = _post_at_once(app, rows, monkeypatch)
    assert all(a["status"] == 202 for a in answers), answers
    with app.extensions["sentiment"].db.session() as s:  # the copy that counts whatever the order: the
        assert s.scalars(select(Article.id)).all() == ["sy-0"], answers  # earliest, then the smallest id


def test_concurrent_posts_of_one_revision_update_the_article_once(any_db_url, settings, redis_url, stub_scorer,
                                                                  monkeypatch) -> None:
    """Concurrency QA: five requests posting the same revised text of stored articles each
    listed them in `updated` (each read the old text, each rewrote it, dropped its scores and had
    it scored again): the first is the update, the others duplicates of it."""
    from services.sentiment import create_app

    app = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer)
    pipe = app.extensions["sentiment"]
    old = [{"id": f"rev-{k}", "source": "qa", "published_at": "2026-12-02T11:00:00Z",
            "title": f"Acme $ACME schedules meeting {k}"} for k in range(3)]
    assert len(pipe.ingest(old).stored) == 3
    new = [{**r, "title": r["title"].replace("schedules meeting", "shares plunge")} for r in old]
    answers = _post_at_once(app, [new] * 4, monkeypatch)
    assert all(a["status"] == 202 for a in answers), answers
    assert sorted(sorted(a["updated"]) for a in answers) == [[], [], [], ["rev-0", "rev-1", "rev-2"]], answers
    assert sum(len(a["duplicates"]) for a in answers) == 9
    assert all(a["article_ids"] == ["rev-0", "rev-1", "rev-2"] for a in answers), answers
    assert _scores(pipe, "rev-1") == {"ACME": "negative"}


def test_overlapping_batches_in_opposite_orders_do_not_deadlock(any_db_url, settings, redis_url, stub_scorer,
                                                               monkeypatch) -> None:
    """Concurrency QA: on PostgreSQL, requests posting overlapping articles each in its own order
    locked rows in that order; two met as a deadlock and one was answered 503."""
    from services.sentiment import create_app

    app = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer)
    rows = [{"id": f"dl-{k:03d}", "source": "qa", "published_at": "2026-12-02T11:00:00Z",
             "title": f"Acme $ACME opens plant number {k}"} for k in range(300)]
    answers = _post_at_once(app, [rows, rows[::-1], rows[150:] + rows[:150]], monkeypatch)
    assert [a["status"] for a in answers] == [202] * 3, answers
    assert sum(len(a["ids"]) for a in answers) == 300 and sum(len(a["duplicates"]) for a in answers) == 600
    assert _count(app.extensions["sentiment"], Article) == 300


def test_cli_ingest_of_a_file_whose_every_row_is_rejected_fails(pipe, migrated, tmp_path, monkeypatch, stub_scorer,
                                                                 capsys) -> None:
    """"A file without articles is an error too": a text, Markdown or UTF-16 file printed
    "stored 0 ... rejected N" and exited 0."""
    import json

    from shared.cli import main

    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)

    def finpulse(path) -> tuple[int, str, list[str]]:
        try:
            main(["news", "ingest", str(path)])
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        out = capsys.readouterr()
        return code, out.out, [ln for ln in out.err.splitlines() if "error" in ln]

    notes = tmp_path / "notes.txt"
    notes.write_text("# Heading\n\nsome prose\n")
    code, out, err = finpulse(notes)
    assert code == 2 and "rejected line 3: missing published_at" in out, out  # the report, as before
    assert err == [f"finpulse: error: {notes}: no articles in it: every row was rejected (first: line 3: "
                   "missing published_at; 1 in all)"]
    wide = tmp_path / "wide.jsonl"
    wide.write_bytes(json.dumps(art(1)).encode("utf-16"))
    assert finpulse(wide)[0::2] == (2, [f"finpulse: error: {wide}:1: the file is UTF-16 (it opens with a UTF-16 "
                                        "byte-order mark); save it as UTF-8"])
    some = tmp_path / "some.jsonl"
    some.write_text(json.dumps(art(1)) + "\nnot json\n")  # one row stored: a partial ingest is no error
    code, out, _ = finpulse(some)
    assert code == 0 and "stored 1" in out and "rejected line 2: invalid JSON" in out
    assert finpulse(some)[0] == 0  # again: a duplicate, which is no error either


def test_named_zones_are_honoured_and_an_unknown_one_is_refused(client, pipe, recwarn) -> None:
    """Regression (analytics QA): "Sun, 10 Mar 2024 01:30:00 EST" was stored as 01:30Z (dateutil
    reads a zone name it has no table for as UTC, with an UnknownTimezoneWarning on stderr)."""
    from services.sentiment.ingest import Rejected, parse_time

    day = "Sun, 10 Mar 2024 01:30:00"
    for zone, hour in (("EST", 6), ("EDT", 5), ("CST", 7), ("CDT", 6), ("MST", 8), ("MDT", 7), ("PST", 9),
                       ("PDT", 8), ("UT", 1), ("GMT", 1)):
        assert parse_time(f"{day} {zone}") == datetime(2024, 3, 10, hour, 30, tzinfo=UTC), zone
    assert parse_time("2024-03-10T01:30:00Z").hour == 1
    assert parse_time("2024-03-10T12:00:00 America/New_York") == datetime(2024, 3, 10, 16, tzinfo=UTC)
    with pytest.raises(Rejected, match="unknown time zone 'IST'"):  # India, Ireland or Israel: not UTC
        parse_time(f"{day} IST")
    r = client.post("/v1/news", json=[art(1, published_at=f"{day} EST"), art(2, published_at=f"{day} XYZ")])
    assert r.status_code == 202 and r.json["ids"] == ["a1"]
    assert "unknown time zone 'XYZ'" in r.json["rejected"][0]["reason"]
    with pipe.db.session() as s:
        assert as_utc(s.get(Article, "a1").published_at) == datetime(2024, 3, 10, 6, 30, tzinfo=UTC)
    got = client.get("/v1/tickers/ACME/articles", query_string={"start": f"{day} EST"}).json["articles"]
    assert [a["id"] for a in got] == ["a1"]  # 06:30Z, not 01:30Z: a1 is not before it
    assert client.get("/v1/alerts", query_string={"since": f"{day} ABC"}).status_code == 400
    assert not [w for w in recwarn if "UnknownTimezone" in type(w.message).__name__]


def test_a_date_with_a_zone_name_is_midnight_in_that_zone(client) -> None:
    """HTTP QA: "2025-04-01 UTC" was "unparseable" (dateutil reads a zone name only after a time)
    while "2025-04-01 Europe/Berlin" was read, and "2025-04-01 IST" was not named as the unknown zone."""
    from services.sentiment.ingest import Rejected, parse_time

    assert parse_time("2025-04-01 UTC") == parse_time("1 Apr 2025 GMT") == datetime(2025, 4, 1, tzinfo=UTC)
    assert parse_time("2025-04-01 EST") == datetime(2025, 4, 1, 5, tzinfo=UTC)
    with pytest.raises(Rejected, match="unknown time zone 'IST'"):
        parse_time("2025-04-01 IST")
    for text, reason in (("March UTC", "not a full date"), ("hello UTC", "unparseable")):
        with pytest.raises(Rejected, match=reason):
            parse_time(text)
    r = client.post("/v1/news", json=[art(1, published_at="2025-04-01 UTC")])
    assert r.status_code == 202 and r.json["ids"] == ["a1"], r.json
    assert client.get("/v1/alerts", query_string={"since": "2025-04-01 GMT"}).status_code == 200


def test_ids_may_hold_uri_characters_and_say_what_they_may_hold(client) -> None:
    """Regression (analytics QA): a permalink with a query string or an RFC 4151 tag as id was
    rejected ("1-128 characters of letters, digits and ._:-/@#")."""
    rows = [art(1, id="https://wire.example.com/a/2?id=2&ref=home"), art(2, id="tag:atom.example.org,2024:adobe-1"),
            art(3, id="has a space"), art(4, id="x" * 129), art(5, id="urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a")]
    r = client.post("/v1/news", json=rows)
    assert r.json["ids"] == [rows[0]["id"], rows[1]["id"], rows[4]["id"]]
    assert [x["index"] for x in r.json["rejected"]] == [2, 3]
    assert "URI characters" in r.json["rejected"][0]["reason"]


def _copies(k: int) -> tuple[dict, dict]:
    """One story from two wires, the later-published one first (analytics QA's syn2.jsonl)."""
    late = {"id": f"syn{k}-B", "source": "wireB", "published_at": "2024-09-02T00:30:00Z",
            "title": f"Zorblax Quantum issues profit warning {k}", "body": "Shares may fall.", "tickers": [f"ZQS{k}"]}
    return late, {**late, "id": f"syn{k}-A", "source": "wireA", "published_at": "2024-09-01T22:00:00Z"}


def test_the_earliest_published_syndicated_copy_counts_whatever_arrived_first(client, pipe) -> None:
    """Regression (analytics QA): the copy that arrived first was counted, so live posts put the
    story on September 2nd and a backfill (event order) on September 1st."""
    late, early = _copies(1)
    assert client.post("/v1/news", json=late).json["ids"] == ["syn1-B"]
    r = client.post("/v1/news", json=early)
    assert (r.json["ids"], r.json["superseded"]) == (["syn1-A"], [{"id": "syn1-B", "duplicate_of": "syn1-A"}])
    again = client.post("/v1/news", json=late).json  # the later copy posted again is a copy of the earlier
    assert [(d["reason"], d["duplicate_of"]) for d in again["duplicates"]] == [
        ("duplicate content (syndicated copy)", "syn1-A")]
    outcomes = {}
    for k, order in ((1, None), (2, ["BA"]), (3, ["AB"]), (4, ["A", "B"])):  # one request per string
        copies = dict(zip("BA", _copies(k), strict=True))
        for batch in order or []:
            client.post("/v1/news", json=[copies[c] for c in batch])
        points = client.get(f"/v1/tickers/ZQS{k}/sentiment", query_string={
            "start": "2024-09-01", "end": "2024-09-02", "articles": "1"}).json["points"]
        outcomes[k] = [(p["at"][:10], p["article_ids"]) for p in points]
    assert outcomes == {k: [("2024-09-01", [f"syn{k}-A"]), ("2024-09-02", [])] for k in outcomes}
    with pipe.db.session() as s:
        assert sorted(s.scalars(select(Article.id))) == ["syn1-A", "syn2-A", "syn3-A", "syn4-A"]


def test_one_story_under_www_and_tracking_variants_of_its_url_is_stored_once(client, pipe) -> None:
    """Regression (finance QA): ``https://www.cnbc.com/x?__source=rss`` and ``https://cnbc.com/x``
    were two urls, so one story posted via both was stored twice."""
    from services.sentiment.ingest import normalise_url

    tracked = ("https://WWW.cnbc.com/x/?__source=rss&ncid=1&cmpid=2&mc_cid=3&mc_eid=4"
               "&_ga=5&igshid=6&utm_source=feed&fbclid=7&gclid=8#top")
    assert normalise_url(tracked) == normalise_url("https://cnbc.com/x") == "https://cnbc.com/x"
    assert normalise_url("https://www.cnbc.com/x?id=3&_ga=a") == "https://cnbc.com/x?id=3"  # content params stay
    # regression QA: "ref", "src" and "mod" name the page on many sites; two forum posts were merged
    for key in ("ref", "src", "mod"):
        assert normalise_url(f"https://forum.example.com/v.php?t=100&{key}=111") != \
            normalise_url(f"https://forum.example.com/v.php?t=100&{key}=222")
    rows = [art(1, url="https://www.cnbc.com/x?__source=rss"), art(2, url="https://cnbc.com/x"), art(3, url=tracked)]
    r = client.post("/v1/news", json=rows)
    assert r.json["ids"] == ["a1"] and r.json["article_ids"] == ["a1", "a1", "a1"]
    assert [d["reason"] for d in r.json["duplicates"]] == ["duplicate url", "duplicate url"]
    assert _count(pipe, Article) == 1


def test_an_article_stored_under_its_www_url_still_matches_reposts(client, pipe) -> None:
    """Urls stored before ``www.`` was dropped keep it: a re-post of such a story must find it (by
    url; its derived id changed with the url) rather than store it again."""
    from services.sentiment.ingest import content_hash

    with pipe.db.session() as s:  # as the release before stored it
        s.add(Article(id="old-1", source="wire", published_at=datetime(2024, 5, 1, 10, tzinfo=UTC),
                      title="$ACME first draft", body="", url="https://www.cnbc.com/y",
                      content_hash=content_hash("$ACME first draft", "")))
    row = {"source": "wire", "published_at": "2024-05-01T10:00:00Z", "url": "https://www.cnbc.com/y?__source=rss"}
    same = client.post("/v1/news", json={**row, "title": "$ACME first draft"}).json
    assert same["duplicates"][0]["reason"] == "duplicate url" and same["article_ids"] == ["old-1"]
    assert client.post("/v1/news", json={**row, "title": "$ACME corrected"}).json["updated"] == ["old-1"]
    assert _count(pipe, Article) == 1


def test_a_dotted_date_is_read_day_first_and_a_slashed_one_as_before() -> None:
    """Regression (finance QA): a European wire's "07.06.2024 10:00" was stored as 6 July."""
    from services.sentiment.ingest import parse_time

    june_7 = datetime(2024, 6, 7, 10, tzinfo=UTC)
    for dotted in ("07.06.2024 10:00", "7.6.2024 10:00", "07.06.24 10:00", "07.06.2024 12:00 Europe/Berlin",
                   "07.06.2024 11:00 CET", "Fri, 07.06.2024 10:00"):  # a weekday first, as RSS writes it
        assert parse_time(dotted) == june_7, dotted
    assert parse_time("13.06.2024") == datetime(2024, 6, 13, tzinfo=UTC)
    assert parse_time("06/07/2024 10:00") == june_7  # slashes stay month first
    assert parse_time("2024.06.07 10:00") == june_7  # year first: not a day-first date
