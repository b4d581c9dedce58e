"""The arrears tables (migration 0006): business calendar, due-date clocks, surcharge postings, holds, hotlist."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

# receivable_terms.state
CURRENT, OVERDUE, SUSPENDED, STOPPED = "current", "overdue", "suspended", "stopped"
# collection_holds.kind: 분납, 징수유예, 이의제기 (the imposition has lost its effect)
INSTALLMENT, DEFERRAL, OBJECTION = "installment", "deferral", "objection"
RELIEF_KINDS = (INSTALLMENT, DEFERRAL)
# collection_holds.end_reason
DEFAULTED, CANCELLED, RESUMED, STOPPED_HOLD, PAID = "default", "cancelled", "resumed", "stopped", "paid"
# arrears_postings.skipped
SKIPPED_HOLD, SKIPPED_NOTHING_UNPAID = "hold", "nothing_unpaid"
# receivable_terms.surcharge_rule that posts surcharges (one of catalog.SURCHARGE_RULES): 질서위반행위규제법 §24
# (3% + 1.2%/month)
FINE_ACT = "fine_act"


class BusinessCalendar(Base):
    """The business date (영업일), one row: the date the steps have run for, apart from the wall clock."""

    __tablename__ = "business_calendar"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date)
    advanced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    advanced_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class ReceivableTerms(Base):
    """납기 clock of one imposed receivable: due date, arrears state and how far its surcharges are posted."""

    __tablename__ = "receivable_terms"

    receivable_id: Mapped[int] = mapped_column(ForeignKey("receivables.id"), primary_key=True)
    due_date: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(12))
    overdue_since: Mapped[date | None] = mapped_column(Date)
    surcharge_rule: Mapped[str] = mapped_column(String(20))
    surcharge_rule_key: Mapped[str | None] = mapped_column(String(80))
    monthly_rule_key: Mapped[str | None] = mapped_column(String(80))
    surcharge_done: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    next_month_no: Mapped[int] = mapped_column(Integer, server_default="1", default=1)
    next_month_on: Mapped[date | None] = mapped_column(Date)
    caught_up_to: Mapped[date | None] = mapped_column(Date)
    started_on: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("state IN ('current', 'overdue', 'suspended', 'stopped')", name="state"),
        CheckConstraint("next_month_no >= 1", name="month_no"),
        Index("ix_receivable_terms_state_next_month_on", "state", "next_month_on"),
        Index("ix_receivable_terms_state_due_date", "state", "due_date"),
    )


class ArrearsPosting(Base):
    """One surcharge decision: 가산금 (month 0) or 중가산금 month n, posted (with its ledger entry) or skipped."""

    __tablename__ = "arrears_postings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    receivable_id: Mapped[int] = mapped_column(ForeignKey("receivables.id"))
    head: Mapped[str] = mapped_column(String(20))
    month_no: Mapped[int] = mapped_column(Integer)
    accrues_on: Mapped[date] = mapped_column(Date)
    base: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    skipped: Mapped[str | None] = mapped_column(String(40))
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger)  # ledger_entries.id (no FK: see 0006)
    rule_key: Mapped[str] = mapped_column(String(80))
    rule_id: Mapped[int | None] = mapped_column(BigInteger)
    business_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("amount >= 0 AND base >= 0", name="not_negative"),
        CheckConstraint(
            "(head = 'surcharge' AND month_no = 0) OR (head = 'monthly_surcharge' AND month_no >= 1)",
            name="head_month",
        ),
        CheckConstraint(
            "(skipped IS NULL) = (ledger_entry_id IS NOT NULL) AND (skipped IS NULL) = (amount > 0)",
            name="posted_or_skipped",
        ),
        UniqueConstraint("receivable_id", "head", "month_no", name="uq_arrears_postings_receivable_month"),
    )


class CollectionHold(Base):
    """분납 / 징수유예 / 이의제기 on a receivable: in force on d when starts_on ≤ d ≤ ends_on and d < ended_on."""

    __tablename__ = "collection_holds"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    receivable_id: Mapped[int] = mapped_column(ForeignKey("receivables.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(String(12))
    basis: Mapped[str | None] = mapped_column(String(200))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ended_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("kind IN ('installment', 'deferral', 'objection')", name="kind"),
        CheckConstraint(
            "end_reason IS NULL OR end_reason IN ('default', 'cancelled', 'resumed', 'stopped', 'paid')",
            name="end_reason",
        ),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="range"),
        CheckConstraint(
            "(ended_on IS NULL) = (end_reason IS NULL) AND (ended_on IS NULL OR ended_on >= starts_on)", name="ended"
        ),
    )

    def last_day(self) -> date | None:
        """The last day in force (``None``: open-ended), whichever comes first of ``ends_on`` and ``ended_on`` − 1."""
        last = self.ends_on
        if self.ended_on is not None:
            ended = self.ended_on - timedelta(days=1)
            last = ended if last is None else min(last, ended)
        return last

    def in_force_on(self, day: date) -> bool:
        last = self.last_day()
        return self.starts_on <= day and (last is None or day <= last)

    def in_force_between(self, first: date, last: date) -> bool:
        """In force on any day of ``first`` … ``last`` (inclusive)."""
        own_last = self.last_day()
        return max(self.starts_on, first) <= (last if own_last is None else min(own_last, last))


class HoldInstallment(Base):
    """One installment of a 분납 plan: the cumulative amount due by ``due_on`` is the sum up to this ``seq``."""

    __tablename__ = "hold_installments"

    hold_id: Mapped[int] = mapped_column(ForeignKey("collection_holds.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    due_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("amount > 0 AND seq >= 1", name="positive"),)


class HotlistEntry(Base):
    """번호판 영치 hotlist as last pushed to the devices of ``jurisdiction`` (key: plate)."""

    __tablename__ = "hotlist_entries"

    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"), primary_key=True)
    plate: Mapped[str] = mapped_column(String(20), primary_key=True)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    receivables: Mapped[int] = mapped_column(Integer)
    oldest_due_date: Mapped[date] = mapped_column(Date)
    rule_key: Mapped[str] = mapped_column(String(80))
    rule_id: Mapped[int | None] = mapped_column(BigInteger)
    listed_on: Mapped[date] = mapped_column(Date)
    refreshed_on: Mapped[date] = mapped_column(Date)
