"""Payment states forward only (domain and database), raw gateway payloads kept, and the sweep that resolves
payments left pending (its status queries and the refunds of late approvals through the outbox), against the real
gateway sandbox process and PostgreSQL (DESIGN.md §4)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from adapters.gateway import GatewaySettings, HttpGateway
from models import ledger, notices, outbox, payments
from models.base import Actor
from sandboxes.launcher import start_gateway as start_sandbox
from sandboxes.launcher import stop as stop_sandbox
from services.outbox import DeliveryReport
from services.payments import queue_refund, queue_status_queries, settle
from tests.conftest import free_port
from tests.factories import CIPHER
from tests.support.outbox import deliver, outside

KEY = "7b2e" * 16
NOTICE_NO = "111102600000012"


@pytest.fixture(scope="module")
def gateway() -> Iterator[HttpGateway]:
    """A sandbox whose callbacks are lost (fail_callbacks): only the status query tells what happened."""
    port = free_port()
    proc = start_sandbox(port, KEY, fail_callbacks=True)
    try:
        yield HttpGateway(GatewaySettings(f"http://127.0.0.1:{port}", KEY, name="sandbox"))
    finally:
        stop_sandbox(proc)


def started(db_session, gateway: HttpGateway, amount: int = 32000, notice_no: str = NOTICE_NO) -> payments.Payment:
    """The citizen pressed 납부하기: a transaction at the gateway, a pending payment with us."""
    created = gateway.create(
        order_id=str(uuid.uuid4()),
        amount=amount,
        notice_no=notice_no,
        description="과태료",
        return_url="http://127.0.0.1:9/p/x/done",
        callback_url="http://127.0.0.1:9/api/v1/payments/callbacks/sandbox",
    )
    return payments.open_payment(
        db_session, gateway="sandbox", txn_id=created.txn_id, channel="qr", notice_no=notice_no, amount=amount
    )


def at_gateway(gateway: HttpGateway, txn_id: str, action: str) -> None:
    """The phone presses 결제 (approve) or 취소 (cancel) on the sandbox's page."""
    response = httpx.post(f"{gateway.base_url}/pay/{txn_id}/{action}", trust_env=False, timeout=10)
    assert response.status_code == 303


LATER = datetime.now(UTC) + timedelta(hours=1)
SWEEP_AGE = timedelta(minutes=10)


def test_a_payment_moves_forward_only_in_the_domain(db_session) -> None:
    payment = payments.open_payment(db_session, gateway="sandbox", txn_id="t-fwd", channel="qr", notice_no=None,
                                    amount=1000)  # fmt: skip
    assert payment.status == "initiated"
    with pytest.raises(payments.BackwardMove):
        payments.move(payment, payments.CANCELLED_PAYMENT)  # only a paid payment can be cancelled
    payments.move(payment, payments.PENDING)
    with pytest.raises(payments.BackwardMove):
        payments.move(payment, payments.INITIATED)
    payments.move(payment, payments.FAILED)
    for back in (payments.INITIATED, payments.PENDING, payments.PAID, payments.CANCELLED_PAYMENT):
        with pytest.raises(payments.BackwardMove):
            payments.move(payment, back)
    assert payment.status == "failed"


@pytest.mark.parametrize(
    ("start", "back"),
    [("pending", "initiated"), ("paid", "pending"), ("paid", "failed"), ("failed", "paid"), ("failed", "pending"),
     ("cancelled", "paid"), ("initiated", "cancelled")],
)  # fmt: skip
def test_the_database_refuses_a_backward_move(db_session, start: str, back: str) -> None:
    payment = payments.open_payment(db_session, gateway="sandbox", txn_id=f"t-db-{start}-{back}", channel="qr",
                                    notice_no=None, amount=1000)  # fmt: skip
    if start == "cancelled":
        db_session.execute(text("UPDATE payments SET status = 'paid' WHERE id = :id"), {"id": payment.id})
    db_session.execute(text("UPDATE payments SET status = :s WHERE id = :id"), {"s": start, "id": payment.id})
    with pytest.raises(DBAPIError, match="may not move"), db_session.begin_nested():
        db_session.execute(text("UPDATE payments SET status = :s WHERE id = :id"), {"s": back, "id": payment.id})


def test_the_database_refuses_an_unknown_status(db_session) -> None:
    payment = payments.open_payment(db_session, gateway="sandbox", txn_id="t-unknown", channel="qr", notice_no=None,
                                    amount=1000)  # fmt: skip
    with pytest.raises(DBAPIError), db_session.begin_nested():
        db_session.execute(text("UPDATE payments SET status = 'paid_twice' WHERE id = :id"), {"id": payment.id})


