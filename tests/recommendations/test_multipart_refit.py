"""A multipart retrain on the recommendations service reads `data` as a JSON body does.

Regression of an integration pass: a form without a `data` file was a 400 "multipart retrain
needs a 'data' file" even where the JSON body works: an uploaded catalogue alone (refit
production with new items, `{"items": ...}` in JSON) and a server path for `data` beside an
uploaded `items` file. A `data` file input left empty is still refused, not read as a refit.
"""

from __future__ import annotations

import io
from pathlib import Path

from shared import lifecycle
from tests.recommendations.conftest import SAMPLE

ITEMS = "item_id\ttitle\tcategories\n" + "".join(f"m{i}\tMovie {i}\tdrama\n" for i in range(1, 61))


def _post(ops, form: dict) -> tuple[int, dict]:
    resp = ops["client"].post("/v1/admin/retrain", headers=ops["auth"], content_type="multipart/form-data", data=form)
    return resp.status_code, resp.get_json()


def _items() -> tuple[io.BytesIO, str]:
    return io.BytesIO(ITEMS.encode()), "films.tsv"


def test_an_uploaded_catalogue_alone_refits_production_with_it(ops, cheap_encoder) -> None:
    status, body = _post(ops, {"items": _items(), "auto_promote": "false"})
    assert status == 202, body
    job = lifecycle.get_job(ops["db"], body["job_id"])
    assert job["status"] == "succeeded", job
    assert "refitted" in job["log"] and "items: 60 from" in job["log"], job["log"]
    assert Path(job["params"]["items"]).parent == ops["settings"].home / "uploads"
    assert "data" not in job["params"]


def test_a_server_path_for_data_beside_an_uploaded_catalogue(ops, cheap_encoder) -> None:
    status, body = _post(ops, {"data": str(SAMPLE), "items": _items(), "auto_promote": "false"})
    assert status == 202, body
    job = lifecycle.get_job(ops["db"], body["job_id"])
    assert job["status"] == "succeeded", job
    assert f"from {SAMPLE}" in job["log"] and "items: 60 from" in job["log"], job["log"]


def test_an_empty_data_file_input_is_still_refused(ops) -> None:
    status, body = _post(ops, {"data": (io.BytesIO(b""), ""), "items": _items()})
    assert status == 400 and "needs a 'data' file" in body["error"]["message"], body
    status, body = _post(ops, {"data": str(SAMPLE.parent / "missing.tsv"), "items": _items()})
    assert status == 400 and "no such file on the server" in body["error"]["message"], body
    assert lifecycle.list_jobs(ops["db"]) == []
