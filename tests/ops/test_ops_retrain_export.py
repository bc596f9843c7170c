"""Lifecycle QA: a retrained version gets the ONNX int8 export production is served with.

A retrain job registered its version without ``onnx/``: once promoted, services and workers on
``FINPULSE_RUNTIME=auto`` (the default) quietly served it with torch instead of int8 (about a
fifth of the throughput on CPU), and on an explicit ``onnx-int8`` runtime could not load it.
"""

from __future__ import annotations

import pytest

from shared import lifecycle
from shared.runtimes import ONNX_DIR, ONNX_INT8


@pytest.fixture
def fake_export(monkeypatch):
    """``export_onnx`` writing a stand-in int8 file (the real export is covered by the runtime tests)."""
    import training.export

    calls = []

    def export_onnx(model_dir, *, int8=False, parity_texts=None):
        calls.append(model_dir)
        out = model_dir / ONNX_DIR
        out.mkdir(exist_ok=True)
        (out / ONNX_INT8).write_bytes(b"int8")
        return out, {"texts": 6, "model.int8.onnx": {"label_agreement": 1.0, "max_prob_diff": 1e-3}}

    monkeypatch.setattr(training.export, "export_onnx", export_onnx)
    return calls


def _retrain(ops, monkeypatch):
    """A retrain job whose training registers a copy of v1 (no onnx/), run to its end."""
    import shutil

    import training
    from training.tasks import run_retrain

    registry = ops["registry"]
    made = []
    source = ops["settings"].home / "trained"  # what training made: v1's model, without v1's onnx/
    shutil.copytree(ops["v1"].path, source, ignore=shutil.ignore_patterns(ONNX_DIR))

    def train_sentiment(config, settings, callback=None, eval_texts=None):
        made.append(registry.register("news", "sentiment", source, move=False,
                                      train_config={"train_eval_overlap": 0}))
        return made[-1]

    monkeypatch.setattr(training, "train_sentiment", train_sentiment)
    db = ops["db"]
    job_id = lifecycle.create_job(db, "retrain:news/sentiment", {
        "domain": "news", "task": "sentiment", "data": str(ops["data"]["train"]),
        "eval": str(ops["data"]["eval"])}, actor="alice")
    return run_retrain(job_id, ops["settings"], db), made[-1]


def test_a_retrain_exports_int8_when_production_is_served_with_it(ops, fake_export, monkeypatch):
    v1 = ops["v1"]
    (v1.path / ONNX_DIR).mkdir()
    (v1.path / ONNX_DIR / ONNX_INT8).write_bytes(b"int8")  # production has the export (finpulse up does it)
    job, mv = _retrain(ops, monkeypatch)
    assert job["status"] == "succeeded", job
    assert fake_export == [mv.path] and (mv.path / ONNX_DIR / ONNX_INT8).is_file()
    assert f"exporting {mv.ref} to ONNX int8 (production news/sentiment@v1 serves it)" in job["log"]
    assert "int8 label agreement with torch 1.0000" in job["log"]
    assert job["log"].index("exporting") < job["log"].index("evaluating against production")  # before it serves


def test_a_retrain_leaves_a_torch_served_production_as_it_is(ops, fake_export, monkeypatch):
    job, mv = _retrain(ops, monkeypatch)  # v1 has no export: the services run torch, no export costs time
    assert job["status"] == "succeeded", job
    assert fake_export == [] and not (mv.path / ONNX_DIR).exists() and "exporting" not in job["log"]


def test_an_explicit_onnx_runtime_always_gets_its_export(ops, fake_export, monkeypatch):
    monkeypatch.setattr(ops["settings"], "runtime", "onnx-int8")
    job, mv = _retrain(ops, monkeypatch)
    assert job["status"] == "succeeded", job
    assert fake_export == [mv.path] and "(FINPULSE_RUNTIME=onnx-int8)" in job["log"]


def test_a_failed_export_is_a_warning_under_auto(ops, monkeypatch):
    import training.export

    def broken(*_, **__):
        raise RuntimeError("disk full")

    monkeypatch.setattr(training.export, "export_onnx", broken)
    v1 = ops["v1"]
    (v1.path / ONNX_DIR).mkdir()
    (v1.path / ONNX_DIR / ONNX_INT8).write_bytes(b"int8")
    job, mv = _retrain(ops, monkeypatch)
    assert job["status"] == "succeeded", job  # torch serves it under auto
    assert f"warning: ONNX export of {mv.ref} failed: RuntimeError: disk full" in job["log"]
