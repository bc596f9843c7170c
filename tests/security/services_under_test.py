"""Build each FinPulse service in-process for the hostile-HTTP tests.

Services land one by one; :func:`build_app` skips with a reason for one that has not.
The sentiment service gets the tiny real model promoted to production, so its scoring
endpoints run for real instead of answering 503 "no model".
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

OPS_KEY = "fp_test_ops_key_for_security_tests"
# (name, module holding create_app); "base" is the shared skeleton every service uses.
SERVICES = ["base", "sentiment", "chatbot", "recommendations"]


class StubPredictor:
    """Known-answer sentiment runtime: fuzzing thousands of requests needs no real model."""

    labels = ["negative", "neutral", "positive"]

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        return [{"label": "neutral", "scores": {"negative": 0.1, "neutral": 0.8, "positive": 0.1}}
                for _ in texts]


def build_app(name: str, settings: Any, tiny_model: Path | None = None) -> Any:
    """``create_app(settings)`` of service ``name``, migrated DB, model where one is needed.

    Sentiment without ``tiny_model`` gets :class:`StubPredictor` as its scorer.
    """
    settings = settings.model_copy(update={"ops_key": OPS_KEY})
    if name == "base":
        from shared.web import create_service_app

        return create_service_app("base", settings)
    module = f"services.{name}"
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        pytest.skip(f"{module} not present yet ({exc})")
    if not hasattr(mod, "create_app"):
        pytest.skip(f"{module}.create_app not present yet")
    from shared.db import upgrade

    upgrade(settings.db_url)
    if name == "sentiment" and tiny_model is not None:
        from shared.registry import Registry

        reg = Registry(settings.registry_dir)
        mv = reg.register(settings.sentiment_domain, "sentiment", tiny_model, move=False)
        reg.promote(mv.ref)
    if name == "sentiment" and tiny_model is None:
        from services.sentiment.scoring import Scorer

        app = mod.create_app(settings, scorer=Scorer("stub@v0", StubPredictor()))
    else:
        app = mod.create_app(settings)
    app.config["TESTING"] = True
    return app
