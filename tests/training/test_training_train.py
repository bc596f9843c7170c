"""Two-step full and LoRA fine-tunes on 24 rows register complete, loadable versions."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from training import SentimentTrainConfig, train_sentiment

VERSION_FILES = ("config.json", "model.safetensors", "metrics.json", "train_config.json",
                 "tokenizer.json", "confusion.png")


def test_full_fine_tune_registers_first_version_as_production(settings, tiny_train: Path, tiny_dev: Path,
                                                              fast_options: dict, tmp_path: Path, capsys) -> None:
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
    # no budget: the schedule's natural end (it said "end of (time-budgeted) schedule")
    assert "[train] end of the schedule\n" in capsys.readouterr().err
    assert (tmp_path / "run" / "tb").is_dir() and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert Registry(settings.registry_dir).production("news", "sentiment").version == 1
    db = Database(settings.db_url)
    with db.session() as s:
        rec = s.scalars(select(ModelRecord)).one()
    db.dispose()
    assert (rec.domain, rec.task, rec.version, rec.stage) == ("news", "sentiment", 1, "production")


def test_dev_metrics_are_those_of_the_served_model(settings, tiny_train: Path, tiny_dev: Path,
                                                  fast_options: dict) -> None:
    """metrics.json was scored with dev cut at the training length (fitted to the data, here 8
    tokens) while the version serves up to 128: `predict` on the same dev file disagreed."""
    import numpy as np

    from data_connectors.labelled import load_labelled
    from shared.runtimes import load_runtime
    from training.evaluation import classification_metrics

    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev),
                               **{**fast_options, "max_length": 8})
    mv = train_sentiment(cfg, settings)
    dev = load_labelled(tiny_dev)
    rows = load_runtime(mv.path, "torch").predict(dev.texts)
    served = classification_metrics(np.array([[r["scores"][lab] for lab in dev.labels] for r in rows]),
                                    dev.targets, dev.labels)
    assert mv.metrics()["ece"] == pytest.approx(served["ece"], abs=1e-5)


def test_lora_trains_few_params_and_merges_into_a_plain_model(settings, tiny_train: Path,
                                                              fast_options: dict) -> None:
    from transformers import AutoModelForSequenceClassification

    from shared.registry import Registry

    cfg = SentimentTrainConfig(train_path=str(tiny_train), domain="social", method="lora",
                               dev_fraction=0.25, **fast_options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mv = train_sentiment(cfg, settings)
    # peft's question to transformers printed a FutureWarning with a site-packages path in every LoRA run
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    metrics = mv.metrics()
    assert metrics["trainable_params"] / metrics["total_params"] <= 0.02
    assert metrics["n"] == 6  # stratified hold-out: 2 rows per class
    model = AutoModelForSequenceClassification.from_pretrained(mv.path)
    assert not any("lora" in name for name in model.state_dict())
    assert model.config.id2label[0] == "negative"
    assert mv.train_config()["data"]["dev"]["held_out_from"] == "train"
    # a second version of the same domain is registered but not promoted automatically
    import torch

    threads = torch.get_num_threads()
    mv2 = train_sentiment(cfg.replace(method="full", num_threads=threads + 1), settings)
    assert mv2.version == 2 and Registry(settings.registry_dir).production("social", "sentiment").version == 1
    assert torch.get_num_threads() == threads  # a worker's job leaves the process's threads as it found them


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


def test_resume_of_an_interrupted_run_continues_in_its_folder(settings, tiny_train: Path) -> None:
    """A new folder per --resume left the interrupted run's ~430 MB checkpoint unfinished, so
    never pruned, and split its TensorBoard curves over two folders."""
    from training.classification import _run_dir

    runs = Path(settings.home) / "runs"
    interrupted = runs / "news-sentiment-20260101-000000"
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint.pt").write_bytes(b"state")
    cfg = SentimentTrainConfig(train_path=str(tiny_train), resume_from=str(interrupted / "checkpoint.pt"))
    assert _run_dir(cfg, settings, "")[0] == interrupted
    (interrupted / "metrics.json").write_text("{}")  # a finished run's checkpoint, trained further: a new run
    assert _run_dir(cfg, settings, "")[0].parent == runs and _run_dir(cfg, settings, "")[0] != interrupted
    elsewhere = Path(settings.home) / "saved" / "checkpoint.pt"
    assert _run_dir(cfg.replace(resume_from=str(elsewhere)), settings, "")[0].parent == runs


def test_resume_names_options_that_differ_from_the_checkpoints(tiny_train: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Options are not restored from a checkpoint: a bare --resume silently trained on defaults."""
    from shared.errors import BadInput
    from training.classification import _check_resume

    saved = SentimentTrainConfig(train_path=str(tiny_train), seed=5, epochs=3)
    data = {"train": {"sha256": "a"}, "dev": {"held_out_from": "train"}}
    resumed = saved.replace(seed=42, resume_from="ckpt.pt")
    _check_resume(resumed, saved.to_dict(), {"train": {"sha256": "b"}}, data)
    err = capsys.readouterr().err
    assert "seed 5 -> 42" in err and "train data changed" in err and "epochs" not in err
    _check_resume(saved.replace(resume_from="ckpt.pt"), saved.to_dict(), data, data)
    assert capsys.readouterr().err == ""
    with pytest.raises(BadInput, match="method='full'"):  # not load_state_dict's list of keys
        _check_resume(resumed.replace(method="lora"), saved.to_dict(), data, data)
    _check_resume(resumed, {}, data, {})  # a checkpoint from before the config was saved in it


