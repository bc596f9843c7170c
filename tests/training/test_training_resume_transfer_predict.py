"""QA defects: a --resume file that is no checkpoint, the transfer stage's hidden 0700 model,
run folders shared by runs started in the same second, lone surrogates in `predict sentiment`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.cli import cli
from shared.errors import BadInput
from training import SentimentTrainConfig, train_sentiment

REPO = Path(__file__).resolve().parents[2]


def _not_checkpoints(tmp_path: Path) -> list[Path]:
    """Files a --resume may wrongly name: text, an empty zip, a torch file of other content."""
    import torch

    empty_zip = tmp_path / "empty.pt"
    with zipfile.ZipFile(empty_zip, "w"):
        pass
    state_dict = tmp_path / "pytorch_model.bin"
    torch.save({"bert.weight": torch.zeros(2)}, state_dict)
    truncated = tmp_path / "truncated.pt"
    good = tmp_path / "good.pt"
    torch.save(_checkpoint_like(torch), good)
    truncated.write_bytes(good.read_bytes()[:200])
    return [Path("/etc/passwd"), empty_zip, state_dict, truncated]


def _checkpoint_like(torch) -> dict:  # noqa: ANN001
    return {"model": {"w": torch.zeros(2)}, "optimizer": {"state": {}, "param_groups": []}, "scheduler": {},
            "step": 2, "epoch": 1, "best_f1": 0.5, "history": [], "config": {"method": "full"}}


def test_check_checkpoint_tells_a_checkpoint_from_other_files(tmp_path: Path) -> None:
    import torch

    from training.checkpoint import check_checkpoint

    for path in _not_checkpoints(tmp_path):
        with pytest.raises(BadInput, match=f"--resume {path} is not a FinPulse training checkpoint"):
            check_checkpoint(path)
    good = tmp_path / "checkpoint.pt"
    torch.save(_checkpoint_like(torch), good)
    assert check_checkpoint(good) == good
    with pytest.raises(BadInput, match="no such checkpoint file"):
        check_checkpoint(tmp_path / "nope.pt")


class _DiskFull:
    """Pickled halfway through a checkpoint, as a full disk stops torch.save."""

    def __reduce__(self) -> tuple:
        raise OSError(28, "No space left on device")


def test_a_checkpoint_that_cannot_be_written_keeps_the_previous_one(tmp_path: Path) -> None:
    """Ops QA: the trainer saved checkpoint.pt in place; a kill or a full disk mid-save left a
    truncated file that --resume refused (the whole run lost), with "unexpected pos ..." as the error."""
    import torch

    from shared.errors import FinPulseError
    from training.checkpoint import check_checkpoint, save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(_checkpoint_like(torch), path)
    before = path.read_bytes()
    with pytest.raises(FinPulseError, match=rf"cannot write the checkpoint {path} \(\d+ MB free on its disk; the "
                                            r"previous one, if any, is kept\): .*No space left on device"):
        save_checkpoint({**_checkpoint_like(torch), "history": [_DiskFull()]}, path)
    assert path.read_bytes() == before and check_checkpoint(path) == path
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_an_interrupt_mid_save_stays_an_interrupt_and_keeps_the_previous_checkpoint(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """Ops QA: SIGTERM during torch.save came out of torch's writer as RuntimeError "unexpected pos",
    which read as a failed write ("cannot write the checkpoint") instead of the interrupt it was."""
    import torch

    from training.checkpoint import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(_checkpoint_like(torch), path)
    before = path.read_bytes()

    def interrupted_save(_state, fh) -> None:  # as torch's zip writer reports a signal mid-write
        fh.write(b"PK\x03\x04 part of it")
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 137831488") from None

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_cli_resume_of_a_file_that_is_no_checkpoint_fails_before_the_model_loads(settings, tiny_train: Path) -> None:
    """It loaded the model, then died in torch.load: `finpulse: error: IndexError: list index out of range`, exit 1."""
    env = {**os.environ, "FINPULSE_HOME": str(settings.home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "train", "sentiment", "--train", str(tiny_train),
                           "--epochs", "1", "--transfer-data", "none", "--resume", "/etc/passwd"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        "finpulse: error: --resume /etc/passwd is not a FinPulse training checkpoint (a run folder's checkpoint.pt)"
    assert "model:" not in proc.stderr and "IndexError" not in proc.stderr  # nothing was loaded
    assert not (settings.home / "runs").exists()


def _modes(root: Path) -> set[tuple[str, int]]:
    return {("dir" if p.is_dir() else "file", stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")]}


def test_the_transfer_stage_model_gets_a_lasting_readable_folder(settings, tiny_train: Path, tiny_dev: Path,
                                                                 fast_options: dict,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """It stayed in the stage's temp folder (`.../runs/<run>-transfer/.train-ruyim_m8`, drwx------,
    model.safetensors -rw-------), which the lineage and the progress named."""
    from shared.io import default_mode

    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), transfer_data=str(tiny_train),
                               **fast_options)
    mv = train_sentiment(cfg, settings)
    transfer = Path(mv.train_config()["transfer"]["path"])
    runs = settings.home / "runs"
    assert transfer.name == "model" and transfer.parent.parent == runs and transfer.parent.name.endswith("-transfer")
    assert (transfer / "model.safetensors").is_file() and (transfer / "config.json").is_file()
    assert _modes(transfer) == {("dir", default_mode(directory=True)), ("file", default_mode())}
    assert not list(transfer.parent.glob(".train-*"))  # no hidden temp folder left behind
    assert mv.train_config()["base_model_path"] == str(transfer)  # the main stage started from it
    err = capsys.readouterr().err
    assert f"model: {transfer.parent.name}/model, full" in err and ".train-" not in err


def test_runs_started_in_the_same_second_get_folders_of_their_own(settings, tiny_train: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two retrain jobs at once named the same `<domain>-<task>-<time>` folder and wrote into it together."""
    import training.classification as classification

    monkeypatch.setattr(classification.time, "strftime", lambda fmt: "20260101-120000")  # one second
    cfg = SentimentTrainConfig(train_path=str(tiny_train))
    claimed = [classification._claim_run_dir(cfg, settings, "-transfer") for _ in range(3)]
    runs = settings.home / "runs"
    assert claimed == [(runs / "news-sentiment-20260101-120000-transfer", True),
                       (runs / "news-sentiment-20260101-120000-2-transfer", True),
                       (runs / "news-sentiment-20260101-120000-3-transfer", True)]
    assert all(folder.is_dir() for folder, _ in claimed)
    given = cfg.replace(run_dir=str(claimed[0][0]))
    assert classification._claim_run_dir(given, settings, "") == (claimed[0][0], False)  # used as it is


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory, tiny_sentiment_model: Path) -> Path:
    """The tiny model with its onnx-int8 export."""
    import shutil

    from training.export import export_onnx

    model = Path(shutil.copytree(tiny_sentiment_model, tmp_path_factory.mktemp("int8") / "model"))
    export_onnx(model, int8=True)
    return model


