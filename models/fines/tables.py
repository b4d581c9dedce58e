"""Stages, transitions and the tables of a fine case (migration 0007): cases, their audited events, the documents
sent, imposition batches and their items.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Integer, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.errors import Conflict, InvalidInput

# --- stages and transitions -----------------------------------------------------------------------------------------

SYNCED = "synced"
ADVANCE_NOTICED = "advance_noticed"
OPINION_SUBMITTED = "opinion_submitted"
IMPOSED = "imposed"
OBJECTED = "objected"
REFERRED = "referred"
DECIDED = "decided"
CLOSED = "closed"
PAID = "paid"
CANCELLED = "cancelled"
STAGES = (SYNCED, ADVANCE_NOTICED, OPINION_SUBMITTED, IMPOSED, OBJECTED, REFERRED, DECIDED, CLOSED, PAID, CANCELLED)
ENDED = (CLOSED, PAID, CANCELLED)
OPEN_STAGES = tuple(s for s in STAGES if s not in ENDED)
BEFORE_IMPOSITION = (SYNCED, ADVANCE_NOTICED, OPINION_SUBMITTED)

# transition name → (stages it may start from, stage it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "advance_notice": ((SYNCED,), ADVANCE_NOTICED),
    "submit_opinion": ((ADVANCE_NOTICED,), OPINION_SUBMITTED),
    "reject_opinion": ((OPINION_SUBMITTED,), ADVANCE_NOTICED),
    "accept_opinion_reduce": ((OPINION_SUBMITTED,), ADVANCE_NOTICED),
    "accept_opinion_cancel": ((OPINION_SUBMITTED,), CANCELLED),
    "cancel": (BEFORE_IMPOSITION, CANCELLED),
    "notice_withdrawn": (OPEN_STAGES, CANCELLED),
    "impose": ((ADVANCE_NOTICED,), IMPOSED),
    "object": ((IMPOSED,), OBJECTED),
    "withdraw_objection": ((OBJECTED,), IMPOSED),
    "refer": ((OBJECTED,), REFERRED),
    "decide": ((REFERRED,), DECIDED),
    "dismiss": ((REFERRED,), CLOSED),
    "pay": (OPEN_STAGES, PAID),
}

MAIL, ELECTRONIC, ON_SITE = "mail", "electronic", "on_site"
CHANNELS = (MAIL, ELECTRONIC)
ADVANCE_NOTICE, IMPOSITION_NOTICE = "advance_notice", "imposition_notice"

COURT_CONFIRMED, COURT_REDUCED, COURT_DISMISSED = "confirmed", "reduced", "dismissed"
COURT_OUTCOMES = (COURT_CONFIRMED, COURT_REDUCED, COURT_DISMISSED)
OPINION_REJECT, OPINION_REDUCE, OPINION_CANCEL = "reject", "accept_reduce", "accept_cancel"
OPINION_DECISIONS = (OPINION_REJECT, OPINION_REDUCE, OPINION_CANCEL)

# imposition batches (일괄 결정결의)
BATCH_PROPOSED, BATCH_SUBMITTING, BATCH_SUBMITTED = "proposed", "submitting", "submitted"
BATCH_APPLIED, BATCH_REJECTED = "applied", "rejected"
BATCH_STATUSES = (BATCH_PROPOSED, BATCH_SUBMITTING, BATCH_SUBMITTED, BATCH_APPLIED, BATCH_REJECTED)
ITEM_PENDING, ITEM_IMPOSED, ITEM_SKIPPED, ITEM_REJECTED = "pending", "imposed", "skipped", "rejected"
IMPOSITION_BATCH_DOCUMENT = "imposition_batch"

LAW = "질서위반행위규제법"
# a discretionary change after a well-founded opinion has no rule row: its legal basis is the article itself
OPINION_BASIS = f"{LAW} §16③"


class ObjectionLate(InvalidInput):
    """An objection filed after the 이의제기 period (법 §20①) is refused; ``rule`` names the row that decided."""

    code = "objection_late"


class NothingToImpose(Conflict):
    """No case is eligible for imposition in the caller's jurisdiction today."""

    code = "nothing_to_impose"


