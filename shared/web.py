"""What every FinPulse Flask service shares: JSON errors, health, readiness, OpenAPI.

A service's ``create_app`` calls :func:`create_service_app`, adds its blueprints and
registers readiness checks (callables that raise :class:`~shared.errors.Unavailable`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from shared import metrics
from shared.auth import role_required
from shared.errors import BadInput, FinPulseError
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

MAX_CONTENT_LENGTH = 8 * 1024 * 1024


def error_response(code: str, message: str, status: int) -> tuple[Any, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _holds_nul(data: Any) -> bool:
    if isinstance(data, str):
        return "\x00" in data
    if isinstance(data, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in data.items())
    return isinstance(data, list) and any(_holds_nul(v) for v in data)


class StrictJSONProvider(DefaultJSONProvider):
    """JSON bodies that parse but cannot be stored or tokenised are invalid (issue 9).

    Deep nesting (RecursionError), lone UTF-16 surrogates (``"\\ud800"``, not
    encodable as UTF-8) and NUL characters (not storable in PostgreSQL) become
    ``ValueError``, which Flask's ``get_json`` treats as invalid JSON, so every view
    answers 400 instead of a 500 further down.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            data = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        text = s if isinstance(s, str) else s.decode("utf-8", "replace")
        try:
            nul = "\\u0000" in text and _holds_nul(data)  # PostgreSQL refuses NUL in text: a 500 there
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        if nul:
            raise ValueError("JSON string holds a NUL character")
        if _ESCAPED_SURROGATE.search(text):
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("JSON string holds a lone UTF-16 surrogate") from None
        return data


# PostgreSQL's read_only_sql_transaction: a replica after a fail-over, or a database set read-only.
# An outage of writes like a lost connection (503, retry), not a bug; psycopg raises it as InternalError.
READ_ONLY_SQLSTATE = "25006"
# A table or column this FinPulse needs is missing (migrations not run, or a `db downgrade`):
# PostgreSQL's undefined_table / undefined_column, SQLite's "no such table|column". Readiness
# already says so; the requests themselves were 500s on PostgreSQL.
SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})
SCHEMA_UNAVAILABLE = "database schema not ready for this FinPulse (run `finpulse db upgrade`); retry later"


