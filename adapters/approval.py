"""The e-approval (전자결재) adapter: the ``ApprovalService`` Protocol and ``HttpApproval``, its HTTP implementation.

Decisions with a ledger effect — 징수결의, 일괄 결정결의, 결손, 환급, 감액 — post only once approved (DESIGN.md
§4). Jingsu submits a document, an approver (결재권자) decides in the e-approval system, and the system calls Jingsu
back. The contract is ``docs/approval.md``; ``sandboxes.approval`` is the sandbox that speaks it in dev and
tests.

A callback is a hint, as with the payment gateway: ``verify_callback`` checks its signature and timestamp, then asks
the service for the submission's status and returns *that* answer, refusing a callback the service does not confirm.

Errors split by what the caller does next: ``ApprovalUnavailable`` — retry later (transport error, timeout, 5xx, an
answer outside the contract); ``ApprovalRefused`` — the service said no (4xx); ``CallbackRejected`` — a callback
that must not be acted on (``code`` says why).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, get_args
from urllib.parse import quote

import httpx

from adapters.http import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Clock,
    Refused,
    Service,
    SignedClient,
    header,
    hex_key,
    hmac_hex,
    signature_matches,
    timestamped,
)

SubmissionStatus = Literal["pending", "approved", "rejected"]
_STATUSES: tuple[str, ...] = get_args(SubmissionStatus)

REQUEST_TIMESTAMP_HEADER = TIMESTAMP_HEADER
REQUEST_SIGNATURE_HEADER = SIGNATURE_HEADER
CALLBACK_TIMESTAMP_HEADER = "X-Approval-Timestamp"
CALLBACK_SIGNATURE_HEADER = "X-Approval-Signature"
CALLBACK_WINDOW_S = 300


class ApprovalError(Exception):
    """Base of every e-approval error."""


class ApprovalUnavailable(ApprovalError):
    """Retry later: the service could not be reached, timed out, answered 5xx or answered outside the contract."""


class ApprovalRefused(ApprovalError, Refused):
    """The service refused the request (4xx); ``status`` is the HTTP status, ``code`` its stable error code."""


class CallbackRejected(ApprovalError):
    """A callback not to act on; ``code``: bad_signature, stale_timestamp, malformed or status_mismatch."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


_SERVICE = Service("the e-approval service", ApprovalUnavailable, ApprovalRefused)


@dataclass(frozen=True)
class ApprovalRequest:
    """A document to approve (결재 상신).

    ``reference_id`` is Jingsu's id of this submission and its idempotency key: submitting it again with the same
    content finds the same submission; a new attempt after a rejection needs a new one (e.g. ``batch-81/2``).
    ``document_type`` names the form: ``imposition_batch``, ``assessment``, ``reduction``, ``write_off``,
    ``refund`` … (lowercase letters and ``_``). ``amount_total`` is integer won, ``count`` the number of cases.
    """

    title: str
    document_type: str
    reference_id: str
    amount_total: int
    count: int
    requested_by: str
    callback_url: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "document_type": self.document_type,
            "reference_id": self.reference_id,
            "amount_total": self.amount_total,
            "count": self.count,
            "requested_by": self.requested_by,
            "callback_url": self.callback_url,
        }


