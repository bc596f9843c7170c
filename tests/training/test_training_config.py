"""SentimentTrainConfig: validation errors name the option and the bad value."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from training import SentimentTrainConfig


@pytest.mark.parametrize(("changes", "needle"), [
    ({"method": "qlora"}, "method='qlora'"),
    ({"lr": -1.0}, "lr=-1.0"),
    ({"epochs": 0}, "epochs=0"),
    ({"schedule": "step"}, "schedule='step'"),
    ({"max_length": 4}, "max_length=4"),
    ({"dev_fraction": 0.9}, "dev_fraction=0.9"),
    ({"labels": ("a", "a")}, "labels="),
    ({"adversarial_eps": -0.5}, "adversarial_eps=-0.5"),
    ({"adversarial_eps": "abc"}, "adversarial_eps='abc'"),  # --set turns non-JSON into a string
    ({"label_smoothing": False}, "label_smoothing=False"),  # a JSON bool is not a number
    ({"max_length": "abc"}, "max_length='abc'"),  # an integer field: was a TypeError from a comparison
    ({"patience": "2"}, "patience='2'"),
    ({"seed": "x"}, "seed='x'"),  # was accepted, to fail in torch.manual_seed
])
def test_bad_values_are_named(changes: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        SentimentTrainConfig(train_path="t.jsonl", **changes)
    assert needle in str(info.value) and "expected" in str(info.value)


def test_unknown_option_and_round_trip() -> None:
    with pytest.raises(ConfigError, match="unknown training option.*lrate"):
        SentimentTrainConfig.from_dict({"train_path": "t.jsonl", "lrate": 1})
    cfg = SentimentTrainConfig(train_path="t.jsonl", method="lora", seed=7)
    again = SentimentTrainConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.labels == ("negative", "neutral", "positive")
