"""SIGTERM handled like Ctrl-C by the long CLI commands (training, tuning, a foreground retrain job)."""

from __future__ import annotations

import signal
import threading
from typing import Any


def interrupt_on_sigterm() -> Any:
    """Make SIGTERM (``kill``, a scheduler's timeout) interrupt like Ctrl-C, so ``finally`` blocks
    run (scratch trials deleted, the resume line printed, a job ended as cancelled) instead of a
    silent death; the handler it replaced, or None where signals cannot be handled (not the main
    thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt) or signal.SIG_DFL  # None: set outside Python
