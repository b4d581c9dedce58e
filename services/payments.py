"""Payments through the gateway (PROTOCOL.md §5, DESIGN.md §4): starting one for the amount due today, acting on
the gateway's own answer about a transaction (``settle``: post once, fail, reverse, abandon, give back a late
approval), a callback confirmed with the gateway, and the sweep of payments left pending.

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
from adapters.gateway import Created, GatewayError, GatewayPayment, PaymentGateway
from models import payments
from models.base import Actor
from services.uow import Transactions


@dataclass(frozen=True)
class PaySettings:
    """The gateway we use, the public base URL it sends the phone and its callbacks back to, and how long an open
    payment may be continued (``JINGSU_PAYMENT_ABANDON_HOURS``)."""

    gateway_name: str
    pay_base_url: str
    abandon_after: timedelta


def begin_payment(
    session: Session,
    client: PaymentGateway,
    settings: PaySettings,
    notice_no: str,
    amount: int,
    signed_query: str,
    now: datetime,
) -> Created:
    """The citizen pressed 납부하기: create the payment of ``amount`` at the gateway and open it with us (pending);
    the gateway's answer holds where to send the phone. ``signed_query``: the page's signed link fields
    (urlencoded), for the way back. Raises ``GatewayError`` (nothing is opened then)."""
    name = settings.gateway_name
    # a second 납부하기 while this amount's payment is still open continues it: the gateway finds the order
    # again (same order id, same amount) and no second charge can start
    already = payments.open_payment_of(session, name, notice_no, amount, now - settings.abandon_after)
    order_id = already.order_id if already is not None and already.order_id else str(uuid.uuid4())
    created = client.create(
        order_id=order_id,
        amount=amount,
        notice_no=notice_no,
        description=f"과태료 {notice_no}",
        return_url=f"{settings.pay_base_url}/p/{notice_no}/done?{signed_query}",
        callback_url=f"{settings.pay_base_url}/api/v1/payments/callbacks/{name}",
    )
    payments.open_payment(
        session,
        gateway=name,
        txn_id=created.txn_id,
        channel="qr",
        notice_no=notice_no,
        amount=amount,
        order_id=order_id,
    )
    return created


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
        return settle(session, gateway_name, confirmed, raw_answer, actor, clock(), client=client)


def settle(
    session: Session,
    gateway_name: str,
    confirmed: GatewayPayment,
    raw: dict[str, Any],
    actor: Actor,
    now: datetime,
    *,
    abandon_before: datetime | None = None,
    client: PaymentGateway | None = None,
) -> str:
    """Act on the gateway's own answer about a transaction (kept first, as every status answer is): post an
    approved payment once (``paid``), fail a cancelled one never approved, reverse one cancelled after approval,
    and leave one still ``ready`` — unless it was started before ``abandon_before`` (the sweep's abandonment
    horizon): then it is closed ``failed`` (``abandoned``). A payment approved after it was closed is never posted
    onto the closed row: with ``client`` the approval is cancelled at the gateway at once (the money goes back to
    the citizen, whose notice is still payable: ``refunded_late``); without, or if the gateway cannot be reached,
    ``approved_after_failed`` (kept in ``payment_events``, for a clerk). Returns what happened."""
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
        if client is not None:
            try:
                refunded = client.refund(txn_id)
            except GatewayError:
                return "approved_after_failed"
            payments.record_event(session, gateway_name, txn_id, "status_answer", refunded.as_dict())
            return "refunded_late"
        return "approved_after_failed"
    if not result.newly_posted:
        return "already_paid"
    return "paid" if result.notice is not None else "suspense"


@dataclass(frozen=True)
class SweepReport:
    asked: int
    outcomes: dict[str, int]
    unreachable: int

    def summary(self) -> str:
        done = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items())) or "nothing moved"
        return f"{self.asked} pending payments asked about: {done}; {self.unreachable} not answered"


def sweep_payments(
    session: Session,
    client: PaymentGateway,
    gateway_name: str,
    now: datetime,
    older_than: timedelta,
    abandon_after: timedelta | None = None,
) -> SweepReport:
    """Resolve payments left initiated or pending (the callback lost, the phone closed): ask the gateway about each
    one started more than ``older_than`` ago, and post, fail or leave it as the answer says; one the gateway still
    calls ``ready`` after ``abandon_after`` is closed ``failed`` (abandoned). The worker runs it every few minutes
    (job ``sweep-payments``); safe to repeat."""
    outcomes: dict[str, int] = {}
    unreachable = 0
    stale = payments.stale_pending(session, gateway_name, now - older_than)
    abandon_before = now - abandon_after if abandon_after is not None else None
    for payment in stale:
        try:
            confirmed = client.query(payment.txn_id)
        except GatewayError:
            unreachable += 1  # tried again on the next turn
            continue
        with session.begin_nested():
            result = settle(
                session,
                gateway_name,
                confirmed,
                {"sweep": confirmed.as_dict()},
                Actor.system(),
                now,
                abandon_before=abandon_before,
                client=client,
            )
        outcomes[result] = outcomes.get(result, 0) + 1
    return SweepReport(len(stale), outcomes, unreachable)
