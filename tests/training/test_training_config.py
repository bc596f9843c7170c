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
    # ops QA: `--set class_weights=False` (not JSON: the text "False", truthy) turned class weights on
    ({"class_weights": "False"}, "class_weights='False'"),
    ({"skip_bad": 1}, "skip_bad=1"),
    ({"seed": -1}, "seed=-1"),  # numpy's range: "Seed must be between 0 and 2**32 - 1" after the model loaded
    ({"seed": 2**32}, "seed=4294967296"),
    ({"lora_dropout": 1.0}, "lora_dropout=1.0"),
    ({"extra": 5}, "extra=5"),  # training CLI QA: `--set extra=5` trained and kept 5 as the lineage's extra
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


@pytest.mark.parametrize("threads", [0, -1, 100000])
def test_num_threads_is_bounded_for_the_cli_too(threads: int) -> None:
    """100000 threads segfaulted libgomp and took the Celery worker down with every job on it."""
    from training.config import max_threads

    with pytest.raises(ConfigError, match=f"num_threads={threads}"):
        SentimentTrainConfig.from_dict({"train_path": "t.jsonl", "num_threads": threads})  # `--set num_threads=`
    assert SentimentTrainConfig(train_path="t.jsonl", num_threads=max_threads()).num_threads == max_threads()


def test_retrain_options_cannot_pick_the_model_or_where_it_is_written() -> None:
    """The job builds its config with retrain_config too: a job queued around the service's check
    meets the same limits, while the CLI (from_dict) keeps every field."""
    from training.config import retrain_config

    params = {"data": "t.jsonl", "domain": "news", "task": "sentiment"}
    for options, needle in (({"domain": "default", "task": "recommendations"}, "domain ("),
                            ({"run_dir": "/tmp/x"}, "run_dir"), ({"train_path": "/etc/passwd"}, "train_path"),
                            ({"promote_first": True}, "promote_first"), ({"device": "cuda"}, "device='cuda'"),
                            ({"bogus": 1}, "unknown training option(s): bogus")):
        with pytest.raises(ConfigError) as info:
            retrain_config({**params, "options": options})
        assert needle in str(info.value), (options, str(info.value))
    cfg = retrain_config({**params, "options": {"lr": 3e-4, "num_threads": 1, "device": "cpu", "warmup_ratio": 0.2}})
    assert (cfg.domain, cfg.task, cfg.run_dir, cfg.train_path) == ("news", "sentiment", None, "t.jsonl")
    cli = SentimentTrainConfig.from_dict({"train_path": "t.jsonl", "domain": "social", "run_dir": "/tmp/r"})
    assert (cli.domain, cli.run_dir) == ("social", "/tmp/r")
