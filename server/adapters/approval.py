"""The e-approval (전자결재) adapter: the ``ApprovalService`` Protocol and ``HttpApproval``, its HTTP implementation.

Decisions with a ledger effect — 징수결의, 일괄 결정결의, 결손, 환급, 감액 — post only once approved (DESIGN.md
§4). Jingsu submits a document, an approver (결재권자) decides in the e-approval system, and the system calls Jingsu
back. The contract is ``docs/approval.md``; ``server.sandboxes.approval`` is the sandbox that speaks it in dev and
tests.

A callback is a hint, as with the payment gateway: ``verify_callback`` checks its signature and timestamp, then asks
the service for the submission's status and returns *that* answer, refusing a callback the service does not confirm.

Errors split by what the caller does next: ``ApprovalUnavailable`` — retry later (transport error, timeout, 5xx, an
answer outside the contract); ``ApprovalRefused`` — the service said no (4xx); ``CallbackRejected`` — a callback
that must not be acted on (``code`` says why).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, get_args
from urllib.parse import quote

import httpx

from server.adapters import sandbox_process
from server.config import Config

SubmissionStatus = Literal["pending", "approved", "rejected"]
_STATUSES: tuple[str, ...] = get_args(SubmissionStatus)

REQUEST_TIMESTAMP_HEADER = "X-Jingsu-Timestamp"
REQUEST_SIGNATURE_HEADER = "X-Jingsu-Signature"
CALLBACK_TIMESTAMP_HEADER = "X-Approval-Timestamp"
CALLBACK_SIGNATURE_HEADER = "X-Approval-Signature"
CALLBACK_WINDOW_S = 300


class ApprovalError(Exception):
    """Base of every e-approval error."""


class ApprovalUnavailable(ApprovalError):
    """Retry later: the service could not be reached, timed out, answered 5xx or answered outside the contract."""


class ApprovalRefused(ApprovalError):
    """The service refused the request (4xx); ``status`` is the HTTP status, ``code`` its stable error code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


