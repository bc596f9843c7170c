"""``recs recommend`` reads its users file as every input is read, and refuses an output it
would have to replace the input with, or could not create, before it loads the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from data_connectors.base import BadRow
from services.recommendations.cli import recs
from shared.errors import BadInput


def recommend(model: Path, users: Path, output: Path) -> tuple[int, BaseException | None]:
    res = CliRunner().invoke(recs, ["recommend", "--model", str(model), "--users", str(users),
                                    "--output", str(output), "--k", "3"])
    return res.exit_code, res.exception


def test_a_bom_is_no_part_of_the_first_user_id(tmp_path: Path, trained_dir: Path) -> None:
    """It made the first user ``"\\ufeffu1"``, unknown, with popularity items."""
    users = tmp_path / "u.txt"
    users.write_bytes(b"\xef\xbb\xbfu1\r\nu2\r\nu3\r\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("u1\nu2\nu3\n")
    code, exc = recommend(trained_dir, users, tmp_path / "bom.jsonl")
    assert code == 0, exc
    assert recommend(trained_dir, plain, tmp_path / "plain.jsonl")[0] == 0
    rows = [json.loads(line) for line in (tmp_path / "bom.jsonl").read_text().splitlines()]
    assert [r["user_id"] for r in rows] == ["u1", "u2", "u3"]
    assert (tmp_path / "bom.jsonl").read_text() == (tmp_path / "plain.jsonl").read_text()


def test_a_users_file_that_is_not_utf8_names_the_line(tmp_path: Path, trained_dir: Path) -> None:
    """It said ``cannot read user ids ('utf-8' codec can't decode byte 0xe9 in position 4 ...)``."""
    users = tmp_path / "u.txt"
    users.write_bytes(b"u1\nus\xe9\n")
    code, exc = recommend(trained_dir, users, tmp_path / "out.jsonl")
    assert code != 0 and isinstance(exc, BadRow)
    assert str(exc) == f"{users}:2: not UTF-8 (invalid continuation byte at byte 3 of the line)"
    assert not (tmp_path / "out.jsonl").exists()


def test_the_output_is_refused_when_it_is_the_users_file(tmp_path: Path, trained_dir: Path) -> None:
    """It exited 0 and replaced the user ids with the recommendations."""
    users = tmp_path / "users.txt"
    users.write_text("u1\nu2\n")
    link = tmp_path / "link.txt"
    link.symlink_to(users)
    for output in (users, link):
        code, exc = recommend(trained_dir, users, output)
        assert code != 0 and isinstance(exc, BadInput)
        assert str(exc).startswith(f"--output {output} is the input file {users}")
    assert users.read_text() == "u1\nu2\n"


def test_an_output_below_a_regular_file_names_that_file(tmp_path: Path, trained_dir: Path) -> None:
    """It said ``cannot write o/afile/out.jsonl: File exists``."""
    users = tmp_path / "u.txt"
    users.write_text("u1\n")
    afile = tmp_path / "o" / "afile"
    afile.parent.mkdir()
    afile.write_text("keep\n")
    code, exc = recommend(trained_dir, users, afile / "out.jsonl")
    assert code != 0 and str(exc) == f"cannot write {afile / 'out.jsonl'}: {afile} is not a directory"
    assert afile.read_text() == "keep\n"


@pytest.mark.usefixtures("settings")
def test_recs_train_to_a_folder_below_a_file_fails_before_reading(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep\n")
    res = CliRunner().invoke(recs, ["train", "--interactions", str(afile), "--output", str(afile / "model")])
    assert res.exit_code != 0 and str(res.exception) == f"cannot write {afile / 'model'}: {afile} is not a directory"


def test_a_lone_surrogate_escape_in_jsonl_is_a_bad_row_naming_file_and_line(tmp_path: Path) -> None:
    """i18n QA: ``{"user_id": "a\\ud800"}`` crashed `recs train` (also with --skip-bad) with an
    encode error naming no file or line, and a retrain job was accepted, then failed."""
    from services.recommendations.retraining import check_request

    data = tmp_path / "r.jsonl"
    data.write_text('{"user_id": "a\\ud800", "item_id": "m1"}\n{"user_id": "b", "item_id": "m1"}\n'
                    '{"user_id": "c", "item_id": "m2"}\n{"user_id": "\\ud83d\\udc4d", "item_id": "m2"}\n')
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m")])
    assert res.exit_code != 0 and isinstance(res.exception, BadRow), res.output
    assert str(res.exception).startswith(f"{data}:1: holds a lone UTF-16 surrogate")
    assert not (tmp_path / "m").exists()
    with pytest.raises(BadRow, match=r"r\.jsonl:1: "):
        check_request({"data": str(data)})  # the retrain is refused before it is queued
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m"),
                                    "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert f"{data}:1: skipped: holds a lone UTF-16 surrogate" in res.stderr, res.stderr
