"""Fixtures of the connector tests."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest


@pytest.fixture
def tiny_csv_fields() -> Iterator[None]:
    """csv's field limit at 100 characters: the only csv.Error left in a non-strict read, so a
    test can break a file midway; restored afterwards (the connectors raise it once, at import)."""
    old = csv.field_size_limit(100)
    try:
        yield
    finally:
        csv.field_size_limit(old)
