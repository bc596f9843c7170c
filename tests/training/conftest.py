"""Fixtures of the training tests: tiny labelled files and a registry holding the tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

NEG = ["profit fell sharply", "the company warned of heavy losses", "sales dropped and jobs were cut",
       "shares slumped after the loss"]
NEU = ["the meeting is held in May", "the company is based in Helsinki", "the report was published",
       "the contract value was not disclosed"]
POS = ["record profit beat expectations", "sales rose strongly", "the order lifts growth",
       "net profit increased by half"]


def _rows(n_each: int) -> list[dict]:
    rows = []
    for i in range(n_each):
        for label, texts in (("negative", NEG), ("neutral", NEU), ("positive", POS)):
            rows.append({"text": f"{texts[i % len(texts)]} ({i})", "label": label,
                         "agreement": 100 if i % 2 else 66})
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def tiny_train(tmp_path: Path) -> Path:
    """24 labelled rows, 8 per class."""
    return _write(tmp_path / "train.jsonl", _rows(8))


@pytest.fixture
def tiny_dev(tmp_path: Path) -> Path:
    return _write(tmp_path / "dev.jsonl", _rows(3))


@pytest.fixture
def fast_options() -> dict:
    """Two optimiser steps on 24 rows, one dev evaluation."""
    return {"epochs": 1, "batch_size": 12, "eval_every": 1.0, "max_length": 32, "time_budget_min": None}


@pytest.fixture
def registered_tiny(settings, tiny_sentiment_model: Path):  # noqa: ANN001, ANN201
    """The session's tiny model registered twice as news/sentiment (v1 production)."""
    from shared.registry import Registry

    reg = Registry(settings.registry_dir)
    v1 = reg.register("news", "sentiment", tiny_sentiment_model, move=False)
    reg.promote(v1.ref)
    v2 = reg.register("news", "sentiment", tiny_sentiment_model, move=False)
    return reg, v1, v2


@pytest.fixture
def model_copy(tmp_path: Path, tiny_sentiment_model: Path) -> Path:
    """A private copy of the tiny model (export writes into the model directory)."""
    return Path(shutil.copytree(tiny_sentiment_model, tmp_path / "model"))
