"""Issue 8: under 20 concurrent POST /v1/score clients during promotions, no request fails."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request

import pytest
from ops_helpers import make_app

from shared import lifecycle
from shared.gate import REPORT_NAME


@pytest.mark.slow
def test_no_request_fails_while_production_moves(ops):
    from waitress.server import create_server

    settings, db, registry = ops["settings"], ops["db"], ops["registry"]
    v2 = registry.register("news", "sentiment", ops["v1"].path, move=False)
    (v2.path / REPORT_NAME).write_text(json.dumps({"passed": True, "summary": "ok",
                                                   "production": "news/sentiment@v1"}))
    server = create_server(make_app(settings, "unused"), host="127.0.0.1", port=0, threads=8)
    def serve() -> None:
        with contextlib.suppress(OSError):  # closing the sockets ends the loop with EBADF
            server.run()

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}/v1/score"
    body = json.dumps({"texts": ["shares plunged after a weak quarter"]}).encode()
    stop, failures, versions = threading.Event(), [], []

    def client() -> None:
        while not stop.is_set():
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    versions.append(json.loads(resp.read()).get("model_version"))
            except Exception as exc:  # any error status or connection failure is a failure
                failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            lifecycle.promote(settings, db, v2.ref, actor="alice")
            threading.Event().wait(1.0)
            lifecycle.rollback(settings, db, "news", "sentiment", actor="alice")
            threading.Event().wait(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        server.close()
    assert failures == []
    assert {"news/sentiment@v1", "news/sentiment@v2"} <= set(versions)
