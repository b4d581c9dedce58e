"""The treasury's exception queue (DESIGN.md §4): what a bank receipt left for a clerk, why (``REASONS``), and how it
was settled. ``matching`` opens exceptions; a clerk resolves one with a note (``resolve_exception``); the money of
an ``unmatched`` receipt that found its notice settles its exception (``settle_unmatched``, called by
``models.payments`` and ``models.suspense``). Reads of the queue are in ``queries``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import Actor, Scope
from models.errors import InvalidTransition, NotFound
from models.treasury.tables import OPEN, RESOLVED, BankReceipt, TreasuryException

REASONS = (
    "unmatched",
    "short",
    "over",
    "duplicate",
    "not_owed",
    "amount_mismatch",
    "conflicting_report",
    "cancel_unknown",
    "cancel_failed",
)


def open_exception(
    session: Session, row: BankReceipt, reason: str, amount: int, detail: str, *, held: int = 0
) -> TreasuryException:
    """A new open exception on the receipt (``reason`` one of ``REASONS``)."""
    exc = TreasuryException(
        receipt_id=row.id,
        reason=reason,
        amount=amount,
        held=held,
        jurisdiction=row.jurisdiction,
        detail=detail[:300],
        status=OPEN,
    )
    session.add(exc)
    return exc


def resolve_exception(
    session: Session, exception_id: int, note: str, scope: Scope, actor: Actor, now: datetime
) -> TreasuryException:
    """A clerk records how the exception was settled (a refund made, the bank asked, the suspense matched …)."""
    exc = session.scalar(
        scope.apply(
            select(TreasuryException).where(TreasuryException.id == exception_id), TreasuryException.jurisdiction
        ).with_for_update()
    )
    if exc is None:
        raise NotFound("no such treasury exception", field="exception_id")
    if exc.status != OPEN:
        raise InvalidTransition(f"the exception is already {exc.status}", field="status")
    _resolve(exc, note, actor, now)
    session.flush()
    return exc


def _resolve(exc: TreasuryException, resolution: str, actor: Actor, now: datetime) -> None:
    exc.status = RESOLVED
    exc.resolution = resolution[:300]
    exc.resolved_by = actor.user_id
    exc.resolved_label = actor.label[:80]
    exc.resolved_at = now


def settle_unmatched(session: Session, payment_id: int, resolution: str, actor: Actor, now: datetime) -> int:
    """The money of a bank receipt that waited in suspense found its way (matched to a notice when it arrived or by
    a clerk, or refunded): its open ``unmatched`` exception is resolved with ``resolution``. Returns how many."""
    rows = session.scalars(
        select(TreasuryException)
        .join(BankReceipt, BankReceipt.id == TreasuryException.receipt_id)
        .where(
            BankReceipt.payment_id == payment_id,
            TreasuryException.reason == "unmatched",
            TreasuryException.status == OPEN,
        )
        .with_for_update(of=TreasuryException)
    ).all()
    for exc in rows:
        _resolve(exc, resolution, actor, now)
    session.flush()
    return len(rows)
