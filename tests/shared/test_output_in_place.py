"""``--output /dev/stdout`` and its kin are written into, never renamed over: with stdout
redirected to a file, /dev/stdout resolves to that file, and the atomic temp-file + rename
used to replace it, wiping what the shell (``>>``) or other writers had put there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import BadInput
from shared.io import check_writable, in_place_target, write_jsonl


def test_the_kind_of_output_is_decided_on_the_path_as_given(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("old\n")
    regular = tmp_path / "out.jsonl"
    regular.write_text("x\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(regular)
    to_stdout = tmp_path / "to-stdout"
    to_stdout.symlink_to("/dev/stdout")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with open(log, "a") as fh:
        fd = fh.fileno()
        for alias in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}", f"/proc/{os.getpid()}/fd/{fd}"):
            assert in_place_target(alias) == fd, alias
        fd_link = tmp_path / "fd-link"
        fd_link.symlink_to(f"/dev/fd/{fd}")
        assert in_place_target(fd_link) == fd
    assert in_place_target(to_stdout) == 1 and in_place_target("/dev/stdout") == 1
    assert in_place_target("/dev/null") == Path("/dev/null") and in_place_target(fifo) == fifo
    # ordinary files, links to them and new names: replaced or created atomically, as before
    assert in_place_target(regular) is None and in_place_target(link) is None
    assert in_place_target(tmp_path / "new.jsonl") is None


@pytest.mark.parametrize("open_mode", ["a", "w"])  # `>> log` and `> log`
def test_rows_written_through_a_descriptor_keep_what_the_file_held(tmp_path: Path, open_mode: str) -> None:
    log = tmp_path / "log.txt"
    log.write_text("old log line\n")
    inode = log.stat().st_ino
    with open(log, open_mode) as fh:  # `> log` truncated it already: the shell's doing, not ours
        fh.write("BEFORE\n")
        fh.flush()
        write_jsonl(f"/dev/fd/{fh.fileno()}", [{"a": 1}, {"b": 2}])
        fh.write("AFTER\n")  # lands after the rows: the descriptor's offset moved with them
    before = "old log line\n" if open_mode == "a" else ""
    assert log.read_text() == before + 'BEFORE\n{"a": 1}\n{"b": 2}\nAFTER\n'
    assert log.stat().st_ino == inode  # the same file, not one renamed over it


def test_another_process_s_descriptor_is_appended_to(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("theirs\n")
    with open(log, "a") as fh:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=fh)
    try:
        alias = f"/proc/{proc.pid}/fd/1"
        assert in_place_target(alias) == Path(alias)
        check_writable(alias)
        write_jsonl(alias, [{"c": 3}])
    finally:
        proc.kill()
        proc.wait()
    assert log.read_text() == 'theirs\n{"c": 3}\n'


def test_a_descriptor_that_cannot_take_the_rows_fails_before_any_work(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("x\n")
    with open(src) as fh, pytest.raises(BadInput, match="reading only"):
        check_writable(f"/proc/self/fd/{fh.fileno()}")
    assert src.read_text() == "x\n"