def _schema_missing(exc: DBAPIError) -> bool:
    return (getattr(exc.orig, "sqlstate", None) in SCHEMA_SQLSTATES
            or (isinstance(exc, OperationalError) and str(exc.orig).startswith(("no such table", "no such column"))))


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as ``{"error": {"code", "message"}}``; no HTML, no traceback."""

    @app.errorhandler(FinPulseError)
    def _finpulse(exc: FinPulseError) -> tuple[Any, int]:
        body, status = error_response(exc.code, exc.message, exc.status)
        if status == 401:  # RFC 9110: a 401 names the scheme that would be accepted
            body.headers["WWW-Authenticate"] = 'Bearer realm="finpulse"'
        return body, status

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 413:  # werkzeug's "exceeds the capacity limit" named no limit to keep under
            limit = current_app.config.get("MAX_CONTENT_LENGTH") or MAX_CONTENT_LENGTH
            message = (f"the request body is over the {limit / 2**20:g} MiB limit; send less at a time "
                       "(split a batch) or give a server path instead of an upload where the endpoint takes one")
        body, status = error_response(code, message, exc.code or 500)
        # what the exception adds to its own response (a 405's Allow, a 429's Retry-After)
        body.headers.extend([(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"])
        return body, status

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError) -> tuple[Any, int]:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)  # the driver's line, logged only
        if _schema_missing(exc):
            log.warning("database schema missing on %s %s: %s", request.method, request.path, reason)
            return error_response("unavailable", SCHEMA_UNAVAILABLE, 503)
        # A lost or refused database connection is an outage (retry later), not a bug (issue 9).
        if (isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
                or getattr(exc.orig, "sqlstate", None) == READ_ONLY_SQLSTATE):
            log.warning("database unavailable on %s %s: %s", request.method, request.path, reason)
            return error_response("unavailable", "database unavailable; retry later", 503)
        return _unexpected(exc)

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def _redis(exc: Exception) -> tuple[Any, int]:
        # Redis down (sessions, queues, rate limits) is an outage, not a bug (issue 9).
        log.warning("redis unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response("unavailable", "redis unavailable; retry later", 503)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Any, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("internal_error", "internal error; see the service log", 500)


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def require_json() -> None:
    """A 415 unless the body is declared JSON: a form post or a no-cors fetch from any page can
    send text/plain, form-urlencoded or no type without a CORS preflight (a cross-site forgery)."""
    if not request.is_json:
        raise BadInput("expected a JSON body (Content-Type: application/json)",
                       code="unsupported_media_type", status=415)


def parse_body(model: type[M]) -> M:
    """Parse and validate the JSON body as ``model``; bad JSON or fields give a 400."""
    require_json()
    if not request.get_data(cache=True).strip():
        raise BadInput("request body is empty; expected a JSON object", code="invalid_json")
    data = request.get_json(silent=True)
    if data is None:  # unparsable, or the JSON literal null
        raise BadInput(why_not_json(), code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadInput(format_validation_error(exc), code="validation_error") from None


def why_not_json(expected: str = "a JSON object") -> str:
    """What is wrong with a body ``get_json`` refused: a NUL is valid JSON that the strict
    parser refuses, and calling it invalid JSON sent users looking for a syntax error."""
    try:
        current_app.json.loads(request.get_data(cache=True))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, StrictJSONProvider's reasons
        return f"request body is not usable JSON ({str(exc)[:200]}); expected {expected}"
    return f"request body is the JSON literal null; expected {expected}"


def json_body(model: type[BaseModel]) -> Callable[[F], F]:
    """Decorator: pass the validated body as ``body``; records the schema for OpenAPI."""

    def deco(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return view(*args, body=parse_body(model), **kwargs)

        wrapper._openapi_body = model  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


# A query number is ASCII digits (README: "`k` 1-100 in ASCII digits"): ``int()`` also took "+5", " 5 ",
# "1_0" and full-width or Arabic-Indic digits ("１", "٣"), so each of those spellings answered as a number.
_ASCII_INT = re.compile(r"-?[0-9]{1,100}")
_ASCII_NUMBER = re.compile(r"[0-9]{1,100}(\.[0-9]{1,100})?|\.[0-9]{1,100}")


def int_arg(name: str, default: int, lo: int, hi: int, code: str | None = None) -> int:
    """Query argument ``name`` as an integer in [lo, hi]; anything else is a 400 saying so
    (a clamped ``?limit=0`` answered something the caller did not ask for). Only ASCII digits
    (and a leading ``-``) count: no sign ``+``, spaces, ``_`` or digits of other scripts."""
    raw = request.args.get(name, str(default))
    if not _ASCII_INT.fullmatch(raw):
        raise BadInput(f"{name} must be an integer between {lo} and {hi} in ASCII digits, got {raw[:20]!r}",
                       code=code)
    value = int(raw)
    if not lo <= value <= hi:
        raise BadInput(f"{name} must be between {lo} and {hi}, got {value}", code=code)
    return value


def number_arg(name: str, default: float) -> float:
    """Query argument ``name`` as a plain decimal number in ASCII (``24``, ``0.5``): ``float()``
    also took "１", " 5", "1_0", "1e3", "nan" and "inf". The caller checks its bounds."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _ASCII_NUMBER.fullmatch(raw):
        raise BadInput(f"{name} must be a number in ASCII digits, got {raw[:20]!r}")
    return float(raw)