# --- tables ---------------------------------------------------------------------------------------------------------


class FineCase(Base):
    """A fine's legal case: its stage and the dates and amounts of its procedure (one per notice)."""

    __tablename__ = "fine_cases"

    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"), primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    stage: Mapped[str] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # the party: the registered owner (parking) or the offender (person); encrypted, masked, keyed hash
    party_kind: Mapped[str | None] = mapped_column(String(10))  # person / company
    party_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    party_name_masked: Mapped[str | None] = mapped_column(String(40))
    party_hash: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    owner_looked_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # 차적조회 goes through the outbox: when the registry was asked (until answered), and how often (for the key)
    owner_lookup_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    owner_lookups: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # 사전통지 and the 자진납부 price
    advance_noticed_on: Mapped[date | None] = mapped_column(Date)
    opinion_deadline: Mapped[date | None] = mapped_column(Date)  # the 사전통지's own
    reduced_until: Mapped[date | None] = mapped_column(Date)  # later of the slip's and the 사전통지's deadline
    # an amount changed before imposition (hardship reduction, accepted opinion): the fine and its 자진납부 price
    fine_amount: Mapped[int | None] = mapped_column(BigInteger)
    self_payment_amount: Mapped[int | None] = mapped_column(BigInteger)
    reduction_rule: Mapped[str | None] = mapped_column(String(200))
    # imposition (부과)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("imposition_batches.id"))
    imposed_on: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    due_rule: Mapped[str | None] = mapped_column(String(80))
    imposition_received_on: Mapped[date | None] = mapped_column(Date)
    # objection (이의제기) and court (과태료 재판)
    objected_on: Mapped[date | None] = mapped_column(Date)
    referral_deadline: Mapped[date | None] = mapped_column(Date)
    referred_on: Mapped[date | None] = mapped_column(Date)
    court: Mapped[str | None] = mapped_column(String(80))
    court_outcome: Mapped[str | None] = mapped_column(String(12))
    court_amount: Mapped[int | None] = mapped_column(BigInteger)
    decided_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FineCaseEvent(Base):
    """One transition or act on a case: what, from which stage to which, who, when, why (append-only)."""

    __tablename__ = "fine_case_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("fine_cases.notice_id"), index=True)
    what: Mapped[str] = mapped_column(String(30))
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    actor_address: Mapped[str | None] = mapped_column(String(64))
    actor_label: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class FineDocument(Base):
    """A document sent to the party (사전통지, 부과 고지서): its data as JSON, the addressee encrypted apart."""

    __tablename__ = "fine_documents"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("fine_cases.notice_id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(12))
    issued_on: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date | None] = mapped_column(Date)
    addressee_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    addressee_masked: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ImpositionBatch(Base):
    """일괄 결정결의: one decision document imposing many cases, submitted to e-approval."""

    __tablename__ = "imposition_batches"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    status: Mapped[str] = mapped_column(String(12))
    as_of: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(Integer)
    amount_total: Mapped[int] = mapped_column(BigInteger)
    reference_id: Mapped[str] = mapped_column(String(80), unique=True)
    approval_name: Mapped[str | None] = mapped_column(String(30))
    submission_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    proposed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    imposed_count: Mapped[int | None] = mapped_column(Integer)
    skipped_count: Mapped[int | None] = mapped_column(Integer)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class ImpositionItem(Base):
    """One case in a batch, with the amount proposed and what became of it."""

    __tablename__ = "imposition_items"

    batch_id: Mapped[int] = mapped_column(ForeignKey("imposition_batches.id"), primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("fine_cases.notice_id"), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(10))
    skip_reason: Mapped[str | None] = mapped_column(String(200))
