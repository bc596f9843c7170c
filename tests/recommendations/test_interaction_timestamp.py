"""An empty timestamp is no timestamp: "now" over HTTP, 0 in a file, as a missing one is there.

``POST /v1/interactions`` with ``"timestamp": ""`` stored the event at 1970 (``parse_timestamp("")``
is 0 and the API only asked ``is None``), and ``"  "`` was a 400, although README says "without one
the event happened now". In a file (``recs train``, retrain) an empty cell already read as a missing
column does: no time, 0; these tests pin that rule for every format.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from data_connectors.interactions import read_interactions


@pytest.fixture
def client(settings, production):
    from services.recommendations import create_app
    from shared.db import upgrade

    upgrade(settings.db_url)
    return create_app(settings).test_client()


def _stored_ts(settings) -> dict[str, int]:
    from sqlalchemy import select

    from services.recommendations.models import RecsInteraction
    from shared.db import Database

    db = Database(settings.db_url)
    with db.session() as s:
        stored = dict(s.execute(select(RecsInteraction.user_id, RecsInteraction.ts)).all())
    db.dispose()
    return stored


def test_an_empty_or_blank_timestamp_over_http_is_now(client, settings) -> None:
    before = int(time.time())
    stamps = {"empty": "", "spaces": "   ", "tab": "\t", "invisible": "\u200b"}
    for user, stamp in stamps.items():
        res = client.post("/v1/interactions", json={"user_id": user, "item_id": "m1", "timestamp": stamp})
        assert res.status_code == 201, (stamp, res.get_json())
    listed = client.post("/v1/interactions", json=[{"user_id": "in-list", "item_id": "m2", "timestamp": ""},
                                                   {"user_id": "zero", "item_id": "m2", "timestamp": 0}])
    assert listed.status_code == 201, listed.get_json()
    stored = _stored_ts(settings)
    after = int(time.time())
    for user in (*stamps, "in-list"):
        assert before <= stored[user] <= after, (user, stored[user])  # was 0 (1970) for ""
    assert stored["zero"] == 0  # 0 stays 1970, not "now"
    bad = client.post("/v1/interactions", json={"user_id": "u", "item_id": "m1", "timestamp": " soon "})
    assert bad.status_code == 400 and "timestamp" in bad.get_json()["error"]["message"]


@pytest.mark.parametrize("blank", ["", "   "])
def test_an_empty_timestamp_cell_in_a_file_is_a_missing_one(tmp_path: Path, blank: str) -> None:
    """CSV, TSV and JSONL alike: no time (0), the row kept, as when the file has no timestamp column."""
    files = {
        "csv": ("i.csv", f"user_id,item_id,rating,timestamp\nu1,m1,4,{blank}\nu1,m2,5,874965478\n"),
        "tsv": ("i.tsv", f"user_id\titem_id\trating\ttimestamp\nu1\tm1\t4\t{blank}\nu1\tm2\t5\t874965478\n"),
        "jsonl": ("i.jsonl", json.dumps({"user_id": "u1", "item_id": "m1", "rating": 4, "timestamp": blank}) + "\n"
                  + json.dumps({"user_id": "u1", "item_id": "m2", "rating": 5, "timestamp": 874965478}) + "\n"),
        "headerless": ("u.data", f"1\t1\t4\t{blank}\n1\t2\t5\t874965478\n"),
    }
    missing = tmp_path / "none.tsv"
    missing.write_text("user_id\titem_id\trating\nu1\tm1\t4\n")
    (without,), _ = read_interactions(missing, skip_bad=False)
    assert without.timestamp == 0
    for fmt, (name, text) in files.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        rows, report = read_interactions(path, skip_bad=False)  # what recs train and retrain read
        assert [r.timestamp for r in rows] == [0, 874965478], fmt
        assert report.rows == 2 and not report.skipped, fmt


def test_parse_timestamp_reads_blank_as_no_time() -> None:
    from data_connectors.interactions import parse_timestamp
    from data_connectors.interactions.records import no_timestamp

    assert [no_timestamp(v) for v in (None, "", " \t", "\u200b", 0, "0", "x")] == [True] * 4 + [False] * 3
    assert parse_timestamp("  ") == 0 == parse_timestamp(None)  # "  " raised "Invalid isoformat string"
    with pytest.raises(ValueError):
        parse_timestamp(" soon ")
