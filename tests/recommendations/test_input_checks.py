"""Inputs the recommendations product used to take and then fail on, or store wrongly.

Regressions of a QA pass: recommender options accepted with a 202 whose job then failed (or
registered a model ranking in catalogue order), blank ids stored as "", booleans and 0 as
timestamps, non-ASCII digits as ``k``, unbounded ratings in files, a non-UTF-8 id in the path,
and a multipart retrain's ``items`` file silently ignored.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.datastructures import MultiDict

from services.recommendations import create_app
from services.recommendations.cli import recs
from services.recommendations.pipeline import RecsConfig
from shared import lifecycle
from shared.errors import BadInput
from tests.recommendations.conftest import SAMPLE

HEADER = "user_id\titem_id\trating\ttimestamp\n"


@pytest.fixture
def client(settings, production):
    from shared.db import upgrade

    upgrade(settings.db_url)
    return create_app(settings).test_client()


# -- 2: recommender options ---------------------------------------------------------------
@pytest.mark.parametrize(("options", "words"), [
    ({"transition_window": 0}, "transition_window must be an integer in 1..100, got 0"),
    ({"transition_history": 0}, "transition_history must be an integer >= 1, got 0"),
    ({"transition_decay": 5}, "transition_decay must be a number in (0, 1], got 5"),
    ({"knn_neighbours": 0}, "knn_neighbours must be an integer >= 1, got 0"),
    ({"max_dense_items": -5}, "max_dense_items must be an integer in 0..20000"),
    ({"cold_threshold": -3}, "cold_threshold must be an integer >= 0"),
    ({"w_item": 0, "w_transitions": 0, "w_popularity": 0, "w_content": 0}, "at least one must be > 0"),
    ({"ease_l2": "abc"}, "ease_l2 must be a number, got 'abc'"),
    ({"w_popularity": True}, "w_popularity must be a number, got True"),
    ({"popularity_half_life_hours": 0}, "popularity_half_life_hours must be a number of hours > 0, or null"),
    ({"popularity_prior_events": -1}, "popularity_prior_events must be a number >= 0, or null"),
])
def test_bad_recommender_options_are_a_400_naming_the_option(ops, options: dict, words: str) -> None:
    """They were a 202 whose job failed (window 0, decay 5, neighbours 0) or registered a broken
    version (weights all 0: catalogue order); "abc" was a 400 quoting Python's TypeError."""
    resp = ops["client"].post("/v1/admin/retrain", headers=ops["auth"], json={"data": str(SAMPLE), "options": options})
    assert resp.status_code == 400, resp.get_json()
    message = resp.get_json()["error"]["message"]
    assert words in message and "not supported between" not in message, message
    assert lifecycle.list_jobs(ops["db"]) == []  # nothing queued


def test_a_bad_config_is_one_line_naming_the_option_in_the_cli() -> None:
    with pytest.raises(BadInput, match=r"^recommender option transition_decay must be a number in \(0, 1\], got 5$"):
        RecsConfig(transition_decay=5)
    with pytest.raises(BadInput, match="seed must be an integer in 0..4294967295, got -1"):
        RecsConfig(seed=-1)  # np.random.seed(-1) failed inside the fit
    assert RecsConfig(w_item=0, w_transitions=0, w_popularity=0.5).w_popularity == 0.5  # one part is enough
    assert RecsConfig(w_item=0, w_transitions=0).w_popularity is None  # chosen at fit time, always > 0


# -- 3: blank ids --------------------------------------------------------------------------
# i18n QA: ids of invisible format characters alone (zero-width space, BOM, word joiner) were stored
@pytest.mark.parametrize("blank", ["  ", "\t", " \n ", "\u200b", "\ufeff", "\u2060", " \u200b\u200d "])
def test_blank_ids_are_a_400(client, blank: str) -> None:
    for body in ({"user_id": blank, "item_id": "m1"}, {"user_id": "u1", "item_id": blank}):
        res = client.post("/v1/interactions", json=body)
        assert res.status_code == 400, (body, res.get_json())
        assert "_id" in res.get_json()["error"]["message"]
    assert "" not in client.get("/v1/users/u1/recommendations?k=100").get_json()["items"]


