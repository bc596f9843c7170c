"""Fault-test fixtures: a private Redis per test, a served sentiment model, full-mode flag."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import FULL, RedisServer


def pytest_report_header() -> str:
    return ("reliability: FULL mode (FINPULSE_RELIABILITY_FULL=1)" if FULL else
            "reliability: short mode; FINPULSE_RELIABILITY_FULL=1 runs the long fault loops")


@pytest.fixture
def private_redis(tmp_path: Path):
    """A redis-server of our own, so killing it touches nobody else's work."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def model_home(tmp_path: Path, tiny_sentiment_model: Path) -> Path:
    """A FINPULSE_HOME whose registry has the tiny model as news/sentiment production, DB migrated."""
    from shared.registry import Registry

    home = tmp_path / "home"
    reg = Registry(home / "registry")
    mv = reg.register("news", "sentiment", tiny_sentiment_model, move=False)
    reg.promote(mv.ref)
    return home
