"""Domain errors. Each carries a stable ``code`` (PROTOCOL.md §0) that ``server/errors.py`` maps to HTTP."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every refusal the domain makes; ``code`` is stable API."""

    code = "domain_error"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.field = field
        self.extra = extra


class NotFound(DomainError):
    """The thing asked for does not exist, or is outside the caller's jurisdiction (no oracle)."""

    code = "not_found"


class InvalidTransition(DomainError):
    """The object's state does not allow this operation."""

    code = "invalid_transition"


class Conflict(DomainError):
    """The request collides with the current state (409)."""

    code = "conflict"


class InvalidInput(DomainError):
    """A value is well-formed but not acceptable (422); ``field`` names it."""

    code = "validation_failed"


class Unauthorized(DomainError):
    """Credentials are missing or wrong (401)."""

    code = "invalid_credentials"


class Forbidden(DomainError):
    """The caller may not do this (403)."""

    code = "forbidden"


class RateLimited(DomainError):
    """Too many attempts; try again later (429)."""

    code = "rate_limited"
