"""Cursor paging of ``GET /v1/alerts`` on SQLite and PostgreSQL.

Analyst QA: the list stopped at ``limit`` (1000 at most) with no way to the older alerts. A page's
``next`` is a cursor on (event time, id), so pages neither skip nor repeat an alert when several
share a time or when new alerts arrive between two requests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.sentiment.conftest import START

T1, T2, T3 = (START + timedelta(days=d) for d in (3, 2, 1))  # T1 newest


def store(pipe: Any, *alerts: tuple[str, datetime]) -> list[str]:
    """``(ticker, at)`` alerts stored as the judge stores them, raised a day ago (so no stream
    client reads them as new); returns their ids."""
    from services.sentiment.alerts import alert_id
    from services.sentiment.models import Alert

    raised = datetime.now(UTC) - timedelta(days=1)
    with pipe.db.session() as s:
        s.add_all(Alert(id=alert_id(t, at), ticker=t, kind="negative_burst", severity="warn", at=at, value=-0.6,
                        baseline=0.1, message=f"{t} burst", article_ids=[], article_count=3, created_at=raised)
                  for t, at in alerts)
    return [alert_id(t, at) for t, at in alerts]


def newest_first(ids: list[str], pipe: Any) -> list[str]:
    """``ids`` in the documented order: event time descending, then id ascending."""
    from services.sentiment.models import Alert, as_utc

    with pipe.db.session() as s:
        at = {a.id: as_utc(a.at) for a in s.query(Alert).filter(Alert.id.in_(ids))}
    return sorted(ids, key=lambda i: (-at[i].timestamp(), i))


def walk(client: Any, query: str, cursor: str | None = None) -> Iterator[dict[str, Any]]:
    """Every page of ``/v1/alerts?{query}`` from ``cursor`` on, following ``next`` until it is null."""
    for _ in range(100):  # a cursor that never ends fails the test instead of hanging it
        page = client.get(f"/v1/alerts?{query}" + (f"&before={cursor}" if cursor else ""))
        assert page.status_code == 200, page.get_json()
        body = page.get_json()
        yield body
        cursor = body["next"]
        if cursor is None:
            return
    pytest.fail("paging never reached a last page")


@pytest.fixture
def served(any_db_url: str, settings: Any, redis_url: str, stub_scorer: Any) -> tuple[Any, Any]:
    """``(client, pipeline)`` of a sentiment app on each database backend."""
    from services.sentiment import create_app

    app = create_app(settings.model_copy(update={"database_url": any_db_url}), scorer=stub_scorer)
    return app.test_client(), app.extensions["sentiment"]


def test_pages_list_every_alert_once_in_a_total_order_with_ties_in_time(served) -> None:
    client, pipe = served
    ids = store(pipe, ("CCC", T1), ("AAA", T1), ("BBB", T1), ("DDD", T1),  # four of one bucket
                ("BBB", T2), ("AAA", T2), ("AAA", T3))
    pages = list(walk(client, "limit=3"))
    assert [len(p["alerts"]) for p in pages] == [3, 3, 1] and pages[-1]["next"] is None
    paged = [a["id"] for p in pages for a in p["alerts"]]
    assert paged == newest_first(ids, pipe) == [a["id"] for a in client.get("/v1/alerts").get_json()["alerts"]]
    assert paged[:4] == ["AAA-20240304T0000", "BBB-20240304T0000", "CCC-20240304T0000", "DDD-20240304T0000"]
    # a page that ends exactly on the last alert says so: no empty page after it
    assert [len(p["alerts"]) for p in walk(client, "limit=7")] == [7]
    acme = [a["id"] for p in walk(client, "limit=1&ticker=AAA") for a in p["alerts"]]
    assert acme == ["AAA-20240304T0000", "AAA-20240303T0000", "AAA-20240302T0000"]
    since = [a["id"] for p in walk(client, f"limit=2&since={T2.isoformat().replace('+', '%2B')}") for a in p["alerts"]]
    assert since == paged[:6]  # the filters hold on every page


def test_new_alerts_between_pages_neither_shift_nor_repeat_the_rest(served) -> None:
    client, pipe = served
    ids = store(pipe, *((t, at) for at in (T1, T2, T3) for t in ("AAA", "BBB", "CCC")))
    first = client.get("/v1/alerts?limit=4").get_json()
    later = T1 + timedelta(days=1)
    store(pipe, ("AAA", later), ("ZZZ", later), ("BBB", T1 + timedelta(hours=1)))  # newer than the whole list
    store(pipe, ("AAA", T3 - timedelta(days=1)))  # older: still ahead of the cursor, so listed
    rest = [a["id"] for p in walk(client, "limit=4", first["next"]) for a in p["alerts"]]
    seen = [a["id"] for a in first["alerts"]] + rest
    assert seen == newest_first(ids, pipe) + ["AAA-20240301T0000"]  # each once, none of the new ones
    # retracted meanwhile: gone from the pages, and its id still works as a position
    retracted = rest[0]
    with pipe.db.session() as s:
        from services.sentiment.models import Alert

        s.get(Alert, retracted).retracted_at = datetime.now(UTC)
    again = client.get(f"/v1/alerts?limit=4&before={first['next']}").get_json()["alerts"]
    assert retracted not in [a["id"] for a in again] and again[0]["id"] == rest[1]
    by_id = client.get(f"/v1/alerts?limit=4&before={retracted}").get_json()["alerts"]
    assert [a["id"] for a in by_id] == rest[1:5]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "not a cursor!", "Zm9v", _b64("2024-03-04T00:00:00+00:00|"), _b64("2024-03-04T00:00:00|AAA-20240304T0000"),
    _b64("yesterday|AAA-20240304T0000"), _b64("2024-03-04T00:00:00+00:00|A\x00B"),
    _b64("9999-12-31T23:59:00-14:00|AAA-20240304T0000"), "NOPE-2024030", "x" * 300, "\u00e9\u00e9\u00e9"])
def test_a_bad_cursor_is_a_400_naming_before(served, cursor: str) -> None:
    client, pipe = served
    store(pipe, ("AAA", T1))
    r = client.get("/v1/alerts", query_string={"before": cursor})
    assert r.status_code == 400 and r.is_json, r.get_data(as_text=True)[:200]
    error = r.get_json()["error"]
    assert error["code"] == "bad_request" and error["message"].startswith("before must be"), error


def test_an_alert_id_or_an_empty_before_pages_as_documented(served) -> None:
    client, pipe = served
    ids = store(pipe, ("AAA", T1), ("BBB", T1), ("AAA", T2))
    assert [a["id"] for a in client.get(f"/v1/alerts?before={ids[0]}").get_json()["alerts"]] == ids[1:]
    for blank in ("", "%20"):  # left out
        assert client.get(f"/v1/alerts?before={blank}").get_json() == client.get("/v1/alerts").get_json()
    # the id of an alert no longer stored (pruned by retention) still names its place in the order
    gone = "AAB-" + ids[0].split("-", 1)[1]
    assert [a["id"] for a in client.get(f"/v1/alerts?before={gone}").get_json()["alerts"]] == ids[1:]


def test_openapi_documents_the_cursor(client) -> None:
    op = client.get("/openapi.json").json["paths"]["/v1/alerts"]["get"]
    before = {p["name"]: p for p in op["parameters"]}["before"]
    assert before["in"] == "query" and "next" in before["description"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert "next" in ok["properties"] and "alerts" in ok["properties"]


def test_cli_pages_with_before_as_the_api_does(client, pipe, capsys) -> None:
    """Analyst QA: ``finpulse news alerts`` stopped at --limit with no way to the older alerts."""
    from click.testing import CliRunner

    from services.sentiment.cli import news
    from shared.cli import main

    ids = newest_first(store(pipe, ("AAA", T1), ("BBB", T1), ("CCC", T1), ("AAA", T2), ("BBB", T3)), pipe)
    seen, before = [], []
    for _ in range(5):
        result = CliRunner().invoke(news, ["alerts", "--limit", "2", *before])
        assert result.exit_code == 0, result.output
        seen += [json.loads(line)["id"] for line in result.stdout.splitlines()]
        more = [line for line in result.stderr.splitlines() if line.startswith("more: ")]
        if not more:
            break
        before = more[0].removeprefix("more: ").split()
    assert seen == ids  # every alert once, in the API's order
    api = client.get("/v1/alerts", query_string={"limit": 2, "before": ids[1]}).get_json()["alerts"]
    by_id = CliRunner().invoke(news, ["alerts", "--limit", "2", "--before", ids[1]])
    assert [json.loads(line) for line in by_id.stdout.splitlines()] == api
    # an empty cursor is the first page, as before= is in the API: a shell loop starts from ""
    first = CliRunner().invoke(news, ["alerts", "--limit", "2"])
    for blank in ("", "  "):
        again = CliRunner().invoke(news, ["alerts", "--limit", "2", "--before", blank])
        assert (again.exit_code, again.stdout, again.stderr) == (0, first.stdout, first.stderr), blank
    with pytest.raises(SystemExit) as exit_:
        main(["news", "alerts", "--before", "not-a-cursor"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == ("finpulse: error: --before must be an alert id or the cursor a page "
                                               "ended with, got 'not-a-cursor'")
