"""The finpulse train/predict/export/models commands, as the contract drives them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.cli import cli

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str):  # noqa: ANN201
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def test_train_sentiment_prints_version_dir_last(settings, tiny_train: Path, tiny_dev: Path) -> None:
    result = invoke("train", "sentiment", "--train", str(tiny_train), "--dev", str(tiny_dev),
                    "--domain", "news", "--epochs", "1", "--seed", "5", "--batch-size", "12",
                    "--max-length", "32", "--set", "eval_every=1.0")
    last = result.stdout.strip().splitlines()[-1]
    assert Path(last) == settings.registry_dir / "news" / "sentiment" / "v1"
    assert (Path(last) / "model.safetensors").is_file()
    assert json.loads((Path(last) / "train_config.json").read_text())["seed"] == 5


def test_predict_keeps_order_and_scores_sum_to_one(settings, tiny_sentiment_model: Path, tmp_path: Path) -> None:
    texts = ["record profit and strong growth", "profit fell sharply", "the meeting is in May"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    invoke("predict", "sentiment", "--model", str(tiny_sentiment_model), "--input", str(src),
           "--output", str(out), "--batch-size", "2", "--explain")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2] and [r["text"] for r in rows] == texts
    for r in rows:
        assert r["label"] in {"negative", "neutral", "positive"}
        assert abs(sum(r["scores"].values()) - 1) < 1e-5
        assert r["label"] == max(r["scores"], key=r["scores"].get)
        assert isinstance(r["explanation"], list)
    assert any(r["explanation"] for r in rows)
    assert all(tok["token"] in r["text"].split() for r in rows for tok in r["explanation"])


def test_predict_to_dev_stdout_writes_rows_only(settings, tiny_sentiment_model: Path, tmp_path: Path) -> None:
    """Docs QA: `--output /dev/stdout` ended the JSONL with the path, "/dev/stdout", as a last
    non-JSON line (kb ask and recs recommend print rows only); a file output still prints its path."""
    import os
    import subprocess
    import sys

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "profit fell sharply"}) + "\n")
    cmd = [sys.executable, "-m", "shared.cli", "predict", "sentiment", "--model", str(tiny_sentiment_model),
           "--input", str(src), "--output"]
    env = {**os.environ, "FINPULSE_HOME": str(settings.home)}
    proc = subprocess.run([*cmd, "/dev/stdout"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["text"] for line in proc.stdout.splitlines()] == ["profit fell sharply"]
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([*cmd, str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.splitlines() == [str(out)], proc.stderr


def test_export_int8_writes_both_files_and_reports_parity(settings, model_copy: Path, caplog) -> None:
    result = invoke("export", "--model", str(model_copy), "--int8")
    # onnxruntime's advice to pre-process (the graph is fused first already) printed on every export
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    onnx_dir = Path(result.stdout.strip().splitlines()[-1])
    assert onnx_dir == model_copy / "onnx"
    for name in ("model.onnx", "model.int8.onnx", "config.json", "tokenizer.json"):
        assert (onnx_dir / name).is_file(), name
    assert "parity model.onnx: max prob diff" in result.stderr
    assert "parity model.int8.onnx" in result.stderr
    diff = float(result.stderr.split("parity model.onnx: max prob diff ")[1].split(",")[0])
    assert diff < 1e-3
    src, out = model_copy.parent / "in.jsonl", model_copy.parent / "out.jsonl"
    src.write_text('{"text": "profit fell sharply"}\n{"text": "record profit and strong growth"}\n')
    invoke("predict", "sentiment", "--model", str(model_copy), "--input", str(src), "--output", str(out),
           "--runtime", "onnx-int8")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["profit fell sharply", "record profit and strong growth"]
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-4 for r in rows)
    # CLI QA: exporting again without --int8 deleted the int8 graph the services' `auto` runtime prefers
    again = invoke("export", "--model", str(model_copy))
    assert (onnx_dir / "model.int8.onnx").is_file() and "parity model.int8.onnx" in again.stderr


def test_export_parity_texts_come_from_the_versions_text_field(tmp_path: Path) -> None:
    """A version trained with --text-field headline was checked on the 6 built-in sentences."""
    from training.cli import _parity_texts

    dev = tmp_path / "dev.csv"
    dev.write_text("headline,sentiment\nprofit fell,negative\nsales rose,positive\n")
    (tmp_path / "train_config.json").write_text(json.dumps(
        {"text_field": "headline", "data": {"dev": {"path": str(dev)}, "train": {"path": str(dev)}}}))
    assert _parity_texts(tmp_path) == ["profit fell", "sales rose"]


def test_train_sentiment_treats_sigterm_like_ctrl_c(settings, tiny_train: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM killed the run outright: no --resume line, a folder with nothing to resume kept."""
    import signal

    import training

    during = []
    monkeypatch.setattr(training, "train_sentiment",
                        lambda config, settings: during.append(signal.getsignal(signal.SIGTERM)))
    before = signal.getsignal(signal.SIGTERM)
    invoke("train", "sentiment", "--train", str(tiny_train))
    assert during and during[0] not in (signal.SIG_DFL, before)
    with pytest.raises(KeyboardInterrupt):
        during[0](signal.SIGTERM, None)
    assert signal.getsignal(signal.SIGTERM) == before


