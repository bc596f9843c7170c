"""Training-run safety (QA pass): a given run folder, a resume with nothing left, a refused resume.

Driven through ``python -m shared.cli`` as users run it: exit status, the one stderr line, and
what is (not) written under FINPULSE_HOME and in the folders named.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def finpulse(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FINPULSE_HOME": str(home), "FINPULSE_DATA_DIR": str(home / "no-data"),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def train_args(train: Path, dev: Path, *more: str) -> list[str]:
    """Two optimiser steps on the 24 tiny rows, one dev evaluation, no transfer stage."""
    return ["train", "sentiment", "--train", str(train), "--dev", str(dev), "--epochs", "1", "--batch-size", "12",
            "--max-length", "32", "--transfer-data", "none", "--set", "eval_every=1.0", *more]


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_given_run_dir_that_is_no_run_folder_is_refused_and_left_alone(home: Path, tmp_path: Path,
                                                                        tiny_train: Path, tiny_dev: Path,
                                                                        kind: str) -> None:
    """`--set run_dir=/etc` (any folder) wrote train_config.json, metrics.json, checkpoint.pt and tb/ into it."""
    target = tmp_path / "mine"
    if kind == "folder":
        target.mkdir()
        (target / "notes.txt").write_text("keep")
    else:
        target.write_text("keep")
    proc = finpulse(home, *train_args(tiny_train, tiny_dev, "--set", f"run_dir={target}"))
    assert proc.returncode == 2, proc.stderr
    reason = "is not a training run's folder (it holds notes.txt)" if kind == "folder" else "is not a folder"
    assert error_lines(proc) == [f"finpulse: error: run_dir {target} {reason}; name a new or empty folder"
                                 + (", or an earlier run's" if kind == "folder" else "") + " (nothing was written)"]
    if kind == "folder":
        assert [p.name for p in target.iterdir()] == ["notes.txt"] and (target / "notes.txt").read_text() == "keep"
    else:
        assert target.read_text() == "keep"
    assert not (home / "runs").exists() and not (home / "registry").exists()


def test_a_run_folder_of_its_own_is_accepted(tmp_path: Path) -> None:
    """What a run leaves in its folder (an interrupted one, its temp files, its stages) keeps it usable."""
    from shared.errors import BadInput
    from training.classification import check_run_dir

    run = tmp_path / "run"
    check_run_dir(run)  # new
    run.mkdir()
    check_run_dir(run)  # empty
    for name in ("checkpoint.pt", "train_config.json", "metrics.json", ".checkpoint.pt.k2j4.tmp"):
        (run / name).write_text("")
    for name in ("tb", "transfer", "adapted", ".train-x1y2"):
        (run / name).mkdir()
    check_run_dir(run)
    (run / "model.safetensors").write_text("")
    with pytest.raises(BadInput, match=r"it holds model.safetensors\)"):
        check_run_dir(run)


def test_resume_of_a_finished_run_registers_nothing_and_names_its_version(home: Path, tiny_train: Path,
                                                                         tiny_dev: Path) -> None:
    """`--resume` of a finished run's checkpoint.pt with the same --epochs trained 0 steps and
    registered a new, identical version (v11 = v10). Exit 2: the command registers and prints a
    version, and it has none to give; a script taking the last stdout line, or a retrain job gating
    what it got, must not take it for a new one."""
    first = finpulse(home, *train_args(tiny_train, tiny_dev))
    assert first.returncode == 0, first.stderr
    [run] = (home / "runs").iterdir()
    again = finpulse(home, *train_args(tiny_train, tiny_dev, "--resume", str(run / "checkpoint.pt")))
    assert again.returncode == 2, again.stderr
    assert error_lines(again) == [f"finpulse: error: --resume {run / 'checkpoint.pt'}: its run trained all 1 "
                                  "epoch(s) and registered news/sentiment@v1; nothing left to train, nothing "
                                  "registered (--epochs above 1 trains it further)"]
    assert again.stdout == ""
    assert sorted(p.name for p in (home / "registry" / "news" / "sentiment").glob("v*")) == ["v1"]
    assert [p.name for p in (home / "runs").iterdir()] == [run.name]  # no new run folder either
    # trained to its last epoch but stopped before registering (Ctrl-C while saving): that is left, and done
    shutil.rmtree(home / "registry" / "news" / "sentiment" / "v1")
    (run / "metrics.json").unlink()
    last = finpulse(home, *train_args(tiny_train, tiny_dev, "--resume", str(run / "checkpoint.pt")))
    assert last.returncode == 0, last.stderr
    assert last.stdout.strip().splitlines()[-1] == str(home / "registry" / "news" / "sentiment" / "v2")


def test_a_refused_resume_is_its_only_message(home: Path, tiny_train: Path, tiny_dev: Path) -> None:
    """A --resume refused for a different method first printed "[train] run stopped; continue it with
    --resume X", the very command just refused, after loading the data and the model."""
    import torch

    run = home / "runs" / "news-sentiment-20260101-000000"  # interrupted: no metrics.json
    run.mkdir(parents=True)
    torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "step": 2, "epoch": 1, "best_f1": 0.5,
                "history": [], "config": {"method": "full", "labels": ["negative", "neutral", "positive"]},
                "data": {}}, run / "checkpoint.pt")
    proc = finpulse(home, *train_args(tiny_train, tiny_dev, "--epochs", "2", "--method", "lora",
                                      "--resume", str(run / "checkpoint.pt")))
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [f"finpulse: error: {run / 'checkpoint.pt'} was trained with method='full'; "
                                 "resume with the same options"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]
