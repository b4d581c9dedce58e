"""수납: payments from every channel, and suspense payments (미확인 수납) that match no known notice yet.

A payment is posted once per (gateway, txn_id); the raw callback is kept. A payment naming an unknown notice is
never refused: it waits in suspense and is matched when the notice arrives (DESIGN.md §4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, LargeBinary, String, Text, UniqueConstraint, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import arrears, fines, ledger, notices
from models.arrears.clock import REVERSAL_OF
from models.base import Actor, Base, Scope
from models.treasury.exceptions import settle_unmatched
from protocol import parse_notice_no, seoul_date


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    gateway: Mapped[str] = mapped_column(String(30))
    txn_id: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(20))  # qr, virtual_account, counter …
    notice_no: Mapped[str | None] = mapped_column(String(15), index=True)
    receivable_id: Mapped[int | None] = mapped_column(ForeignKey("receivables.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))  # initiated, pending, paid, failed, cancelled: FORWARD only
    failed_reason: Mapped[str | None] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(80))  # ours, given to the gateway when it was started
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("gateway", "txn_id"),)


class PaymentEvent(Base):
    """What a gateway said, kept raw and append-only (a trigger refuses UPDATE and DELETE): every callback body and
    every status answer, whether or not it moved the payment."""

    __tablename__ = "payment_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    gateway: Mapped[str] = mapped_column(String(30))
    txn_id: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))  # callback, status_answer
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    raw: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SuspensePayment(Base):
    __tablename__ = "suspense_payments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    notice_no: Mapped[str | None] = mapped_column(String(15), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))  # open, matched, refunded, cancelled
    jurisdiction: Mapped[str | None] = mapped_column(String(5))  # from the number, when it reads as a notice number
    matched_receivable_id: Mapped[int | None] = mapped_column(ForeignKey("receivables.id"))
    matched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    matched_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: matched when the notice arrived
    match_note: Mapped[str | None] = mapped_column(String(200))
    refund_reason: Mapped[str | None] = mapped_column(String(200))
    refund_account_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    refund_account_masked: Mapped[str | None] = mapped_column(String(40))
    refunded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- posting -------------------------------------------------------------------------------------------------------

# initiated: the gateway created it and the citizen was sent there; pending: the gateway has spoken (a callback)
# but the money is not confirmed yet; paid: the source's own answer confirmed it — posted to the ledger, or waiting
# in suspense when it names no known notice; failed: never paid (refused, abandoned); cancelled: paid, then
# cancelled at the source (the reversal posted).
INITIATED, PENDING, PAID, FAILED, CANCELLED_PAYMENT = "initiated", "pending", "paid", "failed", "cancelled"
OPEN_STATES = (INITIATED, PENDING)
TREASURY = "treasury"  # the ``gateway`` of payments the treasury bank reported (models.treasury)

# the only moves a payment makes; never back (the database refuses the rest too: migration 0009)
FORWARD: dict[str, frozenset[str]] = {
    INITIATED: frozenset({PENDING, PAID, FAILED}),
    PENDING: frozenset({PAID, FAILED}),
    PAID: frozenset({CANCELLED_PAYMENT}),
    FAILED: frozenset(),
    CANCELLED_PAYMENT: frozenset(),
}
# suspense rows (미확인 수납)
SUSPENSE_OPEN, SUSPENSE_MATCHED, SUSPENSE_REFUNDED, SUSPENSE_CANCELLED = "open", "matched", "refunded", "cancelled"


class BackwardMove(ValueError):
    """A payment asked to move anywhere but forward."""


def move(payment: Payment, status: str) -> None:
    """Move a payment forward; a backward or sideways move raises ``BackwardMove``."""
    if status == payment.status:
        return
    if status not in FORWARD.get(payment.status, frozenset()):
        raise BackwardMove(f"payment {payment.id} may not move from {payment.status} to {status}")
    payment.status = status


def record_event(
    session: Session, gateway: str, txn_id: str, kind: str, body: dict[str, Any] | None, raw: str | None = None
) -> PaymentEvent:
    """Keep what the gateway said, as it said it (append-only)."""
    event = PaymentEvent(gateway=gateway, txn_id=txn_id, kind=kind, body=body, raw=raw)
    session.add(event)
    session.flush()
    return event


def events_of(session: Session, gateway: str, txn_id: str) -> list[PaymentEvent]:
    return list(
        session.scalars(
            select(PaymentEvent)
            .where(PaymentEvent.gateway == gateway, PaymentEvent.txn_id == txn_id)
            .order_by(PaymentEvent.id)
        )
    )


def stale_pending(session: Session, gateway: str, before: datetime) -> list[Payment]:
    """Payments still initiated or pending that were started before ``before`` (the sweep asks about them)."""
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.gateway == gateway, Payment.status.in_(OPEN_STATES), Payment.created_at < before)
            .order_by(Payment.id)
        )
    )


@dataclass(frozen=True)
class ReceivedPayment:
    """Money the source (gateway, bank, counter) confirmed: verified before it reaches the ledger."""

    gateway: str
    txn_id: str
    channel: str
    notice_no: str | None
    amount: int
    approved_at: datetime
    raw: dict[str, Any] | None = None


@dataclass(frozen=True)
class PostingResult:
    payment: Payment
    newly_posted: bool
    notice: notices.Notice | None


def open_payment(
    session: Session,
    *,
    gateway: str,
    txn_id: str,
    channel: str,
    notice_no: str | None,
    amount: int,
    order_id: str | None = None,
) -> Payment:
    """Record a payment the citizen started (``initiated`` until the source says more)."""
    session.execute(
        pg_insert(Payment)
        .values(
            gateway=gateway,
            txn_id=txn_id,
            channel=channel,
            notice_no=notice_no,
            amount=amount,
            status=INITIATED,
            order_id=order_id,
        )
        .on_conflict_do_nothing(index_elements=["gateway", "txn_id"])
    )
    payment = session.scalar(select(Payment).where(Payment.gateway == gateway, Payment.txn_id == txn_id))
    assert payment is not None
    return payment


def open_payment_of(session: Session, gateway: str, notice_no: str, amount: int, since: datetime) -> Payment | None:
    """The newest payment of this notice and amount still initiated or pending, started after ``since``: a second
    납부하기 (a double tap, a second tab) goes back to it instead of starting a second charge."""
    return session.scalar(
        select(Payment)
        .where(
            Payment.gateway == gateway,
            Payment.notice_no == notice_no,
            Payment.amount == amount,
            Payment.status.in_(OPEN_STATES),
            Payment.order_id.is_not(None),
            Payment.created_at > since,
        )
        .order_by(Payment.id.desc())
        .limit(1)
    )


def post_payment(session: Session, received: ReceivedPayment, actor: Actor, now: datetime) -> PostingResult:
    """Post a confirmed payment exactly once per (gateway, txn_id).

    The payment row is locked first and read as the lock sees it (``models.base``): a repeated callback, concurrent
    or later, finds it paid and posts nothing.
    A payment whose notice the ledger does not know yet lands in suspense (미확인 수납), never refused.
    """
    opened = open_payment(
        session,
        gateway=received.gateway,
        txn_id=received.txn_id,
        channel=received.channel,
        notice_no=received.notice_no,
        amount=received.amount,
    )
    if opened.status in (FAILED, CANCELLED_PAYMENT):
        # money confirmed for a payment we closed (marked abandoned, then approved after all): never posted onto
        # the closed row — the caller gives it back at the source (services.payments.settle: refund_queued).
        # Checked before locking (a closed payment stays closed), so the refund's own callback never waits on us.
        raise BackwardMove(f"payment {opened.id} is {opened.status}; the source now confirms it paid")
    payment = session.scalar(
        select(Payment).where(Payment.gateway == received.gateway, Payment.txn_id == received.txn_id).with_for_update()
    )
    assert payment is not None
    if payment.status == PAID:
        return PostingResult(payment, False, None)
    if payment.status in (FAILED, CANCELLED_PAYMENT):  # closed while we waited for the lock
        raise BackwardMove(f"payment {payment.id} is {payment.status}; the source now confirms it paid")
    payment.amount = received.amount
    payment.channel = received.channel  # how it was paid, as the source confirms it (card, transfer …)
    payment.approved_at = received.approved_at
    payment.raw = received.raw
    payment.notice_no = received.notice_no
    notice = notices.find_notice(session, received.notice_no, for_update=True) if received.notice_no else None
    if notice is None:
        move(payment, PAID)
        parsed = parse_notice_no(received.notice_no)
        session.add(
            SuspensePayment(
                payment_id=payment.id,
                notice_no=received.notice_no,
                jurisdiction=parsed.jurisdiction if parsed else None,
                amount=received.amount,
                status=SUSPENSE_OPEN,
            )
        )
        session.flush()
        return PostingResult(payment, True, None)
    apply_to_notice(session, payment, notice, actor, now)
    return PostingResult(payment, True, notice)


def apply_to_notice(session: Session, payment: Payment, notice: notices.Notice, actor: Actor, now: datetime) -> None:
    receivable = notices.receivable_of(session, notice.id)
    assert receivable is not None, "every accepted notice has a receivable"
    assert payment.approved_at is not None
    paid_on = seoul_date(payment.approved_at)
    # an overdue receivable is caught up to the day of payment first: its surcharges accrued until then
    arrears.catch_up_receivable(session, receivable.id, paid_on, actor)
    owed = ledger.balance(session, receivable.id)
    source = f"payment:{payment.gateway}:{payment.txn_id}"
    # 자진납부 감경 (질서위반행위규제법 §18): the reduced amount paid within the opinion period ends the case;
    # the statutory reduction posts with the payment, no approval needed. The terms (price, last day) are the fine
    # case's: the later of the slip's and the 사전통지's deadline, after a hardship reduction the combined price
    terms = fines.self_payment_terms(session, notice, paid_on)
    if (
        terms is not None
        and notice.status in notices.PAYABLE
        and owed == terms.owed
        and payment.amount == terms.reduced
    ):
        ledger.post(
            session,
            receivable,
            ledger.Post(ledger.PRINCIPAL, "reduction", -(terms.owed - terms.reduced), paid_on, source, terms.memo),
            actor,
        )
    ledger.allocate_payment(session, receivable, payment.amount, paid_on, source, actor)
    arrears.after_payment(session, receivable, paid_on, actor)  # a paid plate leaves the hotlist at once
    payment.receivable_id = receivable.id
    move(payment, PAID)
    session.flush()
    if notice.status in notices.PAYABLE and ledger.balance(session, receivable.id) <= 0:
        notices.mark_paid(session, notice, payment.approved_at, actor, now)
        fines.note_paid(session, notice, actor, now)  # the fine case ends paid
    else:
        # a partial payment, or money for a notice that was voided or cancelled meanwhile (an overpayment to refund)
        notices.note_payment(session, notice, payment.amount, payment.approved_at, actor)


def match_suspense(session: Session, notice: notices.Notice, actor: Actor, now: datetime) -> int:
    """Apply open suspense payments naming this notice (paid before the device synced); returns how many."""
    rows = list(
        session.scalars(
            select(SuspensePayment)
            .where(SuspensePayment.notice_no == notice.notice_no, SuspensePayment.status == SUSPENSE_OPEN)
            .order_by(SuspensePayment.id)
            .with_for_update()
        )
    )
    for row in rows:
        payment = session.get(Payment, row.payment_id)
        assert payment is not None
        apply_to_notice(session, payment, notice, actor, now)
        row.status = SUSPENSE_MATCHED
        row.matched_receivable_id = payment.receivable_id
        row.matched_at = now
        if payment.gateway == TREASURY:  # a bank receipt's 'unmatched' exception is settled with it
            settle_unmatched(session, payment.id, f"고지 {notice.notice_no} 전송으로 자동 충당", actor, now)
    session.flush()
    return len(rows)


def payments_of(session: Session, receivable_id: int) -> list[Payment]:
    return list(session.scalars(select(Payment).where(Payment.receivable_id == receivable_id).order_by(Payment.id)))


def find_payment(session: Session, gateway: str, txn_id: str) -> Payment | None:
    return session.scalar(select(Payment).where(Payment.gateway == gateway, Payment.txn_id == txn_id))


def note_pending(session: Session, gateway: str, txn_id: str) -> None:
    """The gateway has spoken about an initiated payment (a callback): it is pending until its answer is confirmed."""
    payment = session.scalar(
        select(Payment).where(Payment.gateway == gateway, Payment.txn_id == txn_id).with_for_update()
    )
    if payment is not None and payment.status == INITIATED:
        move(payment, PENDING)
        session.flush()


def fail_payment(session: Session, gateway: str, txn_id: str, reason: str) -> bool:
    """The payment will never be paid (cancelled by the citizen at the gateway, refused, abandoned): an initiated or
    pending payment is closed ``failed`` with the reason; a paid one is untouched. Returns whether it moved."""
    payment = session.scalar(
        select(Payment).where(Payment.gateway == gateway, Payment.txn_id == txn_id).with_for_update()
    )
    if payment is None or payment.status not in OPEN_STATES:
        return False
    move(payment, FAILED)
    payment.failed_reason = reason[:40]
    session.flush()
    return True


def cancel_posted(
    session: Session, gateway: str, txn_id: str, cancelled_at: datetime, actor: Actor, now: datetime
) -> bool:
    """The gateway reports an approved, posted payment cancelled (취소 after approval): post the opposite of its
    allocations and of the 자진납부 reduction that came with it, reopen the receivable, make the notice payable again
    and take the fine case out of ``paid``. Once: returns False when there is nothing (left) to reverse.

    A payment still in suspense has no ledger entries: its suspense row is closed ``cancelled`` (nothing to refund,
    the source took the money back).
    """
    payment = session.scalar(
        select(Payment).where(Payment.gateway == gateway, Payment.txn_id == txn_id).with_for_update()
    )
    if payment is None or payment.status != PAID:
        return False
    if payment.receivable_id is None:
        waiting = session.scalar(
            select(SuspensePayment).where(SuspensePayment.payment_id == payment.id).with_for_update()
        )
        if waiting is None or waiting.status != SUSPENSE_OPEN:
            return False  # refunded by us already: the clerk must settle it with the source
        waiting.status = SUSPENSE_CANCELLED
        move(payment, CANCELLED_PAYMENT)
        session.flush()
        return True
    source = f"payment:{gateway}:{txn_id}"
    on = seoul_date(cancelled_at)
    arrears.reverse_payment(session, payment.receivable_id, source, on, actor)
    receivable = session.get(ledger.Receivable, payment.receivable_id)
    assert receivable is not None
    reductions = session.execute(
        select(ledger.ChargeHead.kind, ledger.LedgerEntry.amount)
        .join(ledger.ChargeHead, ledger.ChargeHead.id == ledger.LedgerEntry.charge_head_id)
        .where(
            ledger.LedgerEntry.receivable_id == receivable.id,
            ledger.LedgerEntry.kind == "reduction",
            ledger.LedgerEntry.source == source,
        )
        .order_by(ledger.LedgerEntry.id)
    ).all()
    for head, amount in reductions:  # the reduction stood only with the payment
        ledger.post(
            session, receivable, ledger.Post(head, "reversal", -int(amount), on, f"{REVERSAL_OF}{source}"), actor
        )
    if ledger.balance(session, receivable.id) > 0:
        receivable.status = ledger.OPEN
    move(payment, CANCELLED_PAYMENT)
    session.flush()
    arrears.after_payment(session, receivable, on, actor)
    notice = notices.find_notice(session, payment.notice_no, for_update=True) if payment.notice_no else None
    if notice is not None and notice.status == notices.PAID and ledger.balance(session, receivable.id) > 0:
        notices.unmark_paid(session, notice, cancelled_at, actor, now)
        fines.note_unpaid(session, notice, actor, now)
    return True


def suspense_total(session: Session, notice_no: str) -> int:
    """Money received for a notice the ledger does not know yet (still in suspense)."""
    total = session.scalar(
        select(func.coalesce(func.sum(SuspensePayment.amount), 0)).where(
            SuspensePayment.notice_no == notice_no, SuspensePayment.status == SUSPENSE_OPEN
        )
    )
    return int(total or 0)


def in_suspense_among(session: Session, notice_nos: Iterable[str]) -> set[str]:
    """Which of these notice numbers have money waiting in suspense (one query for a whole batch)."""
    notice_nos = sorted(notice_nos)
    if not notice_nos:
        return set()
    return set(
        session.scalars(
            select(SuspensePayment.notice_no).where(
                SuspensePayment.notice_no.in_(notice_nos), SuspensePayment.status == SUSPENSE_OPEN
            )
        )
    )


def sweep_suspense(session: Session, now: datetime) -> int:
    """Match open suspense payments whose notice has arrived since (a payment and the push of its notice that
    committed at the same moment each missed the other); the worker runs it every minute. Returns how many."""
    waiting = session.scalars(
        select(SuspensePayment.notice_no)
        .where(SuspensePayment.status == SUSPENSE_OPEN, SuspensePayment.notice_no.is_not(None))
        .distinct()
        .order_by(SuspensePayment.notice_no)
    ).all()
    matched = 0
    for notice_no in waiting:
        assert notice_no is not None
        notice = notices.find_notice(session, notice_no, for_update=True)
        if notice is not None:
            matched += match_suspense(session, notice, Actor.system(), now)
    return matched


# --- a notice as the back office reads it ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivableBalance:
    receivable: ledger.Receivable
    balance: int


@dataclass(frozen=True)
class EntryLine:
    entry: ledger.LedgerEntry
    charge_head: str | None  # the head's kind


@dataclass(frozen=True)
class NoticeDetails:
    """A notice with its receivable and balance, ledger entries, payments and history."""

    notice: notices.Notice
    receivable: ReceivableBalance | None
    entries: list[EntryLine]
    payments: list[Payment]
    timeline: list[notices.NoticeHistory]


def notice_details(session: Session, scope: Scope, notice_no: str) -> NoticeDetails:
    """One notice in ``scope`` (else ``NotFound``) with everything posted against it."""
    notice = notices.get_notice(session, scope, notice_no)
    history = notices.history(session, notice.id)
    receivable = notices.receivable_of(session, notice.id)
    if receivable is None:
        return NoticeDetails(notice, None, [], [], history)
    heads = select(ledger.ChargeHead).where(ledger.ChargeHead.receivable_id == receivable.id)
    kinds = {head.id: head.kind for head in session.scalars(heads)}
    return NoticeDetails(
        notice,
        ReceivableBalance(receivable, ledger.balance(session, receivable.id)),
        [EntryLine(e, kinds.get(e.charge_head_id)) for e in ledger.entries(session, receivable.id)],
        payments_of(session, receivable.id),
        history,
    )
