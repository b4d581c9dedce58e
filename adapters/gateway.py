"""The payment gateway (PG) adapter: the ``PaymentGateway`` Protocol and ``HttpGateway``, its HTTP implementation.

The contract is ``docs/gateway.md``; ``sandboxes.gateway`` is the sandbox that speaks it in dev and tests, and
a production PG is the same class with another base URL and key. Callbacks are hints (DESIGN.md §4): verify their
signature with ``verify_callback``, then ask the gateway with ``query`` and trust only its answer.

Errors split by what the caller does next: ``GatewayUnavailable`` — retry later (transport error, timeout, 5xx, a
malformed answer); ``GatewayRefused`` — the gateway said no (4xx: bad signature, bad request, unknown transaction,
order conflict); fix the request, do not retry it as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, get_args
from urllib.parse import quote

import httpx

from adapters.http import SIGNATURE_HEADER, Refused, Service, SignedClient, hex_key, hmac_hex, signature_matches

PaymentStatus = Literal["ready", "approved", "cancelled"]
_STATUSES: tuple[str, ...] = get_args(PaymentStatus)

METHODS = ("card", "transfer")  # how the citizen paid at the gateway: 카드, 계좌이체
REQUEST_SIGNATURE_HEADER = SIGNATURE_HEADER
CALLBACK_SIGNATURE_HEADER = "X-Gateway-Signature"


class GatewayError(Exception):
    """Base of every payment gateway error."""


class GatewayUnavailable(GatewayError):
    """Retry later: the gateway could not be reached, timed out, answered 5xx or answered outside the contract."""


class GatewayRefused(GatewayError, Refused):
    """The gateway refused the request (4xx); ``status`` is the HTTP status, ``code`` its stable error code."""


_SERVICE = Service("the gateway", GatewayUnavailable, GatewayRefused)


@dataclass(frozen=True)
class Created:
    """A payment created (or found again by its order id) at the gateway; send the phone to ``redirect_url``."""

    txn_id: str
    redirect_url: str


@dataclass(frozen=True)
class GatewayPayment:
    """The gateway's own answer about a transaction: the only thing a payment may be posted from."""

    txn_id: str
    order_id: str
    status: PaymentStatus
    amount: int
    approved_at: datetime | None  # timezone-aware; None unless approved
    notice_no: str
    method: str | None = None  # card or transfer (계좌이체), once approved; None from a gateway that does not say

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as the gateway sent it (``approved_at`` in ISO 8601): for keeping with the raw payload."""
        return {
            "txn_id": self.txn_id,
            "order_id": self.order_id,
            "status": self.status,
            "amount": self.amount,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "notice_no": self.notice_no,
            "method": self.method,
        }


class PaymentGateway(Protocol):
    """What Jingsu needs of a payment gateway; ``name`` is the gateway half of ``UNIQUE(gateway, txn_id)``."""

    name: str

    def create(
        self,
        order_id: str,
        amount: int,
        notice_no: str,
        description: str,
        return_url: str,
        callback_url: str,
        *,
        idempotency_key: str | None = None,
    ) -> Created:
        """Create a payment (idempotent per ``order_id``, and per ``idempotency_key``). Raises
        ``GatewayUnavailable``, ``GatewayRefused``."""
        ...

    def query(self, txn_id: str, *, idempotency_key: str | None = None) -> GatewayPayment:
        """The transaction's status as the gateway knows it. Raises ``GatewayUnavailable``, ``GatewayRefused``."""
        ...

    def refund(self, txn_id: str, *, idempotency_key: str | None = None) -> GatewayPayment:
        """Cancel an approved transaction (취소 after approval; idempotent per ``idempotency_key``, the outbox row's
        key). Raises ``GatewayUnavailable``, ``GatewayRefused``."""
        ...

    def verify_callback(self, raw_body: bytes, signature: str | None) -> bool:
        """Whether ``signature`` is the gateway's signature of exactly ``raw_body``."""
        ...


