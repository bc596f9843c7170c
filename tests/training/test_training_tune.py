"""``finpulse tune sentiment``: Optuna trials on a scratch home, one shared transfer stage."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def test_search_shares_one_transfer_stage_pins_set_options_and_leaves_no_scratch(
        settings, tiny_train: Path, tiny_dev: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from data_connectors.base import file_sha256
    from shared.registry import Registry
    from training import classification, tuning

    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    prefix = f"finpulse-tune-{socket.gethostname()}-"
    killed = scratch_root / f"{prefix}{int(gone.stdout)}-x1"  # a search killed outright left it
    live = scratch_root / f"{prefix}{os.getpid()}-x2"  # a search still running owns it
    for left in (killed, live):
        (left / "trial-0").mkdir(parents=True)
    tweets = tmp_path / "tweets.jsonl"
    tweets.write_text(tiny_train.read_text())  # any labelled file of the same labels will do
    fixed = {"epochs": 1, "batch_size": 12, "eval_every": 1.0, "max_length": 32, "transfer_data": str(tweets)}
    checkpoints: list[str] = []
    monkeypatch.setattr(classification, "save_checkpoint", lambda _state, path: checkpoints.append(str(path)))

    best = tuning.search(settings, str(tiny_train), str(tiny_dev), trials=2, fixed=fixed)

    assert best["trials"] == 2 and 0 <= best["macro_f1"] <= 1
    assert set(best["params"]) == {"lr", "warmup_ratio"}  # pinned options left the search space
    assert best["fixed"] == fixed
    assert best["transfer"]["data"]["sha256"] == file_sha256(tweets)
    # trials keep no resumable state: each epoch wrote ~430 MB into a scratch removed at the end,
    # and an interrupted trial said "continue it with --resume" of a file about to go
    assert checkpoints == []
    err = capsys.readouterr().err
    assert err.count("transfer stage: 1 epoch(s)") == 1  # once, not once per trial
    assert err.count("model: transfer/model, full") == 2  # both trials started from the transfer stage's encoder
    saved = json.loads((settings.home / "tuning" / "news-sentiment-best.json").read_text())
    assert saved == json.loads(json.dumps(best))
    # this search's trial models and checkpoints are gone, and so is the killed search's scratch
    assert list(scratch_root.glob("finpulse-tune-*")) == [live]
    assert Registry(settings.registry_dir).versions("news", "sentiment") == []  # the real registry untouched


def test_sigterm_mid_search_still_deletes_the_scratch_trials(home: Path, tiny_train: Path, tiny_dev: Path,
                                                              tmp_path: Path) -> None:
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    env = {**os.environ, "FINPULSE_HOME": str(home), "TMPDIR": str(scratch_root)}
    cmd = [sys.executable, "-m", "shared.cli", "tune", "sentiment", "--train", str(tiny_train), "--dev",
           str(tiny_dev), "--trials", "50", "--set", "max_length=32", "--set", "transfer_data=null"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        seen = []
        for line in proc.stderr:  # the first trial is training: its scratch home exists
            seen.append(line)
            if line.startswith("[train] data:"):
                break
        assert list(scratch_root.glob("finpulse-tune-*")), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
    assert rest.strip().splitlines()[-1] == "finpulse: error: aborted"  # as after Ctrl-C
    assert "Traceback" not in rest and "failed with" not in rest  # Optuna's report of the stopped trial
    assert not list(scratch_root.glob("finpulse-tune-*"))
    assert not (home / "tuning").exists()  # nothing claims to be a best configuration


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "epochs=abc"], "training option epochs='abc' is invalid"),
    (["--set", "nope=1"], "unknown training option(s): nope"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--trial-budget", "0"], "--trial-budget must be more than 0 minutes, got 0.0"),  # was time_budget_min=0.0
    # ops QA: these failed inside trial 0, under Optuna's "Trial 0 failed" warning and its traceback
    (["--domain", "../x"], "domain '../x' is not a valid name"),
    (["--train", "nonexist.jsonl"], "nonexist.jsonl: no such file"),
])
def test_bad_tune_options_fail_in_one_line_before_training(settings, tiny_train: Path, args: list[str],
                                                           message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from shared.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["tune", "sentiment", "--train", str(tiny_train), *args])
    assert exit_.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finpulse: error:") and message in lines[0]
    assert not (settings.home / "tuning").exists()


@pytest.mark.parametrize("budget", [0.0, -1.0, float("nan")])
def test_a_trial_budget_not_above_zero_is_named_as_the_option_given(settings, tiny_train: Path, budget: float) -> None:
    """Training CLI QA: `--trial-budget 0` said "training option time_budget_min=0.0 is invalid", an
    option the command does not have."""
    from shared.errors import BadInput
    from training import tuning

    with pytest.raises(BadInput, match=r"^--trial-budget must be more than 0 minutes"):
        tuning.search(settings, str(tiny_train), None, trials=1, trial_budget_min=budget)


def test_ensemble_checks_every_reference_before_loading_a_model(registered_tiny, tiny_dev: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Training CLI QA: `--ensemble news/sentiment@v1,news/sentiment@v9` loaded v1 before finding that v9
    does not exist (a minute per member with real models)."""
    from shared import runtimes
    from shared.errors import ModelNotFound
    from training import tuning

    def load_runtime(*_args: object, **_kw: object) -> None:
        raise AssertionError("a model was loaded before every reference was resolved")

    monkeypatch.setattr(runtimes, "load_runtime", load_runtime)
    reg = registered_tiny[0]
    with pytest.raises(ModelNotFound, match="has no version 'v9'"):
        tuning.score_ensemble(reg, ["news/sentiment@v1", "news/sentiment@v9"], str(tiny_dev))
