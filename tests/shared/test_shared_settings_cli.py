"""Settings validation and ``finpulse`` CLI errors are one readable line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://localhost:abc/0",
                                 "redis://h:6379/not-a-db", "redis://h:70000/0", "localhost",
                                 "unix://", "unix:///run/redis.sock?db=one"])
def test_malformed_redis_url_names_it(url):
    with pytest.raises(ConfigError) as info:
        load_settings(redis_url=url)
    message = info.value.message
    assert "REDIS_URL" in message and "\n" not in message


def test_unix_socket_redis_url_is_accepted():
    assert load_settings(redis_url="unix:///run/redis.sock?db=2").redis_url == "unix:///run/redis.sock?db=2"


def test_bad_port_names_the_setting(monkeypatch):
    monkeypatch.setenv("FINPULSE_SENTIMENT_PORT", "eighty")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "sentiment_port" in info.value.message and "\n" not in info.value.message


def test_good_settings_and_postgres_url_normalised(tmp_path):
    s = load_settings(home=tmp_path, redis_url="redis://:secret@127.0.0.1:6380/2",
                      database_url="postgres://u@db:5432/x")
    assert s.db_url == "postgresql+psycopg://u@db:5432/x"
    assert s.port_for("chatbot") == 8102
    assert s.home == tmp_path.resolve()


def _finpulse(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    full_env.pop("FINPULSE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=60)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("finpulse: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_cli_malformed_redis_url(tmp_path):
    line = _one_line_error(_finpulse(["db", "upgrade"], REDIS_URL="redis://x:port/0",
                                     FINPULSE_HOME=str(tmp_path)))
    assert "REDIS_URL" in line


def test_cli_unreachable_database(tmp_path):
    line = _one_line_error(_finpulse(["db", "upgrade"], FINPULSE_HOME=str(tmp_path),
                                     DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    assert "127.0.0.1" in line or "database" in line


def test_cli_unknown_command():
    proc = _finpulse(["no-such-command"])
    _one_line_error(proc)
    assert "no-such-command" in proc.stderr


def test_cli_db_upgrade_ok(tmp_path):
    proc = _finpulse(["db", "upgrade"], FINPULSE_HOME=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "finpulse.db").is_file()


@pytest.mark.parametrize(("argv", "says"), [
    (["kb", "ask", "--index", "i", "--input", "q", "--output", "o", "--k", "0"], "'--k': 0 is not in the range"),
    (["kb", "bogus"], "No such command 'bogus'"),
    (["predict", "sentiment", "--model", "m", "--input", "i", "--output", "o", "--runtime", "tensorrt"],
     "'--runtime'"),
])
def test_usage_errors_are_one_line(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The contract: one line on stderr (click's own usage block came first)."""
    from shared.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finpulse: error:") and says in lines[0], lines


def test_keys_and_db_commands_say_what_they_did(settings) -> None:
    """`keys revoke --name nobody` exited 0 ("revoked 0"); keys were created and revoked without an
    audit entry; `db upgrade` said "up to date" whatever it did; `db downgrade` with no argument
    dropped every table."""
    import json

    from click.testing import CliRunner

    from shared.cli import cli

    run = CliRunner().invoke
    assert run(cli, ["keys", "create", "--name", " ", "--role", "ops"]).exit_code != 0
    assert run(cli, ["keys", "create", "--name", "alice", "--role", "ops"]).exit_code == 0
    missing = run(cli, ["keys", "revoke", "--name", "nobody"])
    assert missing.exit_code != 0 and "no active key named 'nobody'" in str(missing.exception)
    assert run(cli, ["keys", "revoke", "--name", "alice"]).output.strip() == "revoked 1 key(s)"
    actions = [json.loads(line)["action"] for line in run(cli, ["audit", "--json"]).output.splitlines()]
    assert actions[:2] == ["keys.revoke", "keys.create"]
    res = run(cli, ["db", "downgrade"])
    assert res.exit_code != 0 and "--revision" in res.output  # required: no silent drop of everything
    up = run(cli, ["db", "upgrade"])
    assert up.exit_code == 0 and up.output.startswith("database at ") and up.output.strip() != "database at base"


def test_key_names_are_stripped_and_never_a_finpulse_actor(settings) -> None:
    """`keys create --name " alice "` stored a second "alice" that `keys list` showed alike and
    `keys revoke --name alice` left active; a key named `beat` or `cli:root` wrote audit rows that
    read as the scheduler's or a shell user's."""
    from click.testing import CliRunner

    from shared.auth import role_for
    from shared.cli import cli
    from shared.db import Database

    run = CliRunner().invoke
    assert run(cli, ["keys", "create", "--name", "alice", "--role", "ops"]).exit_code == 0
    spaced = run(cli, ["keys", "create", "--name", " alice ", "--role", "analyst"])
    assert spaced.exit_code == 0
    assert run(cli, ["keys", "revoke", "--name", "alice"]).output.strip() == "revoked 2 key(s)"
    assert role_for(Database(settings.db_url), spaced.output.strip(), None) is None
    for actor in ("beat", "reaper", "ops-bootstrap", "cli:root", " finpulse-up "):
        res = run(cli, ["keys", "create", "--name", actor, "--role", "ops"])
        assert res.exit_code != 0 and "may not be named" in str(res.exception), (actor, res.output)
    long_name = "n" * 40
    assert run(cli, ["keys", "create", "--name", long_name, "--role", "feed"]).exit_code == 0
    header, *rows = run(cli, ["keys", "list"]).output.splitlines()
    at = header.index("role")  # every row's role under the header's, however long its name
    assert [row[at:].split()[0] for row in rows] == ["ops", "analyst", "feed"]


@pytest.mark.parametrize("migrated", [True, False])
@pytest.mark.parametrize("revision", ["nonsense", "chatbot@-9"])
def test_a_revision_alembic_cannot_find_is_one_line_saying_what_it_takes(settings, revision, migrated) -> None:
    """`db downgrade --revision nonsense` printed "CommandError: Can't locate revision ...", and
    `chatbot@-1` on a database never migrated a bare "AssertionError:"."""
    from shared.db import upgrade

    if migrated:
        upgrade(settings.db_url)
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "db", "downgrade", "--revision", revision],
                          capture_output=True, text=True, env={**os.environ, "FINPULSE_HOME": str(settings.home)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"finpulse: error: revision '{revision}': ") and "CommandError" not in lines[0]
    assert "chatbot@-1" in lines[0] and "base" in lines[0]
