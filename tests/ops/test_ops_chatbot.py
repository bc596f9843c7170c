"""Ops on the chatbot: the contract's /v1/admin/* for its sentence-encoder versions.

Regression for "a chatbot retrain job fails with retraining 'embeddings' is not
supported": retrain on a knowledge base (gated on acc@1 over held-out dev queries, with
production measured on the same queries), the gate's clear refusal without dev, bad
requests as 4xx JSON, promote and roll back. Jobs run in-process (the function the
Celery task calls) on the bundled MiniLM, one or two optimizer steps each.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from ops_helpers import wait_job
from sqlalchemy import select

from shared import lifecycle

REPO = Path(__file__).resolve().parents[2]
KB = REPO / "data" / "samples" / "faq.jsonl"
DOMAIN, TASK = "bank", "embeddings"
# Customer wording the sample KB does not hold: the held-out queries of the gate.
DEV = [("my card got stolen yesterday", "lost-card"), ("new card still not here", "card-arrival"),
       ("forgot my pin number", "reset-pin"), ("what does sending money abroad cost", "transfer-fee"),
       ("I want to shut my account", "close-account"), ("what time do you open", "opening-hours"),
       ("pay off my loan before the end", "loan-repayment"), ("the shop refused my payment", "card-declined")]
TINY = {"device": "cpu", "epochs": 0.2, "batch_size": 8}  # one optimizer step on the 44 phrasings


def write_pairs(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for t, i in rows))
    return path


@pytest.fixture
def bot(settings, redis_url, tmp_path):
    """Migrated DB, an ops key, the chatbot of domain `bank` whose retrain jobs run in this process."""
    from services.chatbot import create_app, retrain_task
    from shared.admin import register_admin
    from shared.auth import create_key
    from shared.db import Database, upgrade
    from shared.registry import get_registry
    from training.tasks import run_retrain

    settings = settings.model_copy(update={"chatbot_domain": DOMAIN})
    upgrade(settings.db_url)
    db = Database(settings.db_url)
    app = create_app(settings)
    register_admin(app, tasks={TASK: retrain_task(lambda job_id, s: run_retrain(job_id, s))}, domains=[DOMAIN])
    yield {"settings": settings, "db": db, "client": app.test_client(), "registry": get_registry(settings),
           "auth": {"Authorization": f"Bearer {create_key(db, 'carol', 'ops')}"},
           "dev": write_pairs(tmp_path / "dev.jsonl", DEV)}
    db.dispose()


def retrain(bot, **body) -> dict:
    resp = bot["client"].post("/v1/admin/retrain", headers=bot["auth"],
                              json={"data": str(KB), "options": TINY, **body})
    assert resp.status_code == 202, resp.get_json()
    return wait_job(bot["client"], resp.get_json()["job_id"], bot["auth"], timeout=300)


def stages(db) -> dict[int, str]:
    from shared.models import ModelRecord

    with db.session() as s:
        return {r.version: r.stage for r in s.scalars(select(ModelRecord).where(ModelRecord.task == TASK))}


def test_retrain_gates_on_dev_accuracy_then_promote_and_rollback(bot):
    client, auth, registry = bot["client"], bot["auth"], bot["registry"]
    job = retrain(bot, dev=str(bot["dev"]), seed=1)
    assert job["status"] == "succeeded", job
    assert job["result"]["version"] == f"{DOMAIN}/{TASK}@v1" and job["result"]["promoted"] is True
    assert job["progress"]["stage"] == "done" and job["progress"]["step"] >= 1
    assert "acc@1" in job["progress"]["metrics"] and "no production version" in job["log"]
    v1 = registry.resolve_version(f"{DOMAIN}/{TASK}@v1")
    assert v1.metrics()["gate_metric"] == "acc@1" and v1.metrics()["dev_queries"] == len(DEV)
    assert 0.5 <= v1.metrics()["acc@1"] <= 1.0  # MiniLM finds most of these paraphrases
    assert v1.train_config()["data"]["dev_sha256"] and v1.train_config()["git_commit"]
    assert stages(bot["db"]) == {1: "production"}  # the version has its database row

    # v2: production v1 is measured in the job on the same KB and dev queries, not taken from its file.
    job = retrain(bot, dev=str(bot["dev"]), seed=2, tolerance=1.0, auto_promote=False)
    assert job["status"] == "succeeded" and job["result"]["promoted"] is False, job
    assert f"acc@1 of production {DOMAIN}/{TASK}@v1" in job["log"]
    gate = json.loads((registry.resolve(f"{DOMAIN}/{TASK}@v2") / "gate.json").read_text())
    assert gate["passed"] and gate["primary_metric"] == "acc@1" and gate["eval_set"] == str(bot["dev"])
    assert gate["production"] == f"{DOMAIN}/{TASK}@v1"
    assert gate["production_metrics"] == {"acc@1": pytest.approx(v1.metrics()["acc@1"])}
    assert gate["delta"] == pytest.approx(gate["candidate_metrics"]["acc@1"] - v1.metrics()["acc@1"])

    resp = client.post("/v1/admin/models/promote", headers=auth, json={"version": "v2"})
    assert resp.status_code == 200 and resp.get_json()["production"] == f"{DOMAIN}/{TASK}@v2", resp.get_json()
    resp = client.post("/v1/admin/models/rollback", headers=auth, json={})
    assert resp.status_code == 200 and resp.get_json()["production"] == f"{DOMAIN}/{TASK}@v1"
    assert registry.production(DOMAIN, TASK).version == 1 and stages(bot["db"]) == {1: "production", 2: "archived"}
    listed = client.get("/v1/admin/models", headers=auth).get_json()["models"]
    assert [(m["ref"], m["production"]) for m in listed] == [(f"{DOMAIN}/{TASK}@v1", True),
                                                            (f"{DOMAIN}/{TASK}@v2", False)]


def test_without_dev_the_gate_refuses_and_says_why(bot, tmp_path):
    from shared.encoders import base_encoder_path
    from shared.gate import DomainConfig, save_domain_config

    registry = bot["registry"]
    registry.promote(registry.register(DOMAIN, TASK, base_encoder_path(), move=False).ref)
    # A sentiment evaluation set named for the domain must not make the gate load an encoder as a classifier.
    labelled = tmp_path / "news-eval.jsonl"
    labelled.write_text(json.dumps({"text": "profit rose", "label": "positive"}) + "\n")
    save_domain_config(bot["settings"], DomainConfig(DOMAIN, eval_set=labelled))

    job = retrain(bot)
    assert job["status"] == "succeeded", job
    gate = job["result"]["gate"]
    assert gate["passed"] is False and job["result"]["promoted"] is False
    assert "carries no acc@1" in gate["summary"] and "cannot be compared with production" in gate["summary"]
    assert "no 'dev' given" in job["log"] and "force" in job["log"]
    assert registry.production(DOMAIN, TASK).version == 1

    client, auth = bot["client"], bot["auth"]
    refused = client.post("/v1/admin/models/promote", headers=auth, json={"version": 2})
    assert refused.status_code == 409 and "carries no acc@1" in refused.get_json()["error"]["message"]
    forced = client.post("/v1/admin/models/promote", headers=auth,
                         json={"version": 2, "force": True, "reason": "reviewed by hand"})
    assert forced.status_code == 200 and forced.get_json()["production"] == f"{DOMAIN}/{TASK}@v2"


def test_bad_retrain_requests_are_4xx_json_and_queue_nothing(bot, tmp_path):
    client, auth = bot["client"], bot["auth"]
    stray = write_pairs(tmp_path / "stray.jsonl", [("hello", "no-such-entry")])
    notes = tmp_path / "faq.txt"
    notes.write_text("Q: hi\n")
    cases = [({"data": str(tmp_path / "missing.jsonl")}, 400, "no such file"),
             ({"data": str(notes)}, 400, "unknown knowledge-base format"),
             ({"data": str(KB), "options": {"warmup": 0.2}}, 400, "unknown embeddings option(s) ['warmup']"),
             ({"data": str(KB), "options": {"batch_size": 1}}, 400, "batch_size must be >= 2"),
             ({"data": str(KB), "options": {"epochs": "many"}}, 400, "epochs must be a number, got 'many'"),
             ({"data": str(KB), "options": {"pairs": str(tmp_path / "nope.jsonl")}}, 400, "no such file"),
             ({"data": str(KB), "dev": str(stray)}, 400, "stray.jsonl:1: id 'no-such-entry' is not in the"),
             ({"data": str(KB), "method": "lora"}, 400, "does not use method"),
             ({"data": str(KB), "items": str(KB)}, 400, "does not use items"),
             # queued, then failed in the job (a transformers traceback; "sees no CUDA device")
             ({"data": str(KB), "options": {"base_model": "/etc"}}, 400, "is not a transformers model folder"),
             ({"data": str(KB), "options": {"device": "cuda"}}, 400, "expected auto or cpu"),
             ({"data": str(KB), "domain": "other"}, 403, "manages domains"),
             ({"data": str(KB), "task": "sentiment"}, 403, "embeddings models")]
    for body, status, words in cases:
        resp = client.post("/v1/admin/retrain", headers=auth, json=body)
        assert resp.status_code == status and words in resp.get_json()["error"]["message"], (body, resp.get_json())
    assert lifecycle.list_jobs(bot["db"]) == []
    assert bot["registry"].versions(DOMAIN, TASK) == []


def test_a_markdown_knowledge_base_may_be_uploaded(bot):
    from services.chatbot import create_app, retrain_task
    from shared.admin import register_admin

    queued: list[str] = []
    app = create_app(bot["settings"])
    register_admin(app, tasks={TASK: retrain_task(lambda job_id, s: queued.append(job_id))}, domains=[DOMAIN])
    page = b"# How do I block my card?\n\nIn the app, under Cards.\n\n# When are you open?\n\nAlways.\n"
    resp = app.test_client().post("/v1/admin/retrain", headers=bot["auth"], content_type="multipart/form-data",
                                  data={"data": (io.BytesIO(page), "faq.md")})
    assert resp.status_code == 202, resp.get_json()
    assert queued == [resp.get_json()["job_id"]]
    assert lifecycle.get_job(bot["db"], queued[0])["params"]["data"].endswith(".md")


def test_cancel_stops_training_between_steps(bot):
    from shared.lifecycle import JobCancelled
    from training.embeddings import EmbeddingsConfig, train_embeddings

    seen: list[dict] = []

    def cancel(event: dict) -> None:
        seen.append(event)
        raise JobCancelled("asked to stop")

    with pytest.raises(JobCancelled):
        train_embeddings(KB, None, DOMAIN, EmbeddingsConfig(epochs=3, batch_size=8, device="cpu"),
                         bot["settings"], callback=cancel)
    assert [e["step"] for e in seen] == [1] and seen[0]["steps"] > 1
    assert bot["registry"].versions(DOMAIN, TASK) == []  # nothing registered


def test_promote_and_rollback_re_embed_the_live_index_keeping_its_edits(bot):
    """Regression: promoting a new encoder left the chatbot searching with the old one."""
    import time

    from data_connectors.faq import FaqEntry
    from services.chatbot.kb import KnowledgeBase
    from services.chatbot.retriever import get_encoder
    from services.chatbot.service import kb_dir, load_kb, reembed
    from shared.encoders import base_encoder_path

    settings, client, auth, registry = bot["settings"], bot["client"], bot["auth"], bot["registry"]
    load_kb(settings, KB, progress=False)  # no embeddings version yet: the base encoder
    directory = kb_dir(settings)
    assert KnowledgeBase.load(directory).meta["model"] == str(base_encoder_path())
    edited = KnowledgeBase.load(directory)  # an ops edit through PUT /v1/kb, not in the KB file
    edited.upsert(FaqEntry("new-branch", ["where is your new branch"], "On Main Street."),
                  get_encoder(str(base_encoder_path())))
    edited.save(directory)
    v1 = registry.register(DOMAIN, TASK, base_encoder_path(), move=False)
    assert client.post("/v1/admin/models/promote", headers=auth,
                       json={"version": 1, "force": True, "reason": "test"}).status_code == 200

    chat = client.post("/v1/chat", json={"message": "I lost my card"})  # the chat notices, re-embeds aside
    assert chat.status_code == 200
    deadline = time.monotonic() + 120
    while KnowledgeBase.load(directory).meta["model"] != str(v1.path) and time.monotonic() < deadline:
        time.sleep(0.2)
    live = KnowledgeBase.load(directory)
    assert live.meta["model"] == str(v1.path) and live.meta["reembedded_from"] == str(base_encoder_path())
    assert "new-branch" in live.entries and len(live.entries) == len(edited.entries)
    answer = client.post("/v1/chat", json={"message": "where is your new branch"}).get_json()
    assert answer["sources"][0]["id"] == "new-branch"
    assert reembed(settings) is False  # already on production's encoder

    v2 = registry.register(DOMAIN, TASK, base_encoder_path(), move=False)
    registry.promote(v2.ref)  # e.g. `finpulse models promote` from the CLI
    assert reembed(settings) is True and KnowledgeBase.load(directory).meta["model"] == str(v2.path)
    assert client.post("/v1/admin/models/rollback", headers=auth, json={}).status_code == 200
    assert reembed(settings) is True and KnowledgeBase.load(directory).meta["model"] == str(v1.path)


def test_re_embedding_refits_the_confidence_on_the_rows_kb_calibrate_used(bot, tmp_path, capfd):
    """Regression: after a promotion the chatbot kept the old encoder's confidence fit (its
    scores, hence its handoffs, drifted) until someone ran `kb calibrate` again."""
    import shutil

    import torch
    from sentence_transformers import SentenceTransformer

    from services.chatbot.kb import KnowledgeBase
    from services.chatbot.service import calibrate_index, kb_dir, load_kb, reembed
    from shared.encoders import base_encoder_path

    settings, registry = bot["settings"], bot["registry"]
    dev = write_pairs(tmp_path / "calibration.jsonl", DEV + [("PIN", "lost-card"), ("my card", "reset-pin")])
    load_kb(settings, KB, progress=False)
    directory = kb_dir(settings)
    before = calibrate_index(directory, dev)  # some rows answered wrongly: a real fit, not the defaults
    model = SentenceTransformer(str(base_encoder_path()), device="cpu")  # another encoder: its top layer shaken
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model[0].auto_model.encoder.layer[-1].parameters():
            p.add_(0.02 * torch.randn_like(p))
    model.save(str(tmp_path / "shaken"))
    registry.promote(registry.register(DOMAIN, TASK, tmp_path / "shaken", move=False).ref)

    assert reembed(settings) is True
    live = KnowledgeBase.load(directory)
    assert live.meta["model"].endswith("/v1") and live.meta["calibrated_on"]["file"] == str(dev.resolve())
    shutil.copytree(directory, tmp_path / "copy")  # what `kb calibrate` gives on the new index
    want = calibrate_index(tmp_path / "copy", dev)
    got = live.calibration
    assert (round(got.a, 3), round(got.b, 3), round(got.c, 3)) == (want["a"], want["b"], want["c"])
    assert (want["a"], want["b"], want["c"]) != (before["a"], before["b"], before["c"])  # the new scores' fit
    assert "confidence refitted on 10 rows" in capfd.readouterr().err

    # the index keeps the rows: the calibration file may go, the next promotion still refits on them
    rows_text = dev.read_text()
    stored = [json.loads(x) for x in (directory / "calibration_rows.jsonl").read_text().splitlines()]
    assert stored == [json.loads(x) for x in rows_text.splitlines()] and len(live.calibration_rows) == 10
    dev.unlink()
    registry.promote(registry.register(DOMAIN, TASK, base_encoder_path(), move=False).ref)
    assert reembed(settings) is True
    refitted = KnowledgeBase.load(directory)
    assert refitted.calibration_rows == live.calibration_rows and refitted.calibration.fitted_on == 10
    # the base encoder again: the same fit as the first `kb calibrate` on it
    assert (round(refitted.calibration.a, 3), round(refitted.calibration.c, 3)) == (before["a"], before["c"])
    assert "confidence refitted on 10 rows" in capfd.readouterr().err

    # an index calibrated before it kept its rows: the file is read again only if unchanged
    (directory / "calibration_rows.jsonl").unlink()
    dev.write_text(rows_text + json.dumps({"text": "hello", "id": "lost-card"}) + "\n")
    registry.promote(registry.register(DOMAIN, TASK, tmp_path / "shaken", move=False).ref)
    assert reembed(settings) is True  # the rows changed since: the fit stays, and it says so
    kept = KnowledgeBase.load(directory).calibration
    assert (kept.a, kept.b, kept.c) == (refitted.calibration.a, refitted.calibration.b, refitted.calibration.c)
    assert "confidence fit kept from the old encoder" in capfd.readouterr().err

    # an index calibrated by a release that did not record even the file: kept, and it says so (upgrade QA)
    meta = json.loads((directory / "meta.json").read_text())
    meta.pop("calibrated_on")
    (directory / "meta.json").write_text(json.dumps(meta))
    registry.promote(registry.register(DOMAIN, TASK, base_encoder_path(), move=False).ref)
    assert reembed(settings) is True
    assert KnowledgeBase.load(directory).calibration == kept
    assert "confidence fit kept from the old encoder (the index does not say" in capfd.readouterr().err