@dataclass(frozen=True)
class Query:
    """One query argument as the OpenAPI document states it: its JSON type, its meaning, and the
    bounds and default the view enforces as schema keywords (``minimum``, ``maximum``,
    ``default``), which clients and fuzzers read; prose alone ("1-100") told them nothing."""

    type: str
    description: str
    minimum: int | float | None = None
    maximum: int | float | None = None
    default: Any = None
    exclusive_minimum: bool = False  # the minimum itself is refused: hours in (0, 720]
    enum: tuple[str, ...] | None = None  # the only values the view takes

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.minimum is not None:
            out["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.default is not None:
            out["default"] = self.default
        return out

    def read(self, name: str) -> int:
        """The integer argument ``name`` checked by :func:`int_arg` against these very bounds, so
        what the document says and what the view refuses cannot drift apart."""
        if self.type != "integer" or self.minimum is None or self.maximum is None or self.exclusive_minimum:
            raise TypeError(f"query argument {name!r} is no bounded integer; the view reads it itself")
        return int_arg(name, self.default, int(self.minimum), int(self.maximum))


def int_query(description: str, lo: int, hi: int, default: int) -> Query:
    """A bounded integer query argument (``limit``, ``k``, ``max_s``); its prose range is
    written from the same numbers as its schema."""
    return Query("integer", f"{description}, {lo}-{hi} (default {default})", lo, hi, default)


def query_params(**params: tuple[str, str] | Query) -> Callable[[F], F]:
    """Decorator: document a view's query arguments (``name=(type, description)`` or a
    :class:`Query` with bounds and default) in the OpenAPI document; the view still reads and
    validates them itself (:meth:`Query.read` for a bounded integer). Each may be a 400."""

    def deco(view: F) -> F:
        view._openapi_query = {name: spec if isinstance(spec, Query) else Query(*spec)  # type: ignore[attr-defined]
                               for name, spec in params.items()}
        return view

    return deco


def rate_limited(view: F, limit: str) -> F:
    """Record on a view that Flask-Limiter wrapped that it answers 429 past ``limit`` (with
    Retry-After), and 503 when the limiter's store (Redis) is unreachable; returns the view."""
    view._openapi_rate_limits = [*getattr(view, "_openapi_rate_limits", []), limit]  # type: ignore[attr-defined]
    return view


_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted"}
# What ``needs=`` names: each one a view touches is a reason for its 503 ``unavailable``
# (the shared handlers turn a lost database or Redis into one; models and the knowledge base
# raise Unavailable themselves).
DEPENDENCIES = {
    "database": "the database is unreachable, read-only or not migrated",
    "redis": "Redis is unreachable",
    "queue": "the task queue (Redis) is unreachable",
    "model": "no production model is registered or loadable",
    "kb": "no knowledge base is loaded (`finpulse kb load`)",
}


def documented(*, status: int = 200, body: type[BaseModel] | None = None, multipart: bool = False,
               response: type[BaseModel] | None = None, errors: dict[int, str] | None = None,
               also: dict[int, str] | None = None, body_required: bool = True, media_type: str | None = None,
               headers: dict[str, str] | None = None, needs: tuple[str, ...] = (),
               retry_after: tuple[int, ...] = ()) -> Callable[[F], F]:
    """Decorator: what the OpenAPI document cannot see in the view: its success status, the
    schema of a body the view reads itself (per-row rejection, not one model), whether a
    multipart form (a ``data`` file plus the body's fields) is accepted too, the success
    answer's schema, and the error statuses only the view knows (``errors``: status: "code:
    when"; the decorators' own — 400/413/415 of a body, 400 of query arguments, 401/403 of a
    key, 429 of a rate limit — are added by themselves). ``also``: other success statuses (a
    PUT's 201 when it created); ``body_required=False``: the body may be left out;
    ``media_type``: a success answer that is not JSON (an event stream); ``headers``: request
    headers the view reads (name: description); ``needs``: the :data:`DEPENDENCIES` the view
    touches, each a reason for its 503; ``retry_after``: error statuses sent with Retry-After."""
    unknown = set(needs) - set(DEPENDENCIES)
    if unknown:  # a typo would silently drop the 503
        raise ValueError(f"unknown dependencies {sorted(unknown)}; known: {', '.join(DEPENDENCIES)}")

    def deco(view: F) -> F:
        view._openapi_status = status  # type: ignore[attr-defined]
        if body is not None:
            view._openapi_body = body  # type: ignore[attr-defined]
        view._openapi_body_required = body_required  # type: ignore[attr-defined]
        view._openapi_multipart = multipart  # type: ignore[attr-defined]
        if response is not None:
            view._openapi_response = response  # type: ignore[attr-defined]
        view._openapi_media_type = media_type  # type: ignore[attr-defined]
        view._openapi_headers = dict(headers or {})  # type: ignore[attr-defined]
        view._openapi_statuses = dict(also or {})  # type: ignore[attr-defined]
        view._openapi_errors = dict(errors or {})  # type: ignore[attr-defined]
        view._openapi_needs = tuple(needs)  # type: ignore[attr-defined]
        view._openapi_retry_after = tuple(retry_after)  # type: ignore[attr-defined]
        return view

    return deco


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))  # nested models are what the refs point to
    return schema


