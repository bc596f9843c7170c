"""Hot reload: a model change on Redis pub/sub makes the cache reload, dropping nothing."""

from __future__ import annotations

import time

from shared import inference
from shared.reload import handle, on_reload, publish_model_change, start_subscriber, stop_subscribers


def _wait(cond, timeout: float = 10.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_published_change_reloads_the_model(worker_settings, redis_url):
    seen: list[dict] = []
    on_reload(seen.append)
    sub = start_subscriber(redis_url)
    try:
        assert sub.ready.wait(10)
        first, batcher = inference.get_batcher(worker_settings)
        pending = batcher.submit(["profit rose"] * 3)  # queued before the change
        assert publish_model_change(worker_settings, "news", "sentiment", 2) >= 1
        assert _wait(lambda: any(m.get("version") == 2 for m in seen))
        assert pending.result(timeout=60)[0]["label"] in first.runtime.labels
        second, batcher2 = inference.get_batcher(worker_settings)
        assert second.runtime is not first.runtime and batcher2 is not batcher
        assert batcher2.predict(["profit fell"], timeout=60)[0]["label"] in second.runtime.labels
    finally:
        stop_subscribers()


def test_bad_callback_does_not_stop_reload(worker_settings):
    calls: list[str] = []

    @on_reload
    def _boom(message: dict) -> None:
        raise RuntimeError("callback bug")

    on_reload(lambda m: calls.append(m["domain"]))
    first, _ = inference.get_batcher(worker_settings)
    handle({"domain": "news", "task": "sentiment", "version": 1})
    assert calls == ["news"]
    assert inference.get_batcher(worker_settings)[0].runtime is not first.runtime
