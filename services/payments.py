"""Payments through the gateway (PROTOCOL.md §5, DESIGN.md §4): starting one for the amount due today (the gateway
asked with no transaction open), acting on the gateway's own answer about a transaction (``settle``: post once,
fail, reverse, abandon, give back a late approval), a callback confirmed with the gateway, and the sweep of payments
left pending — its status queries and the refunds of late approvals go through the outbox (``models.outbox``;
delivered by ``services.outbox`` with the handlers at the end of this module).

The gateway's callback is only a hint: it is kept, then the status and amount are asked back from the gateway, and
only then does the payment post — once per (gateway, txn_id). A notice that has not synced yet gets its payment in
suspense. The HTTP side (the QR page's 납부하기, the callback route) is ``server.payments_web``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

import protocol
from adapters.gateway import Created, GatewayPayment, PaymentGateway
from models import outbox, payments
from models.base import Actor
from models.outbox import Delivery
from services.uow import Transactions


@dataclass(frozen=True)
class PaySettings:
    """The gateway we use, the public base URL it sends the phone and its callbacks back to, and how long an open
    payment may be continued (``JINGSU_PAYMENT_ABANDON_HOURS``)."""

    gateway_name: str
    pay_base_url: str
    abandon_after: timedelta


def order_for(session: Session, settings: PaySettings, notice_no: str, amount: int, now: datetime) -> str:
    """The order id to ask the gateway for a payment of ``amount``: the open payment's, if one of this amount is
    still open (a second 납부하기 continues it: the gateway finds the order again and no second charge can start),
    else a new one."""
    already = payments.open_payment_of(session, settings.gateway_name, notice_no, amount, now - settings.abandon_after)
    return already.order_id if already is not None and already.order_id else str(uuid.uuid4())


def create_at_gateway(
    client: PaymentGateway, settings: PaySettings, notice_no: str, amount: int, order_id: str, signed_query: str
) -> Created:
    """The citizen pressed 납부하기: create the payment at the gateway (idempotent by ``order_id``, the gateway's own
    key: no ``Idempotency-Key``, since the same order may come back from another link, with another return URL).
    Called with **no transaction open**: the phone waits for the answer, the database does not. ``signed_query``: the
    page's signed link fields (urlencoded), for the way back. Raises ``GatewayError``."""
    return client.create(
        order_id=order_id,
        amount=amount,
        notice_no=notice_no,
        description=f"과태료 {notice_no}",
        return_url=f"{settings.pay_base_url}/p/{notice_no}/done?{signed_query}",
        callback_url=f"{settings.pay_base_url}/api/v1/payments/callbacks/{settings.gateway_name}",
    )


def record_started(
    session: Session, settings: PaySettings, notice_no: str, amount: int, order_id: str, created: Created
) -> payments.Payment:
    """Open the payment the gateway created (``initiated``; idempotent per transaction id)."""
    return payments.open_payment(
        session,
        gateway=settings.gateway_name,
        txn_id=created.txn_id,
        channel="qr",
        notice_no=notice_no,
        amount=amount,
        order_id=order_id,
    )


def confirm_callback(
    transaction: Transactions,
    client: PaymentGateway,
    gateway_name: str,
    txn_id: str,
    body: dict[str, Any],
    raw: str,
    actor: Actor,
    clock: Callable[[], datetime],
) -> str:
    """A verified callback about ``txn_id``: kept (and the payment marked pending) in a transaction of its own, so
    it stays even if the gateway cannot be asked now; then the gateway's own answer is settled (``settle``).
    Raises ``GatewayRefused`` (the gateway does not know the transaction) or ``GatewayError`` (not answered)."""
    with transaction() as session:
        payments.record_event(session, gateway_name, txn_id, "callback", body, raw)
        payments.note_pending(session, gateway_name, txn_id)  # heard of: pending until the gateway confirms
    confirmed = client.query(txn_id)  # the callback is a hint: the gateway's own answer decides
    with transaction() as session:
        raw_answer = {"callback": body, "query": confirmed.as_dict()}
        return settle(session, gateway_name, confirmed, raw_answer, actor, clock())


def settle(
    session: Session,
    gateway_name: str,
    confirmed: GatewayPayment,
    raw: dict[str, Any],
    actor: Actor,
    now: datetime,
    *,
    abandon_before: datetime | None = None,
) -> str:
    """Act on the gateway's own answer about a transaction (kept first, as every status answer is): post an
    approved payment once (``paid``), fail a cancelled one never approved, reverse one cancelled after approval,
    and leave one still ``ready`` — unless it was started before ``abandon_before`` (the sweep's abandonment
    horizon): then it is closed ``failed`` (``abandoned``). A payment approved after it was closed is never posted
    onto the closed row: its refund at the gateway is queued in the outbox in this transaction (the money goes back
    to the citizen, whose notice is still payable: ``refund_queued``; the refund's answer is kept in
    ``payment_events``; a refund the gateway refuses is a dead letter in the outbox, for a clerk). Returns what
    happened."""
    txn_id = confirmed.txn_id
    payments.record_event(session, gateway_name, txn_id, "status_answer", confirmed.as_dict())
    if confirmed.status != "approved":
        if confirmed.status == "cancelled":
            if confirmed.approved_at is not None:  # cancelled after approval: a paid payment is reversed
                if payments.cancel_posted(session, gateway_name, txn_id, now, actor, now):
                    return "reversed"
            payments.fail_payment(session, gateway_name, txn_id, "cancelled")
            return "failed"
        payment = payments.find_payment(session, gateway_name, txn_id)
        if abandon_before is not None and payment is not None and payment.created_at < abandon_before:
            if payments.fail_payment(session, gateway_name, txn_id, "abandoned"):
                return "abandoned"
        return "pending"
    notice_no: str | None = confirmed.notice_no
    if notice_no is not None and protocol.parse_notice_no(notice_no) is None:
        notice_no = None
    assert confirmed.approved_at is not None
    try:
        result = payments.post_payment(
            session,
            payments.ReceivedPayment(
                gateway=gateway_name,
                txn_id=txn_id,
                channel=confirmed.method or "qr",  # card / transfer when the gateway says how
                notice_no=notice_no,
                amount=confirmed.amount,
                approved_at=confirmed.approved_at,
                raw=raw,
            ),
            actor,
            now,
        )
    except payments.BackwardMove:
        # approved after we had closed it as abandoned: the money is real and must go back, never be posted twice
        queue_refund(session, gateway_name, txn_id, confirmed.notice_no, now)
        return "refund_queued"
    if not result.newly_posted:
        return "already_paid"
    return "paid" if result.notice is not None else "suspense"


