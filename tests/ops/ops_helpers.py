"""Helpers of the ops tests (a module of its own name: every test package has a conftest)."""

from __future__ import annotations

import time


def make_app(settings, queue: str):
    """The sentiment service (or, before it exists, a minimal /v1/score) plus the ops endpoints."""
    from shared.admin import register_admin
    from training.tasks import TASK_NAME

    try:
        from services.sentiment import create_app
    except ImportError:
        create_app = None
    app = create_app(settings) if create_app else _minimal_app(settings)
    register_admin(app, tasks={"sentiment": TASK_NAME}, domains=["news"], queue=queue)
    return app


def _minimal_app(settings):
    from flask import jsonify, request

    from shared.db import init_app
    from shared.inference import get_model
    from shared.registry import get_registry
    from shared.web import create_service_app

    app = create_service_app("sentiment", settings)
    init_app(app, settings)

    @app.post("/v1/score")
    def score():
        model = get_model(get_registry(settings), "news/sentiment@production")
        return jsonify({"model_version": model.ref, "results": model.runtime.predict(request.json["texts"])})

    return app


def wait_job(client, job_id: str, headers: dict, timeout: float = 900) -> dict:
    """Poll the job endpoint until the job ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/admin/jobs/{job_id}", headers=headers).get_json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")