def test_blank_ids_in_a_file_are_bad_rows_naming_the_line(tmp_path: Path) -> None:
    data = tmp_path / "inter.tsv"
    data.write_text(SAMPLE.read_text() + "  \tm1\t5\t100\nu1\t \t4\t101\n")
    lines = len(data.read_text().splitlines())
    strict = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m")])
    assert str(strict.exception) == f"{data}:{lines - 1}: missing user_id"
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m"),
                                    "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert f"{data}:{lines - 1}: skipped: missing user_id" in res.output
    assert f"{data}:{lines}: skipped: missing item_id" in res.output
    ids = json.loads((tmp_path / "m" / "ids.json").read_text())
    assert "" not in ids["user_ids"] and "" not in ids["item_ids"]


def test_invisible_ids_in_a_file_are_bad_rows_naming_the_line(tmp_path: Path) -> None:
    data = tmp_path / "inter.tsv"
    data.write_text(SAMPLE.read_text() + "\u200b\tm1\t5\t100\nu1\t\ufeff\u2060\t4\t101\n", encoding="utf-8")
    lines = len(data.read_text(encoding="utf-8").splitlines())
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m"),
                                    "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert f"{data}:{lines - 1}: skipped: missing user_id" in res.output
    assert f"{data}:{lines}: skipped: missing item_id" in res.output


# -- 5: timestamps -------------------------------------------------------------------------
def test_boolean_timestamps_are_a_400_and_zero_stays_zero(client, settings) -> None:
    from sqlalchemy import select

    from services.recommendations.models import RecsInteraction
    from shared.db import Database

    for stamp in (True, False):  # pydantic made true a 1 before the boolean check saw it
        res = client.post("/v1/interactions", json={"user_id": "u1", "item_id": "m1", "timestamp": stamp})
        assert res.status_code == 400 and "boolean" in res.get_json()["error"]["message"], (stamp, res.get_json())
    assert client.post("/v1/interactions", json={"user_id": "zero", "item_id": "m1", "timestamp": 0}).status_code == 201
    assert client.post("/v1/interactions", json={"user_id": "unset", "item_id": "m1"}).status_code == 201
    db = Database(settings.db_url)
    with db.session() as s:
        stored = dict(s.execute(select(RecsInteraction.user_id, RecsInteraction.ts)).all())
    db.dispose()
    assert stored["zero"] == 0 and stored["unset"] > 1_700_000_000  # 0 was "now" too


def test_fold_in_keeps_time_zero(trained_dir: Path) -> None:
    from services.recommendations.pipeline import TrainedModel

    model = TrainedModel(trained_dir)
    assert model.add("new", "m1", 0) and model.history("new").times.tolist() == [0]


# -- 6: k ----------------------------------------------------------------------------------
@pytest.mark.parametrize("k", ["1_0", "\u0661\u0660", "\uff11\uff10", "+5", " 5"])
def test_k_takes_ascii_digits_only(client, k: str) -> None:
    for path in ("/v1/users/u1/recommendations", "/v1/items/m1/similar"):
        res = client.get(path, query_string={"k": k})
        assert res.status_code == 400 and res.get_json()["error"]["code"] == "bad_k", (path, k)
    assert len(client.get("/v1/users/u1/recommendations?k=010").get_json()["items"]) == 10


# -- 7: ratings ----------------------------------------------------------------------------
@pytest.mark.parametrize("rating", ["1e300", "-2e6", "1000001"])
def test_ratings_in_files_meet_the_http_bound(tmp_path: Path, rating: str) -> None:
    data = tmp_path / "inter.tsv"
    data.write_text(HEADER + f"u1\tm1\t5\t100\nu1\tm2\t{rating}\t101\n")
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m")])
    assert str(res.exception) == f"{data}:3: rating {rating!r} is outside -1e+06..1e+06"
    assert not (tmp_path / "m").exists()


def test_a_posted_rating_that_is_no_finite_number_says_so(client) -> None:
    """QA: a posted `"rating": "NaN"` was a 400 saying "must be <= 1000000" (no bound holds for NaN)."""
    for rating in ("NaN", "nan", "inf", "-Infinity"):
        res = client.post("/v1/interactions", json={"user_id": "u1", "item_id": "m1", "rating": rating})
        assert res.status_code == 400, res.get_json()
        assert res.get_json()["error"]["message"] == \
            f"interaction.rating: Value error, rating {rating!r} is not a finite number"
    res = client.post("/v1/interactions", data='{"user_id": "u1", "item_id": "m1", "rating": NaN}',
                      content_type="application/json")  # the JSON literal Python's parser takes
    assert res.status_code == 400 and "is not a finite number" in res.get_json()["error"]["message"]


