"""Treasury reads other layers use: the exception queue as the clerk sees it (keyset-paginated, scoped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import Scope
from models.errors import NotFound
from models.treasury.tables import OPEN, BankReceipt, TreasuryException


def list_exceptions(
    session: Session,
    scope: Scope,
    *,
    status: str | None = OPEN,
    on: date | None = None,
    reason: str | None = None,
    after: int | None = None,
    limit: int = 200,
) -> list[tuple[TreasuryException, BankReceipt]]:
    """Exceptions the caller may see (rows with no jurisdiction: city roles only), by id, keyset-paginated."""
    stmt = select(TreasuryException, BankReceipt).join(BankReceipt, BankReceipt.id == TreasuryException.receipt_id)
    if status is not None:
        stmt = stmt.where(TreasuryException.status == status)
    if on is not None:
        stmt = stmt.where(BankReceipt.business_date == on)
    if reason is not None:
        stmt = stmt.where(TreasuryException.reason == reason)
    if after is not None:
        stmt = stmt.where(TreasuryException.id > after)
    stmt = scope.apply(stmt.order_by(TreasuryException.id).limit(limit), TreasuryException.jurisdiction)
    return [(exc, receipt) for exc, receipt in session.execute(stmt).all()]


def get_exception(session: Session, exception_id: int, scope: Scope) -> tuple[TreasuryException, BankReceipt]:
    row = session.execute(
        scope.apply(
            select(TreasuryException, BankReceipt)
            .join(BankReceipt, BankReceipt.id == TreasuryException.receipt_id)
            .where(TreasuryException.id == exception_id),
            TreasuryException.jurisdiction,
        )
    ).first()
    if row is None:
        raise NotFound("no such treasury exception", field="exception_id")
    return row[0], row[1]


# --- the exception queue as a clerk reads it -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExceptionLine:
    """An exception with the receipt it is about."""

    exception: TreasuryException
    receipt: BankReceipt


def exception_lines(
    session: Session,
    scope: Scope,
    *,
    status: str | None = OPEN,
    on: date | None = None,
    reason: str | None = None,
    after: int | None = None,
    limit: int = 200,
) -> list[ExceptionLine]:
    """``list_exceptions``, each with its receipt."""
    found = list_exceptions(session, scope, status=status, on=on, reason=reason, after=after, limit=limit)
    return [ExceptionLine(exception, receipt) for exception, receipt in found]


def exception_line(session: Session, exception_id: int, scope: Scope) -> ExceptionLine:
    """``get_exception`` with its receipt."""
    return ExceptionLine(*get_exception(session, exception_id, scope))