def test_a_stopped_run_with_a_checkpoint_says_how_to_resume(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from training.classification import _removed_on_failure

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), _removed_on_failure(run):
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(b"state")
        raise KeyboardInterrupt
    assert f"--resume {run / 'checkpoint.pt'}" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt), _removed_on_failure(tmp_path / "early"):
        (tmp_path / "early").mkdir()
        raise KeyboardInterrupt
    assert not (tmp_path / "early").exists() and "--resume" not in capsys.readouterr().err



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


def _run(runs: Path, name: str, finished: bool, age_s: int) -> Path:
    import os
    import time

    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"state")
    if finished:
        (folder / "metrics.json").write_text("{}")
    stamp = time.time() - age_s
    for name in ("checkpoint.pt", "metrics.json"):
        if (folder / name).exists():
            os.utime(folder / name, (stamp, stamp))
    return folder / "checkpoint.pt"


def test_old_finished_runs_lose_their_checkpoints_unfinished_ones_keep_them(tmp_path: Path) -> None:
    from training.classification import prune_runs

    runs = tmp_path / "runs"
    new, mid, old = (_run(runs, n, True, age) for n, age in (("new", 10), ("mid", 20), ("old", 30)))
    interrupted = _run(runs, "interrupted", False, 99)  # what --resume is for: kept at any age
    assert prune_runs(runs, 2) == [old]
    assert new.is_file() and mid.is_file() and interrupted.is_file() and not old.is_file()
    assert (runs / "old" / "metrics.json").is_file()  # logs and metrics stay
    assert prune_runs(runs, 0) == [new, mid] and interrupted.is_file()
    assert prune_runs(tmp_path / "nothing-yet", 3) == []


