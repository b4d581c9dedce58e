"""Fine reads other layers use (they decide nothing): a notice's documents, imposition batches and their items,
objections overdue for referral, and the timeline of a notice — its history, its case events, the arrears engine's
dated events and its ledger entries, merged, personal data masked.
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
from models.errors import NotFound
from models.fines.tables import OBJECTED, FineCase, FineCaseEvent, FineDocument, ImpositionBatch, ImpositionItem
from models.notices import Notice
from protocol import SEOUL
from protocol.masking import mask_name

# --- documents, batches, referrals -------------------------------------------------------------------------------


def documents(session: Session, notice_id: int) -> list[FineDocument]:
    return list(
        session.scalars(select(FineDocument).where(FineDocument.notice_id == notice_id).order_by(FineDocument.id))
    )


def get_batch(session: Session, scope: Scope, batch_id: int, *, for_update: bool = False) -> ImpositionBatch:
    stmt = select(ImpositionBatch).where(ImpositionBatch.id == batch_id)
    if for_update:
        stmt = stmt.with_for_update()
    batch = session.scalar(stmt)
    if batch is None or not scope.allows(batch.jurisdiction):
        raise NotFound("no such imposition batch", field="batch_id")
    return batch


def batch_items(session: Session, batch_id: int) -> list[tuple[ImpositionItem, str]]:
    rows = session.execute(
        select(ImpositionItem, Notice.notice_no)
        .join(Notice, Notice.id == ImpositionItem.notice_id)
        .where(ImpositionItem.batch_id == batch_id)
        .order_by(ImpositionItem.notice_id)
    )
    return [(item, notice_no) for item, notice_no in rows]


def overdue_referrals(
    session: Session, scope: Scope, today: date, limit: int, after: int | None
) -> list[tuple[FineCase, str]]:
    """Objected cases past their 14-day referral deadline and not yet referred, oldest deadline first."""
    stmt = (
        select(FineCase, Notice.notice_no)
        .join(Notice, Notice.id == FineCase.notice_id)
        .where(FineCase.stage == OBJECTED, FineCase.referral_deadline < today)
    )
    stmt = scope.apply(stmt, FineCase.jurisdiction)
    if after is not None:
        stmt = stmt.where(FineCase.notice_id > after)
    rows = session.execute(stmt.order_by(FineCase.notice_id).limit(limit))
    return [(case, notice_no) for case, notice_no in rows]


# --- the timeline ------------------------------------------------------------------------------------------------


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
