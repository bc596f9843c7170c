"""API keys with roles, stored hashed; ``require_role`` guards ops and analyst endpoints."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select

from shared.errors import BadInput, Forbidden, Unauthorized

if TYPE_CHECKING:
    from limits import RateLimitItem

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
# ops may do everything; a feed key only posts news, texts to score and interactions, and only
# where FINPULSE_FEED_KEY_REQUIRED closes those endpoints (open by default, as the contract has them)
ROLES = ("analyst", "feed", "ops")
# the audit log's actors that are FinPulse itself (bootstrap key, schedulers, the command line):
# a key of that name would pass its requests off as theirs
RESERVED_ACTORS = frozenset({"ops-bootstrap", "beat", "reaper", "finpulse", "finpulse-up", "train", "cli"})


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(db: Any, name: str, role: str) -> str:
    """Create a key, store its hash, return the plain key (shown once)."""
    from shared.models import ApiKey

    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    # stripped: " alice" was stored apart from "alice", looked the same in `keys list` and the audit
    # log, and outlived `keys revoke --name alice`
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise BadInput("a key's name must be 1-100 printable characters (who holds the key)")
    if name in RESERVED_ACTORS or name.startswith("cli:"):  # the audit log's actor is the key's name
        raise BadInput(f"a key may not be named {name!r}: the audit log names FinPulse's own actions so "
                       f"({', '.join(sorted(RESERVED_ACTORS))}, cli:USER)")
    key = "fp_" + secrets.token_urlsafe(24)
    with db.session() as s:
        s.add(ApiKey(name=name, role=role, key_hash=hash_key(key)))
    return key


def revoke_key(db: Any, name: str) -> int:
    """Revoke every active key of ``name`` (spaces around it aside, as :func:`create_key` strips
    them; a key stored with them by an earlier release is matched too)."""
    from shared.models import ApiKey

    with db.session() as s:
        keys = s.scalars(select(ApiKey).where(ApiKey.name.in_({name, name.strip()}),
                                              ApiKey.revoked_at.is_(None))).all()
        for k in keys:
            k.revoked_at = datetime.now(UTC)
        return len(keys)


def role_for(db: Any, key: str, ops_key: str | None) -> tuple[str, str] | None:
    """(name, role) for a presented key, or None."""
    from shared.models import ApiKey

    # stripped as the presented key is: FINPULSE_OPS_KEY read from a secret file or an env file often
    # ends in a newline, and such a bootstrap key could never be presented (every request a 401)
    ops_key = (ops_key or "").strip()
    if ops_key and hmac.compare_digest(hash_key(key), hash_key(ops_key)):
        return ("ops-bootstrap", "ops")
    with db.session() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key),
                                             ApiKey.revoked_at.is_(None))).first()
        return (row.name, row.role) if row else None


class LocalBudget:
    """Wrong keys per address counted in this process: the failed-key budget while its store (Redis) is
    unreachable, so an outage (or an attacker who causes one) does not lift the limit. The same moving
    windows as the store's; memory stays bounded: per address only the newest failures the largest limit
    needs, over as many addresses as ``max_failures`` such lists hold (10,000 at 20/minute, a few MB; the
    least recently failing go first, as do those whose failures all left the longest window), so a flood
    from many addresses (IPv6 gives an attacker plenty) cannot grow it without end."""

    def __init__(self, items: list[RateLimitItem], max_failures: int = 200_000) -> None:
        self.items = items
        self.depth = max(1, *(item.amount for item in items))
        self.longest = max(item.get_expiry() for item in items)
        self.max_addresses = max(100, max_failures // self.depth)
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()  # oldest last failure first
        self.lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may present keys again; None while it is within every limit."""
        now = time.monotonic()
        with self.lock:
            times = self.failures.get(address) or deque()
            # a limit of N is reached while the Nth newest failure is still inside its window
            waits = [(times[-item.amount] - now if item.amount else 0.0) + item.get_expiry() for item in self.items
                     if item.amount <= len(times)]  # a limit of 0 refuses every key, as the store's does
        wait = max(waits, default=0.0)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def fail(self, address: str) -> None:
        now = time.monotonic()
        with self.lock:
            times = self.failures.pop(address, None) or deque(maxlen=self.depth)
            times.append(now)
            self.failures[address] = times
            while self.failures and (len(self.failures) > self.max_addresses
                                     or next(iter(self.failures.values()))[-1] <= now - self.longest):
                self.failures.popitem(last=False)


