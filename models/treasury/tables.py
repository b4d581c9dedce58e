"""The treasury tables (migration 0011)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

DEPOSIT, CANCEL = "deposit", "cancel"
# channels: a deposit to a virtual account, a bank/counter payment naming the 전자납부번호, the PG's daily lump sum
VIRTUAL_ACCOUNT, BANK, SETTLEMENT = "virtual_account", "bank", "settlement"
OPEN, RESOLVED = "open", "resolved"

# what a receipt did when first reported
POSTED = "posted"  # new money posted to a receivable (possibly short, over or a duplicate: see its exception)
SUSPENSE = "suspense"  # new money naming no known notice: in suspense (미확인 수납)
SPLIT = "split"  # an aggregate credit split over the gateway payments it covers
REVERSED = "reversed"  # a cancellation that reversed its original
HELD = "held"  # nothing could be done: the money is held in the exception


class TreasuryFile(Base):
    __tablename__ = "treasury_files"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    bank_code: Mapped[str] = mapped_column(String(3))
    file_date: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int] = mapped_column(Integer)
    lines_done: Mapped[int] = mapped_column(Integer, default=0)  # the cursor of a chunked import
    total: Mapped[int] = mapped_column(BigInteger)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    imported_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str | None] = mapped_column(String(80))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BankReceipt(Base):
    """One receipt of the treasury bank, however many times it was reported."""

    __tablename__ = "treasury_receipts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    bank_code: Mapped[str] = mapped_column(String(3))
    receipt_id: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(30))
    original_receipt_id: Mapped[str | None] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)  # as acted on (the first report); negative for a cancellation
    sen_amount: Mapped[int | None] = mapped_column(BigInteger)
    file_amount: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    business_date: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(20))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    notice_no: Mapped[str | None] = mapped_column(String(15))
    jurisdiction: Mapped[str | None] = mapped_column(String(5))
    revenue_item: Mapped[str | None] = mapped_column(String(10))
    file_id: Mapped[int | None] = mapped_column(ForeignKey("treasury_files.id"))
    sen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("bank_code", "receipt_id", name="uq_treasury_receipts_bank_receipt"),)

    @property
    def bank_amount(self) -> int:
        """What the bank says it credited: the daily file (its statement of record) when it has reported it."""
        if self.file_amount is not None:
            return self.file_amount
        if self.sen_amount is not None:
            return self.sen_amount
        return self.amount


class AggregateSplit(Base):
    """One gateway payment covered by an aggregate credit (the PG's daily settlement)."""

    __tablename__ = "treasury_splits"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("treasury_receipts.id"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class TreasuryException(Base):
    """A receipt a clerk must look at: why, how much, and what became of it."""

    __tablename__ = "treasury_exceptions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("treasury_receipts.id"), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    jurisdiction: Mapped[str | None] = mapped_column(String(5))
    detail: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(10), default=OPEN)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_label: Mapped[str | None] = mapped_column(String(80))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
