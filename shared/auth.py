"""API keys with roles, stored hashed; ``require_role`` guards ops and analyst endpoints."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from sqlalchemy import select

from shared.errors import BadInput, Forbidden, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])
# ops may do everything; a feed key only posts news, texts to score and interactions, and only
# where FINPULSE_FEED_KEY_REQUIRED closes those endpoints (open by default, as the contract has them)
ROLES = ("analyst", "feed", "ops")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(db: Any, name: str, role: str) -> str:
    """Create a key, store its hash, return the plain key (shown once)."""
    from shared.models import ApiKey

    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name.strip() or len(name) > 100 or not name.isprintable():
        raise BadInput("a key's name must be 1-100 printable characters (who holds the key)")
    key = "fp_" + secrets.token_urlsafe(24)
    with db.session() as s:
        s.add(ApiKey(name=name, role=role, key_hash=hash_key(key)))
    return key


def revoke_key(db: Any, name: str) -> int:
    from shared.models import ApiKey

    with db.session() as s:
        keys = s.scalars(select(ApiKey).where(ApiKey.name == name,
                                              ApiKey.revoked_at.is_(None))).all()
        for k in keys:
            k.revoked_at = datetime.now(UTC)
        return len(keys)


def role_for(db: Any, key: str, ops_key: str | None) -> tuple[str, str] | None:
    """(name, role) for a presented key, or None."""
    from shared.models import ApiKey

    if ops_key and hmac.compare_digest(hash_key(key), hash_key(ops_key)):
        return ("ops-bootstrap", "ops")
    with db.session() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key),
                                             ApiKey.revoked_at.is_(None))).first()
        return (row.name, row.role) if row else None


def require_role(role: str, only_if: str | None = None) -> Callable[[F], F]:
    """Decorator: the request needs ``Authorization: Bearer <key>`` of ``role`` (or ops).

    ``only_if``: a boolean setting that turns the check on; while it is off the endpoint stays
    open, and the OpenAPI document says so (:func:`role_required`).
    """

    def deco(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from flask import current_app, g, request

            from shared.db import get_db

            if only_if is not None and not getattr(current_app.config["FINPULSE"], only_if):
                return view(*args, **kwargs)
            scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
            if scheme.lower() != "bearer" or not key.strip():  # schemes are case-insensitive (RFC 9110)
                raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
            found = role_for(get_db(), key.strip(), current_app.config["FINPULSE"].ops_key)
            if found is None:
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
