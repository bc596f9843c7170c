"""Domain-adaptive MLM: the encoder learns the domain's text, keeps its pooler, and the
trainer fine-tunes from it when ``mlm_epochs`` asks for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_connectors.base import read_texts
from shared.errors import BadInput
from training import SentimentTrainConfig, train_sentiment
from training.domain_adapt import adapt_encoder

TEXTS = ["operating profit rose to EUR 13.1 mn from EUR 8.7 mn", "net sales decreased by 5 %",
         "the company will pay a dividend of EUR 0.50 per share", "shares of the bank fell 3 percent"]


def test_mlm_steps_lower_the_loss_and_keep_the_pooler(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from shared.encoders import base_encoder_path

    base = base_encoder_path()
    summary = adapt_encoder(TEXTS * 8, base, tmp_path / "adapted", epochs=6, head_epochs=2, batch_size=4,
                            lr=1e-4, seed=0)
    assert summary["texts"] == len(TEXTS)  # duplicates dropped before training
    assert summary["last_loss"] < summary["first_loss"]
    adapted = load_file(tmp_path / "adapted" / "model.safetensors")
    original = load_file(next(Path(base).glob("*.safetensors")))
    assert any(k.startswith("pooler.") for k in adapted)  # classifiers start from the base's pooler
    pooler = next(k for k in adapted if k.startswith("pooler.dense.weight"))
    assert torch.equal(adapted[pooler], original[next(k for k in original if k.endswith("pooler.dense.weight"))])
    layer = next(k for k in adapted if "layer.5.output.dense.weight" in k)
    assert not torch.equal(adapted[layer], original[next(k for k in original if k.endswith(
        "layer.5.output.dense.weight"))])


def test_read_texts_takes_txt_lines_or_a_text_column(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first line\n\n  second line \n")
    assert read_texts(tmp_path / "a.txt") == ["first line", "second line"]
    (tmp_path / "b.jsonl").write_text('{"headline": "up"}\n{"headline": "down"}\n')
    assert read_texts(tmp_path / "b.jsonl", "headline") == ["up", "down"]
    with pytest.raises(BadInput, match=r"b\.jsonl:1: no text in field 'text'"):
        read_texts(tmp_path / "b.jsonl")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(BadInput, match="no text"):
        read_texts(tmp_path / "empty.txt")
    with pytest.raises(BadInput, match="no such file"):
        read_texts(tmp_path / "missing.txt")


def test_mlm_text_needs_mlm_epochs(tiny_train: Path) -> None:
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="mlm_text"):
        SentimentTrainConfig(train_path=str(tiny_train), mlm_text="extra.txt")


def test_trainer_fine_tunes_from_the_adapted_encoder(settings, tiny_train: Path, tiny_dev: Path,
                                                     fast_options: dict, tmp_path: Path) -> None:
    (tmp_path / "extra.txt").write_text("\n".join(TEXTS))
    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), mlm_epochs=1.0,
                               mlm_text=str(tmp_path / "extra.txt"), run_dir=str(tmp_path / "run"),
                               **fast_options)
    mv = train_sentiment(cfg, settings)
    lineage = json.loads((mv.path / "train_config.json").read_text())
    adapt = lineage["domain_adapt"]
    assert adapt["texts"] == 24 + len(TEXTS) and adapt["steps"] >= 1
    assert lineage["base_model_path"] == adapt["path"] == str(tmp_path / "run" / "adapted")
    assert (tmp_path / "run" / "adapted" / "model.safetensors").is_file()
    assert 0 <= mv.metrics()["accuracy"] <= 1
