"""``finpulse recs`` train / recommend / eval round trips on the repository's sample file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from services.recommendations.cli import recs
from tests.recommendations.conftest import SAMPLE


def seen_by_user(path: Path) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for line in path.read_text().splitlines()[1:]:
        user, item, *_ = line.split("\t")
        seen.setdefault(user, set()).add(item)
    return seen


def test_train_then_recommend_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    model = tmp_path / "model"
    res = runner.invoke(recs, ["train", "--interactions", str(SAMPLE), "--output", str(model)])
    assert res.exit_code == 0, res.output
    assert (model / "ids.json").is_file() and (model / "train_config.json").is_file()
    users = tmp_path / "users.txt"
    users.write_text("u1\nu7\nsomeone-new\n")
    out = tmp_path / "recs.jsonl"
    res = runner.invoke(recs, ["recommend", "--model", str(model), "--users", str(users),
                               "--output", str(out), "--k", "5"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["user_id"] for r in rows] == ["u1", "u7", "someone-new"]
    seen = seen_by_user(SAMPLE)
    for row in rows:
        assert len(row["items"]) == 5
        assert all(isinstance(i, str) for i in row["items"])
        assert not set(row["items"]) & seen.get(row["user_id"], set())


def test_sequence_answer_on_sample(tmp_path: Path) -> None:
    """Sample users walk forward through m1..m60: the next items should come next."""
    from services.recommendations.pipeline import TrainedModel, train_from_files

    path, _ = train_from_files(SAMPLE, tmp_path / "m")
    model = TrainedModel(path)
    last = int(model.item_ids[model.history("u1").items[-1]][1:])
    top = [int(i[1:]) for i in model.recommend(["u1"], 3)[0]]
    assert any(0 < t - last <= 3 for t in top), (last, top)


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    data = tmp_path / "inter.tsv"
    data.write_text("user_id\titem_id\trating\ttimestamp\n"
                    "u1\ti1\t5\t100\n"
                    "u1\t\t4\t101\n"  # line 3: no item
                    "u2\ti1\tfive\t102\n"  # line 4: bad rating
                    "u2\ti2\t3\t103\n")
    strict = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m")])
    assert strict.exit_code != 0 and str(strict.exception) == f"{data}:3: missing item_id"  # finpulse prints it
    assert not (tmp_path / "m").exists()  # a bad row fails the command, as train sentiment's do
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(tmp_path / "m"),
                                    "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert f"{data}:3: skipped: missing item_id" in res.output
    assert f"{data}:4: skipped" in res.output


def test_recommend_with_a_missing_model_fails_cleanly(tmp_path: Path) -> None:
    users = tmp_path / "u.txt"
    users.write_text("u1\n")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(recs, ["recommend", "--model", str(tmp_path / "nope"), "--users", str(users),
                                    "--output", str(out)])
    assert res.exit_code != 0
    assert not out.exists()


def test_eval_reports_both_rows(tmp_path: Path) -> None:
    res = CliRunner().invoke(recs, ["eval", "--interactions", str(SAMPLE)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out["finpulse"]) >= {"hr", "ndcg", "coverage"}
    assert 0 <= out["implicit_als"]["hr"] <= 1
    assert out["finpulse"]["users"] == 40


def test_recommend_takes_a_registry_ref(settings, production, tmp_path: Path) -> None:
    users = tmp_path / "u.txt"
    users.write_text("u1\n")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(recs, ["recommend", "--model", f"{production.domain}/{production.task}@production",
                                    "--users", str(users), "--output", str(out), "--k", "3"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(out.read_text())["items"]) == 3
    res = CliRunner().invoke(recs, ["recommend", "--model", "nowhere/recommendations", "--users", str(users),
                                    "--output", str(tmp_path / "x.jsonl")])
    assert res.exit_code != 0 and "neither a model directory nor a registered version" in str(res.exception)


def test_eval_fails_on_a_bad_row_unless_skip_bad(tmp_path: Path) -> None:
    data = tmp_path / "inter.tsv"
    data.write_text(SAMPLE.read_text() + "u1\ti1\tfive\t100\n")
    line = len(data.read_text().splitlines())
    strict = CliRunner().invoke(recs, ["eval", "--interactions", str(data), "--no-baseline"])
    assert strict.exit_code != 0 and str(strict.exception) == f"{data}:{line}: rating 'five' is not a number"
    res = CliRunner().invoke(recs, ["eval", "--interactions", str(data), "--no-baseline", "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert f"{data}:{line}: skipped" in res.output


def test_train_refuses_an_items_file_without_usable_items(tmp_path: Path) -> None:
    """An --items file that yields nothing would silently drop the content features the user asked for."""
    for name, body in (("empty.jsonl", ""), ("other.csv", "name,title\nm1,One\n")):
        items = tmp_path / name
        items.write_text(body)
        out = tmp_path / f"m-{name}"
        res = CliRunner().invoke(recs, ["train", "--interactions", str(SAMPLE), "--output", str(out),
                                        "--items", str(items)])
        assert res.exit_code != 0 and "no usable items" in str(res.exception), res.output
        assert not out.exists()


def test_train_never_deletes_what_the_output_folder_held(tmp_path: Path) -> None:
    """--output over a folder swapped it away whole: the interactions file in it and the user's
    other files were gone, and the command said nothing."""
    work = tmp_path / "work"
    work.mkdir()
    data = work / "inter.tsv"
    data.write_text(SAMPLE.read_text())
    (work / "notes.txt").write_text("keep")
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(work)])
    assert res.exit_code != 0 and "holds the input" in str(res.exception)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(other)])
    assert res.exit_code != 0 and "not an earlier output" in str(res.exception)
    assert res.stderr == ""  # the refusal comes before any progress line
    assert (work / "notes.txt").read_text() == "keep" and data.is_file() and (other / "notes.txt").is_file()
    model = tmp_path / "model"
    for _ in range(2):  # an earlier model is replaced, as before
        res = CliRunner().invoke(recs, ["train", "--interactions", str(data), "--output", str(model)])
        assert res.exit_code == 0, res.output


def test_recommend_writes_only_rows_to_stdout_and_refuses_an_empty_users_file(trained_dir: Path,
                                                                             tmp_path: Path) -> None:
    users = tmp_path / "u.txt"
    users.write_text("\n\n")
    res = CliRunner().invoke(recs, ["recommend", "--model", str(trained_dir), "--users", str(users),
                                    "--output", str(tmp_path / "o.jsonl")])
    assert res.exit_code != 0 and "no user ids" in str(res.exception) and not (tmp_path / "o.jsonl").exists()
    users.write_text("u1\n")
    res = CliRunner().invoke(recs, ["recommend", "--model", str(trained_dir), "--users", str(users),
                                    "--output", "/dev/stdout", "--k", "2"])
    assert res.exit_code == 0 and "wrote 1 rows" in res.stderr and "wrote" not in res.stdout


def test_recommend_to_dev_stdout_appends_to_the_file_stdout_is_redirected_to(trained_dir: Path,
                                                                             tmp_path: Path) -> None:
    """``(echo BEFORE; finpulse recs recommend ... --output /dev/stdout; echo AFTER) >> log``
    kept only the rows: /dev/stdout resolved to log, and the atomic rename replaced it."""
    import os
    import subprocess
    import sys

    users = tmp_path / "users.txt"
    users.write_text("u1\nu2\n")
    log = tmp_path / "log.txt"
    log.write_text("old log line\n")
    env = {**os.environ, "FINPULSE_HOME": str(tmp_path / "home")}
    env.pop("FINPULSE_DEBUG", None)
    with open(log, "a") as out:  # as the shell's >>
        out.write("BEFORE\n")
        out.flush()
        proc = subprocess.run([sys.executable, "-m", "shared.cli", "recs", "recommend", "--model", str(trained_dir),
                               "--users", str(users), "--output", "/dev/stdout", "--k", "2"],
                              env=env, stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
        out.write("AFTER\n")
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[:2] == ["old log line", "BEFORE"] and lines[-1] == "AFTER", lines
    assert [json.loads(row)["user_id"] for row in lines[2:-1]] == ["u1", "u2"]


def test_a_json_float_id_is_the_same_item_as_its_integer(tmp_path: Path) -> None:
    """CLI QA: item 1.0 (a pandas float column) and item 1 were two items, so user 1, who has 1.0,
    was recommended "1", and user 2, who has 1, was recommended "1.0"."""
    rows = [{"user_id": 1, "item_id": 1.0}, {"user_id": 1, "item_id": "2"}, {"user_id": 2, "item_id": 1},
            {"user_id": 2, "item_id": 3}, {"user_id": 3.0, "item_id": 2}]
    data = tmp_path / "f.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner, model, users, out = CliRunner(), tmp_path / "m", tmp_path / "users.txt", tmp_path / "out.jsonl"
    assert runner.invoke(recs, ["train", "--interactions", str(data), "--output", str(model)]).exit_code == 0
    assert sorted(json.loads((model / "ids.json").read_text())["item_ids"]) == ["1", "2", "3"]
    users.write_text("1\n2\n3\n")
    res = runner.invoke(recs, ["recommend", "--model", str(model), "--users", str(users), "--output", str(out)])
    assert res.exit_code == 0, res.output
    got = {r["user_id"]: set(r["items"]) for r in map(json.loads, out.read_text().splitlines())}
    assert got == {"1": {"3"}, "2": {"2"}, "3": {"1", "3"}}
