"""Two-step full and LoRA fine-tunes on 24 rows register complete, loadable versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training import SentimentTrainConfig, train_sentiment

VERSION_FILES = ("config.json", "model.safetensors", "metrics.json", "train_config.json",
                 "tokenizer.json", "confusion.png")


def test_full_fine_tune_registers_first_version_as_production(settings, tiny_train: Path, tiny_dev: Path,
                                                              fast_options: dict, tmp_path: Path) -> None:
    from sqlalchemy import select

    from shared.db import Database
    from shared.models import ModelRecord
    from shared.registry import Registry

    events: list[dict] = []
    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), seed=3,
                               run_dir=str(tmp_path / "run"), **fast_options)
    mv = train_sentiment(cfg, settings, callback=events.append)

    assert mv.path == settings.registry_dir / "news" / "sentiment" / "v1"
    for name in VERSION_FILES:
        assert (mv.path / name).is_file(), name
    metrics = json.loads((mv.path / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["n"] == 9
    assert set(metrics["per_class"]) == {"negative", "neutral", "positive"}
    assert set(metrics["by_agreement"]) == {"66", "100"} and metrics["by_agreement"]["66"]["n"] == 9
    lineage = json.loads((mv.path / "train_config.json").read_text())
    assert lineage["seed"] == 3 and lineage["method"] == "full"
    assert len(lineage["data"]["train"]["sha256"]) == 64 and lineage["git_commit"]
    assert json.loads((mv.path / "config.json").read_text())["id2label"] == {
        "0": "negative", "1": "neutral", "2": "positive"}
    assert [e["step"] for e in events if "metrics" in e] == [2]  # two steps, one dev evaluation
    assert (tmp_path / "run" / "tb").is_dir() and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert Registry(settings.registry_dir).production("news", "sentiment").version == 1
    db = Database(settings.db_url)
    with db.session() as s:
        rec = s.scalars(select(ModelRecord)).one()
    db.dispose()
    assert (rec.domain, rec.task, rec.version, rec.stage) == ("news", "sentiment", 1, "production")


def test_lora_trains_few_params_and_merges_into_a_plain_model(settings, tiny_train: Path,
                                                              fast_options: dict) -> None:
    from transformers import AutoModelForSequenceClassification

    from shared.registry import Registry

    cfg = SentimentTrainConfig(train_path=str(tiny_train), domain="social", method="lora",
                               dev_fraction=0.25, **fast_options)
    mv = train_sentiment(cfg, settings)
    metrics = mv.metrics()
    assert metrics["trainable_params"] / metrics["total_params"] <= 0.02
    assert metrics["n"] == 6  # stratified hold-out: 2 rows per class
    model = AutoModelForSequenceClassification.from_pretrained(mv.path)
    assert not any("lora" in name for name in model.state_dict())
    assert model.config.id2label[0] == "negative"
    assert mv.train_config()["data"]["dev"]["held_out_from"] == "train"
    # a second version of the same domain is registered but not promoted automatically
    mv2 = train_sentiment(cfg.replace(method="full"), settings)
    assert mv2.version == 2 and Registry(settings.registry_dir).production("social", "sentiment").version == 1


@pytest.mark.slow
def test_resume_continues_from_checkpoint(settings, tiny_train: Path, tiny_dev: Path, fast_options: dict,
                                          tmp_path: Path) -> None:
    import torch

    first = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev),
                                 run_dir=str(tmp_path / "run"), **{**fast_options, "epochs": 1})
    train_sentiment(first, settings)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert torch.load(ckpt, weights_only=False)["step"] == 2
    resumed = first.replace(epochs=2, resume_from=str(ckpt), run_dir=str(tmp_path / "run2"))
    mv = train_sentiment(resumed, settings)
    assert [h["step"] for h in mv.metrics()["history"]] == [2, 4]



def test_agreement_targets_move_mass_to_the_likely_other_votes() -> None:
    from data_connectors.labelled import Example
    from training.classification import agreement_targets

    labels = ("negative", "neutral", "positive")
    rows = [Example("a", 2, 50), Example("b", 1, 50), Example("c", 0, 100)]
    t = agreement_targets(rows, labels, 0.5)
    assert t.tolist() == [[0.0, 0.25, 0.75], [0.125, 0.75, 0.125], [1.0, 0.0, 0.0]]
    assert agreement_targets(rows, labels, 0.0) is None
    assert agreement_targets(rows + [Example("d", 1, None)], labels, 0.5) is None


pytestmark = pytest.mark.timeout(300)
