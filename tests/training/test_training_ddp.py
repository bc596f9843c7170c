"""Data-parallel fine-tuning: two gloo ranks under torchrun on CPU, the way several GPUs run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_torchrun_ranks_share_each_epoch_and_rank0_registers_once(tiny_train: Path, tiny_dev: Path,
                                                                  tmp_path: Path) -> None:
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "shared.cli", "train", "sentiment", "--train", str(tiny_train), "--dev", str(tiny_dev),
           "--epochs", "1", "--batch-size", "6", "--max-length", "32", "--set", "device=cpu",
           "--set", "num_threads=1", "--set", "eval_every=1.0",
           "--set", "adversarial_eps=1"]  # FGM's second backward goes through DDP's all-reduce too
    out = subprocess.run(cmd, cwd=REPO, env={**os.environ, "FINPULSE_HOME": str(home)}, capture_output=True,
                         text=True, timeout=420)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = [line for line in out.stdout.splitlines() if line.strip()]
    assert printed == [str(home / "registry" / "news" / "sentiment" / "v1")]  # rank 0 alone registers
    version = Path(printed[0])
    assert json.loads((version / "train_config.json").read_text())["world_size"] == 2
    # 24 rows in batches of 6 are 4 batches a epoch: 2 per rank, so 2 synchronised optimiser steps
    history = json.loads((version / "metrics.json").read_text())["history"]
    assert [h["step"] for h in history] == [2]
    assert "2 data-parallel ranks" in out.stderr
    assert out.stderr.count("adversarial training (FGM)") == 1  # said by rank 0 alone