@pytest.mark.parametrize("rating", ["nan", "inf"])
def test_ratings_in_files_that_are_no_finite_number_say_so(tmp_path: Path, rating: str) -> None:
    data = tmp_path / "inter.tsv"
    data.write_text(HEADER + f"u1\tm1\t5\t100\nu1\tm2\t{rating}\t101\n")
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m")])
    assert str(res.exception) == f"{data}:3: rating {rating!r} is not a finite number"


@pytest.mark.parametrize(("body", "says"), [
    ("user_id\titem_id\tuser_id\nu1\tm1\tu2\n",
     ":1: the header names the column 'user_id' twice (columns 1 and 3); rename or drop one: "
     "which of them holds the data is ambiguous"),
    ("", ": the file is empty; expected interactions, one a line: user_id, item_id[, rating, timestamp]"),
    ("u1\tm1\t5\t100\tx\n", ":1: the first line has 5 columns, too many for a file without a header"),
])
def test_recs_train_says_what_is_wrong_with_the_file(tmp_path: Path, body: str, says: str) -> None:
    """QA: a repeated `user_id` column fitted on the last one silently; an empty file and a headerless
    one with 5 columns were "read as a header, but it names none of the columns"."""
    data = tmp_path / "inter.tsv"
    data.write_text(body)
    for skip in ([], ["--skip-bad"]):
        res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m"), *skip])
        assert res.exit_code != 0 and isinstance(res.exception, BadInput)
        assert str(res.exception).startswith(f"{data}{says}")
    assert not (tmp_path / "m").exists()


# -- the path -------------------------------------------------------------------------------
def test_an_id_that_is_not_utf8_is_a_400(client) -> None:
    for path in ("/v1/users/%FF/recommendations", "/v1/items/a%C3/similar"):
        res = client.get(path)
        assert res.status_code == 400 and res.get_json()["error"]["code"] == "invalid_url", path
    ok = client.get("/v1/users/%EF%BF%BD/recommendations")  # U+FFFD itself, sent as UTF-8, is an id
    assert ok.status_code == 200 and ok.get_json()["user_id"] == "\ufffd"


# -- 4: multipart retrain files ----------------------------------------------------------
def _form(**files: tuple[bytes, str]) -> dict:
    return {name: (io.BytesIO(body), filename) for name, (body, filename) in files.items()}


def test_a_multipart_retrain_trains_on_the_uploaded_items(ops, cheap_encoder) -> None:
    """The uploaded catalogue was dropped (only "data" was read) and production's reused."""
    from services.recommendations.versions import registry

    client, auth = ops["client"], ops["auth"]
    items = "item_id\ttitle\tcategories\n" + "".join(f"m{i}\tMovie {i}\tdrama\n" for i in range(1, 61))
    resp = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                       data=_form(data=(SAMPLE.read_bytes(), "clicks.tsv"), items=(items.encode(), "films.tsv")))
    assert resp.status_code == 202, resp.get_json()
    job = lifecycle.get_job(ops["db"], resp.get_json()["job_id"])
    assert job["status"] == "succeeded", job
    assert "items: 60 from" in job["log"], job["log"]
    version = registry(ops["settings"]).resolve_version(job["result"]["version"])
    stored = version.train_config()["items"]
    assert Path(stored).parent == ops["settings"].home / "uploads" and Path(stored).read_text() == items
    assert len((version.path / "items.jsonl").read_text().splitlines()) == 60


def test_a_multipart_retrain_refuses_empty_bad_and_unknown_files(ops) -> None:
    client, auth, data = ops["client"], ops["auth"], (SAMPLE.read_bytes(), "clicks.tsv")
    cases = [(_form(data=data, items=(b"", "films.tsv")), "uploaded items file films.tsv is empty"),
             (_form(data=data, items=(b"title\nno id\n", "films.tsv")), "uploaded films.tsv: no usable items"),
             (_form(data=data, items=(b"x", "films.exe")), "uploaded items file must be one of"),
             (_form(data=data, catalogue=(b"item_id\nm1\n", "c.tsv")), "unknown file field(s) 'catalogue'"),
             (MultiDict([*_form(data=data).items(), ("items", "/srv/items.tsv"),
                         ("items", (io.BytesIO(b"item_id\nm1\n"), "c.tsv"))]), "either as a server path or as a file")]
    for form, words in cases:
        resp = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data", data=form)
        assert resp.status_code == 400, resp.get_json()
        message = resp.get_json()["error"]["message"]
        assert words in message and "uploads/" not in message, message
    assert lifecycle.list_jobs(ops["db"]) == []
    assert not list((ops["settings"].home / "uploads").glob("*"))  # a refused upload is not kept
