"""The fine case as the back office reads it: the answer of every ``/fines/<notice_no>`` route (``case_details``),
a notice's timeline with its stage, an imposition batch with its lines, and the overdue court referrals. Reads only:
they build on ``queries`` and the operation modules' pure helpers and decide nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from models import ledger
from models import notices as notice_ops
from models.base import Scope
from models.crypto import PiiCipher
from models.fines.advance import advance_notice_data, party_identifier_masked
from models.fines.cases import fine_amount
from models.fines.court import objection_deadline
from models.fines.queries import TimelineEntry, batch_items, documents, overdue_referrals, timeline
from models.fines.tables import SYNCED, FineCase, FineDocument, ImpositionBatch, ImpositionItem
from models.notices import Notice

# --- the case as the back office reads it ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseParty:
    kind: str | None
    name: str | None  # masked
    identifier: str | None  # masked


@dataclass(frozen=True)
class CaseDetails:
    """A fine case with what is read beside it: the answer of every ``/fines/<notice_no>`` route."""

    notice: Notice
    case: FineCase
    party: CaseParty
    amount: int
    balance: int
    self_payment_amount: int | None
    objection_deadline: date | None
    documents: list[FineDocument]
    advance_notice: dict[str, Any] | None


def case_details(session: Session, notice: Notice, case: FineCase, cipher: PiiCipher) -> CaseDetails:
    """The case, its party masked, amounts and balance, deadlines, documents and the 사전통지's data (once sent)."""
    receivable = notice_ops.receivable_of(session, notice.id)
    deadline = objection_deadline(session, case)
    noticed = case.stage != SYNCED and (case.advance_noticed_on is not None or case.kind == "person")
    return CaseDetails(
        notice=notice,
        case=case,
        party=CaseParty(
            case.party_kind,
            case.party_name_masked or notice.offender_name_masked,
            party_identifier_masked(case, notice, cipher),
        ),
        amount=fine_amount(case, notice),
        balance=ledger.balance(session, receivable.id) if receivable is not None else 0,
        self_payment_amount=case.self_payment_amount if case.self_payment_amount is not None else notice.reduced_amount,
        objection_deadline=deadline.day if deadline else None,
        documents=documents(session, case.notice_id),
        advance_notice=advance_notice_data(session, case, notice) if noticed else None,
    )


@dataclass(frozen=True)
class NoticeTimeline:
    notice_no: str
    stage: str | None  # None: no case yet
    items: list[TimelineEntry]


def notice_timeline(session: Session, scope: Scope, notice_no: str) -> NoticeTimeline:
    """A notice in ``scope`` (else ``NotFound``) with its case's stage and its merged timeline."""
    notice = notice_ops.get_notice(session, scope, notice_no)
    case = session.get(FineCase, notice.id)
    return NoticeTimeline(notice.notice_no, case.stage if case is not None else None, timeline(session, notice))


@dataclass(frozen=True)
class BatchLine:
    item: ImpositionItem
    notice_no: str


@dataclass(frozen=True)
class BatchDetails:
    """An imposition batch with its cases (by notice number) and what became of each."""

    batch: ImpositionBatch
    items: list[BatchLine]


def batch_details(session: Session, batch: ImpositionBatch) -> BatchDetails:
    return BatchDetails(batch, [BatchLine(item, notice_no) for item, notice_no in batch_items(session, batch.id)])


@dataclass(frozen=True)
class OverdueReferral:
    """An objected case past its referral deadline, as the back office lists it."""

    case: FineCase
    notice_no: str
    days_late: int


def overdue_referral_list(
    session: Session, scope: Scope, today: date, limit: int, after: int | None
) -> list[OverdueReferral]:
    """``overdue_referrals`` with how many days each is late."""
    return [
        OverdueReferral(case, no, (today - case.referral_deadline).days if case.referral_deadline else 0)
        for case, no in overdue_referrals(session, scope, today, limit, after)
    ]
