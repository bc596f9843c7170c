"""Pub/sub channels are per Redis DB: suites sharing one server must not hear each other."""

from __future__ import annotations

import time

import pytest

from shared.redis_client import channel


@pytest.mark.parametrize("url,name", [
    ("redis://127.0.0.1:6379/0", "finpulse:models"), ("redis://127.0.0.1:6379", "finpulse:models"),
    ("redis://:pw@127.0.0.1:6379/12", "finpulse:db12:models"), ("unix:///tmp/r.sock?db=3", "finpulse:db3:models"),
])
def test_channel_names(url, name) -> None:
    assert channel(url, "models") == name


def test_a_promotion_on_one_db_is_not_heard_by_a_suite_on_another(redis_url) -> None:
    """Regression: every suite on the server reloaded its models on another suite's promotion."""
    from shared.reload import ReloadSubscriber, publish_model_change

    base = redis_url.rsplit("/", 1)[0]
    mine, theirs = f"{base}/14", f"{base}/15"
    sub = ReloadSubscriber(mine)
    sub.start()
    try:
        assert sub.ready.wait(5)
        publish_model_change(type("S", (), {"redis_url": theirs})(), "news", "sentiment", 9)
        time.sleep(0.5)
        assert sub.received == 0  # another DB's promotion: not this suite's business
        publish_model_change(type("S", (), {"redis_url": mine})(), "news", "sentiment", 9)
        deadline = time.monotonic() + 5
        while sub.received < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sub.received == 1
    finally:
        sub.stop()
        sub.join(5)