ERROR_REF = {"$ref": "#/components/schemas/Error"}
_RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}


def _error_reasons(view: Any, endpoint: str, reads_body: bool) -> dict[int, list[str]]:
    """Every 4xx/5xx an operation can answer, each with its reasons: from what its decorators
    recorded (body, query arguments, key, rate limit, dependencies) and the view's own ``errors``."""
    reasons: dict[int, list[str]] = {}

    def add(status: int, text: str) -> None:
        reasons.setdefault(status, []).append(text)

    add(400, "invalid_url: the URL holds a NUL character or is not UTF-8")  # the app's before_request
    if current_app.config["FINPULSE"].allowed_hosts:
        add(400, "invalid_host: the Host header names no host in FINPULSE_ALLOWED_HOSTS")
    needs = list(getattr(view, "_openapi_needs", ()))
    if reads_body:
        add(400, "invalid_json or validation_error: the body is not usable JSON or a field is invalid")
        add(413, f"request_entity_too_large: a body over {MAX_CONTENT_LENGTH // 2**20} MiB")
        add(415, "unsupported_media_type: the body is not sent as application/json")
    if query := getattr(view, "_openapi_query", None):
        add(400, f"bad_request: a malformed or out-of-range query argument ({', '.join(query)})")
    if role := role_required(view, current_app.config["FINPULSE"]):
        add(401, "unauthorized: no, an unknown or a revoked API key")
        add(403, f"forbidden: the key lacks the {role} role")
        add(429, f"too_many_requests: over {current_app.config['FINPULSE'].auth_failure_limit} wrong API keys "
                 "from this address (FINPULSE_AUTH_FAILURE_LIMIT), on any service; Retry-After says when")
        needs.insert(0, "database")  # keys are looked up there
    for limit in getattr(view, "_openapi_rate_limits", []):
        add(429, f"too_many_requests: over {limit}; Retry-After says when")
        needs.append("redis")  # the limiter's counters
    if endpoint == "static" or endpoint.endswith(".static"):
        add(404, "not_found: no such file")
    for status, text in getattr(view, "_openapi_errors", {}).items():
        add(status, text)
    if needs:
        add(503, "unavailable: " + ", or ".join(DEPENDENCIES[n] for n in dict.fromkeys(needs)) + "; retry later")
    return reasons


def _error_responses(view: Any, endpoint: str, reads_body: bool) -> dict[str, Any]:
    """The operation's error answers, each the shared Error schema; the statuses that come with
    Retry-After (a rate limit's 429, ``retry_after``) or WWW-Authenticate (401) say so."""
    out: dict[str, Any] = {}
    limited = getattr(view, "_openapi_rate_limits", None) or role_required(view, current_app.config["FINPULSE"])
    retry = {*getattr(view, "_openapi_retry_after", ()), *([429] if limited else [])}
    for status, texts in sorted(_error_reasons(view, endpoint, reads_body).items()):
        answer: dict[str, Any] = {"description": f"{HTTP_STATUS_CODES.get(status, 'Error')}. " + "; ".join(texts),
                                  "content": {"application/json": {"schema": ERROR_REF}}}
        if status in retry:
            answer["headers"] = {"Retry-After": _RETRY_AFTER}
        if status == 401:
            answer["headers"] = {"WWW-Authenticate": {"description": "the accepted scheme: Bearer",
                                                      "schema": {"type": "string"}}}
        out[str(status)] = answer
    return out


