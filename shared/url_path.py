"""The one check every service's path-id routes share: the URL path must be UTF-8."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from flask import request

from shared.errors import BadInput


def require_utf8_path() -> None:
    """A ``before_request`` hook: an id in the path that is not UTF-8 (``%FF``) was read as U+FFFD
    and served (or overwritten) as that id; a 400 ``invalid_url``, as a NUL is. Servers hand the
    path over as bytes in Latin-1 (``PATH_INFO``) and, most of them, as sent
    (``REQUEST_URI``/``RAW_URI``); either may show it."""
    env = request.environ
    raw = (env.get("RAW_URI") or env.get("REQUEST_URI") or "").split("?", 1)[0]
    try:
        env.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeError:
        raise BadInput("the URL path is not valid UTF-8 (percent-encode ids as UTF-8)", code="invalid_url") from None