class FailureBudget:
    """Wrong keys a client address may present (FINPULSE_AUTH_FAILURE_LIMIT), counted by ``limits`` in
    the rate limits' store: Redis, so one budget across every service (security QA: 200 wrong keys
    to /v1/admin/jobs in 2.4 s, all plain 401s). Only a presented, unknown key counts: a missing
    key or another scheme guesses nothing, and a key that authenticates (a 403 included) is no failure.

    While the store is unreachable the budget is this process's (:class:`LocalBudget`, same limits): it
    failed open before, so making Redis unreachable gave unlimited guesses. Good keys still pass."""

    KEY = "finpulse-auth-failures"
    # after the store failed, it is tried again this much later: meanwhile each request would wait for
    # its connect timeout, and the outage is logged once instead of on every request
    RETRY_STORE_S = 5.0

    def __init__(self, settings: Any) -> None:
        from limits import parse_many
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        from shared.redis_client import limiter_storage_uri

        self.items = parse_many(settings.auth_failure_limit)
        uri = limiter_storage_uri(settings.ratelimit_storage_url or settings.redis_url)
        # short timeouts, as get_redis: an unreachable Redis must not hold each request (memory:// ignores them)
        self.limiter = MovingWindowRateLimiter(storage_from_string(uri, socket_connect_timeout=2,
                                                                   socket_timeout=5))
        self.local = LocalBudget(self.items)
        self.store_down_until: float | None = None  # monotonic time of the next try; None while it answers

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may present keys again; None while it is within the budget."""
        return self._run(lambda: self._store_retry_after(address), lambda: self.local.retry_after(address))

    def fail(self, address: str) -> None:
        self._run(lambda: [self.limiter.hit(item, self.KEY, address) for item in self.items],
                  lambda: self.local.fail(address))

    def _store_retry_after(self, address: str) -> int | None:
        for item in self.items:
            if not self.limiter.test(item, self.KEY, address):
                reset = self.limiter.get_window_stats(item, self.KEY, address).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None

    def _run(self, shared: Callable[[], Any], local: Callable[[], Any]) -> Any:
        """``shared`` on the store; ``local`` (this process's budget) while the store is unreachable."""
        from limits.errors import StorageError
        from redis import RedisError

        down_until = self.store_down_until
        if down_until is None or time.monotonic() >= down_until:
            try:
                result = shared()
            except (RedisError, OSError, StorageError) as exc:
                if down_until is None:  # once an outage, not once a request
                    log.warning("failed-key budget: its store is unreachable (%s); counting wrong keys in this "
                                "process until it is back", exc)
                self.store_down_until = time.monotonic() + self.RETRY_STORE_S
            else:
                if down_until is not None:
                    log.info("failed-key budget: its store is reachable again; counting wrong keys there")
                    self.store_down_until = None
                return result
        return local()


def _budget_call(action: Callable[[FailureBudget], Any]) -> Any:
    """Run ``action`` on the app's budget (made on first use)."""
    from flask import current_app

    budget = current_app.extensions.get("auth_failures")
    if budget is None:
        budget = current_app.extensions.setdefault("auth_failures", FailureBudget(current_app.config["FINPULSE"]))
    return action(budget)


def budgeted_address() -> str | None:
    """The client address whose wrong keys count (as the rate limiter takes it, after ProxyFix), or
    None for an exempt one (:func:`shared.web.exempt_client`: this host's scripts and tests)."""
    from flask import current_app, request

    from shared.web import exempt_client

    return None if exempt_client(current_app.config["FINPULSE"]) else (request.remote_addr or "unknown")


def failure_wait() -> int | None:
    """Seconds this request's address must wait before its keys are looked up again; None when they are."""
    address = budgeted_address()
    return None if address is None else _budget_call(lambda b: b.retry_after(address))


def check_failure_budget() -> None:
    """A 429 with Retry-After, before any key lookup, while this address is past its budget."""
    from werkzeug.exceptions import TooManyRequests

    if (wait := failure_wait()) is not None:
        raise TooManyRequests(f"too many wrong API keys from this address; retry in {wait} s",
                              retry_after=wait)


def record_failure() -> None:
    """Count a wrong key against this address's budget (exempt addresses are not counted)."""
    if (address := budgeted_address()) is not None:
        _budget_call(lambda b: b.fail(address))


def presented_key() -> str | None:
    """The key of ``Authorization: Bearer <key>``, or None (schemes are case-insensitive, RFC 9110)."""
    from flask import request

    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def require_role(role: str, only_if: str | None = None) -> Callable[[F], F]:
    """Decorator: the request needs ``Authorization: Bearer <key>`` of ``role`` (or ops).

    ``only_if``: a boolean setting that turns the check on; while it is off the endpoint stays
    open, and the OpenAPI document says so (:func:`role_required`).
    """

    def deco(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from flask import current_app, g

            from shared.db import get_db

            if only_if is not None and not getattr(current_app.config["FINPULSE"], only_if):
                return view(*args, **kwargs)
            check_failure_budget()
            key = presented_key()
            if key is None:
                raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
            found = role_for(get_db(), key, current_app.config["FINPULSE"].ops_key)
            if found is None:
                record_failure()
                raise Unauthorized("unknown or revoked API key")
            name, have = found
            if have != role and have != "ops":
                raise Forbidden(f"this endpoint needs the {role!r} role; the key has {have!r}")
            g.actor = name
            return view(*args, **kwargs)

        wrapper._openapi_role = role  # type: ignore[attr-defined]  # the OpenAPI document's security
        wrapper._openapi_role_if = only_if  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


def role_required(view: Any, settings: Any) -> str | None:
    """The role ``view`` needs under ``settings`` (None: it is open)."""
    role, setting = getattr(view, "_openapi_role", None), getattr(view, "_openapi_role_if", None)
    return role if role is not None and (setting is None or getattr(settings, setting)) else None


def audit(db: Any, actor: str, action: str, target: str | None, outcome: str,
          detail: dict | None = None) -> None:
    """Record an admin action (who, what, when, outcome)."""
    from shared.models import AuditLog

    with db.session() as s:  # fitted to the columns: PostgreSQL refuses an over-long value (a 500)
        s.add(AuditLog(actor=actor[:100], action=action[:100], target=None if target is None else target[:300],
                       outcome=outcome[:50], detail=detail))
