"""Progress lines (``say``) reach stderr once, and still reach the loggers that collect them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``shared.logs`` as a new process has it (not configured), the root logger restored afterwards."""
    from shared import logs

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    # an earlier test's configure_logging left a handler on a stream pytest has closed since
    root.handlers[:] = [h for h in before if type(h) is not logging.StreamHandler]
    monkeypatch.setattr(logs, "_configured", False)
    monkeypatch.setattr(logs, "_json", False)
    yield logs
    root.handlers[:] = before
    root.setLevel(level)


def test_a_progress_line_is_printed_once_and_still_logged_for_job_logs(fresh_logging: Any, settings: Any,
                                                                      capfd: Any) -> None:
    """``finpulse up``'s first run printed every training line twice, once as ``[train] ...`` and
    once as ``... INFO training: ...`` through the root handler; a job's log handler must still
    get it, and ordinary log records still reach stderr."""
    fresh_logging.configure_logging(settings.model_copy(update={"log_format": "plain", "log_level": "INFO"}))
    collected: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append(record.getMessage())

    job_log = Collect()
    logging.getLogger("training").addHandler(job_log)
    try:
        fresh_logging.say("train", "step 10: dev acc 0.8", "training")
        logging.getLogger("training").info("an ordinary record")
    finally:
        logging.getLogger("training").removeHandler(job_log)
    err = capfd.readouterr().err.splitlines()
    assert [line for line in err if "step 10" in line] == ["[train] step 10: dev acc 0.8"]
    assert [line for line in err if "an ordinary record" in line][0].endswith("INFO training: an ordinary record")
    assert collected == ["step 10: dev acc 0.8", "an ordinary record"]


def test_importing_faiss_under_the_suites_logging_prints_no_loader_chatter(tmp_path: Any) -> None:
    """Each process that imported faiss logged nine INFO lines of failed per-CPU module loads
    (``ModuleNotFoundError("No module named 'faiss.swigfaiss_avx2'")``) although the one build it
    ships dispatches AVX2/AVX-512 itself; ``finpulse up`` showed them for every service and worker."""
    import subprocess
    import sys

    code = ("from shared.logs import configure_logging; from shared.settings import get_settings; "
            "configure_logging(get_settings()); import faiss; "
            "import logging; logging.getLogger('finpulse.check').info('configured')")
    env = {"FINPULSE_HOME": str(tmp_path), "FINPULSE_LOG_LEVEL": "INFO", "PATH": "/usr/bin:/bin"}
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "INFO finpulse.check: configured" in done.stderr  # INFO records do print
    assert "faiss.loader" not in done.stderr and "swigfaiss" not in done.stderr, done.stderr
