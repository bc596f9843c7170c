"""Logging, plain or JSON lines, configured once per process."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.settings import Settings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            # UTC with milliseconds: local time without an offset could not be lined up across hosts
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


_configured = False
_json = False  # this process logs JSON lines: progress goes out as log records too (say)


def configure_logging(settings: Settings) -> None:
    global _configured, _json
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
        _json = True
        logging.captureWarnings(True)  # a warning (Celery's about root) printed plain lines among the JSON
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(lambda record: not getattr(record, "said", False))  # say() printed it already
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # 7 "setup plugin" lines per migrate
    # faiss-cpu's one build dispatches AVX2/AVX-512 at run time, yet its loader first tries the old
    # per-CPU module names: 9 INFO lines of "Could not load library ... ModuleNotFoundError" per process
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    _configured = True


def progress_bars() -> bool:
    """Whether this process may draw progress bars: not where it logs JSON (a bar is no JSON line)."""
    return not _json


def celery_json_output() -> None:
    """Make a JSON-logging worker's own prints log records: logging (warnings included) set up
    before Celery starts, no banner (``--quiet``, the caller's), and the shutdown line, which
    Celery writes past logging ("worker: Warm shutdown (MainProcess)"), a record."""
    from celery.apps import worker as celery_worker

    celery_worker.safe_say = lambda msg, f=None: logging.getLogger("celery.apps.worker").info(msg)


def say(source: str, message: str, logger: str | None = None) -> None:
    """A progress line for people on stderr, ``[source] message``.

    In a process that logs JSON (``FINPULSE_LOG_FORMAT=json``: the services, workers, ``finpulse up``)
    it is a log record of ``logger`` (default ``source``) instead, so a log shipper reading that
    stderr never meets a plain line among the JSON ones. ``logger`` also gets the record in plain
    mode (e.g. ``training``, which job logs collect).
    """
    if _json:
        logging.getLogger(logger or source).info(message)
        return
    if logger is not None:  # for the logger's own handlers (a job's log), not this stderr a second time
        logging.getLogger(logger).info(message, extra={"said": True})
    print(f"[{source}] {message}", file=sys.stderr, flush=True)
