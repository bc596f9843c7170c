"""What `train sentiment` and `predict sentiment` check before they work (QA pass defects).

Bad names, options and data fail before any training or run folder; skipped rows are
counted on stderr; numeric -1/0/1 labels, BOM files and progress work end to end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from data_connectors.base import BadRow
from shared.cli import cli
from shared.errors import BadInput, ConfigError
from training import SentimentTrainConfig, train_sentiment


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reaching the training loop is the failure these tests look for."""
    import training.classification as classification

    def trained(*args: object, **kw: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(classification, "_fit", trained)


def test_cli_passes_zero_options_through(monkeypatch: pytest.MonkeyPatch, settings, tiny_train: Path) -> None:
    import training

    seen: list[SentimentTrainConfig] = []
    monkeypatch.setattr(training, "train_sentiment", lambda config, settings: seen.append(config))
    result = CliRunner().invoke(cli, ["train", "sentiment", "--train", str(tiny_train), "--seed", "0"])
    assert result.exit_code == 0 and seen[0].seed == 0  # was silently the default 42
    result = CliRunner().invoke(cli, ["train", "sentiment", "--train", str(tiny_train), "--epochs", "0"])
    assert isinstance(result.exception, ConfigError) and "epochs=0" in str(result.exception)
    assert len(seen) == 1


@pytest.mark.parametrize("domain", ["../../evil", "a/b", "", ".hidden"])
def test_domain_is_checked_before_training(settings, tiny_train: Path, no_training: None, domain: str) -> None:
    with pytest.raises(BadInput, match="is not a valid name"):
        train_sentiment(SentimentTrainConfig(train_path=str(tiny_train), domain=domain), settings)
    assert not (settings.home / "runs").exists()


def test_a_registry_that_cannot_be_written_fails_before_training(settings, tiny_train: Path,
                                                                 no_training: None) -> None:
    """Ops QA: with a read-only registry the run trained to its end, then failed on `.staging-...`."""
    settings.registry_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.registry_dir.write_text("not a folder")  # root writes through chmod: a file blocks it instead
    with pytest.raises(BadInput, match=rf"cannot write {settings.registry_dir}/news/sentiment/.staging: "
                                       rf"{settings.registry_dir} is not a directory"):
        train_sentiment(SentimentTrainConfig(train_path=str(tiny_train)), settings)
    assert not (settings.home / "runs").exists()


def test_train_embeddings_with_a_registry_it_cannot_write_fails_before_training(
        settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (training CLI QA): `train embeddings` with a file in the registry's path ran the
    whole fine-tune (its --max-minutes budget) and then failed with a bare "[Errno 20] Not a
    directory: '.../registry/bank/embeddings'"; it is refused first, as `train sentiment` is."""
    import training.embeddings as embeddings

    def trained(*args: object, **kw: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(embeddings, "fine_tune", trained)
    kb = tmp_path / "kb.jsonl"
    kb.write_text("".join(json.dumps({"id": f"e{i}", "question": f"how do I do thing {i}", "answer": f"like {i}"})
                          + "\n" for i in range(4)))
    (settings.registry_dir / "bank").parent.mkdir(parents=True, exist_ok=True)
    (settings.registry_dir / "bank").write_text("not a folder")
    with pytest.raises(BadInput, match=rf"cannot write {settings.registry_dir}/bank/embeddings/.staging: "
                                       rf"{settings.registry_dir}/bank is not a directory"):
        embeddings.train_embeddings(kb, domain="bank", settings=settings)


def test_bad_data_fails_before_the_transfer_stage(settings, tiny_train: Path, tmp_path: Path,
                                                  no_training: None) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": "neutral"}\n{"text": 42, "label": "neutral"}\n')
    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(bad), transfer_data=str(tiny_train))
    with pytest.raises(BadRow, match=r"bad.jsonl:2: text in field 'text' is not a string \(int\)"):
        train_sentiment(cfg, settings)
    assert not (settings.home / "runs").exists()


@pytest.mark.parametrize("explicit", [False, True])
def test_a_run_that_fails_after_its_folder_was_made_removes_it(settings, tiny_train: Path, tmp_path: Path,
                                                              explicit: bool) -> None:
    run_dir = tmp_path / "run" if explicit else None
    cfg = SentimentTrainConfig(train_path=str(tiny_train), base_model=str(tmp_path / "no-such-encoder"),
                               transfer_data=None, run_dir=str(run_dir) if run_dir else None)
    with pytest.raises(BadInput, match="is not a directory"):
        train_sentiment(cfg, settings)
    assert not list((settings.home / "runs").glob("*")) and not (run_dir and run_dir.exists())


def test_a_failed_run_keeps_a_folder_it_did_not_make(settings, tiny_train: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    cfg = SentimentTrainConfig(train_path=str(tiny_train), base_model=str(tmp_path / "nope"), transfer_data=None,
                               run_dir=str(tmp_path / "run"))
    with pytest.raises(BadInput):
        train_sentiment(cfg, settings)
    assert (tmp_path / "run").is_dir()


def test_skip_bad_says_per_file_how_many_rows_it_dropped(tiny_train: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from training.classification import load_data

    dev = tmp_path / "dev.jsonl"
    dev.write_text(tiny_train.read_text() + '{"text": "x", "label": "meh"}\n{"text": [1], "label": "neutral"}\n')
    data = load_data(SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(dev), skip_bad=True))
    assert len(data.dev) == 24 and data.lineage["dev"]["skipped"] == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert lines == [f"[train] {dev}: skipped 2 bad rows (line 25: unknown label 'meh'; expected one of "
                     f"negative, neutral, positive; line 26: text in field 'text' is not a string (list))"]


def test_a_header_naming_the_label_column_twice_fails_before_training(tmp_path: Path, no_training: None) -> None:
    """QA: `text,label,label` trained on the last `label` column, silently."""
    train = tmp_path / "dup.csv"
    train.write_text("text,label,label\n" + "".join(f"text {i},{('negative', 'positive')[i % 2]},positive\n"
                                                     for i in range(12)))
    for skip in ([], ["--skip-bad"]):
        result = CliRunner().invoke(cli, ["train", "sentiment", "--train", str(train), *skip])
        assert isinstance(result.exception, BadRow), result.exception  # not AssertionError: training started
        assert str(result.exception) == (f"{train}:1: the header names the column 'label' twice (columns 2 and 3); "
                                         "rename or drop one: which of them holds the data is ambiguous")


def test_a_dev_set_of_one_label_is_warned_of_on_one_stderr_line(settings, tiny_train: Path, tmp_path: Path,
                                                                no_training: None,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `--dev F` with F holding one label trained and registered with "dev accuracy 0.0000" and a
    macro-F1 that compares no classes, silently. Warned (the README asks two labels of --train only)."""
    from training.classification import load_data

    one = tmp_path / "dev_one.jsonl"
    one.write_text("".join(json.dumps({"text": f"up {i}", "label": "positive"}) + "\n" for i in range(5)))
    data = load_data(SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(one)))
    assert len(data.dev) == 5
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [f"[train] warning: dev {one} holds only the label 'positive': its accuracy and macro-F1, "
                      "which choose the checkpoint kept, measure how often that label is predicted, not how "
                      "classes are told apart; give a --dev file with at least two labels"]
    # a hold-out of one label (a label of one row keeps it in train) is warned of too
    lopsided = tmp_path / "lopsided.jsonl"
    lopsided.write_text("".join(json.dumps({"text": f"up {i}", "label": "positive"}) + "\n" for i in range(9))
                        + json.dumps({"text": "down", "label": "negative"}) + "\n")
    assert {e.label for e in load_data(SentimentTrainConfig(train_path=str(lopsided))).dev} == {2}
    assert f"warning: the dev set held out of {lopsided} (1 row) holds only the label 'positive'" \
        in capsys.readouterr().err
    # the CLI says it once, on stderr, before training; a dev file of two labels or more is no warning
    result = CliRunner().invoke(cli, ["train", "sentiment", "--train", str(tiny_train), "--dev", str(one)])
    assert isinstance(result.exception, AssertionError)  # no_training: it got as far as training
    assert result.stderr.count("holds only the label") == 1 and "holds only" not in result.stdout
    load_data(SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_train)))
    assert "warning" not in capsys.readouterr().err


def test_train_minus_one_zero_one_labels_from_a_bom_file(settings, tmp_path: Path) -> None:
    """The -1/0/1 scheme trains three classes (positives were read as neutral); BOM and skips too."""
    from tests.training.conftest import _rows

    scheme = {"negative": "-1", "neutral": "0", "positive": "1"}
    rows = [{**r, "label": scheme[r["label"]]} for r in _rows(8)]
    train = tmp_path / "signed.jsonl"
    train.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode()
                      + b'{"text": "odd", "label": "7"}\n')
    result = CliRunner().invoke(cli, ["train", "sentiment", "--train", str(train), "--skip-bad", "--epochs", "1",
                                      "--batch-size", "12", "--max-length", "32", "--transfer-data", "none",
                                      "--set", "eval_every=1.0", "--set", "dev_fraction=0.25"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"{train}: skipped 1 bad row (line 25: unknown label '7'" in result.stderr
    version = Path(result.stdout.strip().splitlines()[-1])
    metrics = json.loads((version / "metrics.json").read_text())
    assert {name: m["support"] for name, m in metrics["per_class"].items()} == \
        {"negative": 2, "neutral": 2, "positive": 2}


# -- predict ----------------------------------------------------------------------------------
def test_predict_reads_a_bom_file_keeps_order_and_shows_progress(settings, tiny_sentiment_model: Path,
                                                                 tmp_path: Path) -> None:
    from shared.runtimes import load_runtime

    texts = [("profit fell " * (i % 7 + 1)).strip() if i % 2 else f"record sales {i}" for i in range(300)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps({"id": i, "text": t}) + "\n"
                                              for i, t in enumerate(texts)).encode())
    result = CliRunner().invoke(cli, ["predict", "sentiment", "--model", str(tiny_sentiment_model), "--input",
                                      str(src), "--output", str(out), "--batch-size", "4"], catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    assert "predict: 100%" in result.stderr and "300/300" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(300)) and [r["text"] for r in rows] == texts
    direct = load_runtime(tiny_sentiment_model, "torch").predict(texts, batch_size=64)
    assert [r["label"] for r in rows] == [d["label"] for d in direct]
    assert max(abs(r["scores"][k] - d["scores"][k]) for r, d in zip(rows, direct, strict=True)
               for k in d["scores"]) < 1e-4


@pytest.mark.parametrize(("row", "reason"), [
    ({"text": 42}, r"in.jsonl:2: text in field 'text' is not a string \(int\)"),
    ({"body": "x"}, r"in.jsonl:2: missing field 'text'"),
])
def test_predict_names_a_bad_text_field(settings, tmp_path: Path, row: dict, reason: str) -> None:
    from shared.registry import get_registry
    from training.predict import predict_file

    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "ok"}\n' + json.dumps(row) + "\n")
    with pytest.raises(BadRow, match=reason):
        predict_file(get_registry(settings), "news/none", src, tmp_path / "out.jsonl")


def test_one_label_missing_inputs_and_a_bad_transfer_file_fail_before_any_stage(
        settings, tiny_train: Path, tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]) -> None:
    """A one-label file trained and, as the domain's first version, went to production; a
    missing transfer file, base model or checkpoint failed only after progress had started."""
    one = tmp_path / "one.jsonl"
    one.write_text("".join(json.dumps({"text": f"flat {i}", "label": "neutral"}) + "\n" for i in range(20)))
    with pytest.raises(BadInput, match=r"has only the label\(s\) \['neutral'\]"):
        train_sentiment(SentimentTrainConfig(train_path=str(one), transfer_data=None), settings)
    for options, says in (({"transfer_data": str(tmp_path / "nothere.jsonl")}, "no such file"),
                          ({"base_model": str(tmp_path / "nonexist")}, "is not a directory"),
                          ({"resume_from": str(tmp_path / "no" / "checkpoint.pt")}, "no such checkpoint file")):
        with pytest.raises(BadInput, match=says):
            train_sentiment(SentimentTrainConfig(train_path=str(tiny_train), **options), settings)
    assert "transfer stage" not in capsys.readouterr().err and not (settings.home / "runs").exists()


def test_a_base_model_folder_that_holds_no_model_fails_before_any_stage(
        settings, tiny_train: Path, tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression (training CLI QA): `train sentiment --base-model /tmp` (a folder, but no model)
    read the data and then failed in transformers with "Couldn't instantiate the backend tokenizer
    from one of:", and `train embeddings --base-model /tmp` with "Unrecognized model in /tmp":
    neither named the option. Both now say what the folder lacks before anything trains."""
    from training.embeddings import EmbeddingsConfig, train_embeddings

    empty = tmp_path / "not-a-model"
    (empty / "notes").mkdir(parents=True)
    says = r"base model '.*not-a-model' is not a transformers model folder: no config.json"
    result = CliRunner().invoke(cli, ["train", "sentiment", "--train", str(tiny_train), "--base-model", str(empty),
                                      "--transfer-data", "none"])
    assert isinstance(result.exception, BadInput) and re.search(says, str(result.exception))
    assert "[train] data:" not in result.output and not (settings.home / "runs").exists()
    kb = tmp_path / "kb.jsonl"
    kb.write_text("".join(json.dumps({"id": f"e{i}", "question": f"how do I do thing {i}", "answer": f"like {i}"})
                          + "\n" for i in range(4)))
    with pytest.raises(BadInput, match=says):
        train_embeddings(kb, domain="bank", config=EmbeddingsConfig(base_model=str(empty)), settings=settings)


def test_auto_transfer_reads_the_tweets_with_their_own_columns(settings, tmp_path: Path) -> None:
    """--text-field meant for the training file was applied to the bundled tweets too."""
    cfg = SentimentTrainConfig(train_path="t.csv", text_field="headline", label_field="tone")
    assert cfg.transfer_fields() == {"text_field": "text", "label_field": "label"}
    mine = cfg.replace(transfer_data=str(tmp_path / "mine.csv"))
    assert mine.transfer_fields() == {"text_field": "headline", "label_field": "tone"}


def test_predict_refuses_an_unwritable_output_and_an_input_without_rows(settings, tmp_path: Path) -> None:
    """/proc/zz.jsonl failed only after every row was scored, naming the temp file; a TSV holding
    a header alone (no text column) wrote an empty output and exited 0."""
    from shared.registry import Registry
    from training.predict import predict_file

    reg = Registry(settings.registry_dir)
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"text": "profit rose"}\n')
    with pytest.raises(BadInput, match=r"cannot write /proc/zz.jsonl: No such file or directory"):
        predict_file(reg, "news/sentiment@v99", rows, "/proc/zz.jsonl")  # before the REF is even resolved
    with pytest.raises(BadInput, match="is the input file"):  # the results would replace the rows
        predict_file(reg, "news/sentiment@v99", rows, rows)
    assert rows.read_text() == '{"text": "profit rose"}\n'
    header = tmp_path / "h.tsv"
    header.write_text("a\tb\n")
    for empty in (header, tmp_path / "empty.jsonl"):
        empty.touch()
        with pytest.raises(BadInput, match="no rows to score"):
            predict_file(reg, "news/sentiment@v99", empty, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
