"""``news relink`` QA fixes: a relinked article is never seen unscored (the worker's sweep would score
and judge it live), a rerun finishes a stopped relink's articles quietly, and text links beside
origin-less ones still move."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from services.sentiment.alerts import list_alerts
from services.sentiment.models import Alert, Article, ArticleTicker, Score
from services.sentiment.scoring import Scorer
from tests.sentiment.conftest import START, burst, history
from tests.sentiment.test_relink import BURST_DAY, NAME, _companies, _links, _live, _named, _pipe


def _unscored(db: Any) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Article).where(Article.scored_at.is_(None))) or 0


def test_a_relinked_article_is_never_seen_unscored(migrated, redis_url, tmp_path, stub_scorer) -> None:
    """Each time the model runs during a relink (the moment a sweep could look), every article is
    scored: the old relink committed each chunk unscored first, and a sweep then judged it live."""
    from services.sentiment.relink import relink

    rows = _named(history(["ZPHR"], START, 30) + burst("ZPHR", BURST_DAY))
    _live(_pipe(migrated, migrated.db_url, stub_scorer), rows)
    seen: list[int] = []

    class Watching:
        def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
            seen.append(_unscored(pipe.db))
            return stub_scorer.runtime.predict(texts, batch_size=batch_size)

    pipe = _pipe(migrated, migrated.db_url, Scorer(stub_scorer.version, Watching()), _companies(tmp_path))
    done = relink(pipe, chunk=40)
    assert done.relinked == len(rows) and done.scored == len(rows)
    assert seen and seen == [0] * len(seen)
    with pipe.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Score).where(Score.ticker == "ZPHR")) == len(rows)
        assert s.scalar(select(Alert.quiet).where(Alert.ticker == "ZPHR")) is True  # judged quietly


def test_a_rerun_scores_what_a_stopped_relink_left_unscored(migrated, redis_url, tmp_path, stub_scorer) -> None:
    """An older relink stopped between writing links and scoring left articles unscored, links
    changed: a rerun finds no link to change, and must still score them and judge them, quietly."""
    from services.sentiment.relink import relink

    rows = _named(history(["ZPHR"], START, 30) + burst("ZPHR", BURST_DAY))
    pipe = _pipe(migrated, migrated.db_url, stub_scorer, _companies(tmp_path))
    _live(pipe, rows)
    ids = [r["id"] for r in rows]
    with pipe.db.session() as s:  # what the stopped relink left: linked, scores dropped, alerts not judged
        s.execute(Score.__table__.delete())
        s.execute(Alert.__table__.delete())
        s.execute(update(Article).values(scored_at=None, ingested_at=START))
    again = relink(pipe)
    assert (again.relinked, again.scored) == (0, len(ids))
    assert _unscored(pipe.db) == 0
    assert [(a["ticker"], a["at"]) for a in list_alerts(pipe.db)] == [("ZPHR", "2024-03-31T00:00:00Z")]
    with pipe.db.session() as s:
        assert s.scalar(select(Alert.quiet).where(Alert.ticker == "ZPHR")) is True


def test_text_links_beside_origin_less_ones_are_still_removed(migrated, redis_url, tmp_path, stub_scorer) -> None:
    """On an upgraded database an article's old links have no origin; a link a relink added later
    ('text') must still go when the list drops its company (it never could: add-only for all)."""
    from services.sentiment.relink import relink

    row = {"id": "joint-1", "source": "wire1", "published_at": (START + timedelta(days=3)).isoformat(),
           "title": f"{NAME} and $ACME sign supply deal", "body": f"{NAME} builds the arms. Profit fell."}
    old = _pipe(migrated, migrated.db_url, stub_scorer)
    old.score(old.ingest([row]).to_score)
    with old.db.session() as s:
        s.execute(update(ArticleTicker).values(origin=None))  # stored before sentiment_0005
    listed = _pipe(migrated, migrated.db_url, stub_scorer, _companies(tmp_path))
    assert relink(listed).added["ZPHR"] == 1
    assert {t for _, t, _ in _links(listed.db)} == {"ACME", "ZPHR"}
    gone = relink(old)  # the list no longer names ZPHR
    assert (gone.relinked, gone.removed["ZPHR"], gone.unknown_kept) == (1, 1, 0)
    with old.db.session() as s:
        assert sorted(s.execute(select(ArticleTicker.ticker, ArticleTicker.origin)).all()) == [("ACME", None)]
        assert sorted(s.scalars(select(Score.ticker))) == ["ACME"]


def test_a_ticker_with_no_articles_left_has_its_alerts_retracted(migrated, redis_url, tmp_path, stub_scorer) -> None:
    """A company dropped from the list and relinked loses every link: its alerts must go too (the
    judge returned early for a ticker without articles, and GET /v1/alerts still listed them)."""
    from services.sentiment.alerts import evaluate
    from services.sentiment.relink import relink

    rows = _named(history(["ZPHR"], START, 30) + burst("ZPHR", BURST_DAY))
    listed = _pipe(migrated, migrated.db_url, stub_scorer, _companies(tmp_path))
    _live(listed, rows)
    [alert] = list_alerts(listed.db, ticker="ZPHR")
    gone = relink(_pipe(migrated, migrated.db_url, stub_scorer))  # the list no longer names ZPHR
    assert (gone.removed["ZPHR"], gone.alerts_retracted) == (len(rows), 1)
    assert list_alerts(listed.db, ticker="ZPHR") == []
    with listed.db.session() as s:
        assert s.get(Alert, alert["id"]).quiet  # a relink's retraction stays off the live stream
        s.execute(update(Alert).values(retracted_at=None, quiet=False))
    # a live judgment (an update that unlinked the ticker's last articles) retracts it live
    judged = evaluate(listed.db, {"ZPHR": [BURST_DAY]}, listed.rules, live=True)
    assert [a["id"] for a in judged.retracted] == [alert["id"]] and judged.raised == []
    with listed.db.session() as s:
        retracted = s.get(Alert, alert["id"])
        assert retracted.retracted_at is not None and not retracted.quiet
    assert evaluate(listed.db, {"ZPHR": [BURST_DAY]}, listed.rules).retracted == []  # once


def test_relink_refuses_a_headerless_company_list_and_changes_nothing(migrated, redis_url, tmp_path, stub_scorer,
                                                                      monkeypatch, capsys) -> None:
    """The QA case: a one-line list without its header read as no companies, and a relink then removed
    every text link of history. Refused, exit 2, one line naming the file and line."""
    from shared.cli import main
    from shared.settings import reset_settings_cache

    pipe = _pipe(migrated, migrated.db_url, stub_scorer, _companies(tmp_path))
    pipe.score(pipe.ingest(_named(burst("ZPHR", BURST_DAY, 3))).stored)
    before = _links(pipe.db)
    assert {t for _, t, _ in before} == {"ZPHR"}
    headerless = tmp_path / "nohdr.csv"
    headerless.write_text(f"ZPHR,{NAME},Zephyr\n", encoding="utf-8")
    monkeypatch.setenv("FINPULSE_SENTIMENT_COMPANIES_CSV", str(headerless))
    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    reset_settings_cache()
    try:
        main(["news", "relink"])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err == [f"finpulse: error: FINPULSE_SENTIMENT_COMPANIES_CSV: company list {headerless}:1: "
                                 "first line must be the header "
                                 f"ticker,name,aliases (found 'zphr,{NAME.lower()},zephyr')"]
    assert _links(pipe.db) == before


def test_ctrl_c_prints_what_was_done_and_judges_it(migrated, redis_url, tmp_path, stub_scorer, monkeypatch,
                                                  capsys) -> None:
    import json

    from services.sentiment import relink as relink_mod
    from shared.cli import main
    from shared.settings import reset_settings_cache

    old = _pipe(migrated, migrated.db_url, stub_scorer)
    old.score(old.ingest(_named(burst("ZPHR", BURST_DAY, 3))).stored)
    calls: list[int] = []

    def interrupt(pipe: Any, ids: list[str]) -> list[str]:
        calls.append(len(ids))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(relink_mod, "_left_unscored", interrupt)
    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)
    monkeypatch.setenv("FINPULSE_SENTIMENT_COMPANIES_CSV", str(_companies(tmp_path)))
    reset_settings_cache()
    try:
        main(["news", "relink", "--json", "--chunk", "1"])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    got = capsys.readouterr()
    assert code == 130
    summary = json.loads(got.out)
    assert (summary["scanned"], summary["relinked"], summary["scored"]) == (2, 2, 2)
    assert got.err.splitlines()[-1].startswith("finpulse: interrupted after 2 articles")
    assert len([1 for _, t, _ in _links(old.db) if t == "ZPHR"]) == 2 and _unscored(old.db) == 0
