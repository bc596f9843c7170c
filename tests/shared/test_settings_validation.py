"""Settings that could never work stop the process with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings


def config_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The one-line message ``load_settings`` raises with ``env`` set."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = info.value.message
    assert message.startswith("invalid configuration: ") and "\n" not in message, message
    return message


@pytest.mark.parametrize("name", ["FINPULSE_CHATBOT_RATE_LIMIT", "FINPULSE_CHATBOT_SESSION_RATE_LIMIT",
                                  "FINPULSE_AUTH_FAILURE_LIMIT"])
@pytest.mark.parametrize("value", ["lots", "many", "", "-1/minute", "120 per fortnight"])
def test_a_rate_limit_flask_limiter_cannot_parse_is_refused(monkeypatch, home, name, value) -> None:
    """Flask-Limiter logged "couldn't parse rate limit string" and then limited nothing."""
    message = config_error(monkeypatch, FINPULSE_HOME=str(home), **{name: value})
    assert name in message and repr(value) in message


@pytest.mark.parametrize("value", ["BOGUS", "", "verbose"])
def test_a_log_level_logging_does_not_know_is_refused_naming_the_setting(monkeypatch, home, value) -> None:
    """Docs QA: `up` said only "Unknown level: 'BOGUS'", `shared.up serve` died in a traceback and the
    worker ignored it."""
    message = config_error(monkeypatch, FINPULSE_HOME=str(home), FINPULSE_LOG_LEVEL=value)
    assert "FINPULSE_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in message


def test_a_log_level_is_read_in_any_case_and_the_worker_takes_it(monkeypatch, home) -> None:
    from click.testing import CliRunner

    from services import worker

    for value, level in ((" warning", "WARNING"), ("WARN", "WARNING"), ("fatal", "CRITICAL")):  # logging's aliases
        monkeypatch.setenv("FINPULSE_LOG_LEVEL", value)
        assert load_settings(home=home).log_level == level
    monkeypatch.setenv("FINPULSE_LOG_LEVEL", " warning")
    argv: list[list[str]] = []
    monkeypatch.setattr("shared.celery_app.make_celery", lambda _s: type("App", (), {
        "worker_main": lambda _self, a: argv.append(a), "conf": type("Conf", (), {})()})())
    monkeypatch.setenv("FINPULSE_HOME", str(home))
    assert CliRunner().invoke(worker.worker, ["--no-warm"]).exit_code == 0
    assert argv[0][argv[0].index("--loglevel") + 1] == "WARNING"  # it logged INFO whatever the setting said


def test_rate_limits_in_the_limits_syntax_are_accepted(monkeypatch, home) -> None:
    monkeypatch.setenv("FINPULSE_CHATBOT_RATE_LIMIT", "10 per second; 500/hour")
    monkeypatch.setenv("FINPULSE_CHATBOT_SESSION_RATE_LIMIT", "30/minute")
    monkeypatch.setenv("FINPULSE_AUTH_FAILURE_LIMIT", "5/minute;50/day")
    s = load_settings(home=home)
    assert (s.chatbot_rate_limit, s.chatbot_session_rate_limit) == ("10 per second; 500/hour", "30/minute")
    assert s.auth_failure_limit == "5/minute;50/day"


@pytest.mark.parametrize(("origin", "says"), [
    ("www.bank.example", "no http:// or https:// scheme"),
    ("www.bank.example:8080", "no http:// or https:// scheme"),
    ("ftp://www.bank.example", "no http:// or https:// scheme"),
    ("https://www.bank.example/", "has a path"),
    ("https://www.bank.example/help", "has a path"),
    ("https://www.bank.example?x=1", "has a path"),
    ("https://", "has no host"),
    ("https://user@www.bank.example", "has no host"),
    ("https://www.bank.example:99999", "bad port"),
    ("https://www.bank.example:443", "default port 443"),
])
def test_a_widget_origin_no_browser_could_send_is_refused(monkeypatch, home, origin, says) -> None:
    """``["www.bank.example"]`` was accepted, and the widget on that site was refused by CORS."""
    message = config_error(monkeypatch, FINPULSE_HOME=str(home),
                           FINPULSE_CHATBOT_CORS_ORIGINS=f'["{origin}"]')
    assert "FINPULSE_CHATBOT_CORS_ORIGINS" in message and repr(origin) in message and says in message


def test_origins_a_browser_sends_are_accepted(monkeypatch, home) -> None:
    origins = ["https://www.bank.example", "http://localhost:3000", "http://[::1]:8080",
               "https://help.bank.example:8443", "*"]
    monkeypatch.setenv("FINPULSE_CHATBOT_CORS_ORIGINS", str(origins).replace("'", '"'))
    assert load_settings(home=home).chatbot_cors_origins == origins


@pytest.mark.parametrize(("value", "origins"), [
    ("*", ["*"]), ('"*"', ["*"]),  # the README's "*" for any site, as people write it (chatbot QA)
    ("https://www.bank.example", ["https://www.bank.example"]),
    (" https://a.example, http://localhost:3000 ", ["https://a.example", "http://localhost:3000"]),
    ("", [])])
def test_a_list_setting_takes_one_value_or_comma_separated_values(monkeypatch, home, value, origins) -> None:
    monkeypatch.setenv("FINPULSE_CHATBOT_CORS_ORIGINS", value)
    assert load_settings(home=home).chatbot_cors_origins == origins


@pytest.mark.parametrize("value", ["[www", '["https://www.bank.example"', '"https://a.example'])
def test_a_list_setting_that_is_not_json_is_the_usual_one_line(monkeypatch, home, value) -> None:
    """It read 'error parsing value for field "chatbot_cors_origins" from source "EnvSettingsSource"'."""
    message = config_error(monkeypatch, FINPULSE_HOME=str(home), FINPULSE_CHATBOT_CORS_ORIGINS=value)
    assert "FINPULSE_CHATBOT_CORS_ORIGINS is not valid JSON" in message and "EnvSettingsSource" not in message


@pytest.mark.parametrize(("make", "says"), [
    (lambda tmp: tmp / "afile", "is a file, not a folder"),
    (lambda tmp: tmp / "afile" / "home", "cannot be created: {tmp}/afile is a file, not a folder"),
    (lambda tmp: Path("/proc/finpulse-home"), "is under /proc, the kernel's virtual file system"),
    (lambda tmp: Path("/sys"), "is the kernel's virtual file system"),
])
def test_a_home_that_cannot_be_a_folder_names_finpulse_home(monkeypatch, tmp_path, make, says) -> None:
    """It was ``[Errno 17] File exists: '/tmp/x'`` from whichever command made the first folder."""
    (tmp_path / "afile").write_text("x")
    home = make(tmp_path)
    message = config_error(monkeypatch, FINPULSE_HOME=str(home))
    assert f"FINPULSE_HOME {home}" in message and says.format(tmp=tmp_path) in message


def test_a_home_still_to_be_made_is_fine_and_not_made_yet(tmp_path) -> None:
    home = tmp_path / "new" / "home"
    assert load_settings(home=home).home == home and not home.exists()


@pytest.mark.parametrize("value", ["ab", "x", "  fifteen-chars-x \n", "a" * 15])
def test_a_short_ops_key_is_named_weak_without_echoing_it(monkeypatch, home, value) -> None:
    """Security QA: FINPULSE_OPS_KEY=ab worked as the full, unrevocable ops key, unremarked. It still works
    (the contract lets any value set the first ops key), but the settings say why it should not."""
    monkeypatch.setenv("FINPULSE_OPS_KEY", value)
    settings = load_settings(home=home)
    assert settings.ops_key == value
    weak = settings.weak_ops_key()
    assert weak is not None and weak.startswith(f"FINPULSE_OPS_KEY is {len(value.strip())} characters, under 16")
    if len(value.strip()) > 1:  # a secret: its length is said, never the key
        assert value.strip() not in weak


@pytest.mark.parametrize("value", ["a" * 16, " fp_sixteen-chars \n", "", "  \n"])
def test_an_ops_key_of_16_characters_or_a_blank_one_is_not_weak(monkeypatch, home, value) -> None:
    """16 characters is enough; blank is no key at all (compose passes an unset FINPULSE_OPS_KEY as '')."""
    monkeypatch.setenv("FINPULSE_OPS_KEY", value)
    assert load_settings(home=home).weak_ops_key() is None


def test_up_warns_of_a_short_ops_key_and_still_reads_its_config(tmp_path) -> None:
    """`up` says so in one line on stderr before starting anything (here it then stops at a port in use)."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = finpulse(["up", "--no-prepare", "--services", "sentiment"], FINPULSE_HOME=str(tmp_path / "home"),
                        FINPULSE_OPS_KEY="ab", FINPULSE_SENTIMENT_PORT=str(port))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert any("warning: FINPULSE_OPS_KEY is 2 characters, under 16" in ln for ln in lines), proc.stderr
    assert proc.returncode != 0 and f"port {port} (sentiment) is already in use" in proc.stderr, proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_home_under_a_read_only_folder_cannot_be_created(monkeypatch, tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        message = config_error(monkeypatch, FINPULSE_HOME=str(locked / "home"))
    finally:
        locked.chmod(0o700)
    assert f"cannot be created: {locked} is not writable" in message


def finpulse(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "FINPULSE_DEBUG"} | env
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=full, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("args", "env", "says"), [
    (["models", "list"], {"FINPULSE_HOME": "{tmp}/afile"}, "FINPULSE_HOME {tmp}/afile is a file, not a folder"),
    (["up", "--no-prepare"], {"FINPULSE_HOME": "{tmp}/afile"}, "FINPULSE_HOME {tmp}/afile is a file, not a folder"),
    (["up", "--no-prepare"], {"FINPULSE_HOME": "/proc/x"}, "FINPULSE_HOME /proc/x is under /proc"),
    (["models", "list"], {"FINPULSE_CHATBOT_RATE_LIMIT": "lots"}, "FINPULSE_CHATBOT_RATE_LIMIT must be a rate limit"),
    (["models", "list"], {"FINPULSE_CHATBOT_CORS_ORIGINS": "[www"},
     "FINPULSE_CHATBOT_CORS_ORIGINS is not valid JSON"),
])
def test_the_cli_says_one_line_naming_the_setting(tmp_path, args, env, says) -> None:
    (tmp_path / "afile").write_text("x")
    env = {"FINPULSE_HOME": str(tmp_path / "home")} | {k: v.format(tmp=tmp_path) for k, v in env.items()}
    proc = finpulse(args, **env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"finpulse: error: invalid configuration: {says.format(tmp=tmp_path)}"), lines


@pytest.mark.parametrize(("env", "says"), [
    ({"FINPULSE_LOG_LEVEL": "bogus"}, "FINPULSE_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, "
                                      "got 'bogus'"),
])
def test_a_service_process_refuses_a_bad_setting_in_one_line(home, env, says) -> None:
    """Docs QA: `python -m shared.up serve NAME` (docker-compose's command) died with a traceback on a
    bad setting, where `finpulse` says one line."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "FINPULSE_HOME": str(home), **env}
    env.pop("FINPULSE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "shared.up", "serve", "recommendations"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"python -m shared.up: error: invalid configuration: {says}"]
