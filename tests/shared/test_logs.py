"""Progress lines (``say``) reach stderr once, and still reach the loggers that collect them."""

from __future__ import annotations

import logging
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
