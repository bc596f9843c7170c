"""Hot reload: a promoted model version is announced on Redis pub/sub; every process reloads.

The promoter calls :func:`publish_model_change`; each worker and service runs one
:class:`ReloadSubscriber` thread that calls :func:`shared.inference.invalidate` and any
callbacks registered with :func:`on_reload`. Invalidation closes batchers gracefully,
so tasks already queued are answered (by the model they were queued for) and the next
one loads the new version: nothing is dropped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
CHANNEL = "models"  # shared.redis_client.channel() names it per Redis DB: finpulse:models on DB 0

_callbacks: list[Callable[[dict[str, Any]], None]] = []
_subscribers: dict[str, ReloadSubscriber] = {}
_lock = threading.Lock()


def on_reload(callback: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Register ``callback(message)`` to run on every model change (usable as a decorator)."""
    with _lock:
        if callback not in _callbacks:
            _callbacks.append(callback)
    return callback


def publish_model_change(settings: Any, domain: str, task: str, version: int | str | None = None,
                         event: str = "promote") -> int:
    """Announce a new production version; returns how many processes heard it."""
    from shared.inference import invalidate
    from shared.redis_client import channel, get_redis

    invalidate()  # this process too, subscriber or not
    message = json.dumps({"event": event, "domain": domain, "task": task, "version": version})
    return int(get_redis(settings.redis_url).publish(channel(settings.redis_url, CHANNEL), message))


def handle(message: dict[str, Any]) -> None:
    """Apply one model change in this process."""
    from shared import inference

    log.info("model change %s: reloading", message)
    inference.invalidate()
    for callback in list(_callbacks):
        try:
            callback(message)
        except Exception:  # noqa: BLE001 - one bad callback must not stop the others
            log.exception("reload callback %r failed", callback)


class ReloadSubscriber(threading.Thread):
    """Daemon thread listening on the models channel of its Redis DB; reconnects after outages."""

    def __init__(self, redis_url: str):
        super().__init__(name="finpulse-reload", daemon=True)
        self.redis_url = redis_url
        self.ready = threading.Event()  # set once subscribed (tests wait on it)
        self.received = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        import redis

        from shared.redis_client import channel

        backoff = 0.5
        while not self._stop_event.is_set():
            try:
                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2,
                                              health_check_interval=10)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(channel(self.redis_url, CHANNEL))
                self.ready.set()
                backoff = 0.5
                while not self._stop_event.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg and msg.get("type") == "message":
                        self.received += 1
                        handle(_decode(msg.get("data")))
                pubsub.close()
            except (redis.RedisError, OSError) as exc:
                self.ready.clear()
                log.warning("reload subscriber lost Redis (%s); retrying in %.1fs", exc, backoff)
                self._stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)


def _decode(data: Any) -> dict[str, Any]:
    try:
        out = json.loads(data)
        return out if isinstance(out, dict) else {"raw": out}
    except (TypeError, ValueError):
        return {"raw": str(data)}


def start_subscriber(redis_url: str) -> ReloadSubscriber:
    """The process's subscriber for ``redis_url`` (started once; call after any fork)."""
    with _lock:
        sub = _subscribers.get(redis_url)
        if sub is None or not sub.is_alive():
            sub = ReloadSubscriber(redis_url)
            sub.start()
            _subscribers[redis_url] = sub
        return sub


def stop_subscribers() -> None:
    with _lock:
        subs = list(_subscribers.values())
        _subscribers.clear()
    for sub in subs:
        sub.stop()
