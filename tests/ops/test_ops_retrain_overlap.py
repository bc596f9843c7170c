"""A retrain's gate overlap check counts what the job trained on, and leaves nothing unnamed.

QA (ops retrain): with ``"options": {"skip_bad": true}`` and an evaluation set the job trained
and registered a version, then failed on the bad row it had skipped (the overlap check re-read
the training file strictly, by the domain's text field); the version had no gate.json and the
job never named it. And the transfer stage trained on the gate's evaluation texts unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path

from shared import lifecycle

# One epoch of a few steps, one thread: the figures do not matter here, the bookkeeping does.
FAST = {"epochs": 1, "max_length": 16, "auto_promote": False}
OPTIONS = {"batch_size": 8, "num_threads": 1, "eval_every": 1.0, "time_budget_min": None}


def _run(ops: dict, params: dict) -> dict:
    from training.tasks import run_retrain

    job_id = lifecycle.create_job(ops["db"], "retrain:news/sentiment",
                                  {"domain": "news", "task": "sentiment", **FAST, **params}, actor="alice")
    return run_retrain(job_id, ops["settings"], ops["db"])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_skip_bad_retrain_gates_and_counts_overlap_as_the_trainer_read_the_file(ops, tmp_path):
    evals = [r["text"] for r in _rows(ops["data"]["eval"])]
    rows = [{"sentence": r["text"], "label": r["label"]} for r in _rows(ops["data"]["train"])]
    rows += [{"sentence": f" {evals[0].upper()}", "label": "negative"}, {"sentence": evals[-1], "label": "positive"}]
    lines = [json.dumps(r) for r in rows]
    data = _write(tmp_path / "mapped.jsonl", lines[:10] + ['{"sentence": "cut off'] + lines[10:])

    job = _run(ops, {"data": str(data), "options": {**OPTIONS, "skip_bad": True, "text_field": "sentence"}})

    assert job["status"] == "succeeded", job  # failed: "mapped.jsonl:11: invalid JSON"
    version = ops["registry"].resolve(job["result"]["version"])
    gate = json.loads((version / "gate.json").read_text())
    assert gate["train_eval_overlap"] == 2  # by the request's text field, case and space aside (was 0)
    assert "warning: 2 evaluation texts also occur in the training data" in job["log"]


def test_retrain_transfer_stage_leaves_out_the_gate_and_dev_texts(ops, tmp_path):
    evals, train = _rows(ops["data"]["eval"]), _rows(ops["data"]["train"])
    dev = _write(tmp_path / "dev.jsonl", [json.dumps(r) for r in train[::5]])
    # the neighbouring data holds 8 of the gate's texts and the 6 dev texts, besides its own
    transfer = _write(tmp_path / "transfer.jsonl", [json.dumps(r) for r in train + evals[:8]])

    job = _run(ops, {"data": str(ops["data"]["train"]), "dev": str(dev),
                     "options": {**OPTIONS, "transfer_data": str(transfer)}})

    assert job["status"] == "succeeded", job
    version = ops["registry"].resolve(job["result"]["version"])
    lineage = json.loads((version / "train_config.json").read_text())
    assert lineage["transfer"]["excluded"] == 14 and lineage["transfer"]["data"]["rows"] == len(train) - 6
    assert "transfer stage: left out 14 row(s) whose text is in the dev or evaluation set" in job["log"]
    gate = json.loads((version / "gate.json").read_text())
    assert gate["train_eval_overlap"] == lineage["train_eval_overlap"] == 0  # none of them trained on
    assert "also occur" not in job["log"]


def test_a_failure_after_registration_still_names_the_version(ops, monkeypatch):
    import shared.gate
    import training
    from shared.errors import BadInput

    versions = []

    def registered(config, settings, callback=None, eval_texts=None):  # noqa: ANN001, ANN202
        versions.append(ops["registry"].register("news", "sentiment", ops["v1"].path, move=False,
                                                 train_config={"train_eval_overlap": 0}))
        return versions[-1]

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise BadInput("evaluation went wrong")

    monkeypatch.setattr(training, "train_sentiment", registered)
    monkeypatch.setattr(shared.gate, "run_gate", broken)
    job = _run(ops, {"data": str(ops["data"]["train"])})
    assert job["status"] == "failed" and job["error"] == "evaluation went wrong", job
    assert job["result"] == {"version": "news/sentiment@v2", "path": str(versions[0].path)}  # was None
