"""``finpulse up`` on a fresh home serves a registered recommender, and its ops retrain it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.upkit import free_ports, get_json, request_json, running_up, up_env

OPS_KEY = "fp_e2e_recs_ops_key_123456"


def _ops(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    return request_json(method, url, body, headers={"Authorization": f"Bearer {OPS_KEY}"})


def _wait(check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout} s")


@pytest.mark.slow
def test_up_prepares_serves_and_retrains_recommendations(home: Path, tmp_path: Path) -> None:
    ports = free_ports(4)
    base = f"http://127.0.0.1:{ports[2]}"
    env = up_env(home, ports, FINPULSE_OPS_KEY=OPS_KEY, FINPULSE_DATA_DIR=str(tmp_path / "no-data"))
    with running_up(env, "--services", "recommendations", services=("recommendations",)):
        _wait(lambda: get_json(f"{base}/readyz")[0] == 200)
        status, body = get_json(f"{base}/v1/users/u1/recommendations?k=3")
        assert status == 200 and body["model_version"] == "default/recommendations@v1"

        status, job = _ops("POST", f"{base}/v1/admin/retrain", {})  # refit, on up's Celery worker
        assert status == 202, job
        done = _wait(lambda: (j := _ops("GET", f"{base}{job['url']}")[1])["status"]
                     in ("succeeded", "failed", "cancelled") and j)
        assert done["status"] == "succeeded" and done["result"]["promoted"], done
        assert get_json(f"{base}/v1/users/u1/recommendations?k=3")[1]["model_version"] == \
            "default/recommendations@v2"
