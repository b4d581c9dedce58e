"""The gateway sandbox process against ``HttpGateway`` and a real merchant endpoint (docs/gateway.md). No database.

One sandbox process serves most tests; tests that stop, restart or reconfigure the sandbox start their own.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.gateway import (
    Created,
    GatewayRefused,
    GatewaySettings,
    GatewayUnavailable,
    HttpGateway,
    sign,
)
from sandboxes.launcher import start_gateway as start_sandbox
from sandboxes.launcher import stop as stop_sandbox
from tests.conftest import free_port

KEY = "5a1d" * 16
AMOUNT = 32_000


# --- a merchant endpoint that records what the gateway sends --------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Merchant:
    """``POST /cb/<anything>`` is recorded and answered 200, except ``/cb/fail`` (500). ``/cb/confirm`` first asks
    ``confirm_with`` for the transaction's status, as Jingsu does, and keeps the answer in ``confirmed``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.confirm_with: HttpGateway | None = None
        self.confirmed: dict[str, str] = {}
        self._lock = threading.Lock()
        merchant = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received = Received(self.path, dict(self.headers.items()), body)
                if self.path == "/cb/confirm" and merchant.confirm_with is not None:
                    txn_id = received.json()["txn_id"]
                    merchant.confirmed[txn_id] = merchant.confirm_with.query(txn_id).status
                with merchant._lock:
                    merchant.received.append(received)
                self.send_response(500 if self.path == "/cb/fail" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def callbacks_for(self, txn_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.json().get("txn_id") == txn_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def merchant() -> Iterator[Merchant]:
    m = Merchant()
    yield m
    m.close()


class Sandbox:
    """A sandbox process on a free port; ``start()`` again restarts it on the same port and state file."""

    def __init__(self, tmp: Path, state: bool = False, fail_callbacks: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_path = tmp / "gateway-state.json" if state else None
        self.log_path = tmp / "gateway.log"
        self.fail_callbacks = fail_callbacks
        self.proc: Any = None

    def start(self) -> Sandbox:
        self.proc = start_sandbox(
            self.port, KEY, self.state_path, fail_callbacks=self.fail_callbacks, log_path=self.log_path
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_sandbox(self.proc)

    def gateway(self, key: str = KEY) -> HttpGateway:
        return HttpGateway(GatewaySettings(self.url, key))

    def operator(self, method: str, txn_id: str) -> httpx.Response:
        """The signed sandbox-only operator calls on ``/v1/payments/<txn_id>/callbacks``."""
        path = f"/v1/payments/{txn_id}/callbacks"
        signature = sign(bytes.fromhex(KEY), f"{method} {path}".encode())
        return httpx.request(method, self.url + path, headers={"X-Jingsu-Signature": signature}, trust_env=False)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("gateway")).start()
    yield box
    box.stop()


@pytest.fixture
def own_sandbox() -> Iterator[list[Sandbox]]:
    """Sandboxes a test starts and stops itself; all stopped afterwards."""
    boxes: list[Sandbox] = []
    yield boxes
    for box in boxes:
        box.stop()


@pytest.fixture
def phone() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, trust_env=False, timeout=15) as client:
        yield client


def create(gateway: HttpGateway, merchant: Merchant, *, amount: int = AMOUNT, callback: str = "/cb/jingsu") -> Created:
    order_id = f"ord-{uuid.uuid4().hex}"
    return gateway.create(
        order_id=order_id,
        amount=amount,
        notice_no="2025-1100-000123-4",
        description="주정차위반 과태료",
        return_url=f"{merchant.url}/p/2025-1100-000123-4/done?a=32000&s=abc",
        callback_url=merchant.url + callback,
    )


# --- the approval flow ----------------------------------------------------------------------------------------------


def test_payment_page_is_korean_and_shows_the_merchant_and_the_amount(
    sandbox: Sandbox, merchant: Merchant, phone: httpx.Client
) -> None:
    created = create(sandbox.gateway(), merchant)
    assert created.redirect_url == f"{sandbox.url}/pay/{created.txn_id}"

    page = phone.get(created.redirect_url)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="ko">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "서울특별시 세외수입" in html
    assert "32,000원" in html
    approve = rf'<form method="post" action="/pay/{created.txn_id}/approve">\s*'
    assert re.search(approve + r'<button[^>]*name="method" value="card">카드로 결제하기<', html)
    assert re.search(r'<button[^>]*name="method" value="transfer">계좌이체로 결제하기<', html)
    assert re.search(rf'<form method="post" action="/pay/{created.txn_id}/cancel">\s*<button[^>]*>취소<', html)


def test_approval_redirects_to_return_url_and_sends_one_signed_callback(
    sandbox: Sandbox, merchant: Merchant, phone: httpx.Client
) -> None:
    gateway = sandbox.gateway()
    created = create(gateway, merchant)

    response = phone.post(f"{sandbox.url}/pay/{created.txn_id}/approve")

    assert response.status_code == 303
    expected = f"{merchant.url}/p/2025-1100-000123-4/done?a=32000&s=abc&txn_id={created.txn_id}"
    assert response.headers["location"] == expected
    [callback] = merchant.callbacks_for(created.txn_id)
    assert callback.path == "/cb/jingsu"
    body = callback.json()
    assert body == {
        "txn_id": created.txn_id,
        "order_id": body["order_id"],
        "status": "approved",
        "amount": AMOUNT,
        "approved_at": body["approved_at"],
        "notice_no": "2025-1100-000123-4",
        "method": "card",  # no method chosen (a bare POST): the default
    }
    approved_at = datetime.fromisoformat(body["approved_at"])
    assert approved_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - approved_at) < timedelta(minutes=1)
    signature = callback.headers["X-Gateway-Signature"]
    assert gateway.verify_callback(callback.body, signature)
    tampered = callback.body.replace(b'"amount":32000', b'"amount":3200')
    assert tampered != callback.body
    assert not gateway.verify_callback(tampered, signature)
    assert not gateway.verify_callback(callback.body, None)
    assert not gateway.verify_callback(callback.body, "")
    assert not gateway.verify_callback(callback.body, "제3자")
    assert not HttpGateway(GatewaySettings(sandbox.url, "00" * 32)).verify_callback(callback.body, signature)


def test_status_query_confirms_the_approval_and_its_amount(
    sandbox: Sandbox, merchant: Merchant, phone: httpx.Client
) -> None:
    gateway = sandbox.gateway()
    created = create(gateway, merchant)
    assert gateway.query(created.txn_id).status == "ready"
    assert gateway.query(created.txn_id).approved_at is None

    phone.post(f"{sandbox.url}/pay/{created.txn_id}/approve", data={"method": "transfer"})
    payment = gateway.query(created.txn_id)

    assert payment.method == "transfer"  # 계좌이체
    assert payment.txn_id == created.txn_id
    assert payment.status == "approved"
    assert payment.amount == AMOUNT
    assert payment.notice_no == "2025-1100-000123-4"
    assert payment.order_id.startswith("ord-")
    [callback] = merchant.callbacks_for(created.txn_id)
    assert payment.approved_at == datetime.fromisoformat(callback.json()["approved_at"])
    assert payment.as_dict() == callback.json()


def test_resent_callback_is_byte_identical_and_every_attempt_is_recorded(
    sandbox: Sandbox, merchant: Merchant, phone: httpx.Client
) -> None:
    created = create(sandbox.gateway(), merchant)
    phone.post(f"{sandbox.url}/pay/{created.txn_id}/approve")

    response = sandbox.operator("POST", created.txn_id)

    assert response.status_code == 200
    assert response.json() == {"delivered": 200}
    first, again = merchant.callbacks_for(created.txn_id)
    assert again.body == first.body
    assert again.headers["X-Gateway-Signature"] == first.headers["X-Gateway-Signature"]
    attempts = sandbox.operator("GET", created.txn_id).json()
    assert [(a["status_code"], a["body"].encode()) for a in attempts] == [(200, first.body), (200, first.body)]
    assert all(datetime.fromisoformat(a["at"]).utcoffset() == timedelta(0) for a in attempts)


def test_approving_twice_sends_no_second_approval_callback(
    sandbox: Sandbox, merchant: Merchant, phone: httpx.Client
) -> None:
    gateway = sandbox.gateway()
    created = create(gateway, merchant)
    phone.post(f"{sandbox.url}/pay/{created.txn_id}/approve")
    approved_at = gateway.query(created.txn_id).approved_at

    again = phone.post(f"{sandbox.url}/pay/{created.txn_id}/approve")

    assert again.status_code == 303
    assert again.headers["location"].endswith(f"&txn_id={created.txn_id}")
    assert len(merchant.callbacks_for(created.txn_id)) == 1
    assert gateway.query(created.txn_id).approved_at == approved_at
    page = phone.get(created.redirect_url)
    assert "결제가 완료되었습니다" in page.text
    assert "결제하기</button>" not in page.text


def test_the_merchant_can_confirm_with_the_gateway_while_it_handles_the_callback(
    sandbox: Sandbox, merchant: Merchant, phone: httpx.Client
) -> None:
    gateway = sandbox.gateway()
    merchant.confirm_with = gateway
    created = create(gateway, merchant, callback="/cb/confirm")

    response = phone.post(f"{sandbox.url}/pay/{created.txn_id}/approve")

    assert response.status_code == 303
    assert merchant.confirmed[created.txn_id] == "approved"
    assert [a["status_code"] for a in sandbox.operator("GET", created.txn_id).json()] == [200]


def test_a_merchant_error_on_the_callback_is_recorded_and_does_not_fail_the_approval(
    sandbox: Sandbox, merchant: Merchant, phone: httpx.Client
) -> None:
    gateway = sandbox.gateway()
    created = create(gateway, merchant, callback="/cb/fail")

    response = phone.post(f"{sandbox.url}/pay/{created.txn_id}/approve")

    assert response.status_code == 303
    assert gateway.query(created.txn_id).status == "approved"
    assert [a["status_code"] for a in sandbox.operator("GET", created.txn_id).json()] == [500]


# --- create ---------------------------------------------------------------------------------------------------------


def test_creating_the_same_order_again_returns_the_same_transaction(sandbox: Sandbox, merchant: Merchant) -> None:
    gateway = sandbox.gateway()
    args: dict[str, Any] = {
        "order_id": f"ord-{uuid.uuid4().hex}",
        "amount": AMOUNT,
        "notice_no": "2025-1100-000124-2",
        "description": "과태료",
        "return_url": f"{merchant.url}/done",
        "callback_url": f"{merchant.url}/cb/jingsu",
    }

    first = gateway.create(**args)
    again = gateway.create(**args)

    assert again == first
    with pytest.raises(GatewayRefused) as refused:
        gateway.create(**{**args, "amount": AMOUNT + 1})
    assert (refused.value.status, refused.value.code) == (409, "order_conflict")


def test_a_create_signed_with_another_key_is_refused(sandbox: Sandbox, merchant: Merchant) -> None:
    with pytest.raises(GatewayRefused) as refused:
        create(sandbox.gateway(key="00" * 32), merchant)

    assert (refused.value.status, refused.value.code) == (401, "bad_signature")


def test_a_status_query_signed_with_another_key_is_refused(sandbox: Sandbox, merchant: Merchant) -> None:
    created = create(sandbox.gateway(), merchant)

    with pytest.raises(GatewayRefused) as refused:
        sandbox.gateway(key="00" * 32).query(created.txn_id)

    assert refused.value.status == 401
    unsigned = httpx.get(f"{sandbox.url}/v1/payments/{created.txn_id}/callbacks", trust_env=False)
    assert unsigned.status_code == 401


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 0},
        {"amount": -1},
        {"amount": "32000"},
        {"amount": 32000.0},
        {"order_id": ""},
        {"notice_no": None},
        {"callback_url": "/relative"},
        {"return_url": "ftp://example.org/"},
    ],
    ids=lambda change: ",".join(f"{k}={v!r}" for k, v in change.items()),
)
def test_a_signed_but_invalid_create_body_is_400(sandbox: Sandbox, change: dict[str, Any]) -> None:
    body = {
        "order_id": "ord-1",
        "amount": AMOUNT,
        "notice_no": "N-1",
        "description": "",
        "return_url": "http://127.0.0.1/done",
        "callback_url": "http://127.0.0.1/cb",
        **change,
    }
    raw = json.dumps(body).encode()
    signature = sign(bytes.fromhex(KEY), raw)

    response = httpx.post(
        f"{sandbox.url}/v1/payments", content=raw, headers={"X-Jingsu-Signature": signature}, trust_env=False
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


# --- cancel, unknown, down ------------------------------------------------------------------------------------------


def test_cancelling_notifies_the_merchant_and_the_payment_can_no_longer_be_approved(
    sandbox: Sandbox, merchant: Merchant, phone: httpx.Client
) -> None:
    gateway = sandbox.gateway()
    created = create(gateway, merchant)

    response = phone.post(f"{sandbox.url}/pay/{created.txn_id}/cancel")

    assert response.status_code == 303
    assert response.headers["location"].endswith(f"?a=32000&s=abc&txn_id={created.txn_id}")
    [callback] = merchant.callbacks_for(created.txn_id)
    assert gateway.verify_callback(callback.body, callback.headers["X-Gateway-Signature"])
    assert callback.json()["status"] == "cancelled"
    assert callback.json()["approved_at"] is None
    payment = gateway.query(created.txn_id)
    assert (payment.status, payment.approved_at, payment.amount) == ("cancelled", None, AMOUNT)

    late = phone.post(f"{sandbox.url}/pay/{created.txn_id}/approve")

    assert late.status_code == 409
    assert "이미 취소된 결제입니다" in late.text
    assert gateway.query(created.txn_id).status == "cancelled"
    assert len(merchant.callbacks_for(created.txn_id)) == 1


def test_an_unknown_transaction_is_refused_with_404(sandbox: Sandbox, phone: httpx.Client) -> None:
    with pytest.raises(GatewayRefused) as refused:
        sandbox.gateway().query("sbx_000000000000000000000000")

    assert (refused.value.status, refused.value.code) == (404, "not_found")
    assert phone.get(f"{sandbox.url}/pay/sbx_000000000000000000000000").status_code == 404


def test_a_stopped_sandbox_is_unavailable(tmp_path: Path, merchant: Merchant, own_sandbox: list[Sandbox]) -> None:
    box = Sandbox(tmp_path).start()
    own_sandbox.append(box)
    created = create(box.gateway(), merchant)

    box.stop()

    with pytest.raises(GatewayUnavailable):
        box.gateway().query(created.txn_id)
    with pytest.raises(GatewayUnavailable):
        create(box.gateway(), merchant)


def test_the_state_file_keeps_transactions_and_callbacks_across_a_restart(
    tmp_path: Path, merchant: Merchant, phone: httpx.Client, own_sandbox: list[Sandbox]
) -> None:
    box = Sandbox(tmp_path, state=True).start()
    own_sandbox.append(box)
    approved = create(box.gateway(), merchant)
    ready = create(box.gateway(), merchant)
    phone.post(f"{box.url}/pay/{approved.txn_id}/approve")
    before = box.gateway().query(approved.txn_id)

    box.stop()
    box.start()

    assert box.gateway().query(approved.txn_id) == before
    assert box.gateway().query(ready.txn_id).status == "ready"
    assert box.operator("POST", approved.txn_id).json() == {"delivered": 200}
    first, again = merchant.callbacks_for(approved.txn_id)
    assert (again.body, again.headers["X-Gateway-Signature"]) == (first.body, first.headers["X-Gateway-Signature"])
    assert len(box.operator("GET", approved.txn_id).json()) == 2
    assert phone.post(f"{box.url}/pay/{ready.txn_id}/approve").status_code == 303
    assert box.gateway().query(ready.txn_id).status == "approved"


def test_fail_callbacks_loses_the_notification_but_not_the_approval(
    tmp_path: Path, merchant: Merchant, phone: httpx.Client, own_sandbox: list[Sandbox]
) -> None:
    box = Sandbox(tmp_path, fail_callbacks=True).start()
    own_sandbox.append(box)
    created = create(box.gateway(), merchant)

    response = phone.post(f"{box.url}/pay/{created.txn_id}/approve")

    assert response.status_code == 303
    assert merchant.callbacks_for(created.txn_id) == []
    assert box.gateway().query(created.txn_id).status == "approved"  # what the merchant's sweep finds
    [attempt] = box.operator("GET", created.txn_id).json()
    assert attempt["status_code"] is None and attempt["error"]
    # the operator's re-send is the PG's later retry: it is delivered
    assert box.operator("POST", created.txn_id).json() == {"delivered": 200}
    assert len(merchant.callbacks_for(created.txn_id)) == 1


# --- answers outside the contract (no sandbox: the gateway's faults are an edge we do not own) -----------------------


_READY = {"txn_id": "sbx_1", "order_id": "o", "status": "ready", "amount": 1, "approved_at": None, "notice_no": "n"}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"code": "maintenance"}),
        (200, {**_READY, "status": "paid"}),
        (200, {**_READY, "txn_id": "sbx_other"}),
        (200, {**_READY, "amount": "1"}),
        (200, {**_READY, "status": "approved", "approved_at": "2025-11-25T07:00:00"}),
        (200, {**_READY, "status": "approved"}),
        (200, {"txn_id": "sbx_1"}),
        (200, ["not", "an", "object"]),
    ],
    ids=[
        "5xx",
        "unknown-status",
        "other-txn",
        "amount-as-text",
        "naive-approved_at",
        "approved-without-time",
        "missing-fields",
        "not-an-object",
    ],
)
def test_a_5xx_or_an_answer_outside_the_contract_is_unavailable(status: int, body: Any) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    with httpx.Client(transport=transport) as client:
        gateway = HttpGateway(GatewaySettings("http://pg.invalid", KEY), client=client)

        with pytest.raises(GatewayUnavailable):
            gateway.query("sbx_1")


def test_the_well_formed_answer_of_the_same_fake_is_accepted() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=_READY))
    with httpx.Client(transport=transport) as client:
        assert HttpGateway(GatewaySettings("http://pg.invalid", KEY), client=client).query("sbx_1").status == "ready"
