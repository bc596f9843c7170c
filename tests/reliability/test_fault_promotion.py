"""Crash during a promotion or registration: the registry still points at a complete version.

A child process promotes back and forth (or registers new versions) in a loop and is
killed with SIGKILL at random moments; after each kill the ``production`` pointer must be
valid JSON naming a version whose directory holds the whole model.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import FULL, REPO, record_line

from shared.registry import Registry

pytestmark = pytest.mark.reliability
KILLS = 25 if FULL else 6

CHILD = r"""
import sys
from shared.registry import Registry
reg = Registry(sys.argv[1])
mode = sys.argv[2]
i = 0
print("ready", flush=True)
while True:
    i += 1
    if mode == "promote":
        reg.promote(f"d/t@v{1 + i % 2}", reason=f"flip {i}")
    else:
        reg.register("d", "t", sys.argv[3], move=False, metrics={"i": i})
"""


def fake_model(path: Path, size: int = 256 * 1024) -> Path:
    """A version-shaped directory; the weights file is big enough to be caught mid-copy."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (path / "model.safetensors").write_bytes(b"\0" * size)
    (path / "tokenizer.json").write_text("{}")
    return path


def complete(version_dir: Path) -> bool:
    return all((version_dir / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json")) \
        and (version_dir / "model.safetensors").stat().st_size == 256 * 1024


def kill_loop(root: Path, mode: str, src: Path, kills: int) -> int:
    """Start the child, SIGKILL it after a random delay, check the registry; repeat."""
    rng = random.Random(9)
    survived = 0
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode, str(src)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()[-2000:]
        time.sleep(rng.uniform(0.01, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        reg = Registry(root)
        pointer = json.loads((root / "d" / "t" / "production.json").read_text())  # valid JSON
        prod = reg.resolve("d/t@production")
        assert prod.name == f"v{pointer['version']}"
        assert complete(prod), f"production {prod} is incomplete"
        for mv in reg.versions("d", "t"):  # a visible vN is always whole
            assert complete(mv.path), f"{mv.path} visible but incomplete"
        survived += 1
    return survived


@pytest.mark.parametrize("mode", ["promote", "register"])
def test_kill_during_promotion_or_registration(tmp_path: Path, mode: str) -> None:
    src = fake_model(tmp_path / "src")
    reg = Registry(tmp_path / "registry")
    reg.register("d", "t", src, move=False)
    reg.register("d", "t", src, move=False)
    reg.promote("d/t@v1")
    survived = kill_loop(tmp_path / "registry", mode, src, KILLS)
    record_line("fault", f"SIGKILL during registry {mode}", injected=KILLS, survived=survived, lost=0)
    assert survived == KILLS


def test_promote_interrupted_before_pointer_moves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception between writing the new pointer's temp file and the rename leaves v1 live."""
    import shared.io

    src = fake_model(tmp_path / "src")
    reg = Registry(tmp_path / "registry")
    reg.register("d", "t", src, move=False)
    reg.register("d", "t", src, move=False)
    reg.promote("d/t@v1")

    def crash(*_a: object) -> None:
        raise KeyboardInterrupt("simulated crash before the pointer moves")

    monkeypatch.setattr(shared.io.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        reg.promote("d/t@v2")
    monkeypatch.undo()
    assert reg.resolve("d/t@production").name == "v1"
    leftovers = [p.name for p in (tmp_path / "registry" / "d" / "t").iterdir() if p.name.startswith(".")]
    assert not [n for n in leftovers if n.endswith(".json")], f"temp files left behind: {leftovers}"
