"""docker-compose.yml against the Compose Specification schema, plus what FinPulse needs of it.

No Docker engine runs here, so the file is checked statically. The schema
(``tests/data/compose-spec.json``) is the Compose Specification's JSON schema as the npm
package ``dclint`` 3.1.0 ships it (``schemas/compose.schema.json``), vendored unchanged.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
APP_SERVICES = ("sentiment", "chatbot", "recommendations", "worker-cpu", "worker-gpu", "migrate", "prepare")
LONG_RUNNING = ("redis", "postgres", "sentiment", "chatbot", "recommendations", "worker-cpu", "worker-gpu")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())  # anchors and merges resolved


def _errors(doc: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def test_valid_against_compose_spec(compose):
    assert _errors(compose) == []


def test_schema_is_strict_enough_to_catch_mistakes(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilty"] = ["gpu"]
    broken["services"]["redis"]["healthcheck"]["intervall"] = "5s"
    errors = _errors(broken)
    assert any("capabilty" in e for e in errors) and any("intervall" in e for e in errors)


def test_services_volumes_and_healthchecks(compose):
    services = compose["services"]
    assert set(LONG_RUNNING) | {"migrate", "prepare"} <= set(services)
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"], name
    for name in APP_SERVICES:  # FINPULSE_HOME on the named volume everywhere
        svc = services[name]
        assert "finpulse-home:/var/lib/finpulse" in svc["volumes"], name
        assert svc["environment"]["FINPULSE_HOME"] == "/var/lib/finpulse"
        assert svc["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert svc["environment"]["DATABASE_URL"].startswith("postgresql://")
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    assert "finpulse-home" in compose["volumes"]
    ports = {name: services[name]["ports"][0] for name in ("sentiment", "chatbot", "recommendations")}
    assert ports == {"sentiment": "8101:8101", "chatbot": "8102:8102", "recommendations": "8103:8103"}
    assert services["sentiment"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_gpu_worker_reserves_an_nvidia_gpu(compose):
    gpu = compose["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert gpu["environment"]["FINPULSE_DEVICE"] == "cuda"
    assert compose["services"]["worker-cpu"]["environment"]["FINPULSE_DEVICE"] == "cpu"


def test_the_gpu_profile_gets_the_scoring_and_one_worker_runs_the_beat(compose, monkeypatch):
    """QA: under --profile gpu the GPU worker idled (the service scored inline, and would have sent
    to its own CPU queue), and no worker ran the beat (no feed polling, no recommender refits)."""
    from shared.celery_app import QUEUE_CPU, QUEUE_GPU, inference_queue, worker_pool_args
    from shared.settings import Settings

    services = compose["services"]
    env = services["sentiment"]["environment"]
    assert env["FINPULSE_SENTIMENT_SCORING"] == "celery"
    assert env["FINPULSE_INFERENCE_QUEUE"] == "${FINPULSE_INFERENCE_QUEUE:-cpu}"
    gpu_env = {k: v for k, v in services["worker-gpu"]["environment"].items() if k.startswith("FINPULSE_")}
    for name, value in {**env, "FINPULSE_INFERENCE_QUEUE": "gpu"}.items():
        if name.startswith("FINPULSE_") and "$" not in value:
            monkeypatch.setenv(name, value)
    sender = Settings()
    for name, value in gpu_env.items():
        monkeypatch.setenv(name, value)
    assert f"-Q {inference_queue(sender)} " in " ".join(worker_pool_args(Settings())) + " "
    assert inference_queue(sender) == QUEUE_GPU
    monkeypatch.delenv("FINPULSE_INFERENCE_QUEUE")
    assert inference_queue(Settings(device="cpu")) == QUEUE_CPU == inference_queue(Settings(inference_queue="cpu"))
    assert inference_queue(Settings(device="cuda")) == QUEUE_GPU
    beats = [name for name, svc in services.items() if "--beat" in (svc.get("command") or [])]
    assert beats == ["worker-cpu"]


def test_commands_exist(compose):
    """Every command the file runs is one this repository provides."""
    from click.testing import CliRunner

    from shared.cli import COMMANDS, load_command
    from shared.up import SERVICES, child

    for name, svc in compose["services"].items():
        cmd = svc.get("command")
        if not cmd or name in ("redis", "postgres"):
            continue
        if cmd[0] == "finpulse":
            assert cmd[1] in COMMANDS, cmd
            assert load_command(COMMANDS[cmd[1]][0]).name == cmd[1]  # its module is there
        else:
            assert cmd[:3] == ["python", "-m", "shared.up"], cmd
            assert cmd[3] in child.commands, cmd
            if cmd[3] == "serve":
                assert cmd[4] in SERVICES
    assert CliRunner().invoke(child, ["serve", "--help"]).exit_code == 0


def test_dockerfile_pins_the_same_torch():
    dockerfile = (REPO / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    pin = re.search(r'"torch==([\d.]+)"', pyproject)[1]
    assert f"torch=={pin}" in dockerfile
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert "FINPULSE_HOME=/var/lib/finpulse" in dockerfile