def _stream(gateway_name: str, txn_id: str) -> str:
    """A payment's calls to the gateway go in order: a status query, then the refund it decided."""
    return f"gateway:{gateway_name}:{txn_id}"


def _jurisdiction(notice_no: str | None) -> str | None:
    parsed = protocol.parse_notice_no(notice_no)
    return parsed.jurisdiction if parsed is not None else None


def queue_refund(session: Session, gateway_name: str, txn_id: str, notice_no: str | None, now: datetime) -> None:
    """Queue the refund of an approved transaction at the gateway (operation ``gateway.refund``, once per
    transaction: the key names it), in the caller's transaction."""
    outbox.enqueue(
        session,
        outbox.GATEWAY_REFUND,
        f"gateway.refund:{gateway_name}:{txn_id}",
        {"gateway": gateway_name, "txn_id": txn_id},
        now,
        stream=_stream(gateway_name, txn_id),
        jurisdiction=_jurisdiction(notice_no),
    )


def queue_status_queries(
    session: Session,
    gateway_name: str,
    now: datetime,
    older_than: timedelta,
    abandon_after: timedelta | None = None,
) -> int:
    """The sweep of payments left initiated or pending (the callback lost, the phone closed): for each one started
    more than ``older_than`` ago, queue a status query at the gateway (operation ``gateway.query``) unless one is
    still waiting; the worker asks, and ``apply_status`` settles the answer — posting, failing or leaving the
    payment, and closing it ``failed`` (abandoned) when the gateway still calls it ``ready`` after
    ``abandon_after``. Returns how many were queued. The worker runs it every few minutes (job
    ``sweep-payments``); safe to repeat."""
    queued = 0
    abandon_before = (now - abandon_after).isoformat() if abandon_after is not None else None
    for payment in payments.stale_pending(session, gateway_name, now - older_than):
        stream = _stream(gateway_name, payment.txn_id)
        if outbox.open_rows(session, stream):
            continue  # asked already, the answer not in yet (or a dead row a person has to look at)
        asked = outbox.rows_of(session, outbox.GATEWAY_QUERY, stream)  # the key names how often it was asked
        outbox.enqueue(
            session,
            outbox.GATEWAY_QUERY,
            f"gateway.query:{gateway_name}:{payment.txn_id}:{asked + 1}",
            {"gateway": gateway_name, "txn_id": payment.txn_id, "abandon_before": abandon_before},
            now,
            stream=stream,
            jurisdiction=_jurisdiction(payment.notice_no),
        )
        queued += 1
    return queued


# --- the outbox's gateway deliveries (services.outbox.HANDLERS) ---------------------------------------------------


def ask_status(client: PaymentGateway, delivery: Delivery) -> GatewayPayment:
    """The gateway's own answer about the row's transaction. Raises the gateway's errors."""
    return client.query(delivery.payload["txn_id"], idempotency_key=delivery.key)


def apply_status(session: Session, delivery: Delivery, confirmed: GatewayPayment, now: datetime) -> dict[str, Any]:
    """Settle the answer the sweep asked for, in its own transaction (``settle``)."""
    raw = delivery.payload.get("abandon_before")
    abandon_before = datetime.fromisoformat(raw) if raw else None
    result = settle(
        session,
        delivery.payload["gateway"],
        confirmed,
        {"sweep": confirmed.as_dict()},
        Actor.system(),
        now,
        abandon_before=abandon_before,
    )
    return {"result": result, "status": confirmed.status}


def ask_refund(client: PaymentGateway, delivery: Delivery) -> GatewayPayment:
    """Cancel the row's approved transaction at the gateway (once per key). Raises the gateway's errors
    (``GatewayRefused``, e.g. ``not_approved``: the row is dead)."""
    return client.refund(delivery.payload["txn_id"], idempotency_key=delivery.key)


def apply_refund(session: Session, delivery: Delivery, refunded: GatewayPayment, now: datetime) -> dict[str, Any]:
    """Keep the gateway's answer to the refund (its callback will say the same): ``refunded_late``."""
    payments.record_event(session, delivery.payload["gateway"], refunded.txn_id, "status_answer", refunded.as_dict())
    return {"result": "refunded_late", "status": refunded.status}
