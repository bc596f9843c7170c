"""A refit whose production moved while it ran is registered and gated, never auto-promoted.

Regression of an integration pass: a refit (retrain without data, the beat's six-hourly job) holds
the events of the production it started from; a rollback or another retrain's promotion made while
it ran was undone when it passed the gate, putting the rolled-back version's events back in service.
"""

from __future__ import annotations

from services.recommendations import retraining
from services.recommendations.pipeline import train_from_files
from services.recommendations.versions import TASK, register, registry
from shared import lifecycle
from tests.recommendations.conftest import SAMPLE


def test_a_refit_of_a_version_no_longer_in_production_is_not_promoted(ops, monkeypatch, tmp_path) -> None:
    settings, domain = ops["settings"], ops["settings"].recommendations_domain
    reg = registry(settings)
    base = reg.production(domain, TASK)
    other = register(settings, domain, train_from_files(SAMPLE, tmp_path / "other")[0])
    real_train = retraining.train

    def train_then_move_production(*args, **kwargs):
        out = real_train(*args, **kwargs)
        reg.promote(other.ref, reason="a person, while the refit ran")
        return out

    monkeypatch.setattr(retraining, "train", train_then_move_production)
    resp = ops["client"].post("/v1/admin/retrain", headers=ops["auth"], json={"tolerance": 1.0})
    assert resp.status_code == 202, resp.get_json()
    job = lifecycle.get_job(ops["db"], resp.get_json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["promoted"] is False and job["result"]["production"] == other.ref, job["result"]
    assert reg.production(domain, TASK).ref == other.ref
    assert f"production moved from {base.ref} to {other.ref}" in job["log"], job["log"]
    assert reg.resolve_version(job["result"]["version"]).train_config()["retrained_from"] == base.ref


def test_a_refit_of_production_is_still_promoted(ops) -> None:
    resp = ops["client"].post("/v1/admin/retrain", headers=ops["auth"], json={"tolerance": 1.0})
    job = lifecycle.get_job(ops["db"], resp.get_json()["job_id"])
    assert job["status"] == "succeeded" and job["result"]["promoted"] is True, job
    assert "not promoting" not in job["log"]
