"""수납: payments from every channel, and suspense payments (미확인 수납) that match no known notice yet.

A payment is posted once per (gateway, txn_id); the raw callback is kept. A payment naming an unknown notice is
never refused: it waits in suspense and is matched when the notice arrives (DESIGN.md §4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    gateway: Mapped[str] = mapped_column(String(30))
    txn_id: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(20))  # qr, virtual_account, counter …
    notice_no: Mapped[str | None] = mapped_column(String(15), index=True)
    receivable_id: Mapped[int | None] = mapped_column(ForeignKey("receivables.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))  # pending, posted, suspense, failed
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("gateway", "txn_id"),)


class SuspensePayment(Base):
    __tablename__ = "suspense_payments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    notice_no: Mapped[str | None] = mapped_column(String(15), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))  # open, matched, refunded
    matched_receivable_id: Mapped[int | None] = mapped_column(ForeignKey("receivables.id"))
    matched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
