"""``finpulse news relink``: a company added to the list gains its history, scores and alerts as if it
had been listed when the articles arrived; given tickers stay as posted (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from services.sentiment.aggregate import ticker_series
from services.sentiment.alerts import list_alerts
from services.sentiment.models import Alert, Article, ArticleTicker, Score
from tests.sentiment.conftest import START, burst, history

BURST_DAY = START + timedelta(days=30)
NAME = "Zephyr Robotics"  # not in the shipped companies.csv: linked by name only once listed


def _named(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ZPHR's rows naming the company instead of a cashtag (a cashtag links any ticker, listed or not)."""
    return [{**r, "title": r["title"].replace("$ZPHR", NAME)} for r in rows]


def _rows() -> list[dict[str, Any]]:
    joint = [{"id": f"joint-{d}", "source": "wire1", "published_at": (START + timedelta(days=d, hours=20)).isoformat(),
              "title": f"{NAME} and $ACME sign supply deal #{d}", "body": f"{NAME} builds the arms. Profit fell."}
             for d in range(0, 30, 3)]
    given = [{"id": "given-1", "source": "wire0", "published_at": (BURST_DAY - timedelta(days=2, hours=-7)).isoformat(),
              "title": f"{NAME} wins $ACME contract", "body": "A fraud probe follows.", "tickers": ["ACME"]},
             {"id": "legacy-given", "source": "wire0", "published_at": (START + timedelta(days=5, hours=3)).isoformat(),
              "title": f"{NAME} supplier news", "body": "Nothing else.", "tickers": ["BOLT"]}]
    return (history(["ACME"], START, 30) + _named(history(["ZPHR"], START, 30) + burst("ZPHR", BURST_DAY))
            + joint + given)


def _pipe(settings: Any, url: str, scorer: Any, companies: Path | None = None) -> Any:
    from services.sentiment import create_app

    s = settings.model_copy(update={"database_url": url, "sentiment_companies_csv": companies})
    return create_app(s, scorer=scorer).extensions["sentiment"]


def _live(pipe: Any, rows: list[dict[str, Any]]) -> None:
    """Live arrival: a day at a time, in event-time order, each day scored and judged."""
    for day in range(32):
        todays = [r for r in rows if r["published_at"][:10] == (START + timedelta(days=day)).date().isoformat()]
        if todays:
            pipe.score(pipe.ingest(todays).to_score)


def _companies(tmp_path: Path) -> Path:
    path = tmp_path / "companies.csv"
    path.write_text(f"ticker,name,aliases\nZPHR,{NAME},Zephyr Robotics Inc\n", encoding="utf-8")
    return path