def test_old_finished_runs_lose_the_intermediate_encoders_they_name_under_runs(tmp_path: Path) -> None:
    from training.classification import prune_runs

    runs = tmp_path / "runs"
    models = {}
    for name, age in (("new", 10), ("old", 20)):
        _run(runs, name, True, age)
        transfer = runs / f"{name}-transfer" / ".train-x"
        adapted = runs / name / "adapted"
        for folder in (transfer, adapted):
            folder.mkdir(parents=True)
            (folder / "model.safetensors").write_bytes(b"weights")
        elsewhere = tmp_path / f"{name}-mine"  # a base model of the user's, outside runs
        elsewhere.mkdir()
        (runs / name / "train_config.json").write_text(json.dumps({
            "transfer": {"path": str(transfer)}, "domain_adapt": {"path": str(adapted)},
            "base_model_path": str(elsewhere)}))
        models[name] = (transfer, adapted, elsewhere)
    broken = _run(runs, "broken", True, 30)
    (runs / "broken" / "train_config.json").write_text("{not json")  # a damaged lineage: its checkpoint only

    deleted = prune_runs(runs, 1)
    transfer, adapted, elsewhere = models["old"]
    assert set(deleted) == {runs / "old" / "checkpoint.pt", transfer, adapted, broken}
    assert not transfer.exists() and not adapted.exists() and elsewhere.is_dir()
    assert (runs / "old" / "metrics.json").is_file() and (runs / "old-transfer").is_dir()  # logs stay
    assert all(m.is_dir() for m in models["new"])  # the newest run keeps its own
    assert prune_runs(runs, 1) == []  # nothing left to delete


def test_training_prunes_older_finished_checkpoints(settings, tiny_train: Path, tiny_dev: Path,
                                                    fast_options: dict) -> None:
    runs = settings.home / "runs"
    older = _run(runs, "news-sentiment-older", True, 3600)
    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), transfer_data=str(tiny_train),
                               **fast_options)
    keep_one = settings.model_copy(update={"keep_run_checkpoints": 1})
    first = train_sentiment(cfg, keep_one)
    kept = list(runs.glob("*/checkpoint.pt"))
    assert not older.is_file() and len(kept) == 1 and kept[0].parent.name.startswith("news-sentiment-2")
    first_transfer = Path(first.train_config()["transfer"]["path"])
    assert first_transfer.is_dir()
    second = train_sentiment(cfg, keep_one)  # the first run is now beyond the newest one kept
    assert not first_transfer.exists() and Path(second.train_config()["transfer"]["path"]).is_dir()


def test_a_fresh_head_is_one_line_and_a_missing_encoder_weight_warns_by_name(tmp_path: Path, capfd, caplog) -> None:
    """transformers printed a LOAD REPORT table on every training (the head is always new), and
    hiding it by level listed every layer as "not sharded";
    now one line says so, while an encoder weight missing from the checkpoint still warns."""
    import logging
    import shutil

    from safetensors.torch import load_file, save_file

    from shared.encoders import base_encoder_path
    from training.classification import _load_for_classification

    labels = ["negative", "neutral", "positive"]
    model = _load_for_classification(base_encoder_path(), labels)
    err = capfd.readouterr().err
    assert model.config.id2label == dict(enumerate(labels))
    assert "new classification head: classifier.bias, classifier.weight" in err and "LOAD REPORT" not in err
    assert "not sharded" not in err  # a level raised to hide the report made transformers list every layer
    damaged = Path(shutil.copytree(base_encoder_path(), tmp_path / "damaged"))
    weights = load_file(damaged / "model.safetensors")
    lost = next(k for k in weights if k.endswith("layer.5.output.dense.bias"))
    del weights[lost]
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING, logger="training.classification"):
        _load_for_classification(damaged, labels)
    assert any(lost in r.getMessage() and "initialised at random" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("fails", ["save", "register"])
def test_a_failed_save_or_registration_leaves_no_hidden_model_copy(settings, tiny_train: Path, tiny_dev: Path,
                                                                  fast_options: dict, tmp_path: Path,
                                                                  monkeypatch, fails: str) -> None:
    """A full disk while the finished model was saved, or a failed registration, left the
    model's temp folder (~90 MB a run) hidden in the run folder, which keeps its checkpoint and
    so is never pruned."""
    import errno

    from training import classification

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(classification, "save_confusion_png" if fails == "save" else "publish", no_space)
    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), seed=3,
                               run_dir=str(tmp_path / "run"), **fast_options)
    with pytest.raises(OSError, match="No space"):
        train_sentiment(cfg, settings)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()  # the run can still be resumed
    assert not list((tmp_path / "run").glob(".train-*"))
