"""Worker fixtures: the tiny model registered as news/sentiment, and its ONNX export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def onnx_model(tiny_sentiment_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model with ``onnx/model.onnx`` and ``onnx/model.int8.onnx``.

    Uses the training issue's export (the same layout ``finpulse export --int8`` writes).
    """
    from training.export import export_onnx

    out = tmp_path_factory.mktemp("onnx-model") / "model"
    shutil.copytree(tiny_sentiment_model, out)
    export_onnx(out, int8=True)
    return out


@pytest.fixture
def worker_settings(settings, tiny_sentiment_model: Path):  # noqa: ANN001, ANN201
    """Settings whose registry serves the tiny model as news/sentiment v1 (production)."""
    from shared.inference import invalidate
    from shared.registry import Registry

    reg = Registry(settings.registry_dir)
    mv = reg.register("news", "sentiment", tiny_sentiment_model, move=False)
    reg.promote(mv.ref)
    invalidate()
    yield settings
    invalidate()
