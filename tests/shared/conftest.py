"""Fixtures of the shared-runtime tests: PostgreSQL (required in CI), free ports."""

from __future__ import annotations

import os
import socket

import pytest

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _psycopg_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@pytest.fixture
def postgres_url() -> str:
    """The test PostgreSQL; skipped with the reason when unreachable, except in CI."""
    from sqlalchemy import create_engine, text

    url = _psycopg_url(os.environ.get("FINPULSE_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {url}: {str(exc).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
        print(reason)
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_ports() -> list[int]:
    """Four distinct ports free right now (services and a private Redis)."""
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    return sorted(ports)
