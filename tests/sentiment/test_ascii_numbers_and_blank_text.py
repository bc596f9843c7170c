"""Sentiment QA: numbers in the service's arguments are ASCII digits, and an article of invisible
characters alone is empty.

``window=３０d`` (full-width digits) and ``window= 30d `` charted 30 days: ``_DURATION`` used ``\\d``
and a strip(), while every other numeric query argument takes ASCII digits only (shared.web.int_arg).
``POST /v1/news`` stored an article whose only text was "\\u200b": ingest checked emptiness with
``str.strip()``, which keeps invisible format characters (the chat, recommendations and /v1/score use
``shared.text.is_blank``).
"""

from __future__ import annotations

import json

import pytest

from tests.sentiment.test_ingest import _count, art


@pytest.mark.parametrize("query", [
    "window=%EF%BC%93%EF%BC%90d",  # ３０d: full-width digits
    "window=\u0663\u0660d",  # ٣٠d: Arabic-Indic digits
    "window=%2030d%20",  # " 30d "
    "window=30d%0A",  # a trailing newline ($ matched before it)
    "window=%0930d",
    "window=+30d", "window=3_0d", "window=30D",
    "bucket=%EF%BC%91d", "bucket=%201d", "bucket=1d%20",
])
def test_a_duration_in_other_digits_or_with_spaces_is_a_400(client, query) -> None:
    r = client.get(f"/v1/tickers/ACME/sentiment?{query}")
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_request", r.get_data(as_text=True)
    name = query.split("=")[0]
    assert r.json["error"]["message"].startswith(f"{name} must "), r.json


def test_the_window_message_says_ascii_digits_and_ascii_windows_still_work(client) -> None:
    r = client.get("/v1/tickers/ACME/sentiment?window=%EF%BC%93%EF%BC%90d")
    assert r.json["error"]["message"] == "window must look like 12h, 30d or 4w in ASCII digits, got '３０d'"
    for window in ("30d", "12h", "4w", "0030d", "3660d"):
        assert client.get(f"/v1/tickers/ACME/sentiment?window={window}").status_code == 200, window
    assert client.get("/v1/tickers/ACME/sentiment?window=36h&bucket=1h").json["window"] == "36h"


@pytest.mark.parametrize("arg", ["since", "after_stream", "end", "start"])
def test_an_epoch_time_in_other_digits_is_a_400(client, arg) -> None:
    """A time given as epoch seconds is a number: "１７０９２５１２００" (full-width) was read as 2024-03-01."""
    full_width = "１７０９２５１２００"
    url = {"since": "/v1/alerts?since=", "end": "/v1/tickers/ACME/sentiment?end=",
           "start": "/v1/tickers/ACME/sentiment?start=", "after_stream": "/v1/alerts/stream?max_s=1&after="}[arg]
    r = client.get(url + full_width)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert client.get(url + "1709251200").status_code == 200


def test_an_epoch_published_at_in_other_digits_is_rejected_alone(client) -> None:
    rows = [art(1, published_at="1709251200"), art(2, published_at="１７０９２５１２００"),
            art(3, published_at="1709251200.５")]
    r = client.post("/v1/news", json=rows)
    assert r.status_code == 202 and r.json["ids"] == ["a1"], r.json
    assert [x["index"] for x in r.json["rejected"]] == [1, 2]


@pytest.mark.parametrize("last_event_id", ["ACME-20240331T0000@\u00b2", "ACME-20240331T0000@１２３"])
def test_a_last_event_id_position_in_other_digits_is_no_position(client, last_event_id) -> None:
    """``micros.isdigit()`` held for "²", and int() then raised: the stream answered a 500."""
    r = client.get("/v1/alerts/stream?max_s=1", headers={"Last-Event-ID": last_event_id})
    assert r.status_code == 200, r.get_data(as_text=True)
    r.get_data()  # the stream runs to its end without an error


INVISIBLE = ["\u200b", " \ufeff\u2060 ", "\u200b\u200c\u200d", "\u00ad", "\u2028"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_an_article_of_invisible_characters_is_rejected_as_empty(client, pipe, text) -> None:
    from services.sentiment.models import Article

    r = client.post("/v1/news", json=[art(1), art(2, title=text, body=text), art(3, title=text, body=None)])
    assert r.status_code == 202, r.json
    assert r.json["ids"] == ["a1"] and r.json["article_ids"] == ["a1", None, None]
    assert [(x["index"], x["id"], x["reason"]) for x in r.json["rejected"]] == [
        (1, "a2", "empty text: title and body are both empty"), (2, "a3", "empty text: title and body are both empty")]
    assert _count(pipe, Article) == 1
    alone = client.post("/v1/news", json=art(4, title=text, body=""))
    assert alone.status_code == 400 and alone.json["error"]["code"] == "all_rejected"
    assert "empty text" in alone.json["error"]["message"]


def test_an_invisible_title_takes_the_body_and_an_invisible_source_is_unknown(client, pipe) -> None:
    from services.sentiment.models import Article

    r = client.post("/v1/news", json=art(1, title="\u200b", body="$ACME beats estimates. More text.",
                                         source="\u200b\ufeff", url="\u2060"))
    assert r.status_code == 202 and r.json["ids"] == ["a1"], r.json
    with pipe.db.session() as s:
        a = s.get(Article, "a1")
        assert (a.title, a.source, a.url) == ("$ACME beats estimates", "unknown", None)
    assert _count(pipe, Article) == 1


def test_cli_ingest_rejects_invisible_only_rows(pipe, migrated, tmp_path, monkeypatch, stub_scorer, capsys) -> None:
    from shared.cli import main

    monkeypatch.setattr("services.sentiment.pipeline.load_scorer", lambda settings: stub_scorer)

    def finpulse(path) -> tuple[int, str, str]:
        try:
            main(["news", "ingest", str(path)])
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    blank = tmp_path / "blank.jsonl"
    blank.write_text(json.dumps(art(1, title="\u200b", body="\ufeff")) + "\n", encoding="utf-8")
    code, _, err = finpulse(blank)
    assert code == 2 and "every row was rejected" in err and "empty text" in err, err
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("id,source,published_at,title,body\nc1,wire,2024-05-01T10:00:00Z,$ACME item 1,Body.\n"
                     "c2,wire,2024-05-01T10:00:00Z,\u200b,\u2060\n", encoding="utf-8")
    code, out, _ = finpulse(mixed)
    assert code == 0 and "stored 1" in out and "empty text" in out, out
