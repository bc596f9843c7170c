"""Webhooks, delivered in the background and in order.

One sender thread per URL and process: a request never waits on a receiver, a receiver that is
down gets retries with back-off for 10 minutes, and a later message never overtakes an earlier
one (a thread per POST let a retraction arrive before the alert it withdraws). Order holds within
one process; the API and each worker process are separate senders.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000  # deliveries waiting per URL; beyond it new ones are dropped with a warning
_senders: dict[str, _Sender] = {}
_lock = threading.Lock()


RETRY_FOR_S = 600.0  # a receiver down this long (a restart, a deploy) still gets the delivery
MAX_BACKOFF_S = 30.0


def post(url: str, body: Any, retry_for_s: float = RETRY_FOR_S, backoff_s: float = 0.5) -> bool:
    """POST ``body`` as JSON, retrying connection errors and 5xx with exponential back-off (at
    most ``MAX_BACKOFF_S`` apart) for ``retry_for_s``; it was 4 tries in 3.5 s, so a handoff
    ticket sent while the agent desk restarted was lost. A 4xx is the receiver's answer, not an
    outage: no retry."""
    import requests

    deadline = time.monotonic() + retry_for_s
    attempt, shown = 0, shown_url(url)
    while True:
        attempt += 1
        try:
            resp = requests.post(url, json=body, timeout=5)
            if resp.status_code < 500:
                if not resp.ok:
                    log.warning("webhook %s refused a delivery: HTTP %d", shown, resp.status_code)
                return bool(resp.ok)
            log.info("webhook %s failed (attempt %d): HTTP %d", shown, attempt, resp.status_code)
        except requests.RequestException as exc:
            log.info("webhook %s failed (attempt %d): %s", shown, attempt, hide_secrets(str(exc), url))
        pause = min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
        if time.monotonic() + pause > deadline:
            log.warning("webhook %s gave up after %d attempts in %.0f s", shown, attempt, retry_for_s)
            return False
        time.sleep(pause)


def shown_url(url: str) -> str:
    """``url`` as logs show it: no user, password or query (a webhook's token often rides there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "?…" if parts.query else "", ""))


def hide_secrets(text: str, url: str) -> str:
    """``text`` (a driver's error naming ``url``) without ``url``'s password and query."""
    parts = urlsplit(url)
    for secret in (parts.query, parts.password):
        if secret:
            text = text.replace(secret, "…")
    return text


class _Sender:
    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: queue.Queue[Any] = queue.Queue(QUEUE_LIMIT)
        threading.Thread(target=self._run, name="webhook-sender", daemon=True).start()

    def _run(self) -> None:
        while True:
            body = self.queue.get()
            try:
                post(self.url, body)
            except Exception:  # a bad body must not end the sender and strand the queue behind it
                log.exception("webhook %s: delivery failed", shown_url(self.url))
            finally:
                self.queue.task_done()


def send(url: str, body: Any) -> None:
    """Queue ``body`` for ``url`` and return at once; never raises."""
    with _lock:
        sender = _senders.get(url)
        if sender is None:
            sender = _senders[url] = _Sender(url)
    try:
        sender.queue.put_nowait(body)
    except queue.Full:
        log.warning("webhook %s: %d deliveries already waiting; this one is dropped", shown_url(url), QUEUE_LIMIT)


def drain(timeout_s: float = 5.0) -> bool:
    """Wait until every queued delivery has been tried; False if some are still waiting."""
    deadline = time.monotonic() + timeout_s
    with _lock:
        senders = list(_senders.values())
    for sender in senders:
        while sender.queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
    return True


def _forget_senders() -> None:
    """A forked child (a prefork worker) has the parent's queues but not their threads, and
    a copy of the lock that may have been held at the fork."""
    global _lock
    _lock = threading.Lock()
    _senders.clear()


os.register_at_fork(after_in_child=_forget_senders)
atexit.register(drain, 5.0)  # a stopping process gives its last deliveries a few seconds
