"""Outputs that cannot be written fail before the work, as one line naming the output (not a
hidden temp path), and a file output never replaces the command's own input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.errors import BadInput
from shared.io import atomic_dir, atomic_write, check_replaceable, check_writable

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "interactions.tsv"


def finpulse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Run the console entry point; its exit code and stderr lines."""
    from shared.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return int(exit_.value.code or 0), capsys.readouterr().err.strip().splitlines()


def test_a_directory_output_where_nothing_can_be_created_is_refused_up_front(tmp_path: Path) -> None:
    """``/proc/x`` passed every check, then the swap's temp folder failed after the fit with
    ``[Errno 2] No such file or directory: '/proc/.x.pkwq9e9f'``."""
    for out in ("/proc/finpulse-model", "/proc/finpulse-new/model"):
        with pytest.raises(BadInput, match=rf"^cannot write {out}: No such file or directory$"):
            check_replaceable(out, "ids.json")
        with pytest.raises(BadInput, match=rf"^cannot write {out}: "), atomic_dir(out):
            pass
    ok = tmp_path / "out"
    assert check_replaceable(ok, "ids.json") == ok and os.listdir(tmp_path) == []  # the probe is gone


def test_an_output_below_a_regular_file_names_that_file(tmp_path: Path) -> None:
    """``o/afile/out.jsonl`` said "File exists"; the cause is that ``o/afile`` is no folder."""
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    says = rf"^cannot write .*: {afile} is not a directory$"
    for out in (afile / "out.jsonl", afile / "deeper" / "out.jsonl"):
        with pytest.raises(BadInput, match=says):
            check_writable(out)
        with pytest.raises(BadInput, match=says), atomic_write(out) as fh:
            fh.write("never\n")
    with pytest.raises(BadInput, match=says):
        check_replaceable(afile / "model", "ids.json")
    assert afile.read_text() == "x\n"


def test_a_file_output_that_is_the_input_is_refused(tmp_path: Path) -> None:
    """``--input pin.jsonl --output pin.jsonl`` exited 0 and replaced the input with the results."""
    pin = tmp_path / "pin.jsonl"
    pin.write_text('{"text": "a"}\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to(pin)
    for out, given in ((pin, pin), (link, pin), (pin, link), (Path(os.path.relpath(pin)), pin)):
        with pytest.raises(BadInput, match=r"^--output .* is the input file .*; name another file$"):
            check_writable(out, [tmp_path / "other.jsonl", given])
    check_writable(tmp_path / "out.jsonl", [pin])  # another file, new or not, is fine
    (tmp_path / "old.jsonl").write_text("{}\n")
    check_writable(tmp_path / "old.jsonl", [pin])
    check_writable("/dev/stdout", ["/dev/stdin", pin])  # written into, never renamed over


@pytest.mark.usefixtures("settings")
def test_recs_train_to_an_unwritable_folder_fails_before_the_fit(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = finpulse(["recs", "train", "--interactions", str(SAMPLE), "--output", "/proc/recsmodel"], capsys)
    assert (code, err) == (2, ["finpulse: error: cannot write /proc/recsmodel: No such file or directory"])


@pytest.mark.usefixtures("settings")
def test_kb_build_to_an_unwritable_folder_fails_before_embedding(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    kb = tmp_path / "kb.jsonl"
    kb.write_text('{"id": "a", "question": "How do I reset my PIN?", "answer": "In the app."}\n')
    code, err = finpulse(["kb", "build", "--kb", str(kb), "--output", "/proc/kbidx"], capsys)
    assert (code, err) == (2, ["finpulse: error: cannot write /proc/kbidx: No such file or directory"])


@pytest.mark.usefixtures("settings")
def test_kb_build_from_a_folder_says_it_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It said "no such knowledge-base file" of a folder that is there."""
    code, err = finpulse(["kb", "build", "--kb", str(tmp_path), "--output", str(tmp_path / "idx")], capsys)
    assert (code, err) == (2, [f"finpulse: error: {tmp_path}: is a directory, not a file"])