def sign(key: bytes, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``key``: every signature of the contract."""
    return hmac_hex(key, message)


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway is and how to talk to it: base URL, the shared secret key (hex), the gateway's name (the
    gateway half of ``UNIQUE(gateway, txn_id)``) and the request timeout in seconds."""

    url: str
    key: str
    name: str = "sandbox"
    timeout: float = 10.0


class HttpGateway:
    """``PaymentGateway`` over HTTP (docs/gateway.md) with httpx, as ``settings`` describe it.

    Without ``client``, each call uses a short-lived httpx client, so an instance per request is fine; pass a
    long-lived ``client`` to pool connections (its base URL is not used).
    """

    def __init__(self, settings: GatewaySettings, *, client: httpx.Client | None = None) -> None:
        self._key = hex_key(settings.key, "the gateway key")
        self.base_url = settings.url.rstrip("/")
        self.name = settings.name
        self._http = SignedClient(self.base_url, self._key, _SERVICE, timeout=settings.timeout, client=client)

    def create(
        self,
        order_id: str,
        amount: int,
        notice_no: str,
        description: str,
        return_url: str,
        callback_url: str,
        *,
        idempotency_key: str | None = None,
    ) -> Created:
        """``POST /v1/payments`` (with ``Idempotency-Key`` if given): create the payment, or find the one this
        ``order_id`` already has.

        Raises ``GatewayRefused`` (401 bad_signature, 400 invalid_request, 409 order_conflict) and
        ``GatewayUnavailable``.
        """
        body = json.dumps(
            {
                "order_id": order_id,
                "amount": amount,
                "notice_no": notice_no,
                "description": description,
                "return_url": return_url,
                "callback_url": callback_url,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        data = self._http.call("POST", "/v1/payments", body, idempotency_key=idempotency_key)
        txn_id, redirect_url = data.get("txn_id"), data.get("redirect_url")
        if not (isinstance(txn_id, str) and txn_id and isinstance(redirect_url, str) and redirect_url):
            raise GatewayUnavailable(f"the gateway's create answer is outside the contract: {data!r}")
        return Created(txn_id=txn_id, redirect_url=redirect_url)

    def query(self, txn_id: str, *, idempotency_key: str | None = None) -> GatewayPayment:
        """``GET /v1/payments/<txn_id>``, signed: the transaction as the gateway knows it (a read: a key is only
        counted by the sandbox).

        Raises ``GatewayRefused`` (404 not_found, 401 bad_signature) and ``GatewayUnavailable`` (also when the answer
        is malformed or names another transaction).
        """
        path = f"/v1/payments/{quote(txn_id, safe='')}"
        return _payment(txn_id, self._http.call("GET", path, idempotency_key=idempotency_key))

    def refund(self, txn_id: str, *, idempotency_key: str | None = None) -> GatewayPayment:
        """``POST /v1/payments/<txn_id>/cancel``, signed (with ``Idempotency-Key`` if given): the merchant cancels
        an approved payment (취소 after approval); the gateway answers the transaction, now ``cancelled`` with its
        ``approved_at`` kept, and sends a signed callback. Raises ``GatewayRefused`` (404, 409 not_approved) and
        ``GatewayUnavailable``."""
        path = f"/v1/payments/{quote(txn_id, safe='')}/cancel"
        return _payment(txn_id, self._http.call("POST", path, idempotency_key=idempotency_key))

    def verify_callback(self, raw_body: bytes, signature: str | None) -> bool:
        """Whether ``signature`` (the ``X-Gateway-Signature`` header, hex) signs exactly ``raw_body``; constant time.

        Verify the bytes as received, before parsing them. A valid signature makes the callback authentic, not
        true: confirm with ``query``.
        """
        return signature_matches(self._key, raw_body, signature)


def _payment(txn_id: str, data: dict[str, Any]) -> GatewayPayment:
    """A status answer checked against the contract; anything else is ``GatewayUnavailable``."""
    try:
        status, amount, approved_raw = data["status"], data["amount"], data["approved_at"]
        order_id, notice_no = data["order_id"], data["notice_no"]
        method = data.get("method")
        if method is not None and method not in METHODS:
            raise ValueError(f"method {method!r} is none of {METHODS}")
        if data["txn_id"] != txn_id:
            raise ValueError(f"asked for {txn_id!r}, got {data['txn_id']!r}")
        if status not in _STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError(f"amount {amount!r}")
        if not (isinstance(order_id, str) and isinstance(notice_no, str)):
            raise ValueError("order_id and notice_no must be strings")
        approved_at = None
        if approved_raw is not None:
            approved_at = datetime.fromisoformat(str(approved_raw))
            if approved_at.utcoffset() is None:
                raise ValueError(f"approved_at {approved_raw!r} has no offset")
        # approved_at is set when approved, unset while ready; a cancelled payment keeps it if it was approved first
        if (status == "approved" and approved_at is None) or (status == "ready" and approved_at is not None):
            raise ValueError("approved_at must be set when approved and only then (or on a refund)")
    except (KeyError, ValueError, TypeError) as exc:
        raise GatewayUnavailable(f"the gateway's status answer is outside the contract: {exc}") from exc
    return GatewayPayment(
        txn_id=txn_id,
        order_id=order_id,
        status=status,
        amount=amount,
        approved_at=approved_at,
        notice_no=notice_no,
        method=method,
    )