def openapi_document(app: Flask, title: str) -> dict[str, Any]:
    """An OpenAPI 3 document built from the URL map, view docstrings and body models; every
    operation lists the error statuses it can answer, each with the shared Error schema."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        path = str(rule.rule)
        params = []
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", f"{{{arg}}}")
            for conv in ("int", "string", "path"):
                path = path.replace(f"<{conv}:{arg}>", f"{{{arg}}}")
            params.append({"name": arg, "in": "path", "required": True,
                           "schema": {"type": "string"}})
        params += [{"name": name, "in": "query", "required": False, "description": spec.description,
                    "schema": spec.schema()} for name, spec in getattr(view, "_openapi_query", {}).items()]
        params += [{"name": name, "in": "header", "required": False, "description": text, "schema": {"type": "string"}}
                   for name, text in getattr(view, "_openapi_headers", {}).items()]
        doc = (view.__doc__ or rule.endpoint).strip().splitlines()[0]
        status = getattr(view, "_openapi_status", 200)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            body = getattr(view, "_openapi_body", None)
            reads_body = body is not None and method in ("POST", "PUT", "PATCH")
            op: dict[str, Any] = {
                "operationId": f"{rule.endpoint}_{method.lower()}",
                "summary": doc,
                "parameters": params,
                "responses": {
                    str(status): {"description": _STATUS_TEXT.get(status, "OK")},
                    **{str(code): {"description": text}
                       for code, text in getattr(view, "_openapi_statuses", {}).items()},
                    **_error_responses(view, rule.endpoint, reads_body),
                    "default": {"description": "Unexpected error: internal_error (see the service log)",
                                "content": {"application/json": {"schema": ERROR_REF}}},
                },
            }
            if role_required(view, current_app.config["FINPULSE"]):
                op["security"] = [{"bearer": []}]
            if (answer := getattr(view, "_openapi_response", None)) is not None:
                op["responses"][str(status)]["content"] = {"application/json": {"schema": _schema(answer, schemas)}}
            if media_type := getattr(view, "_openapi_media_type", None):
                op["responses"][str(status)]["content"] = {media_type: {"schema": {"type": "string"}}}
            if reads_body:
                schema = _schema(body, schemas)
                content = {"application/json": {"schema": schema}}
                if getattr(view, "_openapi_multipart", False):
                    form = {**schema, "properties": {**schema.get("properties", {}), "data": {
                        "type": "string", "format": "binary", "description": "the training set, uploaded"}}}
                    content["multipart/form-data"] = {"schema": form}
                op["requestBody"] = {"required": getattr(view, "_openapi_body_required", True), "content": content}
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": {**schemas, "Error": {  # every error answer carries all three (CONTRACT.md)
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}},
            }},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "an API key: `finpulse keys create` or FINPULSE_OPS_KEY"}},
        },
    }


# a proxy in front names the client in one of these (nginx's X-Real-IP, RFC 7239's Forwarded)
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def exempt_client(settings: Settings) -> bool:
    """Whether the request comes from an address the limits leave alone (FINPULSE_CHATBOT_RATE_LIMIT_EXEMPT,
    this host by default): the chat limits' rule, also used by the failed-key budget and /readyz."""
    if not settings.trusted_proxies and any(h in request.headers for h in FORWARDING_HEADERS):
        return False  # forwarded by a proxy nobody declared: the address is the proxy's
    # the peer itself must be exempt too: with trusted proxies, a client reaching the port
    # directly with "X-Forwarded-For: 127.0.0.1" was exempt from every limit
    peer = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", request.remote_addr)
    exempt = settings.chatbot_rate_limit_exempt
    return request.remote_addr in exempt and peer in exempt