@dataclass(frozen=True)
class ApprovalDecision:
    """The service's own answer about a submission: the only thing a decision may be acted on from.

    ``status`` is ``pending`` until an approver decides; then ``decided_by``, ``decided_at`` (timezone-aware) and
    ``comment`` are set.
    """

    submission_id: str
    reference_id: str
    document_type: str
    amount_total: int
    count: int
    status: SubmissionStatus
    decided_by: str | None
    decided_at: datetime | None
    comment: str

    @property
    def decided(self) -> bool:
        return self.status != "pending"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as the service sent it (``decided_at`` ISO 8601): for keeping with the raw payload."""
        return {
            "submission_id": self.submission_id,
            "reference_id": self.reference_id,
            "document_type": self.document_type,
            "amount_total": self.amount_total,
            "count": self.count,
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "comment": self.comment,
        }


class ApprovalService(Protocol):
    """What Jingsu needs of the e-approval system."""

    name: str

    def submit(self, document: ApprovalRequest, *, idempotency_key: str | None = None) -> str:
        """Submit ``document`` (idempotent per ``reference_id``, and per ``idempotency_key``: the outbox row's key);
        its submission id. Raises ``ApprovalUnavailable``, ``ApprovalRefused``."""
        ...

    def status(self, submission_id: str) -> ApprovalDecision:
        """The submission as the service knows it. Raises ``ApprovalUnavailable``, ``ApprovalRefused``."""
        ...

    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes) -> ApprovalDecision:
        """The decided submission a callback announces, as the service confirms it. Raises ``CallbackRejected``,
        and ``ApprovalUnavailable`` / ``ApprovalRefused`` from the confirming status query."""
        ...


def sign(key: bytes, timestamp: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 under ``key`` of ``"<timestamp>." + payload``: every signature of the contract."""
    return hmac_hex(key, timestamped(timestamp, payload))


@dataclass(frozen=True)
class ApprovalSettings:
    """Where the e-approval service is and how to talk to it: base URL, the shared secret (hex) of requests and
    callbacks, the service's name, the request timeout and how many seconds a callback's timestamp may be from our
    clock."""

    url: str
    secret: str
    name: str = "sandbox"
    timeout: float = 10.0
    callback_window: int = CALLBACK_WINDOW_S


class HttpApproval:
    """``ApprovalService`` over HTTP (docs/approval.md) with httpx, as ``settings`` describe it.

    ``settings.secret`` signs our requests and the service's callbacks. ``clock`` (Unix seconds) stamps requests and
    judges callback timestamps, which may be at most ``settings.callback_window`` seconds away. Without ``client``,
    each call uses a short-lived httpx client; pass one to pool connections.
    """

    def __init__(
        self, settings: ApprovalSettings, *, client: httpx.Client | None = None, clock: Clock = time.time
    ) -> None:
        self._key = hex_key(settings.secret, "the approval secret")
        self.base_url = settings.url.rstrip("/")
        self.name = settings.name
        self._clock = clock
        self._window = settings.callback_window
        self._http = SignedClient(
            self.base_url, self._key, _SERVICE, timeout=settings.timeout, stamp=True, clock=clock, client=client
        )

    def submit(self, document: ApprovalRequest, *, idempotency_key: str | None = None) -> str:
        """``POST /v1/submissions``, signed (with ``Idempotency-Key`` if given): the submission id (a new one, or the
        one ``reference_id`` has).

        Raises ``ApprovalRefused`` (400 invalid_request, 401 bad_signature / stale_timestamp, 409
        reference_conflict) and ``ApprovalUnavailable``.
        """
        body = json.dumps(document.as_dict(), ensure_ascii=False, separators=(",", ":")).encode()
        data = self._http.call("POST", "/v1/submissions", body, idempotency_key=idempotency_key)
        submission_id = data.get("submission_id")
        if not (isinstance(submission_id, str) and submission_id):
            raise ApprovalUnavailable("the service's submit answer is outside the contract: no submission_id")
        return submission_id

    def status(self, submission_id: str) -> ApprovalDecision:
        """``GET /v1/submissions/<id>``, signed. Raises ``ApprovalRefused`` (404 not_found, 401) and
        ``ApprovalUnavailable`` (also when the answer is malformed or names another submission)."""
        data = self._http.call("GET", f"/v1/submissions/{quote(submission_id, safe='')}")
        try:
            return _decision(submission_id, data)
        except ValueError as exc:
            raise ApprovalUnavailable(f"the service's status answer is outside the contract: {exc}") from exc

    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes) -> ApprovalDecision:
        """Check a callback and return the decision **as the service confirms it**.

        In order: ``X-Approval-Signature`` must sign ``"<X-Approval-Timestamp>." + raw_body`` (constant time; the
        bytes as received, before parsing); the timestamp must be within ``callback_window`` seconds of our clock;
        the body must be a decided submission; then ``status`` is asked and must agree on status, decider, time,
        reference, type, amount and count. Raises ``CallbackRejected`` (bad_signature, stale_timestamp, malformed,
        status_mismatch); the status query's ``ApprovalUnavailable`` / ``ApprovalRefused`` pass through (answer the
        callback 5xx then, so the service tries again).
        """
        timestamp = header(headers, CALLBACK_TIMESTAMP_HEADER) or ""
        signature = header(headers, CALLBACK_SIGNATURE_HEADER) or ""
        if not (timestamp.isascii() and timestamp.isdigit() and signature):
            raise CallbackRejected("bad_signature", "the timestamp or signature header is missing")
        if not signature_matches(self._key, timestamped(timestamp, raw_body), signature):
            raise CallbackRejected("bad_signature", f"{CALLBACK_SIGNATURE_HEADER} does not verify")
        if abs(self._clock() - int(timestamp)) > self._window:
            raise CallbackRejected("stale_timestamp", f"the callback was signed outside the {self._window} s window")
        try:
            data = json.loads(raw_body)
            if not isinstance(data, dict) or not isinstance(data.get("submission_id"), str):
                raise ValueError("no submission_id")
            claimed = _decision(data["submission_id"], data)
            if not claimed.decided:
                raise ValueError("a callback announces a decision, not a pending submission")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CallbackRejected("malformed", f"the callback body is outside the contract: {exc}") from exc
        confirmed = self.status(claimed.submission_id)
        if confirmed != claimed:
            raise CallbackRejected(
                "status_mismatch",
                f"the callback says {claimed.status}, the service says {confirmed.status} (or other fields differ)",
            )
        return confirmed


def _decision(submission_id: str, data: dict[str, Any]) -> ApprovalDecision:
    """A status answer (or callback body) checked against the contract. Raises ``ValueError`` naming the problem."""
    try:
        status, amount_total, count = data["status"], data["amount_total"], data["count"]
        reference_id, document_type = data["reference_id"], data["document_type"]
        decided_by, decided_raw, comment = data["decided_by"], data["decided_at"], data["comment"]
    except KeyError as exc:
        raise ValueError(f"missing field {exc}") from exc
    except TypeError as exc:
        raise ValueError("not a JSON object") from exc
    if data.get("submission_id") != submission_id:
        raise ValueError(f"asked for {submission_id!r}, got {data.get('submission_id')!r}")
    if status not in _STATUSES:
        raise ValueError(f"unknown status {status!r}")
    for name, value in (("amount_total", amount_total), ("count", count)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} {value!r}")
    if not (isinstance(reference_id, str) and isinstance(document_type, str) and isinstance(comment, str)):
        raise ValueError("reference_id, document_type and comment must be strings")
    decided_at = None
    if decided_raw is not None:
        decided_at = datetime.fromisoformat(str(decided_raw))
        if decided_at.utcoffset() is None:
            raise ValueError(f"decided_at {decided_raw!r} has no offset")
    decided = status != "pending"
    # decided_by: a non-empty string once decided, null while pending
    if decided != (decided_at is not None) or decided != isinstance(decided_by, str) or decided_by == "":
        raise ValueError("decided_by and decided_at must be set exactly when decided")
    return ApprovalDecision(
        submission_id=submission_id,
        reference_id=reference_id,
        document_type=document_type,
        amount_total=amount_total,
        count=count,
        status=status,
        decided_by=decided_by,
        decided_at=decided_at,
        comment=comment,
    )
