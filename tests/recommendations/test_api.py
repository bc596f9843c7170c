"""The HTTP API through the real app, SQLite database and a model trained on the sample file."""

from __future__ import annotations

import pytest

from services.recommendations import create_app
from services.recommendations.serving import MAX_K


@pytest.fixture
def client(settings, production):
    from shared.db import upgrade

    upgrade(settings.db_url)
    app = create_app(settings)
    return app.test_client()


def test_known_user_gets_unseen_items(client) -> None:
    res = client.get("/v1/users/u1/recommendations?k=5")
    assert res.status_code == 200
    body = res.get_json()
    assert body["user_id"] == "u1" and len(body["items"]) == 5
    assert body["strategy"] == "personalised"


def test_unknown_user_gets_popular_items(client) -> None:
    res = client.get("/v1/users/never-seen/recommendations")
    assert res.status_code == 200
    assert len(res.get_json()["items"]) == 10
    assert res.get_json()["strategy"] == "popularity"


@pytest.mark.parametrize("k", ["0", "-1", str(MAX_K + 1), "abc", "1.5"])
def test_bad_k_is_a_400(client, k: str) -> None:
    res = client.get(f"/v1/users/u1/recommendations?k={k}")
    assert res.status_code == 400
    assert res.get_json()["error"]["code"] == "bad_k"
    assert client.get(f"/v1/items/m1/similar?k={k}").status_code == 400


def test_posted_interaction_folds_in(client) -> None:
    before = client.get("/v1/users/u1/recommendations?k=3").get_json()["items"]
    res = client.post("/v1/interactions", json={"user_id": "u1", "item_id": before[0], "timestamp": 2_000_000_000})
    assert res.status_code == 201
    assert res.get_json()["folded_in"] == 1
    after = client.get("/v1/users/u1/recommendations?k=3").get_json()["items"]
    assert before[0] not in after
    assert after != before


def test_new_user_history_personalises(client) -> None:
    events = [{"user_id": "fresh", "item_id": f"m{i}", "timestamp": 1_000 + i} for i in (10, 11, 12)]
    assert client.post("/v1/interactions", json=events).status_code == 201
    body = client.get("/v1/users/fresh/recommendations?k=5").get_json()
    assert body["strategy"] == "personalised"
    assert not {"m10", "m11", "m12"} & set(body["items"])


def test_bad_interaction_is_a_400(client) -> None:
    missing = client.post("/v1/interactions", json={"item_id": "m1"})
    assert missing.status_code == 400  # what the object lacks, and not also that it is no list
    assert missing.get_json()["error"]["message"] == "interaction.user_id: Field required"
    in_list = client.post("/v1/interactions", json=[{"user_id": "u", "item_id": "m1"}, {"user_id": "u"}])
    assert in_list.get_json()["error"]["message"] == "interactions.1.item_id: Field required"
    assert client.post("/v1/interactions", json=[]).status_code == 400
    res = client.post("/v1/interactions", json={"user_id": "u", "item_id": "m1", "timestamp": "yesterday"})
    assert res.status_code == 400
    assert "error" in res.get_json()
    # out of any plausible range (1e20 overflowed the database's integer: a 500)
    for stamp in (1e20, -99999999999999, "9999-12-31T23:59:59Z", "2026-11-20T10:00:00+25:00"):
        res = client.post("/v1/interactions", json={"user_id": "u", "item_id": "m1", "timestamp": stamp})
        assert res.status_code == 400 and "timestamp" in res.get_json()["error"]["message"], stamp


def test_a_posted_float_id_is_its_integer_and_a_boolean_is_no_id_or_rating(client) -> None:
    """CLI QA (the files read them so too now): 1.0 was stored as another item than 1, true rated 1."""
    assert client.post("/v1/interactions", json={"user_id": 5.0, "item_id": "m1"}).status_code == 201
    assert client.get("/v1/users/5/recommendations").get_json()["strategy"] == "personalised"
    for body, field in (({"user_id": True, "item_id": "m1"}, "user_id"), ({"user_id": "u", "item_id": {"a": 1}},
                        "item_id"), ({"user_id": "u", "item_id": "m1", "rating": True}, "rating")):
        res = client.post("/v1/interactions", json=body)
        assert res.status_code == 400 and f"interaction.{field}" in res.get_json()["error"]["message"], res.get_json()


