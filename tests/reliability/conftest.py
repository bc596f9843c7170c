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


@pytest.fixture(scope="session")
def untrained_sentiment_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base encoder with a fresh 3-label head, saved as safetensors (seconds, no training).

    Fault tests need a real model that loads and predicts, not a good one.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from shared.encoders import base_encoder_path

    labels = ["negative", "neutral", "positive"]
    out = tmp_path_factory.mktemp("untrained-sentiment")
    base = base_encoder_path()
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=3, id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


@pytest.fixture
def model_home(tmp_path: Path, untrained_sentiment_model: Path) -> Path:
    """A FINPULSE_HOME whose registry has a real model as news/sentiment production."""
    from shared.registry import Registry

    home = tmp_path / "home"
    reg = Registry(home / "registry")
    mv = reg.register("news", "sentiment", untrained_sentiment_model, move=False)
    reg.promote(mv.ref)
    return home
