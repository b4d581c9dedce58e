"""The timeline of a notice: its history, its case events, the arrears engine's dated events and its ledger
entries, merged, personal data masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as datetime_time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import arrears, ledger
from models import notices as notice_ops
from models.base import Scope
from models.crypto import PiiCipher
from models.fines.advance import advance_notice_data, documents, party_identifier_masked
from models.fines.cases import fine_amount
from models.fines.court import objection_deadline
from models.fines.tables import SYNCED, FineCase, FineCaseEvent, FineDocument
from models.notices import Notice
from protocol import SEOUL
from protocol.masking import mask_name

# --- 8. the timeline ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    what: str
    at: datetime
    source: str  # notice / case / arrears / ledger
    actor_user_id: int | None
    actor_device_id: str | None
    actor_label: str | None
    stage: str | None
    detail: dict[str, Any] | None


_MASKED_KEYS = ("name", "rrn", "business_no", "address", "phone", "offender")


def _masked(detail: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Personal fields that slipped into a detail are masked, never shown (events here never write them)."""
    if detail is None:
        return None
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if key in _MASKED_KEYS and isinstance(value, str) and "*" not in value:
            out[key] = mask_name(value) if key == "name" else "***"
        elif isinstance(value, Mapping):
            out[key] = _masked(value)
        else:
            out[key] = value
    return out


def timeline(session: Session, notice: Notice) -> list[TimelineEntry]:
    """Everything that happened to a notice, oldest first: its history (issued, synced, reviewed, paid …), its case's
    events (noticed, imposed, objected, referred, decided …) and its ledger entries (charge, reduction, payment,
    surcharge …), each with who and when; personal data masked."""
    out: list[TimelineEntry] = []
    for h in notice_ops.history(session, notice.id):
        out.append(
            TimelineEntry(h.what, h.at, "notice", h.actor_user_id, h.actor_device_id, None, None, _masked(h.detail))
        )
    events = session.scalars(
        select(FineCaseEvent).where(FineCaseEvent.notice_id == notice.id).order_by(FineCaseEvent.id)
    )
    for e in events:
        out.append(
            TimelineEntry(
                e.what,
                e.at,
                "case",
                e.actor_user_id,
                e.actor_device_id,
                e.actor_label,
                e.to_stage,
                _masked({**(e.detail or {}), **({"reason": e.reason} if e.reason else {})}) or None,
            )
        )
    receivable = notice_ops.receivable_of(session, notice.id)
    if receivable is not None:
        heads = {
            head_id: kind
            for head_id, kind in session.execute(
                select(ledger.ChargeHead.id, ledger.ChargeHead.kind).where(
                    ledger.ChargeHead.receivable_id == receivable.id
                )
            )
        }
        for entry in ledger.entries(session, receivable.id):
            out.append(
                TimelineEntry(
                    f"ledger.{entry.kind}",
                    entry.posted_at,
                    "ledger",
                    entry.actor_user_id,
                    entry.actor_device_id,
                    None,
                    None,
                    {
                        "charge_head": heads.get(entry.charge_head_id),
                        "amount": entry.amount,
                        "business_date": entry.business_date.isoformat(),
                        "source": entry.source,
                        "memo": entry.memo,
                    },
                )
            )
        out += _arrears_timeline(session, receivable.id)
    order = {"notice": 0, "case": 1, "arrears": 2, "ledger": 3}
    out.sort(key=lambda t: (t.at, order[t.source]))
    return out


def _on_day(day: date) -> datetime:
    """A date of law as the start of that Asia/Seoul day (arrears events are dated, not timed)."""
    return datetime.combine(day, datetime_time.min, tzinfo=SEOUL)


def _arrears_timeline(session: Session, receivable_id: int) -> list[TimelineEntry]:
    """The arrears engine's dated events: the due-date clock started, overdue (체납) from, holds (이의제기, 분납,
    징수유예) started and ended. Its surcharges are ledger entries already."""
    out: list[TimelineEntry] = []
    terms = session.get(arrears.ReceivableTerms, receivable_id)
    if terms is not None:
        started = {"due_date": terms.due_date.isoformat(), "state": terms.state}
        out.append(TimelineEntry("collection_started", _on_day(terms.started_on), "arrears", None, None, None, None,
                                 started))  # fmt: skip
        if terms.overdue_since is not None:
            overdue = {"since": terms.overdue_since.isoformat(), "due_date": terms.due_date.isoformat()}
            out.append(TimelineEntry("overdue", _on_day(terms.overdue_since), "arrears", None, None, None, None,
                                     overdue))  # fmt: skip
    holds = session.scalars(
        select(arrears.CollectionHold)
        .where(arrears.CollectionHold.receivable_id == receivable_id)
        .order_by(arrears.CollectionHold.id)
    )
    for hold in holds:
        detail = {"kind": hold.kind, "basis": hold.basis}
        out.append(TimelineEntry("hold_started", _on_day(hold.starts_on), "arrears", hold.created_by_user_id, None,
                                 None, None, detail))  # fmt: skip
        if hold.ended_on is not None:
            ended = {**detail, "reason": hold.end_reason}
            out.append(TimelineEntry("hold_ended", _on_day(hold.ended_on), "arrears", hold.ended_by_user_id, None,
                                     None, None, ended))  # fmt: skip
    return out


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