@pytest.mark.parametrize("runtime", ["torch", "onnx-int8"])
def test_predict_scores_a_text_with_a_lone_surrogate(settings, int8_model: Path, tmp_path: Path,
                                                     runtime: str) -> None:
    """`printf '{"text": "x\\\\ud800y"}'` failed after the model loaded: `TypeError: TextEncodeInput must be
    Union[...]` with both runtimes; the row is scored instead, as a NUL already was."""
    src, out = tmp_path / "sur.jsonl", tmp_path / "out.jsonl"  # a NUL and a whole pair were fine already
    src.write_text('{"id": 0, "text": "profit fell sharply"}\n{"id": 1, "text": "x\\ud800y", "note": "\\udfff"}\n'
                   '{"id": 2, "text": "nul \\u0000 here"}\n{"id": 3, "text": "pair \\ud83d\\ude00"}\n')
    result = CliRunner().invoke(cli, ["predict", "sentiment", "--model", str(int8_model), "--input", str(src),
                                      "--output", str(out), "--runtime", runtime], catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert rows[1]["text"] == "x\ufffdy" and rows[1]["note"] == "\ufffd" and rows[3]["text"] == "pair \U0001f600"
    assert all(r["label"] in r["scores"] and abs(sum(r["scores"].values()) - 1) < 1e-4 for r in rows)
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: {src}: 1 row(s) held lone UTF-16 surrogates (JSON \\ud800-\\udfff escapes that "
                       "are no character; first on line 2): replaced with U+FFFD"]