class CallbackRejected(ApprovalError):
    """A callback not to act on; ``code``: bad_signature, stale_timestamp, malformed or status_mismatch."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


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

    def submit(self, document: ApprovalRequest) -> str:
        """Submit ``document`` (idempotent per ``reference_id``); its submission id.
        Raises ``ApprovalUnavailable``, ``ApprovalRefused``."""
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
    return hmac.new(key, timestamp.encode("ascii") + b"." + payload, hashlib.sha256).hexdigest()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]`` whatever the case of the keys (a plain dict, Flask's or httpx's headers)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


class HttpApproval:
    """``ApprovalService`` over HTTP (docs/approval.md) with httpx.

    ``secret`` is the shared secret as hex: it signs our requests and the service's callbacks. ``clock`` (Unix
    seconds) stamps requests and judges callback timestamps, which may be at most ``callback_window`` seconds away.
    Without ``client``, each call uses a short-lived httpx client; pass one to pool connections.
    """

    def __init__(
        self,
        base_url: str,
        secret: str,
        name: str = "sandbox",
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        callback_window: int = CALLBACK_WINDOW_S,
    ) -> None:
        try:
            self._key = bytes.fromhex(secret)
        except ValueError as exc:
            raise ValueError("the approval secret must be hex") from exc
        if not self._key:
            raise ValueError("the approval secret must not be empty")
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._client = client
        self._clock = clock
        self._window = callback_window

    def submit(self, document: ApprovalRequest) -> str:
        """``POST /v1/submissions``, signed: the submission id (a new one, or the one ``reference_id`` has).

        Raises ``ApprovalRefused`` (400 invalid_request, 401 bad_signature / stale_timestamp, 409
        reference_conflict) and ``ApprovalUnavailable``.
        """
        body = json.dumps(document.as_dict(), ensure_ascii=False, separators=(",", ":")).encode()
        data = self._call("POST", "/v1/submissions", body)
        submission_id = data.get("submission_id")
        if not (isinstance(submission_id, str) and submission_id):
            raise ApprovalUnavailable("the service's submit answer is outside the contract: no submission_id")
        return submission_id

    def status(self, submission_id: str) -> ApprovalDecision:
        """``GET /v1/submissions/<id>``, signed. Raises ``ApprovalRefused`` (404 not_found, 401) and
        ``ApprovalUnavailable`` (also when the answer is malformed or names another submission)."""
        data = self._call("GET", f"/v1/submissions/{quote(submission_id, safe='')}")
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
        timestamp = _header(headers, CALLBACK_TIMESTAMP_HEADER) or ""
        signature = _header(headers, CALLBACK_SIGNATURE_HEADER) or ""
        if not (timestamp.isascii() and timestamp.isdigit() and signature):
            raise CallbackRejected("bad_signature", "the timestamp or signature header is missing")
        expected = sign(self._key, timestamp, raw_body).encode()
        if not hmac.compare_digest(expected, signature.strip().lower().encode("utf-8", "replace")):
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

    def _call(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        timestamp = str(int(self._clock()))
        payload = body if body is not None else f"{method} {path}".encode()
        headers = {REQUEST_TIMESTAMP_HEADER: timestamp, REQUEST_SIGNATURE_HEADER: sign(self._key, timestamp, payload)}
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        url = f"{self.base_url}{path}"
        try:
            if self._client is not None:
                response = self._client.request(method, url, content=body, headers=headers, timeout=self._timeout)
            else:
                with httpx.Client(timeout=self._timeout, verify=_tls_context()) as client:
                    response = client.request(method, url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise ApprovalUnavailable(
                f"the e-approval service at {self.base_url} could not be reached: {exc!r}"
            ) from exc
        if response.status_code >= 500:
            raise ApprovalUnavailable(f"the e-approval service answered {response.status_code}; try again later")
        try:
            data = response.json()
        except ValueError:
            data = None
        if 400 <= response.status_code < 500:
            err = data if isinstance(data, dict) else {}
            raise ApprovalRefused(
                response.status_code,
                str(err.get("code") or f"http_{response.status_code}"),
                str(err.get("detail") or response.text[:200]),
            )
        if response.status_code not in (200, 201) or not isinstance(data, dict):
            raise ApprovalUnavailable(f"the e-approval service answered {response.status_code} outside the contract")
        return data


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


def from_config(config: Config) -> HttpApproval:
    """The e-approval service ``config`` names (``JINGSU_APPROVAL_URL``, ``_SECRET``, ``_NAME``,
    ``_CALLBACK_WINDOW_SECONDS``)."""
    return HttpApproval(
        config.approval_url,
        config.approval_secret,
        name=config.approval_name,
        callback_window=config.approval_callback_window_seconds,
    )


# --- the sandbox process (tests, make run) --------------------------------------------------------------------------


def start_sandbox(
    port: int,
    secret: str,
    state_path: Path | None = None,
    *,
    host: str = "127.0.0.1",
    auto_approve_after: float | None = None,
    public_url: str | None = None,
    log_path: Path | None = None,
    timeout: float = 10.0,
) -> subprocess.Popen[bytes]:
    """Start ``python -m server.sandboxes.approval`` and return once it answers ``/healthz``.

    ``auto_approve_after`` (seconds) approves every pending submission that long after it arrived (demos); None or 0
    leaves decisions to the approver's page. Output goes to ``log_path`` (appended) if given. Stop it with
    ``stop_sandbox``. Raises ``RuntimeError`` if it does not start within ``timeout`` seconds.
    """
    args = ["--secret", secret]
    if state_path is not None:
        args += ["--state", str(state_path)]
    if auto_approve_after:
        args += ["--auto-approve-after", str(auto_approve_after)]
    if public_url:
        args += ["--public-url", public_url]
    return sandbox_process.start(
        "server.sandboxes.approval",
        args,
        host=host,
        port=port,
        log_path=log_path,
        timeout=timeout,
        label="the e-approval sandbox",
    )


stop_sandbox = sandbox_process.stop
