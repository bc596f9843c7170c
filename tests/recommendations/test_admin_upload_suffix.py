"""An uploaded interactions file is read as a server path with its name would be.

``POST /v1/admin/retrain`` refused an upload named ``u.data`` (MovieLens) with "uploaded data
file must be one of .jsonl, .csv, .tsv, .ndjson", although the same file given as a server
path is read by its first line (headerless TSV). The chatbot, whose knowledge-base loader
knows its formats by suffix only, still refuses such an upload before anything is saved.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shared import lifecycle
from tests.recommendations.conftest import SAMPLE


def movielens_bytes() -> bytes:
    """The sample interactions as MovieLens' u.data: no header, numeric ids, tab-separated."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    return "".join(f"{u[1:]}\t{i[1:]}\t{r}\t{t}\n" for u, i, r, t in rows).encode()


@pytest.mark.parametrize("name", ["u.data", "ratings", "ratings.d ata"])
def test_an_upload_of_any_name_is_read_by_its_first_line(ops, tmp_path, name: str) -> None:
    client, auth, body = ops["client"], ops["auth"], movielens_bytes()
    resp = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                       data={"data": (io.BytesIO(body), name)})
    assert resp.status_code == 202, resp.get_json()
    job = lifecycle.get_job(ops["db"], resp.get_json()["job_id"])
    assert job["status"] == "succeeded", job
    saved = Path(job["params"]["data"])
    assert saved.parent == ops["settings"].home / "uploads" and saved.read_bytes() == body
    # the fresh name keeps a plain suffix (readers pick formats by it); other characters are left off
    assert saved.suffix == {"u.data": ".data", "ratings": "", "ratings.d ata": ""}[name]
    assert saved.stem.isalnum() and len(saved.name) <= 32 + len(".data")

    # the same file as a server path: the same events read
    server = tmp_path / "u.data"
    server.write_bytes(body)
    by_path = client.post("/v1/admin/retrain", headers=auth, json={"data": str(server)})
    assert by_path.status_code == 202, by_path.get_json()
    again = lifecycle.get_job(ops["db"], by_path.get_json()["job_id"])
    assert again["status"] == "succeeded", again
    rows = len(body.splitlines())  # every line is an event: none taken for a header
    assert f"trained on {rows} interactions from {saved}" in job["log"], job["log"]
    assert f"trained on {rows} interactions from {server}" in again["log"], again["log"]


def test_a_bad_upload_of_another_name_is_a_400_naming_the_senders_file(ops) -> None:
    client, auth = ops["client"], ops["auth"]
    resp = client.post("/v1/admin/retrain", headers=auth, content_type="multipart/form-data",
                       data={"data": (io.BytesIO(b"196\t242\tfive\t881250949\n"), "u.data")})
    assert resp.status_code == 400, resp.get_json()
    message = resp.get_json()["error"]["message"]
    assert "uploaded u.data" in message and "uploads/" not in message, message
    assert lifecycle.list_jobs(ops["db"]) == []
    assert not list((ops["settings"].home / "uploads").glob("*"))  # a refused upload is not kept


def test_the_chatbot_still_refuses_a_knowledge_base_upload_it_cannot_read(settings, redis_url) -> None:
    """Its loader knows formats by suffix only: a u.data knowledge base is a 400, nothing saved."""
    from services.chatbot import create_app as chatbot_app
    from shared.db import upgrade

    s = settings.model_copy(update={"ops_key": "k-ops-for-the-tests", "chatbot_domain": "bank"})
    upgrade(s.db_url)
    client = chatbot_app(s, encoder=object()).test_client()
    resp = client.post("/v1/admin/retrain", headers={"Authorization": "Bearer k-ops-for-the-tests"},
                       content_type="multipart/form-data",
                       data={"data": (io.BytesIO(b'{"question": "q", "answer": "a"}\n'), "faq.data")})
    assert resp.status_code == 400, resp.get_json()
    assert "uploaded data file must be one of .jsonl" in resp.get_json()["error"]["message"]
    assert not (s.home / "uploads").is_dir() or not list((s.home / "uploads").glob("*"))
