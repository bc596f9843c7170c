"""Tiny Celery tasks for the worker round-trip test (imported by the worker with -I)."""

from __future__ import annotations

import os

from celery import shared_task


@shared_task(name="fp_test.add")
def add(a: int, b: int) -> dict[str, int]:
    """Return the sum and the worker's pid, so the test sees another process did it."""
    return {"sum": a + b, "pid": os.getpid()}
