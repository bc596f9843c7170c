"""The error hierarchy: every boundary (HTTP, CLI, worker) maps these to a clear message."""

from __future__ import annotations


class FinPulseError(Exception):
    """Base error: ``code`` is machine-readable, the message says what to fix."""

    code = "error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadInput(FinPulseError):
    """The caller sent something unusable (bad file, row, field, parameter)."""

    code = "bad_request"
    status = 400


class NotFound(FinPulseError):
    code = "not_found"
    status = 404


class Unauthorized(FinPulseError):
    code = "unauthorized"
    status = 401


class Forbidden(FinPulseError):
    code = "forbidden"
    status = 403


class Conflict(FinPulseError):
    code = "conflict"
    status = 409


class Unavailable(FinPulseError):
    """A dependency (model, Redis, DB, worker) is not ready; retry later."""

    code = "unavailable"
    status = 503


class ConfigError(FinPulseError):
    """Bad configuration: the message names the setting and the fix."""

    code = "config_error"
    status = 500


class ModelNotFound(NotFound):
    code = "model_not_found"
