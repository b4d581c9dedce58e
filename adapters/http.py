"""The one signed HTTP client of the adapters: request signing, signature checks and the error map they share.

The payment gateway, the vehicle registry and e-approval speak the same shape of contract (docs/gateway.md,
docs/registry.md, docs/approval.md): every request carries a hex HMAC-SHA256 under a shared key in
``X-Jingsu-Signature`` — of the body, or of ``"<METHOD> <path>"`` when there is none — and, for the registry and
e-approval, prefixed by a Unix timestamp sent in ``X-Jingsu-Timestamp`` (``"<timestamp>." + payload``).

A call that changes something at the service may carry an ``Idempotency-Key`` (the outbox row's key, sent again with
every delivery of the row): the service applies a key once and answers a repeated key as it answered the first
(docs/*.md, "Idempotency"). The key is not signed: a replayed signed request with another key would meet the
service's own duplicate checks (reference id, order id, the state machine).

Answers map to two errors an adapter names: *unavailable* (retry later: transport error, timeout, 5xx, an answer
outside the contract) and *refused* (4xx: the service said no, with its stable ``code`` and ``detail``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

Clock = Callable[[], float]  # Unix seconds

TIMESTAMP_HEADER = "X-Jingsu-Timestamp"
SIGNATURE_HEADER = "X-Jingsu-Signature"
# the outbox's key of a call (models.outbox): the service applies a key once and answers it again the same way
IDEMPOTENCY_HEADER = "Idempotency-Key"


class Refused(Exception):
    """The service refused the request (4xx); ``status`` is the HTTP status, ``code`` its stable error code.

    Each adapter's own refusal (``GatewayRefused`` …) derives from it and from that adapter's base error."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


def hmac_hex(key: bytes, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``key``."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def timestamped(timestamp: str, payload: bytes) -> bytes:
    """``"<timestamp>." + payload``: what a timestamped signature signs."""
    return timestamp.encode("ascii") + b"." + payload


def signature_matches(key: bytes, message: bytes, given: str | None) -> bool:
    """Constant-time check of a hex signature (case and surrounding blanks ignored); a missing one never matches."""
    if not given:
        return False
    return hmac.compare_digest(hmac_hex(key, message).encode(), given.strip().lower().encode("utf-8", "replace"))


def hex_key(value: str, what: str) -> bytes:
    """``value`` (hex) as bytes; ``ValueError`` naming ``what`` (e.g. "the gateway key") if not hex or empty."""
    try:
        key = bytes.fromhex(value)
    except ValueError as exc:
        raise ValueError(f"{what} must be hex") from exc
    if not key:
        raise ValueError(f"{what} must not be empty")
    return key


def header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]`` whatever the case of the keys (a plain dict, Flask's or httpx's headers)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # loading the CA bundle is most of the cost of a new httpx.Client (~25 ms): do it once per process
    return httpx.create_ssl_context()


def error_code(response: httpx.Response) -> str:
    """The stable ``code`` of an error answer (``http_<status>`` when the body has none)."""
    err = _json(response)
    return str((err.get("code") if isinstance(err, dict) else None) or f"http_{response.status_code}")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@dataclass(frozen=True)
class Service:
    """How an adapter names its service and its errors: ``label`` in messages ("the gateway"),
    ``unavailable(message)`` and ``refused(status, code, detail)`` build the adapter's own exceptions."""

    label: str
    unavailable: Callable[[str], Exception]
    refused: Callable[[int, str, str], Exception]


class SignedClient:
    """Signed requests to one service and its answers mapped to the adapter's errors.

    ``service`` names the service and its errors. With ``stamp`` the signature covers a timestamp from ``clock``
    (Unix seconds). Without ``client``, each call uses a short-lived httpx client; pass one to pool connections
    (its base URL is not used).
    """

    def __init__(
        self,
        base_url: str,
        key: bytes,
        service: Service,
        *,
        timeout: float = 10.0,
        stamp: bool = False,
        clock: Clock = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.label = service.label
        self._unavailable = service.unavailable
        self._refused = service.refused
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._stamp = stamp
        self._clock = clock
        self._client = client

    def signed_headers(
        self, method: str, path: str, body: bytes | None, *, idempotency_key: str | None = None
    ) -> dict[str, str]:
        """The headers of a signed request: the signature of ``body`` (or ``"<method> <path>"``), its timestamp,
        and the ``Idempotency-Key`` if one is given."""
        payload = body if body is not None else f"{method} {path}".encode()
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if self._stamp:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            payload = timestamped(timestamp, payload)
        headers[SIGNATURE_HEADER] = hmac_hex(self.key, payload)
        return headers

    def send(
        self, method: str, path: str, body: bytes | None = None, *, idempotency_key: str | None = None
    ) -> httpx.Response:
        """The signed request's response, whatever its status; a transport error is *unavailable*."""
        headers = self.signed_headers(method, path, body, idempotency_key=idempotency_key)
        url = f"{self.base_url}{path}"
        try:
            if self._client is not None:
                return self._client.request(method, url, content=body, headers=headers, timeout=self._timeout)
            with httpx.Client(timeout=self._timeout, verify=_tls_context()) as client:
                return client.request(method, url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise self._unavailable(f"{self.label} at {self.base_url} could not be reached: {exc!r}") from exc

    def answer(
        self, response: httpx.Response, *, ok: tuple[int, ...] = (200, 201), quote_body: bool = True
    ) -> dict[str, Any]:
        """The JSON object of a successful answer; 5xx and anything outside the contract are *unavailable*, 4xx is
        *refused*. With ``quote_body`` false a 4xx's text is never quoted (answers that may carry personal data)."""
        if response.status_code >= 500:
            raise self._unavailable(f"{self.label} answered {response.status_code}; try again later")
        data = _json(response)
        if 400 <= response.status_code < 500:
            err = data if isinstance(data, dict) else {}
            code = str(err.get("code") or f"http_{response.status_code}")
            if quote_body:
                detail = str(err.get("detail") or response.text[:200])
            else:
                detail = str(err.get("detail") or "")[:200]
            raise self._refused(response.status_code, code, detail)
        if response.status_code not in ok or not isinstance(data, dict):
            raise self._unavailable(f"{self.label} answered {response.status_code} outside the contract")
        return data

    def call(
        self, method: str, path: str, body: bytes | None = None, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``send`` then ``answer``."""
        return self.answer(self.send(method, path, body, idempotency_key=idempotency_key))