# always answered under FINPULSE_ALLOWED_HOSTS: `finpulse up` and compose's health checks address the
# services so, and a Host naming this host's loopback points no link or rebinding page at another site
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` (``request.host``: name[:port], "" when malformed) names one of ``allowed`` (as
    :func:`shared.settings.allowed_host` wrote them; ".bank.example" is it and its subdomains) or loopback."""
    if host.startswith("["):  # an IPv6 address, compared in the form the setting stores
        name = host[1:].partition("]")[0]
        with contextlib.suppress(ValueError):
            name = ipaddress.ip_address(name).compressed
    else:
        name = host.partition(":")[0]
    name = name.lower().removesuffix(".")
    return bool(name) and any(name == entry.removeprefix(".") or (entry.startswith(".") and name.endswith(entry))
                              for entry in (*allowed, *LOOPBACK_HOSTS))


# pages (dashboard, ops page, chat demo) are never framed: another site could overlay them
PAGE_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}


def create_service_app(name: str, settings: Settings | None = None) -> Flask:
    """The skeleton of a service: settings, logging, errors, metrics, health endpoints."""
    from shared.logs import configure_logging

    settings = settings or get_settings()
    app = Flask(name)
    if settings.trusted_proxies:  # the client's address, scheme and host as the proxy saw them
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    app.json = StrictJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.config["FINPULSE"] = settings
    app.config["TESTING"] = settings.testing
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["readiness"] = []
    configure_logging(settings)
    register_error_handlers(app)
    metrics.init_app(app, name)

    @app.before_request
    def _allowed_host() -> None:
        # before every hook a service adds, so a refused Host reaches no rate limiter, session or view
        # (health endpoints included: loopback names always pass, see LOOPBACK_HOSTS)
        allowed = current_app.config["FINPULSE"].allowed_hosts
        if allowed and not host_allowed(request.host, allowed):
            raise BadInput(f"this service does not answer to the host {request.headers.get('Host', '')[:100]!r} "
                           "(FINPULSE_ALLOWED_HOSTS)", code="invalid_host")

    @app.before_request
    def _no_nul() -> None:
        # an id in the path or query (%00) would reach the database as in a JSON body
        if "\x00" in request.path or any("\x00" in v for v in request.args.values()):
            raise BadInput("the URL holds a NUL character", code="invalid_url")

    @app.after_request
    def _security_headers(resp: Any) -> Any:
        for header, value in (SECURITY_HEADERS | (PAGE_HEADERS if resp.mimetype == "text/html" else {})).items():
            resp.headers.setdefault(header, value)
        return resp

    @app.get("/healthz")
    def healthz() -> Any:
        """Process liveness."""
        return jsonify({"status": "ok", "service": name})

    @app.get("/readyz")
    @documented(errors={503: "unavailable: a readiness check failed (model, Redis or database); "
                             "`reasons` lists each, in full for this host or an analyst/ops key"})
    def readyz() -> Any:
        """Readiness: model loaded, Redis and DB reachable (503 with the reasons)."""
        problems, failed = [], []
        for topic, check in current_app.extensions["readiness"]:
            try:
                check()
                continue
            except FinPulseError as exc:
                problems.append(exc.message)
            except Exception as exc:  # a failing probe must not make readiness 500
                problems.append(f"{getattr(check, '__name__', 'check')}: {exc}")
            failed.append(topic)
        if problems and not _sees_full_reasons():  # security QA: paths and probe errors went to anyone
            problems = list(dict.fromkeys(failed))
        if problems:  # the contract's error shape, plus the fields probes already read
            return jsonify({"error": {"code": "unavailable", "message": "; ".join(problems)},
                            "status": "unavailable", "service": name, "reasons": problems}), 503
        return jsonify({"status": "ready", "service": name})

    @app.get("/openapi.json")
    def openapi() -> Any:
        """The OpenAPI 3 document of this service."""
        return jsonify(openapi_document(current_app, f"FinPulse {name}"))

    return app


def _sees_full_reasons() -> bool:
    """This host (where probes and `finpulse up` run) or an analyst/ops key sees /readyz's full reasons.

    A wrong key counts against the failed-key budget (else /readyz would be a key oracle without one);
    past the budget the key is not looked up and the short reasons come: readiness never answers 429."""
    from shared.auth import failure_wait, presented_key, record_failure, role_for
    from shared.db import get_db

    settings = current_app.config["FINPULSE"]
    if exempt_client(settings):
        return True
    if (key := presented_key()) is None or failure_wait() is not None:
        return False
    try:
        found = role_for(get_db(), key, settings.ops_key)
    except Exception:  # the database may be what is not ready: the short reasons then
        log.info("readyz: the presented key could not be checked", exc_info=True)
        return False
    if found is None:
        record_failure()
    return found is not None and found[1] in ("analyst", "ops")


def add_readiness_check(app: Flask, check: Callable[[], None], topic: str = "a readiness check") -> None:
    """``check`` raises when the service is not ready; ``topic`` ("model", "redis", ...) is all of its
    reason that /readyz tells a caller without a key (the message may hold paths and probe errors)."""
    app.extensions["readiness"].append((topic, check))


def settings_of(app: Flask | None = None) -> Settings:
    return (app or current_app).config["FINPULSE"]
