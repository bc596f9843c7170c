"""Hostile-input fixtures: counters the reliability report reads, a finished-run record.

Tests add to :data:`TALLY` (inputs tried, 5xx seen); when ``FINPULSE_RELIABILITY_RECORD``
names a file, each module appends one JSON line there, which
``bench/reliability_report.py`` turns into its table.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

import pytest

# module name -> Counter of "inputs", "5xx", "rejected_4xx", ...
TALLY: defaultdict[str, Counter] = defaultdict(Counter)


def record_line(kind: str, name: str, **fields: object) -> None:
    """Append one result line for the reliability report (no-op unless it asked)."""
    path = os.environ.get("FINPULSE_RELIABILITY_RECORD")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": kind, "name": name, **fields}) + "\n")


@pytest.fixture(scope="module", autouse=True)
def _report_tally(request: pytest.FixtureRequest):
    """Write each module's tally once its tests finished."""
    yield
    name = request.module.__name__.rsplit(".", 1)[-1]
    if TALLY.get(name):
        record_line("hostile", name, **dict(TALLY[name]))


@pytest.fixture(scope="session")
def tally():
    """``tally(__name__, "inputs")``: count what a module tried (session-scoped for @given)."""

    def add(module: str, key: str, n: int = 1) -> None:
        TALLY[module.rsplit(".", 1)[-1]][key] += n

    return add
