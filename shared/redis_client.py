"""Redis access: one client per URL and process, with a ping that says what is wrong."""

from __future__ import annotations

from functools import lru_cache

import redis

from shared.errors import Unavailable
from shared.settings import redact


@lru_cache(maxsize=8)
def get_redis(url: str) -> redis.Redis:
    """A pooled client; short timeouts so an outage gives a quick 503, not a hang."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5,
                                health_check_interval=15, decode_responses=False)


def channel(url: str, name: str) -> str:
    """The pub/sub channel ``name`` for the suite on ``url``. Pub/sub ignores the DB number, so
    suites sharing one Redis server on different DBs heard each other's model changes (and
    reloaded) and alerts: DB 0 keeps ``finpulse:NAME``, DB N uses ``finpulse:dbN:NAME``."""
    db = int(redis.connection.parse_url(url).get("db") or 0)
    return f"finpulse:{name}" if db == 0 else f"finpulse:db{db}:{name}"


def limiter_storage_uri(url: str) -> str:
    """REDIS_URL as the limits library (Flask-Limiter's storage) spells it: redis+unix:// for a socket."""
    return f"redis+{url}" if url.startswith("unix://") else url


def ping(url: str) -> None:
    try:
        get_redis(url).ping()
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(f"redis unreachable at {redact(url)}: {exc}") from None


def is_up(url: str) -> bool:
    try:
        ping(url)
        return True
    except Unavailable:
        return False
