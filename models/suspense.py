"""미확인 수납: money received that names no known notice, and what a clerk does with it (DESIGN.md §4).

A suspense payment is matched automatically when its notice arrives (``payments.match_suspense``, the sync push and
the worker's sweep); otherwise a clerk matches it to the notice the payer meant (a misread number, a payment with no
number) or, once nobody can say what it was for, refunds it to the payer: who, when, why and to which account
(the account sealed, shown masked). Every step is one transaction and never posts twice: the row is locked and
must still be ``open``.

Visibility: a row belongs to the jurisdiction its reported number names; rows with no readable number are city-wide
(only city roles see them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import notices
from models.base import Actor, Scope
from models.crypto import PiiCipher
from models.errors import InvalidInput, InvalidTransition, NotFound
from models.payments import (
    SUSPENSE_MATCHED,
    SUSPENSE_OPEN,
    SUSPENSE_REFUNDED,
    Payment,
    SuspensePayment,
    apply_to_notice,
)
from models.treasury.exceptions import settle_unmatched


@dataclass(frozen=True)
class SuspenseItem:
    row: SuspensePayment
    payment: Payment
    age_days: int
    refund_due: bool  # open for at least the refund age: nobody matched it

    @property
    def matched_notice_no(self) -> str | None:
        """The notice the money was posted to, once matched."""
        return self.payment.notice_no if self.row.status == SUSPENSE_MATCHED else None


def list_suspense(
    session: Session,
    scope: Scope,
    now: datetime,
    refund_after: timedelta,
    *,
    status: str = SUSPENSE_OPEN,
    limit: int = 200,
) -> list[SuspenseItem]:
    """Suspense rows in ``status`` the caller may see, oldest first, with their payment and whether a refund is due."""
    stmt = (
        select(SuspensePayment, Payment)
        .join(Payment, Payment.id == SuspensePayment.payment_id)
        .where(SuspensePayment.status == status)
        .order_by(SuspensePayment.created_at, SuspensePayment.id)
        .limit(limit)
    )
    items = []
    for row, payment in session.execute(scope.apply(stmt, SuspensePayment.jurisdiction)).all():
        items.append(item_of(row, payment, now, refund_after))
    return items


def item_of(row: SuspensePayment, payment: Payment, now: datetime, refund_after: timedelta) -> SuspenseItem:
    """One row as the clerk sees it: its age in days, and whether it has waited long enough to refund."""
    age = now - row.created_at
    return SuspenseItem(row, payment, age.days, row.status == SUSPENSE_OPEN and age >= refund_after)


def _locked(session: Session, suspense_id: int, scope: Scope) -> tuple[SuspensePayment, Payment]:
    row = session.scalar(
        scope.apply(
            select(SuspensePayment).where(SuspensePayment.id == suspense_id), SuspensePayment.jurisdiction
        ).with_for_update()
    )
    if row is None:
        raise NotFound("no such suspense payment", field="suspense_id")
    if row.status != SUSPENSE_OPEN:
        raise InvalidTransition(f"the suspense payment is already {row.status}", field="status")
    payment = session.get(Payment, row.payment_id, with_for_update=True)
    assert payment is not None
    return row, payment


def match(
    session: Session, suspense_id: int, notice_no: str, note: str, scope: Scope, actor: Actor, now: datetime
) -> SuspensePayment:
    """A clerk says which notice the money was for: it posts to that notice's receivable as if it had named it."""
    row, payment = _locked(session, suspense_id, scope)
    notice = notices.find_notice(session, notice_no, for_update=True)
    if notice is None or not scope.allows(notice.jurisdiction):
        raise NotFound("no such notice", field="notice_no")
    if notice.status in ("voided", "cancelled"):
        raise InvalidTransition(f"the notice is {notice.status}: nothing is owed on it", field="notice_no")
    payment.notice_no = notice.notice_no  # what the payment pays now; the reported number stays on the row
    apply_to_notice(session, payment, notice, actor, now)
    row.status = SUSPENSE_MATCHED
    row.matched_receivable_id = payment.receivable_id
    row.matched_at = now
    row.matched_by = actor.user_id
    row.match_note = note
    session.flush()
    settle_unmatched(session, payment.id, f"미확인 수납 {row.id}: 고지 {notice.notice_no}에 충당 ({note})", actor, now)
    return row


@dataclass(frozen=True)
class RefundAccount:
    bank_name: str
    account_no: str
    holder: str

    def masked(self) -> str:
        digits = "".join(ch for ch in self.account_no if ch.isdigit())
        return f"{self.bank_name} {'*' * max(len(digits) - 4, 0)}{digits[-4:]}"[:40]


def refund(
    session: Session,
    suspense_id: int,
    reason: str,
    account: RefundAccount,
    cipher: PiiCipher,
    scope: Scope,
    actor: Actor,
    now: datetime,
) -> SuspensePayment:
    """Return unmatched money to the payer: recorded with who, when, why and the account (sealed; shown masked).
    Nothing reaches the ledger: the money never did."""
    digits = "".join(ch for ch in account.account_no if ch.isdigit())
    if not 8 <= len(digits) <= 20 or not all(ch.isdigit() or ch == "-" for ch in account.account_no):
        raise InvalidInput("an account number is 8 to 20 digits (hyphens allowed)", field="account_no")
    row, _payment = _locked(session, suspense_id, scope)
    row.status = SUSPENSE_REFUNDED
    row.refund_reason = reason
    row.refund_account_enc = cipher.encrypt_json(
        {"bank_name": account.bank_name, "account_no": digits, "holder": account.holder},
        context=f"suspense:{row.id}".encode(),
    )
    row.refund_account_masked = account.masked()
    row.refunded_by = actor.user_id
    row.refunded_at = now
    session.flush()
    settle_unmatched(session, row.payment_id, f"미확인 수납 {row.id}: 환불 ({reason})", actor, now)
    return row


def refunds_due(session: Session, now: datetime, refund_after: timedelta) -> int:
    """How many open suspense payments have waited at least ``refund_after`` (the worker reports them)."""
    count = session.scalar(
        select(func.count()).where(
            SuspensePayment.status == SUSPENSE_OPEN, SuspensePayment.created_at <= now - refund_after
        )
    )
    return int(count or 0)


def item_of_row(session: Session, row: SuspensePayment, now: datetime, refund_after: timedelta) -> SuspenseItem:
    """``item_of`` for a row whose payment is still to be read."""
    payment = session.get(Payment, row.payment_id)
    assert payment is not None
    return item_of(row, payment, now, refund_after)
