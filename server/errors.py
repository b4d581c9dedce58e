"""Every error becomes RFC 7807 problem+json with a stable ``code`` (PROTOCOL.md §0), mapped in this one place.

Domain errors carry their code; HTTP errors from routing and parsing get the generic codes; anything unexpected is a
500 ``internal_error`` with a request id and no stack trace.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException

from models import errors as domain
from sync.changes import ResetRequired
from sync.push.envelope import EnvelopeError
from sync.schemas import flatten_errors

log = logging.getLogger("jingsu.errors")

PROBLEM_JSON = "application/problem+json"

_GENERIC_CODES = {
    400: "bad_request",
    401: "token_invalid",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    426: "protocol_unsupported",
    429: "rate_limited",
}

_DOMAIN_STATUS: list[tuple[type[domain.DomainError], int]] = [
    (domain.NotFound, 404),
    (domain.InvalidTransition, 409),
    (domain.Conflict, 409),
    (domain.InvalidInput, 422),
    (domain.Unauthorized, 401),
    (domain.Forbidden, 403),
    (domain.RateLimited, 429),
]


class ApiError(Exception):
    """An HTTP-level refusal raised by the web layer itself (size, version, token …)."""

    def __init__(self, status: int, code: str, detail: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors = status, code, detail, errors


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    errors: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _title(status),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_JSON)
    return response


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _is_page_request() -> bool:
    return request.path.startswith("/p/")


def register(app: Flask) -> None:
    """Install the handlers; call after the flask-smorest Api so ours win."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return problem(exc.status, exc.code, exc.detail, errors=exc.errors)

    @app.errorhandler(EnvelopeError)
    def _envelope(exc: EnvelopeError) -> Response:
        return problem(422, "validation_failed", exc.detail, errors=exc.errors)

    @app.errorhandler(ResetRequired)
    def _reset(exc: ResetRequired) -> Response:
        return problem(409, "reset_required", exc.detail)

    @app.errorhandler(domain.DomainError)
    def _domain(exc: domain.DomainError) -> Response:
        status = next((s for cls, s in _DOMAIN_STATUS if isinstance(exc, cls)), 400)
        errors = {exc.field: [exc.detail]} if exc.field and status == 422 else None
        extra = {k: v for k, v in exc.extra.items() if k in ("current",)}
        if exc.field and status != 422:
            extra["field"] = exc.field
        return problem(status, exc.code, exc.detail, errors=errors, extra=extra or None)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        if _is_page_request() and status < 500:
            from server.pages import error_page

            return error_page(status)
        code = _GENERIC_CODES.get(status, "http_error")
        errors = None
        data = getattr(exc, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if status == 400 and isinstance(messages, dict) and "json" in messages:
            # webargs could not decode the body (e.g. JSON that is not UTF-8): PROTOCOL.md §0 calls it malformed_json
            return problem(400, "malformed_json", "the request body is not valid JSON")
        if messages:
            # webargs nests messages under the location (json, query, path …); fields are what clients need
            flat: dict[str, list[str]] = {}
            for location_messages in messages.values():
                flat.update(flatten_errors(location_messages))
            errors = flat
            if status == 422:
                code = "validation_failed"
        detail = exc.description or _title(status)
        if status == 422 and not errors:
            errors = {"body": [detail]}
        return problem(status, code, detail, errors=errors)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        request_id = getattr(g, "request_id", None) or uuid.uuid4().hex
        log.exception("unhandled error, request %s", request_id)
        if _is_page_request():
            from server.pages import error_page

            return error_page(500)
        return problem(500, "internal_error", f"an unexpected error occurred; request id {request_id}")
