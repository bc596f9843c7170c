"""Redis access: one client per URL and process, with a ping that says what is wrong."""

from __future__ import annotations

from functools import lru_cache

import redis

from shared.errors import Unavailable


@lru_cache(maxsize=8)
def get_redis(url: str) -> redis.Redis:
    """A pooled client; short timeouts so an outage gives a quick 503, not a hang."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5,
                                health_check_interval=15, decode_responses=False)


def limiter_storage_uri(url: str) -> str:
    """REDIS_URL as the limits library (Flask-Limiter's storage) spells it: redis+unix:// for a socket."""
    return f"redis+{url}" if url.startswith("unix://") else url


def ping(url: str) -> None:
    try:
        get_redis(url).ping()
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(f"redis unreachable at {url}: {exc}") from None


def is_up(url: str) -> bool:
    try:
        ping(url)
        return True
    except Unavailable:
        return False