def test_payment_events_are_append_only(db_session) -> None:
    event = payments.record_event(db_session, "sandbox", "t-ev", "callback", {"txn_id": "t-ev"}, '{"txn_id":"t-ev"}')
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text("UPDATE payment_events SET body = '{}' WHERE id = :id"), {"id": event.id})
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text("DELETE FROM payment_events WHERE id = :id"), {"id": event.id})


def test_every_status_answer_is_kept_and_a_repeated_answer_posts_once(db_session, gateway, issue) -> None:  # noqa: F811
    notice = issue(NOTICE_NO)
    payment = started(db_session, gateway)
    at_gateway(gateway, payment.txn_id, "approve")
    answer = gateway.query(payment.txn_id)
    now = datetime.now(UTC)
    assert settle(db_session, "sandbox", answer, {"query": answer.as_dict()}, Actor.system(), now) == "paid"
    again = gateway.query(payment.txn_id)
    assert settle(db_session, "sandbox", again, {"query": again.as_dict()}, Actor.system(), now) == "already_paid"
    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None
    assert [(e.kind, e.amount) for e in ledger.entries(db_session, receivable.id)] == [
        ("charge", 40000), ("reduction", -8000), ("payment", -32000)
    ]  # fmt: skip
    events = payments.events_of(db_session, "sandbox", payment.txn_id)
    assert [e.kind for e in events] == ["status_answer", "status_answer"]
    assert all(e.body is not None and e.body["status"] == "approved" and e.body["amount"] == 32000 for e in events)


def sweep(
    db_session, gateway: HttpGateway, now: datetime, abandon_after: timedelta | None = None
) -> tuple[int, DeliveryReport]:
    """The job (status queries queued in the outbox), then the worker's delivery of them: (queued, what it did)."""
    queued = queue_status_queries(db_session, "sandbox", now, SWEEP_AGE, abandon_after=abandon_after)
    return queued, deliver(db_session, now, outside(CIPHER, gateway=gateway))


def test_the_sweep_posts_a_payment_approved_at_the_gateway_whose_callback_was_lost(
    db_session,
    gateway,
    issue,  # noqa: F811
) -> None:
    notice = issue(NOTICE_NO)
    payment = started(db_session, gateway)
    at_gateway(gateway, payment.txn_id, "approve")
    queued, report = sweep(db_session, gateway, LATER)
    assert queued == 1 and report.outcomes == {"gateway.query:paid": 1} and report.retried == 0
    assert payment.status == "paid" and notice.status == "paid"
    assert sweep(db_session, gateway, LATER)[0] == 0  # nothing left pending


def test_the_sweep_closes_a_cancelled_payment_and_leaves_an_open_one_and_a_young_one(db_session, gateway) -> None:
    cancelled = started(db_session, gateway)
    at_gateway(gateway, cancelled.txn_id, "cancel")
    still_open = started(db_session, gateway)
    young, _ = sweep(db_session, gateway, datetime.now(UTC) - timedelta(hours=1))
    assert young == 0  # started less than ten minutes before: not asked yet
    _, report = sweep(db_session, gateway, LATER, abandon_after=timedelta(hours=24))
    assert report.outcomes == {"gateway.query:failed": 1, "gateway.query:pending": 1}
    assert (cancelled.status, cancelled.failed_reason, still_open.status) == ("failed", "cancelled", "initiated")
    kinds = {p.txn_id: [e.body["status"] for e in payments.events_of(db_session, "sandbox", p.txn_id) if e.body]
             for p in (cancelled, still_open)}  # fmt: skip
    assert kinds == {cancelled.txn_id: ["cancelled"], still_open.txn_id: ["ready"]}


def test_the_sweep_fails_a_payment_abandoned_at_the_gateway_for_longer_than_the_horizon(db_session, gateway) -> None:
    abandoned = started(db_session, gateway)
    day_later = datetime.now(UTC) + timedelta(hours=25)
    _, kept = sweep(db_session, gateway, day_later, abandon_after=timedelta(hours=26))
    assert kept.outcomes == {"gateway.query:pending": 1} and abandoned.status == "initiated"
    _, report = sweep(db_session, gateway, day_later, abandon_after=timedelta(hours=24))
    assert report.outcomes == {"gateway.query:abandoned": 1}
    assert (abandoned.status, abandoned.failed_reason) == ("failed", "abandoned")
    assert sweep(db_session, gateway, day_later)[0] == 0
    # the citizen approves after all: the money is real, never posted onto a closed payment but given back: the
    # refund is queued in the settling transaction, once (its key), and the worker makes it at the gateway
    at_gateway(gateway, abandoned.txn_id, "approve")
    answer = gateway.query(abandoned.txn_id)
    assert settle(db_session, "sandbox", answer, {}, Actor.system(), day_later) == "refund_queued"
    assert settle(db_session, "sandbox", answer, {}, Actor.system(), day_later) == "refund_queued"
    assert abandoned.status == "failed" and abandoned.receivable_id is None
    refunds = deliver(db_session, day_later, outside(CIPHER, gateway=gateway))
    assert refunds.outcomes == {"gateway.refund:refunded_late": 1}
    after = gateway.query(abandoned.txn_id)
    assert after.status == "cancelled" and after.approved_at is not None  # refunded at the gateway
    assert settle(db_session, "sandbox", after, {}, Actor.system(), day_later) == "failed"
    assert payments.suspense_total(db_session, NOTICE_NO) == 0


