"""Sandbox payment gateway (PG): the dev/test stand-in for the card/transfer gateway, run as its own process.

    python -m sandboxes.gateway --host 127.0.0.1 --port 5001 --key HEX [--state FILE] [--fail-callbacks]

It speaks the contract of ``docs/gateway.md`` over HTTP, exactly as ``adapters.gateway.HttpGateway`` expects
of a real PG: the merchant (Jingsu) creates a payment with a signed request, the citizen's phone is sent to
``/pay/<txn_id>`` and approves or cancels there, the gateway notifies the merchant server to server with a signed
callback and sends the phone back to the merchant's ``return_url``; the merchant confirms with a signed status query.
The key (hex) is the secret the merchant and the gateway share, as with a real PG's secret key.

State lives in memory and, with ``--state FILE``, in a JSON file rewritten atomically after every change, so a
restart keeps transactions and their callbacks. Sandbox-only extras: ``/healthz``, re-sending the last callback, the
list of delivery attempts, and ``--fail-callbacks`` (automatic callbacks are not delivered, to exercise the
merchant's sweep). Creating a payment and refunding one with an ``Idempotency-Key`` apply once per key and answer
the same way again; status queries with a key are counted (``sandboxes.common``: ``/sandbox/idempotency``,
``/sandbox/hold``).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from flask import Flask, Response, render_template_string, request

from sandboxes.common import (
    RecordStore,
    SandboxError,
    arg_parser,
    base_app,
    callback_routes,
    deliver,
    deliveries,
    error_json,
    hex_secret,
    json_object,
    json_response,
    page_template,
    serve,
    sign,
    signature_matches,
    utc_now,
)

MERCHANT_NAME = "서울특별시 세외수입"
REQUEST_SIGNATURE_HEADER = "X-Jingsu-Signature"
CALLBACK_SIGNATURE_HEADER = "X-Gateway-Signature"
MAX_AMOUNT = 10**12
METHODS = ("card", "transfer")  # 카드, 계좌이체: what the pay page offers; the first is the default

_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces


# --- state ----------------------------------------------------------------------------------------------------------


@dataclass
class Transaction:
    """One payment at the gateway; ``callback_body`` is the exact text of the last callback, re-sent byte for byte."""

    txn_id: str
    order_id: str
    amount: int
    notice_no: str
    description: str
    return_url: str
    callback_url: str
    created_at: str
    status: str = "ready"  # ready → approved | cancelled; approved → cancelled (refund: approved_at kept)
    method: str | None = None  # how the citizen paid: card or transfer (계좌이체); set on approval
    approved_at: str | None = None
    cancelled_at: str | None = None
    callback_body: str | None = None
    callback_signature: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """The status-query answer (docs/gateway.md)."""
        return {
            "txn_id": self.txn_id,
            "order_id": self.order_id,
            "status": self.status,
            "amount": self.amount,
            "approved_at": self.approved_at,
            "notice_no": self.notice_no,
            "method": self.method,
        }


@dataclass(frozen=True)
class NewPayment:
    """A validated ``POST /v1/payments`` body."""

    order_id: str
    amount: int
    notice_no: str
    description: str
    return_url: str
    callback_url: str


class SandboxGateway:
    """The gateway's state machine: transactions by id and by order id, under one lock, optionally kept in a file.

    Callbacks are delivered outside the lock, so the merchant may query the gateway while it handles one.
    Raises ``ValueError`` for an empty key or a state file that cannot be read (``OSError`` if it cannot be opened).
    """

    def __init__(self, key: bytes, state_path: Path | None = None, *, fail_callbacks: bool = False) -> None:
        if not key:
            raise ValueError("the gateway key must not be empty")
        self.key = key
        self.state_path = state_path
        self.fail_callbacks = fail_callbacks
        self._store: RecordStore[Transaction] = RecordStore(
            state_path, "transactions", Transaction, lambda r: r.txn_id, lambda r: r.order_id, "no such transaction"
        )

    # -- merchant API

    def create(self, new: NewPayment) -> tuple[Transaction, bool]:
        """The transaction for ``new.order_id``, created if new; ``(txn, created)``.

        Raises ``SandboxError(409, "order_conflict")`` when the order id exists with another amount or notice number.
        """
        with self._store.lock:
            txn_id = self._store.by_key.get(new.order_id)
            if txn_id is not None:
                txn = self._store.records[txn_id]
                if (txn.amount, txn.notice_no) != (new.amount, new.notice_no):
                    raise SandboxError(
                        409, "order_conflict", "this order_id already has a payment with another amount or notice_no"
                    )
                return self._store.snapshot(txn), False
            txn = Transaction(
                txn_id=f"sbx_{secrets.token_hex(12)}",  # unguessable: nothing public is enumerable by counting
                created_at=utc_now(),
                **asdict(new),
            )
            self._store.add(txn)
            self._store.save()
            return self._store.snapshot(txn), True

    def get(self, txn_id: str) -> Transaction:
        """A snapshot of the transaction. Raises ``SandboxError(404, "not_found")``."""
        with self._store.lock:
            return self._store.snapshot(self._store.get(txn_id))

    def attempts(self, txn_id: str) -> list[dict[str, Any]]:
        """Every callback delivery attempt, oldest first. Raises ``SandboxError(404, "not_found")``."""
        return self._store.attempts(txn_id)

    # -- the citizen's page

    def finish(self, txn_id: str, status: Literal["approved", "cancelled"], method: str | None = None) -> Transaction:
        """Move a ready transaction to ``status`` ("approved" or "cancelled") and notify the merchant once.

        Finishing it again the same way does nothing. Raises ``SandboxError(404)`` for an unknown transaction and
        ``SandboxError(409, "already_approved" | "already_cancelled")`` for the other way. A failed callback
        delivery is recorded and does not undo the transition.
        """
        with self._store.lock:
            txn = self._store.get(txn_id)
            if txn.status == status:
                return self._store.snapshot(txn)
            if txn.status != "ready":
                raise SandboxError(409, f"already_{txn.status}", f"the payment is already {txn.status}")
            now = utc_now()
            txn.status = status
            if status == "approved":
                txn.approved_at = now
                txn.method = method if method in METHODS else METHODS[0]
            else:
                txn.cancelled_at = now
            body = json.dumps(
                {
                    "txn_id": txn.txn_id,
                    "order_id": txn.order_id,
                    "status": txn.status,
                    "amount": txn.amount,
                    "approved_at": txn.approved_at,
                    "notice_no": txn.notice_no,
                    "method": txn.method,
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            txn.callback_body = body
            txn.callback_signature = sign(self.key, body.encode())
            self._store.save()
            snapshot = self._store.snapshot(txn)
        self._deliver(snapshot, simulate_failure=self.fail_callbacks)
        return snapshot

    def refund(self, txn_id: str) -> tuple[Transaction, bool]:
        """The merchant cancels an approved payment (취소 after approval): ``cancelled``, ``approved_at`` kept, the
        merchant notified once with a signed callback; ``(txn, refunded now)``. Again does nothing;
        ``SandboxError(409, "not_approved")`` for a transaction never approved, 404 for an unknown one."""
        with self._store.lock:
            txn = self._store.get(txn_id)
            if txn.status == "cancelled" and txn.approved_at is not None:
                return self._store.snapshot(txn), False
            if txn.status != "approved":
                raise SandboxError(409, "not_approved", f"the payment is {txn.status}, not approved")
            txn.status = "cancelled"
            txn.cancelled_at = utc_now()
            body = json.dumps(txn.public(), ensure_ascii=False, separators=(",", ":"))
            txn.callback_body = body
            txn.callback_signature = sign(self.key, body.encode())
            self._store.save()
            snapshot = self._store.snapshot(txn)
        self._deliver(snapshot, simulate_failure=self.fail_callbacks)
        return snapshot, True

    # -- operator (sandbox only)

    def resend(self, txn_id: str) -> int | None:
        """Deliver the last callback again, same bytes and signature; the merchant's HTTP status, or None.

        Always really delivers, even under ``--fail-callbacks`` (that flag loses the automatic notification; this is
        the PG's later retry). Raises ``SandboxError(404)``, or ``SandboxError(409, "no_callback")`` while ready.
        """
        txn = self.get(txn_id)
        if txn.callback_body is None:
            raise SandboxError(409, "no_callback", "the payment is still ready: no callback was sent yet")
        return self._deliver(txn, simulate_failure=False)

    # -- internals

    def _deliver(self, txn: Transaction, *, simulate_failure: bool) -> int | None:
        assert txn.callback_body is not None and txn.callback_signature is not None
        if simulate_failure:
            attempt: dict[str, Any] = {
                "at": utc_now(),
                "status_code": None,
                "error": "not delivered (--fail-callbacks)",
            }
        else:
            headers = {CALLBACK_SIGNATURE_HEADER: txn.callback_signature}
            attempt = deliver(txn.callback_url, txn.callback_body.encode(), headers)
        attempt["body"] = txn.callback_body
        return self._store.record_attempt(txn.txn_id, attempt)


def parse_new_payment(raw: bytes) -> NewPayment:
    """Validate a ``POST /v1/payments`` body. Raises ``SandboxError(400, "invalid_request")`` naming the field."""
    body = json_object(raw)

    def text(name: str, *, max_len: int, allow_empty: bool = False) -> str:
        value = body.get(name)
        if not isinstance(value, str) or len(value) > max_len or (not value and not allow_empty):
            raise SandboxError(400, "invalid_request", f"{name}: a string of at most {max_len} characters is required")
        return value

    def ident(name: str) -> str:
        value = text(name, max_len=64)
        if not _ID_RE.match(value):
            raise SandboxError(400, "invalid_request", f"{name}: 1-64 printable ASCII characters, no spaces")
        return value

    def url(name: str) -> str:
        value = text(name, max_len=2000)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SandboxError(400, "invalid_request", f"{name}: an absolute http(s) URL is required")
        return value

    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT:
        raise SandboxError(400, "invalid_request", f"amount: an integer number of won, 1 to {MAX_AMOUNT}")
    return NewPayment(
        order_id=ident("order_id"),
        amount=amount,
        notice_no=ident("notice_no"),
        description=text("description", max_len=200, allow_empty=True),
        return_url=url("return_url"),
        callback_url=url("callback_url"),
    )


def with_txn_id(return_url: str, txn_id: str) -> str:
    """``return_url`` with ``txn_id`` appended to its query, keeping what is there."""
    parts = urlsplit(return_url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("txn_id", txn_id)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def see_other(location: str) -> Response:
    """303 See Other: after the phone's POST, the merchant's return page is fetched with GET."""
    return Response(status=303, headers={"Location": location})


def won(amount: int) -> str:
    """``32,000원``."""
    return f"{amount:,}원"


# --- web ------------------------------------------------------------------------------------------------------------

_PAGE = page_template(
    "테스트 결제",
    "테스트 결제 (샌드박스) — 실제로 청구되지 않습니다",
    "26rem",
    """ h1 { font-size: 1.3rem; }
 dl { background: #fff; border-radius: .6rem; padding: 1rem; display: grid; grid-template-columns: auto 1fr;
   gap: .5rem 1rem; }
 dt { color: #666; } dd { margin: 0; text-align: right; }
 .amount { font-size: 1.4rem; font-weight: 700; }
 form { margin: .6rem 0; }
 button { width: 100%; padding: .9rem; font-size: 1.05rem; border-radius: .5rem; border: 0; }
 .approve { background: #1b64da; color: #fff; margin-bottom: .5rem; } .transfer { background: #0d7a4f; }
 .cancel { background: #e5e8eb; color: #333; }
""",
    """{% if txn %}
<dl>
 <dt>가맹점</dt><dd>{{ merchant }}</dd>
 <dt>상품</dt><dd>{{ txn.description }}</dd>
 <dt>고지서 번호</dt><dd>{{ txn.notice_no }}</dd>
 <dt>결제 금액</dt><dd class="amount">{{ amount }}</dd>
</dl>
{% endif %}
{% if message %}<p>{{ message }}</p>{% endif %}
{% if txn and txn.status == "ready" %}
<form method="post" action="{{ url_for('approve', txn_id=txn.txn_id) }}">
 <button type="submit" class="approve" name="method" value="card">카드로 결제하기</button>
 <button type="submit" class="approve transfer" name="method" value="transfer">계좌이체로 결제하기</button>
</form>
<form method="post" action="{{ url_for('cancel', txn_id=txn.txn_id) }}">
 <button type="submit" class="cancel">취소</button>
</form>
{% elif back %}
<p><a href="{{ back }}">가맹점으로 돌아가기</a></p>
{% endif %}
""",
)

_STATUS_TEXT = {"approved": "결제가 완료되었습니다.", "cancelled": "결제가 취소되었습니다."}
_ERROR_TEXT = {
    404: "결제 정보를 찾을 수 없습니다.",
    "already_approved": "이미 결제가 완료된 건입니다.",
    "already_cancelled": "이미 취소된 결제입니다.",
}


def create_app(gateway: SandboxGateway, *, public_url: str | None = None, merchant_name: str = MERCHANT_NAME) -> Flask:
    """The sandbox's Flask app over ``gateway``; ``public_url`` is the base of ``redirect_url`` (default: the
    host the merchant called)."""
    app = base_app(__name__, 64 * 1024)
    key = gateway.key

    def signed_path(method: str, txn_id: str, suffix: str = "") -> None:
        message = f"{method} /v1/payments/{quote(txn_id, safe='')}{suffix}".encode()
        if not signature_matches(key, message, request.headers.get(REQUEST_SIGNATURE_HEADER)):
            raise SandboxError(401, "bad_signature", f"{REQUEST_SIGNATURE_HEADER} does not verify")

    def page(title: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("txn", None)
        html = render_template_string(_PAGE, title=title, merchant=merchant_name, **context)
        return Response(html, status=status, mimetype="text/html")

    @app.errorhandler(SandboxError)
    def _sandbox_error(exc: SandboxError) -> Response:
        if request.path.startswith("/pay/"):
            message = _ERROR_TEXT.get(exc.code) or _ERROR_TEXT.get(exc.status) or exc.detail
            txn_id = (request.view_args or {}).get("txn_id", "")
            txn = gateway.get(txn_id) if exc.status == 409 else None
            back = with_txn_id(txn.return_url, txn.txn_id) if txn else None
            return page("결제할 수 없습니다", exc.status, message=message, back=back)
        return error_json(exc)

    keys = deliveries(app)

    def created_payment(raw: bytes) -> tuple[Response, bool]:
        txn, created = gateway.create(parse_new_payment(raw))
        base = public_url.rstrip("/") if public_url else request.host_url.rstrip("/")
        answer = {"txn_id": txn.txn_id, "status": txn.status, "redirect_url": f"{base}/pay/{txn.txn_id}"}
        return json_response(answer, 201 if created else 200), created

    def refunded(txn_id: str) -> tuple[Response, bool]:
        txn, changed = gateway.refund(txn_id)
        return json_response(txn.public()), changed

    @app.post("/v1/payments")
    def create_payment() -> Response:
        raw = request.get_data(cache=False)
        if not signature_matches(key, raw, request.headers.get(REQUEST_SIGNATURE_HEADER)):
            raise SandboxError(401, "bad_signature", f"{REQUEST_SIGNATURE_HEADER} does not verify")
        return keys.answer(b"POST /v1/payments\n" + raw, lambda: created_payment(raw))

    @app.get("/v1/payments/<txn_id>")
    def payment_status(txn_id: str) -> Response:
        signed_path("GET", txn_id)
        return keys.answer(f"GET {request.path}".encode(), lambda: (json_response(gateway.get(txn_id).public()), False))

    @app.post("/v1/payments/<txn_id>/cancel")
    def refund_payment(txn_id: str) -> Response:
        signed_path("POST", txn_id, "/cancel")
        return keys.answer(f"POST {request.path}".encode(), lambda: refunded(txn_id))

    callback_routes(app, "/v1/payments", gateway, signed_path)

    @app.get("/pay/<txn_id>")
    def pay_page(txn_id: str) -> Response:
        txn = gateway.get(txn_id)
        back = with_txn_id(txn.return_url, txn.txn_id) if txn.status != "ready" else None
        return page("결제하기", txn=txn, amount=won(txn.amount), message=_STATUS_TEXT.get(txn.status), back=back)

    @app.post("/pay/<txn_id>/approve")
    def approve(txn_id: str) -> Response:
        txn = gateway.finish(txn_id, "approved", request.form.get("method"))
        return see_other(with_txn_id(txn.return_url, txn.txn_id))

    @app.post("/pay/<txn_id>/cancel")
    def cancel(txn_id: str) -> Response:
        txn = gateway.finish(txn_id, "cancelled")
        return see_other(with_txn_id(txn.return_url, txn.txn_id))

    return app


# --- process --------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sandbox until interrupted; prints ``gateway sandbox on http://host:port`` once it is listening."""
    parser = arg_parser("gateway", "Sandbox payment gateway (PG).", 5001)
    parser.add_argument("--key", type=hex_secret("the key"), required=True, help="the shared secret key, hex")
    parser.add_argument("--state", type=Path, help="keep transactions in this JSON file across restarts")
    parser.add_argument("--fail-callbacks", action="store_true", help="do not deliver the automatic callbacks")
    parser.add_argument("--public-url", help="base URL of the payment page as the phone sees it")
    parser.add_argument("--merchant-name", default=MERCHANT_NAME, help=f"shown as 가맹점 (default: {MERCHANT_NAME})")
    args = parser.parse_args(argv)

    try:
        gateway = SandboxGateway(args.key, args.state, fail_callbacks=args.fail_callbacks)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    serve(
        create_app(gateway, public_url=args.public_url, merchant_name=args.merchant_name),
        args.host,
        args.port,
        "gateway",
    )


if __name__ == "__main__":
    main()
