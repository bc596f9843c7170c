"""A Flask app on a real waitress server in a background thread, for tests that need real HTTP."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serving(app: Any, **options: Any) -> Iterator[Any]:
    """Serve ``app`` on 127.0.0.1 (a free port: ``server.effective_port``) until the block ends.

    Waitress has no stop call: closing the server under its loop thread leaves that thread in
    select()/poll() on closed descriptors, and the EBADF it dies of was reported by pytest as an
    unhandled thread exception in whichever test ran next. Past the close, that end is expected.
    """
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, **options)
    closing = threading.Event()

    def run() -> None:
        try:
            server.run()
        except (OSError, ValueError):
            if not closing.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        closing.set()
        server.close()
        thread.join(timeout=5)