def test_a_refund_the_gateway_refuses_is_a_dead_letter_at_once(db_session, gateway) -> None:
    payment = started(db_session, gateway)  # never approved: the gateway refuses to refund it (409 not_approved)
    queue_refund(db_session, "sandbox", payment.txn_id, None, LATER)
    report = deliver(db_session, LATER, outside(CIPHER, gateway=gateway))
    assert (report.dead, report.retried, report.done) == (1, 0, 0)
    row = db_session.scalar(select(outbox.OutboxRow).where(outbox.OutboxRow.idempotency_key.like("gateway.refund:%")))
    assert row is not None and row.status == "dead" and "not_approved" in (row.last_error or "")
    assert payments.events_of(db_session, "sandbox", payment.txn_id) == []  # the gateway's refusal is no status


def test_the_sweep_counts_an_unreachable_gateway_and_leaves_the_payment(db_session) -> None:
    payment = payments.open_payment(db_session, gateway="sandbox", txn_id="t-nowhere", channel="qr", notice_no=None,
                                    amount=1000)  # fmt: skip
    nowhere = HttpGateway(GatewaySettings(f"http://127.0.0.1:{free_port()}", KEY, name="sandbox"))
    _, report = sweep(db_session, nowhere, LATER)
    assert report.retried == 1 and payment.status == "initiated"
    assert db_session.scalar(select(payments.PaymentEvent).where(payments.PaymentEvent.txn_id == "t-nowhere")) is None
    row = db_session.scalar(select(outbox.OutboxRow).where(outbox.OutboxRow.stream == "gateway:sandbox:t-nowhere"))
    assert row is not None and row.status == "pending" and "could not be reached" in (row.last_error or "")
    assert sweep(db_session, nowhere, LATER)[0] == 0  # still asking: not queued twice


def test_a_payment_cancelled_after_approval_is_reversed_and_the_notice_is_payable_again(
    db_session,
    gateway,
    issue,  # noqa: F811
) -> None:
    from models.feed import ChangeLog
    from models.fines import FineCase

    notice = issue(NOTICE_NO)
    payment = started(db_session, gateway)
    at_gateway(gateway, payment.txn_id, "approve")
    now = datetime.now(UTC)
    answer = gateway.query(payment.txn_id)
    assert settle(db_session, "sandbox", answer, {}, Actor.system(), now) == "paid"
    assert notice.status == "paid" and notice.version == 2
    case = db_session.get(FineCase, notice.id)
    assert case is not None and case.stage == "paid"

    refunded = gateway.refund(payment.txn_id)  # the merchant cancels the approved payment at the gateway
    assert refunded.status == "cancelled" and refunded.approved_at == answer.approved_at
    assert gateway.refund(payment.txn_id).status == "cancelled"  # again: nothing more
    assert settle(db_session, "sandbox", gateway.query(payment.txn_id), {}, Actor.system(), now) == "reversed"
    assert settle(db_session, "sandbox", gateway.query(payment.txn_id), {}, Actor.system(), now) == "failed"
    assert payment.status == "cancelled"  # not failed: it was paid, then cancelled

    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None
    rows = [(e.kind, e.amount) for e in ledger.entries(db_session, receivable.id)]
    assert rows == [("charge", 40000), ("reduction", -8000), ("payment", -32000), ("reversal", 32000),
                    ("reversal", 8000)]  # fmt: skip
    assert sum(amount for _, amount in rows) == ledger.balance(db_session, receivable.id) == 40000
    assert receivable.status == ledger.OPEN
    assert payment.status == "cancelled"
    assert (notice.status, notice.version, notice.paid_at) == ("issued", 3, None)
    db_session.refresh(case)
    assert case.stage != "paid"
    feed = db_session.scalars(select(ChangeLog).where(ChangeLog.key == NOTICE_NO).order_by(ChangeLog.id)).all()
    assert {"status": "issued", "version": 3}.items() <= feed[-1].data.items()
    with pytest.raises(payments.BackwardMove):
        payments.move(payment, payments.PAID)


