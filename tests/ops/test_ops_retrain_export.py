"""Lifecycle QA: a retrained version gets the ONNX int8 export production is served with.

A retrain job registered its version without ``onnx/``: once promoted, services and workers on
``FINPULSE_RUNTIME=auto`` (the default) quietly served it with torch instead of int8 (about a
fifth of the throughput on CPU), and on an explicit ``onnx-int8`` runtime could not load it.
"""

from __future__ import annotations

import logging

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
    # promoted all the same: its log and result say what the move costs (they said nothing)
    lost = f"{mv.ref} has no ONNX int8 export: services on FINPULSE_RUNTIME=auto serve it with torch"
    assert job["result"]["promoted"] and job["result"]["warning"].startswith(lost), job["result"]
    assert f"warning: {lost}, not ONNX int8 as they served {v1.ref}" in job["log"]


def _versions(registry, domain: str, task: str, source, exported: tuple[bool, ...]) -> list:
    """Versions of DOMAIN/TASK copied from ``source``, each with an int8 graph or not, as listed."""
    made = []
    for has in exported:
        mv = registry.register(domain, task, source, move=False)
        if has:
            (mv.path / ONNX_DIR).mkdir()
            (mv.path / ONNX_DIR / ONNX_INT8).write_bytes(b"int8")
        made.append(mv)
    return made


def test_promote_and_rollback_over_http_answer_a_warning_when_production_loses_its_int8_export(
        settings, redis_url, tmp_path, caplog):
    """Lifecycle QA: `finpulse models promote` warned when the new production lacked the int8 graph
    the services on `auto` served the old one with (they fall to torch); the same move over the
    ops API said nothing. Encoders (exported into a cache of the chatbot's) and recommenders (no
    ONNX) never get the warning, whatever their versions' folders hold."""
    from shared.admin import register_admin
    from shared.auth import create_key
    from shared.db import Database, upgrade
    from shared.registry import get_registry
    from shared.web import create_service_app

    upgrade(settings.db_url)
    db = Database(settings.db_url)
    source = tmp_path / "model"
    source.mkdir()
    (source / "config.json").write_text("{}")  # forced promotions: no gate loads the model
    registry = get_registry(settings)
    models = [("news", "sentiment"), ("bank", "embeddings"), ("shop", "recommendations")]
    app = create_service_app("sentiment", settings)
    register_admin(app, tasks={task: lambda job_id, s: None for _, task in models}, domains=[d for d, _ in models])
    client = app.test_client()
    auth = {"Authorization": f"Bearer {create_key(db, 'alice', 'ops')}"}

    def move(action: str, **body) -> dict:
        resp = client.post(f"/v1/admin/models/{action}", headers=auth, json=body)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    try:
        v1, v2, v3 = _versions(registry, "news", "sentiment", source, (True, False, True))
        registry.promote(v1.ref)
        with caplog.at_level(logging.INFO, logger="shared.lifecycle"):
            out = move("promote", ref=v2.ref, force=True, reason="qa")
        lost = (f"{v2.ref} has no ONNX int8 export: services on FINPULSE_RUNTIME=auto serve it with torch, "
                f"not ONNX int8 as they served {v1.ref}; `finpulse export --model {v2.ref} --int8` makes it")
        assert out["production"] == v2.ref and out["warning"].startswith(lost), out
        logged = [r.getMessage() for r in caplog.records if r.name == "shared.lifecycle"]
        assert [m for m in logged if out["warning"] in m] == [f"promoted {v2.ref} (was {v1.ref}) by alice; "
                                                             f"warning: {out['warning']}"], logged
        normal = move("promote", ref=v3.ref, force=True, reason="qa")  # it has the graph: nothing to say
        assert normal["production"] == v3.ref and "warning" not in normal
        back = move("rollback", domain="news", task="sentiment")  # back to v2, off v3's int8
        assert back["production"] == v2.ref and back["warning"].startswith(f"{v2.ref} has no ONNX int8 export")
        assert f"as they served {v3.ref}" in back["warning"]
        for domain, task in models[1:]:
            w1, w2 = _versions(registry, domain, task, source, (True, False))
            registry.promote(w1.ref)
            out = move("promote", ref=w2.ref, force=True, reason="qa")
            assert out["production"] == w2.ref and "warning" not in out, out
    finally:
        db.dispose()


def test_the_export_warning_follows_the_graph_each_runtime_loads(tmp_path):
    """Which moves of production warn (shared by the CLI, the ops API and retrain jobs)."""
    from shared.registry import ModelVersion
    from shared.runtimes import ONNX_FP32, missing_export_warning

    def version(number: int, *graphs: str, task: str = "sentiment") -> ModelVersion:
        path = tmp_path / task / f"v{number}"
        (path / ONNX_DIR).mkdir(parents=True)
        for graph in graphs:
            (path / ONNX_DIR / graph).write_bytes(b"graph")
        return ModelVersion("news", task, number, path)

    int8, bare, fp32 = version(1, ONNX_FP32, ONNX_INT8), version(2), version(3, ONNX_FP32)
    assert "as they served news/sentiment@v1" in missing_export_warning(bare, int8, runtime="auto")
    assert missing_export_warning(bare, fp32, runtime="auto") is None  # production ran on torch too
    assert missing_export_warning(bare, None, runtime="auto") is None
    assert missing_export_warning(bare, int8, runtime="auto", device="cuda") is None  # auto on a GPU: torch
    assert missing_export_warning(bare, int8, runtime="torch") is None
    assert missing_export_warning(fp32, bare, runtime="onnx") is None
    assert "no ONNX fp32 export: services on FINPULSE_RUNTIME=onnx cannot load it" in \
        missing_export_warning(bare, fp32, runtime="onnx")
    assert "no ONNX int8 export: services on FINPULSE_RUNTIME=onnx-int8 cannot load it" in \
        missing_export_warning(fp32, int8, runtime="onnx-int8")
    for task in ("embeddings", "recommendations"):
        assert missing_export_warning(version(4, task=task), version(5, ONNX_INT8, task=task), runtime="onnx-int8") \
            is None
