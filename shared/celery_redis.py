"""Celery's Redis transport and result backend, with fewer Redis round trips per task.

Why: a one-headline inference task costs the model about 2 ms of CPU, and Celery's own
bookkeeping used to cost half as much again. Two sources of that cost are in kombu and
Celery themselves, and both are fixed here without changing what is stored:

- kombu's Redis channel builds a new ``redis.Redis`` client (a few hundred response
  callbacks copied into a dict) for every unacked-message record and every ack; the
  channel here keeps one synchronous client per connection pool (redis-py clients are
  thread-safe; each operation still takes its own pipeline).
- Celery's key-value backend reads every task's result key back before writing it (so a
  late duplicate cannot overwrite a SUCCESS): two round trips, and racy between them. The
  backend here does the same check and the write (SETEX + PUBLISH) in one Lua script:
  one round trip, atomic.

Selected by :func:`shared.celery_app.celery_config`: ``broker_transport`` names the
transport class and ``result_backend`` the backend class before the Redis URL.
"""

from __future__ import annotations

import json
import logging
import time
from functools import cached_property
from queue import Empty
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend as _CeleryRedisBackend
from celery.exceptions import BackendStoreError
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

log = logging.getLogger(__name__)

# Store unless the key already holds a SUCCESS; then publish, as Celery's backend does.
_STORE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, reusing one synchronous client per connection pool, and dropping
    a queue item that is not a kombu message, or a message its consumer cannot take (a task
    payload that is not ``[args, kwargs, embed]``), logged and dead-lettered, instead of
    stopping the worker."""

    def basic_consume(self, queue: Any, *args: Any, **kwargs: Any) -> Any:
        ret = super().basic_consume(queue, *args, **kwargs)
        inner = self.connection._callbacks.get(queue)
        if inner is not None:
            self.connection._callbacks[queue] = lambda raw: self._take(inner, raw, queue)
        return ret

    def _take(self, inner: Any, raw: Any, queue: str) -> Any:
        # An error raised while the consumer decodes one message (Celery's Request reading a body
        # of the wrong shape, a message without a delivery tag) went up to the worker's event loop:
        # "Unrecoverable error", the worker exited, restored the message to the queue on its way
        # out, and each restart died on it again (under `finpulse up`: the whole suite stopped).
        try:
            return inner(raw)
        except Exception as exc:  # noqa: BLE001 - one bad message must not end the worker
            # Redis gone while the message was recorded as unacked: reconnect, as kombu does (its
            # connection errors include KeyError, which here is a message without a delivery tag)
            if isinstance(exc, self.connection_errors) and not isinstance(exc, LookupError):
                raise
            self._drop_message(raw, queue, exc)
            return None

    def _drop_message(self, raw: Any, queue: str, exc: Exception) -> None:
        props = raw.get("properties") if isinstance(raw, dict) else None
        headers = raw.get("headers") if isinstance(raw, dict) else None
        tag = props.get("delivery_tag") if isinstance(props, dict) else None
        task_id = headers.get("id") if isinstance(headers, dict) else None
        task = headers.get("task") if isinstance(headers, dict) else None
        reason = f"{type(exc).__name__}: {exc}"
        log.error("dropped a message of queue %s its worker cannot take (task %s, id %s): %s",
                  queue, task, task_id, reason)
        if tag is not None:  # out of the unacked set: never restored, never redelivered
            try:
                self.qos.reject(tag, requeue=False)
            except Exception as err:  # noqa: BLE001
                log.warning("could not discard message %s: %s", tag, err)
        from shared.tasks import FAILED_LIST

        entry = {"id": task_id, "task": task, "queue": queue, "reason": f"malformed message: {reason}"[:500],
                 "at": time.time(), "args": repr(raw)[:500]}
        try:
            self.client.lpush(FAILED_LIST, json.dumps(entry, default=str))
            self.client.ltrim(FAILED_LIST, 0, 999)
        except Exception as err:  # noqa: BLE001 - recording must not end the worker either
            log.warning("could not record dropped message %s: %s", task_id, err)

    def _brpop_read(self, **options: Any) -> Any:
        # kombu decodes the popped item outside any handler: one non-JSON item pushed on a queue
        # was an "Unrecoverable error" that ended the worker (and, repeated, `finpulse up`)
        try:
            return super()._brpop_read(**options)
        except json.JSONDecodeError as exc:  # the item is already off the list; other errors still surface
            log.error("dropped an item of the broker queue that is not a Celery message: %s", exc)
            raise Empty() from None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self.__dict__.get("_finpulse_client")
        if client is None or client.connection_pool is not self.pool:
            client = self.__dict__["_finpulse_client"] = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


# kombu takes a Unix socket only as TRANSPORT+socket:///PATH, and the prefix picks the transport
# over ``broker_transport``: this alias keeps the class above for such URLs too
KOMBU_ALIAS = "finpulse-redis"
TRANSPORT_ALIASES.setdefault(KOMBU_ALIAS, f"{__name__}:Transport")


class RedisBackend(_CeleryRedisBackend):
    """Celery's Redis result backend, storing a result in one atomic round trip."""

    def _store_result(self, task_id: Any, result: Any, state: str, traceback: Any = None,
                      request: Any = None, **kwargs: Any) -> Any:
        if self.serializer != "json":  # the script reads the stored meta as JSON
            return super()._store_result(task_id, result, state, traceback, request, **kwargs)
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError("value too large for Redis backend", state=state, task_id=task_id)
        expires = self.failure_expires if state == states.FAILURE else self.expires
        key = self.get_key_for_task(task_id)
        self.ensure(self._store, (key, value, int(expires or 0)))
        return result

    @cached_property
    def _store_script(self) -> Any:
        return self.client.register_script(_STORE_SCRIPT)  # EVALSHA, reloaded if Redis lost it

    def _store(self, key: Any, value: Any, expires: int) -> None:
        self._store_script(keys=[key], args=[value, expires])
