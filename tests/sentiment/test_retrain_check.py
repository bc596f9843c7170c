"""POST /v1/admin/retrain checks the sentiment data file before any job exists (as recs and chatbot do)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

OPS_KEY = "test-ops-key-for-tests"
AUTH = {"Authorization": f"Bearer {OPS_KEY}"}


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def ops_app(migrated, redis_url, stub_scorer):
    """The sentiment service with an ops key; retrains are recorded instead of sent to Celery."""
    from services.sentiment import create_app, retrain_task
    from shared.admin import register_admin

    app = create_app(migrated.model_copy(update={"ops_key": OPS_KEY}), scorer=stub_scorer)
    queued: list[str] = []
    register_admin(app, tasks={"sentiment": retrain_task(lambda job_id, settings: queued.append(job_id))},
                   domains=[migrated.sentiment_domain])
    app.extensions["queued"] = queued
    return app


def _faq(tmp_path: Path) -> str:
    """Rows shaped like ../shared/data/bank_faq/faq.jsonl (the QA repro): a knowledge base, no labels."""
    return _jsonl(tmp_path / "faq.jsonl", [
        {"question": "How do I reset my IVR password?", "answer": "Call the bank.", "category": "security"},
        {"question": "What is a CVV?", "answer": "The code on the back of the card.", "category": "cards"}])


def _jobs(client) -> list[dict]:
    return client.get("/v1/admin/jobs", headers=AUTH).json["jobs"]


def test_the_default_retrain_task_checks_the_data(migrated, redis_url, stub_scorer) -> None:
    from services.sentiment import create_app

    app = create_app(migrated, scorer=stub_scorer)
    spec = app.extensions["finpulse_admin"]["tasks"]["sentiment"]
    assert spec.start == "training.retrain" and spec.check is not None


def test_retrain_refuses_files_that_are_not_labelled_sentiment_data(ops_app, tmp_path) -> None:
    client = ops_app.test_client()
    unreadable = tmp_path / "locked.jsonl"
    unreadable.write_text('{"text": "x", "label": "negative"}\n')
    unreadable.chmod(0)
    cases = {
        _faq(tmp_path): "missing field 'text'",
        str(tmp_path / "missing.jsonl"): "no such file",
        _jsonl(tmp_path / "stars.jsonl", [{"text": "great", "label": "5 stars"}]): "unknown label",
        _jsonl(tmp_path / "one.jsonl", [{"text": f"fine {i}", "label": "neutral"} for i in range(5)]): "only the label",
        str(tmp_path): "no such file",
    }
    if unreadable.stat().st_mode & 0o777 == 0 and not _readable(unreadable):
        cases[str(unreadable)] = "cannot be read"
    for data, words in cases.items():
        r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": data})
        assert r.status_code == 400, (data, r.json)
        assert set(r.json["error"]) == {"code", "message"} and words in r.json["error"]["message"], r.json
    good = _jsonl(tmp_path / "good.jsonl", [{"text": "profit fell", "label": "negative"},
                                           {"text": "profit rose", "label": "positive"}])
    r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": good, "dev": _faq(tmp_path)})
    assert r.status_code == 400 and r.json["error"]["message"].startswith("dev is not labelled sentiment data")
    r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": good, "items": good})
    assert r.status_code == 400 and "does not use items" in r.json["error"]["message"]  # refused, not ignored
    for options, words in (({"bogus": 1}, "unknown training option(s): bogus"), ({"lr": "abc"}, "lr"),
                           ({"method": "qlora"}, "method")):  # the job failed on these after a 202
        r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": good, "options": options})
        assert r.status_code == 400 and words in r.json["error"]["message"], (options, r.json)
    r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": good, "epochs": 0})
    assert r.status_code == 400 and "epochs" in r.json["error"]["message"], r.json
    assert _jobs(client) == [] and ops_app.extensions["queued"] == []  # nothing was queued or recorded


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


def test_retrain_with_labelled_data_is_queued(ops_app, tmp_path) -> None:
    client = ops_app.test_client()
    # mapped columns and integer labels, as `finpulse train sentiment` reads them
    data = _jsonl(tmp_path / "mapped.jsonl", [{"sentence": "profit fell", "y": 0}, {"sentence": "profit rose", "y": 2}])
    r = client.post("/v1/admin/retrain", headers=AUTH,
                    json={"data": data, "options": {"text_field": "sentence", "label_field": "y"}})
    assert r.status_code == 202, r.json
    assert ops_app.extensions["queued"] == [r.json["job_id"]]
    three = _jsonl(tmp_path / "three.csv.jsonl", [{"text": t, "label": lab} for t, lab in (
        ("shares plunged", "bearish"), ("the board met", "neutral"), ("record profit", "positive"))])
    r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": three, "dev": three})
    assert r.status_code == 202 and len(_jobs(client)) == 2


def test_retrain_refuses_a_bad_transfer_file_resume_checkpoint_or_eval_label(ops_app, tmp_path) -> None:
    """Each was queued (202) and failed in the job: `/nope.jsonl: no such file`, `IndexError: list index
    out of range` from torch.load, and an eval label the gate refused only after a whole training."""
    import torch

    client = ops_app.test_client()
    good = _jsonl(tmp_path / "train.jsonl", [{"text": "profit fell", "label": "negative"},
                                             {"text": "profit rose", "label": "positive"}])
    bad_eval = _jsonl(tmp_path / "baddev.jsonl", [{"text": "profit fell", "label": "negative"},
                                                  {"text": "profit soared", "label": "great"}])
    aliased_eval = _jsonl(tmp_path / "aliased.jsonl", [{"text": "shares sank", "label": "bearish"}])
    cases = [
        ({"options": {"transfer_data": "/nope.jsonl"}},
         "options.transfer_data '/nope.jsonl': no such file on the server"),
        ({"options": {"transfer_data": _faq(tmp_path)}}, "options.transfer_data is not labelled sentiment data"),
        ({"options": {"resume_from": "/etc/passwd"}},
         "options.resume_from /etc/passwd is not a FinPulse training checkpoint"),
        ({"options": {"resume_from": str(tmp_path / "gone.pt")}}, "no such checkpoint file"),
        ({"options": {"base_model": str(tmp_path / "no-encoder")}}, "is not a directory"),
        ({"options": {"mlm_epochs": 1, "mlm_text": "/nope.txt"}}, "options.mlm_text '/nope.txt': no such file"),
        ({"eval": bad_eval}, f"eval is not a usable evaluation set: {bad_eval}:2: label 'great' is not one of"),
        ({"eval": aliased_eval}, "label 'bearish' is not one of the model's labels"),  # the gate compares names
        ({"eval": _faq(tmp_path)}, "eval is not a usable evaluation set"),
        ({"eval": str(tmp_path / "none.jsonl")}, "no such file"),
    ]
    for extra, words in cases:
        r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": good, **extra})
        assert r.status_code == 400, (extra, r.json)
        assert set(r.json["error"]) == {"code", "message"} and words in r.json["error"]["message"], (extra, r.json)
    assert _jobs(client) == [] and ops_app.extensions["queued"] == []  # nothing was queued or recorded

    checkpoint = tmp_path / "run" / "checkpoint.pt"  # what the trainer's torch.save holds
    checkpoint.parent.mkdir()
    torch.save({"model": {"w": torch.zeros(2)}, "optimizer": {"state": {}}, "scheduler": {}, "step": 2,
                "epoch": 1, "best_f1": 0.5, "history": [], "config": {"method": "full"}}, checkpoint)
    good_eval = _jsonl(tmp_path / "eval.jsonl", [{"text": "sales slumped", "label": "negative"},
                                                 {"text": "sales jumped", "label": "positive"}])
    r = client.post("/v1/admin/retrain", headers=AUTH, json={
        "data": good, "eval": good_eval, "options": {"transfer_data": good, "resume_from": str(checkpoint)}})
    assert r.status_code == 202, r.json
    assert ops_app.extensions["queued"] == [r.json["job_id"]]


def test_retrain_options_cannot_touch_other_models_paths_or_the_worker(ops_app, tmp_path) -> None:
    """QA: each was queued (202): ``domain``/``task`` in options registered and promoted a sentiment model
    as default/recommendations@v3, ``run_dir`` wrote a checkpoint into any folder, ``num_threads`` 100000
    segfaulted the worker, and the rest failed only inside the job."""
    client = ops_app.test_client()
    good = _jsonl(tmp_path / "train.jsonl", [{"text": "profit fell", "label": "negative"},
                                             {"text": "profit rose", "label": "positive"}])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cases = [
        ({"domain": "default", "task": "recommendations"}, "may not set: domain ("),
        ({"domain": "../../evil"}, "may not set: domain ("),
        ({"task": "embeddings"}, "may not set: task ("),
        ({"run_dir": str(elsewhere)}, "may not set: run_dir ("),
        ({"train_path": "/etc/passwd"}, "may not set: train_path ("),
        ({"dev_path": "/etc/passwd"}, "may not set: dev_path ("),
        ({"promote_first": True}, "may not set: promote_first ("),
        ({"labels": ["bad", "good"]}, "may not set: labels ("),
        ({"extra": {"x": 1}}, "may not set: extra ("),
        ({"num_threads": 100000}, "num_threads=100000"),
        ({"num_threads": 0}, "num_threads=0"),
        ({"device": "cuda"}, "device='cuda'"),
        ({"base_model": "/etc"}, "options.base_model '/etc' is not a transformers model folder"),
        ({"base_model": str(elsewhere)}, "is not a transformers model folder"),
    ]
    for options, words in cases:
        r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": good, "options": options})
        assert r.status_code == 400, (options, r.json)
        assert r.json["error"]["code"] == "bad_option" and words in r.json["error"]["message"], (options, r.json)
    assert _jobs(client) == [] and ops_app.extensions["queued"] == []  # nothing was queued or recorded
    assert list(elsewhere.iterdir()) == []

    from shared.encoders import base_encoder_path

    hyper = {"lr": 3e-4, "epochs": 2, "batch_size": 8, "seed": 1, "method": "lora", "schedule": "cosine",
             "warmup_ratio": 0.2, "lora_r": 8, "label_smoothing": 0.05, "time_budget_min": 5, "skip_bad": True,
             "num_threads": 1, "device": "cpu", "transfer_data": "none", "base_model": str(base_encoder_path())}
    r = client.post("/v1/admin/retrain", headers=AUTH, json={"data": good, "options": hyper})
    assert r.status_code == 202, r.json
    assert ops_app.extensions["queued"] == [r.json["job_id"]]
