"""Webhook delivery: retries, order, and a sender that survives a bad delivery."""

from __future__ import annotations

import time

from shared import webhooks


def test_deliveries_arrive_in_the_order_they_were_sent(webhook_receiver) -> None:
    webhook_receiver.slow_first_s = 0.4  # a thread per POST let the later deliveries overtake it
    t0 = time.monotonic()
    for n in range(5):
        webhooks.send(webhook_receiver.url, {"n": n})
    assert time.monotonic() - t0 < 0.2  # the caller never waits on the receiver
    assert webhooks.drain(10)
    assert [b["n"] for b in webhook_receiver.got] == [0, 1, 2, 3, 4]


def test_an_outage_is_retried_and_a_refusal_is_not(webhook_receiver) -> None:
    url, got = webhook_receiver.url, webhook_receiver.got
    webhook_receiver.fail.extend([503, 502])
    assert webhooks.post(url, {"n": 1}, backoff_s=0.01) is True and got == [{"n": 1}]
    webhook_receiver.fail.append(400)
    assert webhooks.post(url, {"n": 2}, backoff_s=0.01) is False and got == [{"n": 1}]
    assert webhooks.post("http://127.0.0.1:9/closed", {"n": 3}, retry_for_s=0.05, backoff_s=0.01) is False


def test_a_receiver_down_for_seconds_still_gets_the_delivery(webhook_receiver) -> None:
    """Regression (chatbot QA): 4 tries in 3.5 s lost a handoff ticket sent while the agent
    desk restarted."""
    webhook_receiver.fail.extend([503] * 6)  # 6 failures in a row: 0.02 + 0.04 + ... + 0.64 s of back-off
    t0 = time.monotonic()
    assert webhooks.post(webhook_receiver.url, {"n": 1}, backoff_s=0.02) is True
    assert webhook_receiver.got == [{"n": 1}] and time.monotonic() - t0 > 1.2


def test_a_body_that_cannot_be_sent_does_not_stop_later_ones(webhook_receiver) -> None:
    webhooks.send(webhook_receiver.url, {"n": object()})  # not JSON: requests raises in the sender thread
    webhooks.send(webhook_receiver.url, {"n": 7})
    assert webhooks.drain(10)
    assert webhook_receiver.got == [{"n": 7}]


def _send_from_child(url: str) -> None:
    webhooks.send(url, {"n": 9})
    raise SystemExit(0 if webhooks.drain(10) else 1)


def test_a_child_forked_while_the_lock_is_held_can_still_send(webhook_receiver) -> None:
    import multiprocessing

    with webhooks._lock:  # another thread mid-send at the fork: the child's copy would stay held
        child = multiprocessing.get_context("fork").Process(target=_send_from_child, args=(webhook_receiver.url,))
        child.start()
    child.join(20)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert webhook_receiver.got == [{"n": 9}]


def test_logs_never_show_a_webhooks_password_or_token(caplog) -> None:
    """Observability QA: every retry logged `webhook http://hookuser:HookS3cret@.../hook?token=TokS3cret
    failed`, the driver's error repeating the query."""
    url = "http://hookuser:HookS3cret@127.0.0.1:9/hook?token=TokS3cret"
    with caplog.at_level("INFO", logger="shared.webhooks"):
        assert webhooks.post(url, {"n": 1}, retry_for_s=0.05, backoff_s=0.01) is False
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "127.0.0.1:9/hook" in text and "failed (attempt 1)" in text
    assert "HookS3cret" not in text and "TokS3cret" not in text and "hookuser" not in text