def _relink(monkeypatch: pytest.MonkeyPatch, url: str, companies: Path | None, *args: str) -> dict[str, Any]:
    """``finpulse news relink --json ARGS`` on ``url`` with ``companies`` as the user's list."""
    from services.sentiment.cli import news
    from shared.settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", url)
    if companies:
        monkeypatch.setenv("FINPULSE_SENTIMENT_COMPANIES_CSV", str(companies))
    else:
        monkeypatch.delenv("FINPULSE_SENTIMENT_COMPANIES_CSV", raising=False)
    reset_settings_cache()
    result = CliRunner().invoke(news, ["relink", "--json", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def _state(db: Any) -> tuple[list, ...]:
    """Every link, score, alert and scored mark, ids and times included: what must not move."""
    with db.session() as s:
        return (sorted(s.execute(select(ArticleTicker.article_id, ArticleTicker.ticker, ArticleTicker.relevance,
                                        ArticleTicker.origin)).all()),
                sorted(s.execute(select(Score.id, Score.article_id, Score.ticker, Score.label)).all()),
                sorted(s.execute(select(Alert.id, Alert.kind, Alert.severity, Alert.created_at, Alert.retracted_at,
                                        Alert.quiet, Alert.article_count)).all()),
                sorted(s.execute(select(Article.id, Article.scored_at)).all()))


def _links(db: Any) -> set[tuple[str, str, float]]:
    with db.session() as s:
        return {(a, t, round(r, 6)) for a, t, r in s.execute(
            select(ArticleTicker.article_id, ArticleTicker.ticker, ArticleTicker.relevance))}


def _scores(db: Any) -> set[tuple]:
    with db.session() as s:
        return set(s.execute(select(Score.article_id, Score.ticker, Score.label, Score.negative, Score.neutral,
                                    Score.positive)).all())


def _points(pipe: Any, ticker: str) -> list[dict[str, Any]]:
    data = ticker_series(pipe.db, ticker, window=timedelta(days=31), bucket="1d", settings=pipe.settings,
                         end=BURST_DAY)
    return [p.to_dict(with_articles=True) for p in data["points"]]


def _origins_unknown(pipe: Any, ids: list[str]) -> None:
    """What a link stored before sentiment_0005 looks like: no origin."""
    with pipe.db.session() as s:
        s.execute(update(ArticleTicker).where(ArticleTicker.article_id.in_(ids)).values(origin=None))


def test_a_listed_company_gains_its_history_as_live_arrival_would_have(any_db_url, settings, redis_url, tmp_path,
                                                                       stub_scorer, monkeypatch) -> None:
    from shared.db import upgrade

    rows, companies = _rows(), _companies(tmp_path)
    zephyr = [r["id"] for r in rows if NAME in r["title"] and "tickers" not in r]
    joint = [r["id"] for r in rows if r["id"].startswith("joint-")]
    # the reference: the same news arriving live with ZPHR listed from the start
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    upgrade(ref_url)
    reference = _pipe(settings, ref_url, stub_scorer, companies)
    _live(reference, rows)
    expected = list_alerts(reference.db)
    assert [(a["ticker"], a["kind"], a["at"]) for a in expected if a["ticker"] == "ZPHR"] == [
        ("ZPHR", "sentiment_shift", "2024-03-31T00:00:00Z")]

    pipe = _pipe(settings, any_db_url, stub_scorer)  # the shipped list only: ZPHR links nothing
    _live(pipe, rows)
    _origins_unknown(pipe, [*joint, "legacy-given"])  # stored before link origins were recorded
    assert not any(t == "ZPHR" for _, t, _ in _links(pipe.db))
    assert all(p["volume"] == 0 for p in _points(pipe, "ZPHR")) and list_alerts(pipe.db, ticker="ZPHR") == []
    before = _state(pipe.db)
    given_scores = [r for r in before[1] if r[1] == "given-1"]

    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    window = _relink(monkeypatch, any_db_url, companies, "--dry-run", "--since", BURST_DAY.isoformat(),
                     "--until", "2024-04-01")
    assert (window["scanned"], window["relinked"], window["added"]) == (8, 8, 8)  # the burst day's articles
    dry = _relink(monkeypatch, any_db_url, companies, "--dry-run")
    assert _state(pipe.db) == before  # a dry run changes nothing
    assert dry["dry_run"] and dry["scanned"] == len(rows) and dry["scored"] == 0
    assert (dry["relinked"], dry["added"], dry["removed"]) == (len(zephyr), len(zephyr), 0)
    assert dry["by_ticker"] == [{"ticker": "ZPHR", "added": len(zephyr), "removed": 0}]
    assert (dry["given"], dry["unknown_origin_kept"]) == (1, 1)

    done = _relink(monkeypatch, any_db_url, companies, "--chunk", "7")  # pages end inside runs of equal times
    assert {k: v for k, v in done.items() if k not in ("dry_run", "scored", "alerts_raised", "alerts_retracted")} \
        == {k: v for k, v in dry.items() if k not in ("dry_run", "scored", "alerts_raised", "alerts_retracted")}
    assert (done["scored"], done["alerts_raised"], done["alerts_retracted"]) == (len(zephyr), 1, 0)
    # links, scores (the joint articles' ACME texts too), series and alerts are live arrival's
    assert _links(pipe.db) == _links(reference.db)
    assert _scores(pipe.db) == _scores(reference.db)
    assert _points(pipe, "ZPHR") == _points(reference, "ZPHR") and _points(pipe, "ACME") == _points(reference, "ACME")
    assert sum(p["volume"] for p in _points(pipe, "ZPHR")) == len(zephyr)  # the whole month, burst day included
    assert list_alerts(pipe.db) == expected
    with pipe.db.session() as s:
        assert s.scalar(select(Alert.quiet).where(Alert.ticker == "ZPHR"))  # a backfill: off the live stream
        assert s.scalar(select(Article.id).where(Article.scored_at.is_(None))) is None
        assert sorted(s.execute(select(ArticleTicker.ticker, ArticleTicker.origin)
                                .where(ArticleTicker.article_id == "joint-3")).all()) == [("ACME", None),
                                                                                          ("ZPHR", "text")]
    after = _state(pipe.db)
    # given tickers stay as posted: no ZPHR, the very same score rows
    assert [r for r in after[0] if r[0] in ("given-1", "legacy-given")] == [
        ("given-1", "ACME", 1.0, "given"), ("legacy-given", "BOLT", 1.0, None)]
    assert [r for r in after[1] if r[1] == "given-1"] == given_scores

    again = _relink(monkeypatch, any_db_url, companies)  # idempotent
    assert (again["relinked"], again["added"], again["removed"], again["scored"]) == (0, 0, 0, 0)
    assert _state(pipe.db) == after


def test_links_the_linker_no_longer_makes_go_with_their_scores_and_alerts(any_db_url, settings, redis_url, tmp_path,
                                                                         stub_scorer, monkeypatch) -> None:
    companies = _companies(tmp_path)
    rows = _named(history(["ZPHR"], START, 30) + burst("ZPHR", BURST_DAY))
    legacy = {"id": "legacy-1", "source": "wire0", "published_at": (START + timedelta(days=4, hours=1)).isoformat(),
              "title": f"{NAME} opens plant"}
    pipe = _pipe(settings, any_db_url, stub_scorer, companies)  # listed on arrival
    _live(pipe, [*rows, legacy])
    _origins_unknown(pipe, ["legacy-1"])
    [alert] = list_alerts(pipe.db, ticker="ZPHR")
    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)

    other = _relink(monkeypatch, any_db_url, None, "--ticker", "BOLT,$acme")  # other tickers' links only
    assert (other["scanned"], other["relinked"], other["removed"]) == (len(rows) + 1, 0, 0)
    gone = _relink(monkeypatch, any_db_url, None, "--ticker", "zphr")  # the list no longer names ZPHR
    assert (gone["relinked"], gone["added"], gone["removed"], gone["scored"]) == (len(rows), 0, len(rows), len(rows))
    assert gone["unknown_origin_kept"] == 1 and gone["alerts_retracted"] == 1
    assert _links(pipe.db) == {("legacy-1", "ZPHR", 1.0)}  # unknown origin: never removed
    with pipe.db.session() as s:
        assert sorted(s.execute(select(Score.ticker, Score.article_id).where(Score.ticker == "ZPHR")).all()) == [
            ("ZPHR", "legacy-1")]
        assert s.scalar(select(Score.ticker).where(Score.article_id == rows[0]["id"])) == ""  # scored unlinked
        gone_alert = s.get(Alert, alert["id"])
        assert gone_alert.retracted_at is not None and gone_alert.quiet
    assert list_alerts(pipe.db, ticker="ZPHR") == []
    assert sum(p["volume"] for p in _points(pipe, "ZPHR")) == 1


def test_bad_input_is_one_line_and_changes_nothing(migrated, redis_url, tmp_path, stub_scorer, monkeypatch,
                                                   capsys) -> None:
    from shared.cli import main
    from shared.settings import reset_settings_cache

    pipe = _pipe(migrated, migrated.db_url, stub_scorer)
    pipe.score(pipe.ingest(_named(burst("ZPHR", BURST_DAY, 3))).stored)
    before = _state(pipe.db)

    out: list[str] = []

    def finpulse(*args: str) -> tuple[int, list[str]]:
        reset_settings_cache()
        try:
            main(["news", "relink", *args])
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        got = capsys.readouterr()
        out[:] = got.out.splitlines()
        return code, got.err.splitlines()

    assert finpulse("--since", "soon") == (2, ["finpulse: error: unparseable --since 'soon'; --since must be a time: "
                                                "ISO-8601, RFC 2822 or epoch seconds/milliseconds"])
    assert finpulse("--ticker", "AC ME!") == (2, ["finpulse: error: invalid ticker 'AC ME!'"])
    assert finpulse("--since", "2024-04-01", "--until", "2024-03-01") == (
        2, ["finpulse: error: --since (2024-04-01) must lie before --until (2024-03-01)"])
    monkeypatch.setenv("FINPULSE_SENTIMENT_COMPANIES_CSV", str(tmp_path / "missing.csv"))
    code, err = finpulse()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("finpulse: error: FINPULSE_SENTIMENT_COMPANIES_CSV: company list "), err
    assert "missing.csv" in err[0]
    monkeypatch.setenv("FINPULSE_SENTIMENT_COMPANIES_CSV", str(_companies(tmp_path)))
    code, err = finpulse()  # no model registered: refused before any score is dropped
    assert code == 2 and len(err) == 1 and "no sentiment model registered" in err[0], err
    assert _state(pipe.db) == before
    assert finpulse("--dry-run") == (0, [])  # a dry run needs no model
    assert out == ["scanned 3 articles: 3 would be relinked, 0 with given tickers left as posted, 0 stored before "
                   "link origins left as they are, 0 changed meanwhile",
                   "links would be added 3, removed 0, reweighted 0; scored 0 articles; alerts raised 0, retracted 0",
                   "  ZPHR: +3 -0", "dry run: nothing changed"]
    assert _state(pipe.db) == before


def test_an_interrupted_relink_still_judges_what_it_relinked(migrated, redis_url, tmp_path, stub_scorer) -> None:
    """Alerts are judged once, after the last chunk: Ctrl-C after the chunks were written and scored
    must not leave the new ticker's alert unraised (a second run finds nothing to change, judges nothing)."""
    from services.sentiment.relink import relink

    rows = _named(history(["ZPHR"], START, 30) + burst("ZPHR", BURST_DAY))
    _live(_pipe(migrated, migrated.db_url, stub_scorer), rows)
    pipe = _pipe(migrated, migrated.db_url, stub_scorer, _companies(tmp_path))
    seen: list[int] = []

    def interrupt_at_the_end(n: int) -> None:
        seen.append(n)
        if sum(seen) == len(rows):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        relink(pipe, chunk=40, progress=interrupt_at_the_end)
    assert len(seen) == 3 and _links(pipe.db) >= {(r["id"], "ZPHR", 1.0) for r in rows}
    assert [(a["ticker"], a["at"]) for a in list_alerts(pipe.db)] == [("ZPHR", "2024-03-31T00:00:00Z")]
    assert relink(pipe).relinked == 0


def test_a_relink_stopped_right_after_a_chunk_commits_still_judges_that_chunk(migrated, redis_url, tmp_path,
                                                                            stub_scorer, monkeypatch) -> None:
    """The tickers a chunk touched were noted only once its write had returned: Ctrl-C between the
    commit and the return left that chunk (here the only one) written but never judged, so the
    alert a finished relink raises was missing. They are noted before the write now."""
    from services.sentiment import relink as relink_mod

    rows = _named(history(["ZPHR"], START, 30) + burst("ZPHR", BURST_DAY))
    _live(_pipe(migrated, migrated.db_url, stub_scorer), rows)
    pipe = _pipe(migrated, migrated.db_url, stub_scorer, _companies(tmp_path))
    real_apply, written = relink_mod._apply, []

    def stopped_after_the_last_commit(*args: Any) -> list[Any]:
        done = real_apply(*args)
        written.extend(done)
        if len(written) == len(rows):
            raise KeyboardInterrupt  # the transaction is committed; the chunk's return never comes
        return done

    monkeypatch.setattr(relink_mod, "_apply", stopped_after_the_last_commit)
    assert list_alerts(pipe.db) == []  # ZPHR was not listed: nothing linked, nothing raised
    with pytest.raises(KeyboardInterrupt):
        relink_mod.relink(pipe, chunk=len(rows))
    assert _links(pipe.db) >= {(r["id"], "ZPHR", 1.0) for r in rows}
    assert [(a["ticker"], a["at"]) for a in list_alerts(pipe.db)] == [("ZPHR", "2024-03-31T00:00:00Z")]