def test_similar_items(client) -> None:
    res = client.get("/v1/items/m20/similar?k=4")
    assert res.status_code == 200
    items = [r["item_id"] for r in res.get_json()["items"]]
    assert len(items) == 4 and "m20" not in items
    unknown = client.get("/v1/items/not-an-item/similar?k=4")
    assert unknown.status_code == 200 and len(unknown.get_json()["items"]) == 4


def test_readiness_says_when_no_model(settings) -> None:
    app = create_app(settings)
    res = app.test_client().get("/readyz")
    assert res.status_code == 503
    assert any("no production recommender" in r for r in res.get_json()["reasons"])
    assert app.test_client().get("/v1/users/u1/recommendations").status_code == 503


def test_readiness_names_redis_when_it_is_down(client, settings, production) -> None:
    """It said ready with Redis down while its retrains failed; the password stays out of the answer."""
    assert client.get("/readyz").status_code == 200
    down = create_app(settings.model_copy(update={"redis_url": "redis://:s3cret@127.0.0.1:1/0"}))
    res = down.test_client().get("/readyz")
    reasons = " ".join(res.get_json().get("reasons", []))
    assert res.status_code == 503 and "redis unreachable at redis://:***@127.0.0.1:1/0" in reasons, reasons
    assert "s3cret" not in res.get_data(as_text=True)


def test_answers_name_the_served_version(client, production) -> None:
    assert client.get("/v1/users/u1/recommendations").get_json()["model_version"] == production.ref
    assert client.get("/v1/items/m20/similar").get_json()["model_version"] == production.ref


def test_ids_with_slashes_are_reachable(client) -> None:
    """An article URL is a natural item id: it was stored (201) but both GETs were a 404."""
    from urllib.parse import quote

    url_item, user = "https://news.example/x/1", "team/a"
    events = [{"user_id": user, "item_id": i, "timestamp": 1_000 + n} for n, i in enumerate(("m10", url_item))]
    assert client.post("/v1/interactions", json=events).status_code == 201
    res = client.get(f"/v1/users/{quote(user, safe='')}/recommendations?k=5")
    assert res.status_code == 200 and res.get_json()["strategy"] == "personalised"
    assert not {"m10", url_item} & set(res.get_json()["items"])
    res = client.get(f"/v1/items/{quote(url_item, safe='')}/similar?k=3")
    assert res.status_code == 200 and len(res.get_json()["items"]) == 3


def test_ids_in_the_url_are_read_as_posted_ones_are(client) -> None:
    """KB QA: " qq " was stored as "qq", but GET /v1/users/%20qq%20 got the popular items, one the user
    had among them; a blank id was a 200 there and a 400 in a post."""
    events = [{"user_id": " qq ", "item_id": i, "timestamp": 1_000 + n} for n, i in enumerate(("m10", "m11"))]
    assert client.post("/v1/interactions", json=events).status_code == 201
    res = client.get("/v1/users/%20qq%20/recommendations?k=5").get_json()
    assert res == client.get("/v1/users/qq/recommendations?k=5").get_json() and res["strategy"] == "personalised"
    assert not {"m10", "m11"} & set(res["items"])
    assert "m10" not in client.get("/v1/items/%20m10/similar?k=5").get_json()["items"]
    for path in ("/v1/users/%20/recommendations", "/v1/items/%E2%80%8B/similar"):
        res = client.get(path)
        assert res.status_code == 400 and "must hold a visible character" in res.get_json()["error"]["message"]


def test_the_cli_on_the_registered_version_counts_what_was_posted(client, production, tmp_path) -> None:
    """`recs recommend --model DOMAIN/recommendations@production` recommended items a user had
    posted through the service since the fit, which the service itself never does."""
    import json

    from click.testing import CliRunner

    from services.recommendations.cli import recs

    served = client.get("/v1/users/u1/recommendations?k=3").get_json()["items"]
    assert client.post("/v1/interactions", json={"user_id": "u1", "item_id": served[0]}).status_code == 201
    (tmp_path / "u.txt").write_text("u1\n")
    res = CliRunner().invoke(recs, ["recommend", "--model", f"{production.domain}/recommendations@production",
                                    "--users", str(tmp_path / "u.txt"), "--output", str(tmp_path / "o.jsonl"),
                                    "--k", "3"])
    assert res.exit_code == 0, res.output
    items = json.loads((tmp_path / "o.jsonl").read_text())["items"]
    assert served[0] not in items and len(items) == 3
    assert items == client.get("/v1/users/u1/recommendations?k=3").get_json()["items"]
    assert "1 interactions posted to the service" in res.stderr and res.stdout == ""