def test_only_an_approved_payment_can_be_refunded_at_the_gateway(db_session, gateway) -> None:
    from adapters.gateway import GatewayRefused

    payment = started(db_session, gateway)
    with pytest.raises(GatewayRefused) as refused:
        gateway.refund(payment.txn_id)
    assert refused.value.status == 409 and refused.value.code == "not_approved"


def test_every_verified_callback_and_status_answer_is_kept_and_a_repeated_callback_posts_once(
    connection, test_config, gateway
) -> None:
    import json

    from sqlalchemy.orm import Session

    from adapters.gateway import sign
    from server import create_app

    app = create_app(test_config.with_overrides(gateway_url=gateway.base_url, gateway_key=KEY), bind=connection)
    client = app.test_client()
    created = gateway.create(
        order_id=str(uuid.uuid4()),
        amount=40000,
        notice_no="111102600000020",  # not synced yet: suspense
        description="과태료",
        return_url="http://127.0.0.1:9/p/x/done",
        callback_url="http://127.0.0.1:9/api/v1/payments/callbacks/sandbox",
    )
    at_gateway(gateway, created.txn_id, "approve")
    raw = json.dumps(gateway.query(created.txn_id).as_dict(), separators=(",", ":")).encode()

    def send(signature: str) -> tuple[int, dict]:
        response = client.post("/api/v1/payments/callbacks/sandbox", data=raw, content_type="application/json",
                               headers={"X-Gateway-Signature": signature})  # fmt: skip
        return response.status_code, response.get_json()

    good = sign(bytes.fromhex(KEY), raw)
    assert send("0" * 64)[0] == 401  # not verified: not kept
    assert send(good) == (200, {"result": "suspense", "txn_id": created.txn_id})
    assert send(good) == (200, {"result": "already_paid", "txn_id": created.txn_id})
    with Session(bind=connection) as session:
        events = payments.events_of(session, "sandbox", created.txn_id)
        assert [e.kind for e in events] == ["callback", "status_answer", "callback", "status_answer"]
        assert events[0].raw == raw.decode() and events[0].body == json.loads(raw)
        assert events[1].body is not None and events[1].body["status"] == "approved"
        assert payments.suspense_total(session, "111102600000020") == 40000


def test_a_suspense_payment_cancelled_at_the_gateway_closes_its_suspense_row(db_session, gateway) -> None:
    payment = started(db_session, gateway, amount=40000, notice_no="111102600000020")  # never synced
    at_gateway(gateway, payment.txn_id, "approve")
    now = datetime.now(UTC)
    assert settle(db_session, "sandbox", gateway.query(payment.txn_id), {}, Actor.system(), now) == "suspense"
    assert payments.suspense_total(db_session, "111102600000020") == 40000
    gateway.refund(payment.txn_id)
    assert settle(db_session, "sandbox", gateway.query(payment.txn_id), {}, Actor.system(), now) == "reversed"
    assert payment.status == "cancelled"
    assert payments.suspense_total(db_session, "111102600000020") == 0  # nothing left to match or refund
    row = db_session.scalar(select(payments.SuspensePayment).where(payments.SuspensePayment.payment_id == payment.id))
    assert row is not None and row.status == "cancelled"


def test_pressing_pay_twice_continues_the_open_payment_instead_of_starting_a_second_charge(
    connection, test_config, gateway
) -> None:
    from urllib.parse import parse_qsl, urlsplit

    from sqlalchemy.orm import Session

    from server import create_app
    from tests.support.device import Device, fresh_plate

    app = create_app(test_config.with_overrides(gateway_url=gateway.base_url, gateway_key=KEY), bind=connection)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost") as client:
        device = Device.enrolled(client)
        event = device.issue_parking(plate=fresh_plate())
        device.push_ok([event])
        link = urlsplit(event["data"]["qr"])
        form = dict(parse_qsl(link.query))
        first = client.post(f"{link.path}/pay", data=form)
        second = client.post(f"{link.path}/pay", data=form)  # a double tap, a second tab
        assert first.status_code == second.status_code == 303
        assert first.headers["location"] == second.headers["location"]  # back to the same gateway transaction
        with Session(bind=connection) as session:
            rows = session.scalars(select(payments.Payment).where(payments.Payment.notice_no == event["notice_no"]))
            started = list(rows)
        assert len(started) == 1 and started[0].status == "initiated" and started[0].order_id
        # once that one has failed, paying again starts a new order
        at_gateway(gateway, started[0].txn_id, "cancel")
        with Session(bind=connection) as session:
            answer = gateway.query(started[0].txn_id)
            assert settle(session, "sandbox", answer, {}, Actor.system(), datetime.now(UTC)) == "failed"
            session.commit()
        third = client.post(f"{link.path}/pay", data=form)
        assert third.status_code == 303 and third.headers["location"] != first.headers["location"]