def test_train_embeddings_treats_sigterm_like_ctrl_c(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Training CLI QA: SIGTERM (kill, a scheduler's timeout) killed `train embeddings` outright: exit 143, no
    error line, and its /tmp/emb-* folder (the model, once saved) left behind. It now interrupts like Ctrl-C,
    as `train sentiment` does. The process's own SIGTERM fate is played here by ``Killed``, so that the old
    code fails the test instead of killing pytest."""
    import signal

    import training.embeddings as embeddings
    from shared.cli import main

    class Killed(Exception):
        pass

    def killed(_signum: int, _frame: object) -> None:
        raise Killed

    folders: list[Path] = []

    def fine_tune(kb: Path, pairs: object, config: object, out: Path, callback: object) -> dict:
        folders.append(out.parent)
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"saved")
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not end the run")

    monkeypatch.setattr(embeddings, "fine_tune", fine_tune)
    kb = tmp_path / "kb.jsonl"
    kb.write_text("".join(json.dumps({"id": f"e{i}", "question": f"how do I do thing {i}", "answer": f"like {i}"})
                          + "\n" for i in range(4)))
    previous = signal.signal(signal.SIGTERM, killed)
    try:
        with pytest.raises(SystemExit) as exit_:
            main(["train", "embeddings", "--kb", str(kb)])
        assert signal.getsignal(signal.SIGTERM) is killed  # the command's handler is undone
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "finpulse: error: aborted"
    assert folders and not folders[0].exists()
    assert not list(settings.registry_dir.glob("bank/embeddings/v*"))


def test_models_show_refuses_what_is_no_model(settings, tmp_path: Path) -> None:
    """Training CLI QA: `models show /tmp` printed a lineage of nulls and exited 0; a file was called "a
    directory outside the registry's versions"."""
    (tmp_path / "notes.txt").write_text("not a model")
    result = CliRunner().invoke(cli, ["models", "show", str(tmp_path)])
    assert result.exit_code != 0 and "is not a model directory" in str(result.exception)
    result = CliRunner().invoke(cli, ["models", "show", str(tmp_path / "notes.txt")])
    assert result.exit_code != 0 and "is a file, not a model directory" in str(result.exception)


@pytest.mark.parametrize("ref", ["/srv/finpulse/registry/news/sentiment", "news/sentiment/v1", "/sentiment"])
def test_models_rollback_of_a_path_asks_for_domain_and_task(settings, ref: str) -> None:
    """Training CLI QA: a task folder's path was "domain '' is not a valid name"."""
    result = CliRunner().invoke(cli, ["models", "rollback", ref])
    assert result.exit_code != 0 and str(result.exception) == f"rollback expects DOMAIN/TASK, got {ref!r}"


@pytest.mark.parametrize("item", ["=3", " =3"])
def test_set_without_a_key_is_refused(item: str) -> None:
    """Training CLI QA: `--set =3` failed as "unknown training option(s): " naming nothing."""
    from shared.errors import BadInput
    from training.cli import _parse_sets

    with pytest.raises(BadInput, match=r"--set expects KEY=VALUE, got"):
        _parse_sets((item,))


def test_models_promote_rollback_list_show(registered_tiny) -> None:
    reg, v1, v2 = registered_tiny
    assert "news/sentiment@v2 is production" in invoke("models", "promote", "news/sentiment@v2",
                                                       "--reason", "better").stdout
    assert reg.production("news", "sentiment").version == 2
    table = invoke("models", "list").stdout
    assert "news/sentiment@v2" in table.splitlines()[2] and "*" in table.splitlines()[2]
    assert "news/sentiment@v1 is production" in invoke("models", "rollback", "news/sentiment").stdout
    assert reg.production("news", "sentiment").version == 1
    shown = json.loads(invoke("models", "show", "news/sentiment@v2").stdout)
    assert shown["ref"] == "news/sentiment@v2"
    assert "gate" in shown  # lineage includes the gate report (None when promoted by hand)
    import shutil  # a version copied out of the registry is shown too, as predict reads it (training QA)

    copy = Path(shutil.copytree(v2.path, v2.path.parents[3] / "copied-v2"))
    out = json.loads(invoke("models", "show", str(copy)).stdout)
    assert out["ref"] is None and out["path"] == str(copy) and out["metrics"] == shown["metrics"]
    audit = invoke("audit", "--json").stdout  # issue 8: CLI promotions are audited too
    assert "model.promote" in audit and "model.rollback" in audit


def test_models_promote_and_rollback_warn_when_production_loses_its_int8_export(registered_tiny, caplog) -> None:
    """Lifecycle QA: promoting by hand a version without the int8 graph production had (a retrain's,
    one trained with `train sentiment`) silently moved the services on `auto` from ONNX int8 to torch."""
    reg, v1, v2 = registered_tiny
    (v1.path / "onnx").mkdir()
    (v1.path / "onnx" / "model.int8.onnx").write_bytes(b"int8")  # production served with int8
    out = invoke("models", "promote", "news/sentiment@v2")
    assert "news/sentiment@v2 is production" in out.stdout and "warning" not in out.stdout
    assert ("warning: news/sentiment@v2 has no ONNX int8 export: services on FINPULSE_RUNTIME=auto serve it "
            "with torch, not ONNX int8 as they served news/sentiment@v1; "
            "`finpulse export --model news/sentiment@v2 --int8` makes it") in out.stderr
    # printed once: a WARNING record of it would reach stderr again through Python's last-resort handler
    assert not [r for r in caplog.records if "has no ONNX" in r.getMessage() and r.levelno >= logging.WARNING]
    back = invoke("models", "rollback", "news/sentiment")  # back to the exported v1: nothing to say
    assert "news/sentiment@v1 is production" in back.stdout and back.stderr == ""
    (v1.path / "onnx" / "model.int8.onnx").unlink()  # neither has one: torch before and after
    assert invoke("models", "promote", "news/sentiment@v2").stderr == ""


def test_models_list_shows_a_self_evaluated_models_own_metric(settings, tmp_path: Path) -> None:
    from shared.registry import Registry

    (tmp_path / "recs").mkdir()
    Registry(settings.registry_dir).register("shop", "recommendations", tmp_path / "recs",
                                             metrics={"gate_metric": "ndcg@10", "ndcg@10": 0.2512})
    row = next(line for line in invoke("models", "list").stdout.splitlines() if "shop/recommendations@v1" in line)
    assert "ndcg@10=0.2512" in row and row.split()[1:3] == ["-", "-"]  # no accuracy, no F1
    listed = [json.loads(x) for x in invoke("models", "list", "--json").stdout.splitlines()]
    assert listed[0]["gate_metric"] == {"ndcg@10": 0.2512}


def test_models_list_and_show_survive_a_version_whose_json_files_hold_no_object(registered_tiny) -> None:
    """Regression (training CLI QA): a damaged metrics.json holding a JSON list (or a number in
    train_config.json) failed `models list` for the whole registry with "AttributeError: 'list'
    object has no attribute 'get'"; it reads as a missing one does, and the other versions list."""
    reg, v1, v2 = registered_tiny
    (v2.path / "metrics.json").write_text("[1, 2]\n")
    (v2.path / "train_config.json").write_text("7\n")
    table = invoke("models", "list").stdout.splitlines()
    assert [line.split()[0] for line in table[1:]] == ["news/sentiment@v1", "news/sentiment@v2"]
    assert table[2].split()[1:4] == ["-", "-", "-"]  # no accuracy, F1 or own metric
    listed = [json.loads(x) for x in invoke("models", "list", "--json").stdout.splitlines()]
    assert listed[1]["accuracy"] is None and listed[1]["method"] is None
    shown = json.loads(invoke("models", "show", "news/sentiment@v2").stdout)
    assert shown["ref"] == "news/sentiment@v2" and shown["method"] is None and shown["metrics"]["accuracy"] is None


def test_train_embeddings_missing_module_is_one_line(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "training.embeddings_cli", None)  # import now fails
    result = CliRunner().invoke(cli, ["train", "embeddings", "--kb", "x.jsonl"])
    assert result.exit_code != 0
    assert "train embeddings is unavailable" in result.output + result.stderr
    assert "sentiment" in CliRunner().invoke(cli, ["train", "--help"]).output


@pytest.mark.parametrize("args", [
    ["train", "sentiment", "--train", "{tmp}/missing.jsonl"],
    ["train", "sentiment", "--train", "{tmp}/bad.jsonl"],
    ["train", "sentiment", "--train", "{tmp}/one_each.jsonl"],  # no dev file, nothing to hold out
    ["predict", "sentiment", "--model", "news/none", "--input", "{tmp}/bad.jsonl", "--output", "{tmp}/o.jsonl"],
    # QA pass: each of these trained (minutes) or wrote a run folder before failing, or misnamed the fault
    ["train", "sentiment", "--train", "{tmp}/good.jsonl", "--domain", "../../evil"],
    ["train", "sentiment", "--train", "{tmp}/good.jsonl", "--domain", "a/b"],
    ["train", "sentiment", "--train", "{tmp}/good.jsonl", "--domain", ""],
    ["train", "sentiment", "--train", "{tmp}/good.jsonl", "--epochs", "0"],
    ["train", "sentiment", "--train", "{tmp}/empty.jsonl"],
    ["train", "sentiment", "--train", "{tmp}/good.jsonl", "--dev", "{tmp}/bad.jsonl"],
    ["predict", "sentiment", "--model", "news/none", "--input", "{tmp}", "--output", "{tmp}/o.jsonl"],
])
def test_bad_input_exits_nonzero_with_one_line(tmp_path: Path, home: Path, args: list[str]) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "ok", "label": "neutral"}\n{"text": "x", "label": "meh"}\n')
    (tmp_path / "one_each.jsonl").write_text("".join(f'{{"text": "t {lab}", "label": "{lab}"}}\n'
                                                     for lab in ("negative", "neutral", "positive")))
    (tmp_path / "good.jsonl").write_text("".join(f'{{"text": "t {lab} {i}", "label": "{lab}"}}\n'
                                                 for i in range(4) for lab in ("negative", "neutral", "positive")))
    (tmp_path / "empty.jsonl").write_text("")
    env = {**os.environ, "FINPULSE_HOME": str(home), "FINPULSE_DATA_DIR": str(tmp_path / "no-data")}
    proc = subprocess.run([sys.executable, "-m", "shared.cli", *[a.format(tmp=tmp_path) for a in args]],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("finpulse: error:"), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.jsonl").exists()
    # nothing written: no run folder under FINPULSE_HOME, none beside it (a '../' domain)
    assert not list(home.glob("runs/*")) and not list(tmp_path.rglob("*-sentiment-*"))
    if "--input" in args and args[args.index("--input") + 1] == "{tmp}":
        assert "is a directory" in lines[0]


def test_tune_ensemble_scores_averaged_probabilities(registered_tiny, tiny_dev: Path) -> None:
    result = invoke("tune", "sentiment", "--ensemble", "news/sentiment@v1,news/sentiment@v2",
                    "--dev", str(tiny_dev))
    report = json.loads(result.stdout)
    assert set(report["members"]) == {"news/sentiment@v1", "news/sentiment@v2"}
    # identical members: the ensemble scores exactly like each of them
    assert report["ensemble"]["accuracy"] == report["members"]["news/sentiment@v1"]["accuracy"]
    assert set(report["ensemble"]["by_agreement"]) == {"66", "100"}


def test_explain_tries_only_the_words_the_model_reads(tiny_sentiment_model: Path) -> None:
    """A 3,000-word text took 3,000 forward passes and listed words past the truncation point
    (positions 2995-2999) with weight 0.0."""
    from shared.runtimes import load_runtime
    from training.predict import occlusion

    rt = load_runtime(tiny_sentiment_model, "torch", max_length=32)
    calls: list[int] = []
    predict = rt.predict
    rt.predict = lambda texts, **kw: calls.append(len(texts)) or predict(texts, **kw)  # type: ignore[method-assign]
    text = "record profit and strong growth beat expectations " + "filler " * 3000
    result = predict([text])[0]
    out = occlusion(rt, text, result, top_k=5)
    assert len(calls) == 1 and 7 < calls[0] <= 30  # the words inside 30 word-piece tokens, not 3,007
    assert out and all(tok["position"] < calls[0] and tok["weight"] > 0 for tok in out)


WALK_HELP = """
import click
from click.testing import CliRunner
from shared.cli import cli

def paths(group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from paths(command, (*prefix, name))

walked = list(paths(cli))
assert ("train", "embeddings") in walked and len(walked) > 20, walked
for path in walked:
    result = CliRunner().invoke(cli, [*path, "-h"])
    assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output[-300:])
print(len(walked))
"""


def test_every_command_takes_dash_h():
    """`finpulse train embeddings -h` was "No such option '-h'" while every other command took it.
    In a fresh process: click caches a command's help option once built, so a test that ran a
    group on its own (only --help) earlier in this process would decide the answer."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", WALK_HELP], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 20