def _refused_postgres_url() -> str:
    """A PostgreSQL URL whose port nothing listens on: every connection is refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql+psycopg://postgres:secret-pw@127.0.0.1:{port}/test"


def test_interactions_without_a_writable_database_are_a_clean_503(settings, production, caplog) -> None:
    """The answer was "cannot store interactions: (sqlite3.OperationalError) disk I/O error" (or
    psycopg's connection text on PostgreSQL): now the 503 every service gives, the detail logged."""
    import logging
    import shutil
    from pathlib import Path

    from shared.db import upgrade
    from shared.settings import load_settings

    upgrade(settings.db_url)
    sqlite_app = create_app(settings)
    db_file = Path(settings.db_url.split("///", 1)[1])
    sqlite_app.extensions["db"].dispose()
    for leftover in db_file.parent.glob(db_file.name + "*"):  # the database and its WAL files
        leftover.unlink()
    db_file.mkdir()  # SQLite cannot open a folder: "unable to open database file"
    refused = load_settings(home=settings.home, redis_url=settings.redis_url, testing=True,
                            ratelimit_storage_url="memory://", database_url=_refused_postgres_url())
    try:
        for app in (sqlite_app, create_app(refused)):
            with caplog.at_level(logging.WARNING, logger="shared.web"):
                res = app.test_client().post("/v1/interactions", json={"user_id": "u1", "item_id": "m2"})
            assert res.status_code == 503, res.get_json()
            assert res.get_json() == {"error": {"code": "unavailable", "message": "database unavailable; retry later"}}
            text = res.get_data(as_text=True).lower()
            assert not any(leak in text for leak in ("sqlite", "psycopg", "operationalerror", "127.0.0.1",
                                                     "secret-pw", "connection"))
            assert "database unavailable on POST /v1/interactions" in caplog.text  # the detail stays here
            caplog.clear()
    finally:
        shutil.rmtree(db_file, ignore_errors=True)


def test_interactions_are_stored_before_the_first_model_exists(settings) -> None:
    """During `finpulse up`'s first-run preparation there is no model yet: clicks posted then were
    a 503 and lost; they are stored, and the first model served folds them in."""
    from sqlalchemy import select

    from services.recommendations.models import RecsInteraction
    from services.recommendations.pipeline import train_from_files
    from services.recommendations.versions import register, registry
    from shared.db import upgrade
    from tests.recommendations.conftest import SAMPLE

    upgrade(settings.db_url)
    app = create_app(settings)
    client = app.test_client()
    assert client.get("/readyz").status_code == 503  # no production recommender yet
    events = [{"user_id": "early", "item_id": f"m{i}", "timestamp": 1_000 + i} for i in (10, 11, 12)]
    res = client.post("/v1/interactions", json=events)
    assert res.status_code == 201, res.get_json()
    assert res.get_json() == {"stored": 3, "folded_in": 0, "unknown_items": 0, "model_version": None}
    with app.extensions["db"].session() as s:
        stored = s.execute(select(RecsInteraction.user_id, RecsInteraction.item_id)
                           .where(RecsInteraction.domain == settings.recommendations_domain)).all()
    assert sorted(stored) == [("early", "m10"), ("early", "m11"), ("early", "m12")]
    assert client.get("/v1/users/early/recommendations").status_code == 503  # recommending needs the model
    path, _ = train_from_files(SAMPLE, settings.home / "first-model")
    registry(settings).promote(register(settings, settings.recommendations_domain, path).ref)
    body = client.get("/v1/users/early/recommendations?k=5").get_json()
    assert body["strategy"] == "personalised" and not {"m10", "m11", "m12"} & set(body["items"])
