"""A fine case: opening it (lazily, after sync), its audited transitions, its amounts and the 자진납부 terms the
payments hook asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models import ledger
from models import notices as notice_ops
from models.base import Actor, Scope
from models.catalog import schedule_rules
from models.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from models.fines.tables import (
    ADVANCE_NOTICED,
    BEFORE_IMPOSITION,
    CLOSED,
    DECIDED,
    ENDED,
    IMPOSED,
    OBJECTED,
    OPEN_STAGES,
    PAID,
    REFERRED,
    SYNCED,
    TRANSITIONS,
    FineCase,
    FineCaseEvent,
)
from models.notices import Notice
from protocol import ScheduleRow, select_schedule, seoul_date

# --- small helpers --------------------------------------------------------------------------------------------------


def rrn_checksum_ok(rrn: str) -> bool:
    """The published 주민등록번호 check digit (LAW.md §5.3). Only ever a warning: numbers issued since 2020-10-05
    have random digits and no valid checksum, so a failed check never rejects anything."""
    digits = "".join(ch for ch in rrn if ch.isdigit())
    if len(digits) != 13:
        return False
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    total = sum(int(d) * w for d, w in zip(digits[:12], weights, strict=True))
    return (11 - total % 11) % 10 == int(digits[12])


def payer_ref(party_hash: bytes | None) -> str | None:
    return party_hash.hex() if party_hash else None


def _event(
    session: Session,
    case: FineCase,
    what: str,
    from_stage: str | None,
    at: datetime,
    actor: Actor,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> FineCaseEvent:
    row = FineCaseEvent(
        notice_id=case.notice_id,
        what=what,
        from_stage=from_stage,
        to_stage=case.stage,
        at=at,
        actor_user_id=actor.user_id,
        actor_device_id=actor.device_id,
        actor_address=actor.address,
        actor_label=actor.label[:80] if actor.label else None,
        reason=reason,
        detail=detail,
    )
    session.add(row)
    return row


def require(case: FineCase, name: str) -> None:
    """Raise ``InvalidTransition`` unless transition ``name`` may start from the case's stage."""
    if case.stage not in TRANSITIONS[name][0]:
        raise InvalidTransition(
            f"a case that is {case.stage} cannot {name.replace('_', ' ')}", field="stage", stage=case.stage
        )


# what the issuing device is told of each stage (PROTOCOL.md §3 ``notice_status``); paid and cancelled are the
# notice's own statuses, told by ``models.notices`` when they happen; a stage not listed changes nothing it shows
DEVICE_STATUS = {
    ADVANCE_NOTICED: "noticed",
    IMPOSED: "imposed",
    OBJECTED: "objected",
    REFERRED: "in_court",
    DECIDED: "imposed",
    CLOSED: "closed",
}


def transition(
    session: Session,
    case: FineCase,
    name: str,
    at: datetime,
    actor: Actor,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Move ``case`` along transition ``name`` or raise ``InvalidTransition``; audited, version + 1."""
    require(case, name)
    to = TRANSITIONS[name][1]
    before = case.stage
    case.stage = to
    case.version += 1
    case.updated_at = at
    _event(session, case, name, before, at, actor, reason, detail)
    device_status = DEVICE_STATUS.get(to)
    if device_status is not None:
        notice = session.get(Notice, case.notice_id)
        assert notice is not None
        notice_ops.tell_device(session, notice, device_status)
    session.flush()


def act(
    session: Session,
    case: FineCase,
    what: str,
    at: datetime,
    actor: Actor,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """An audited act that keeps the stage (a hardship reduction, a receipt recorded): version + 1."""
    case.version += 1
    case.updated_at = at
    _event(session, case, what, case.stage, at, actor, reason, detail)
    session.flush()


def check_case_version(case: FineCase, expected: int | None) -> None:
    """When the caller names the version it decided on (``If-Match``), it must still be the case's."""
    if expected is not None and case.version != expected:
        raise StaleCase(f"the case is at version {case.version}, not {expected}: read it again", field="If-Match")


class StaleCase(Conflict):
    """The case changed since the caller read it (``If-Match`` names another version)."""

    code = "precondition_failed"


# --- cases ----------------------------------------------------------------------------------------------------------


def ensure_cases(session: Session, now: datetime, *, jurisdiction: str | None = None) -> int:
    """Open the case of every accepted notice that has none yet (parking ``synced``; person ``advance_noticed``,
    its slip being the 사전통지, with the offender's keyed RRN hash as the party). Returns how many were opened.

    Notices voided or cancelled before their case existed get no case. Idempotent (``ON CONFLICT DO NOTHING``).
    """
    stmt = select(Notice).where(
        Notice.status.in_((notice_ops.ISSUED, notice_ops.UNDER_REVIEW, notice_ops.PAID)),
        ~select(FineCase.notice_id).where(FineCase.notice_id == Notice.id).exists(),
    )
    if jurisdiction is not None:
        stmt = stmt.where(Notice.jurisdiction == jurisdiction)
    opened = 0
    for notice in session.scalars(stmt.order_by(Notice.id)):
        if _open_case(session, notice, now) is not None:
            opened += 1
    return opened


def _open_case(session: Session, notice: Notice, now: datetime) -> FineCase | None:
    person = notice.kind == "person"
    values: dict[str, Any] = {
        "notice_id": notice.id,
        "jurisdiction": notice.jurisdiction,
        "kind": notice.kind,
        "stage": ADVANCE_NOTICED if person else SYNCED,
        "version": 1,
        "updated_at": now,
    }
    if person:
        issued_on = seoul_date(notice.issued_at)
        values.update(
            party_kind="person",
            party_enc=notice.offender_enc,  # same ciphertext, same context (the notice number)
            party_name_masked=notice.offender_name_masked,
            party_hash=notice.rrn_hash,
            advance_noticed_on=issued_on,
            opinion_deadline=notice.opinion_deadline,
            reduced_until=notice.opinion_deadline,
        )
    inserted = session.scalar(
        pg_insert(FineCase)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["notice_id"])
        .returning(FineCase.notice_id)
    )
    if inserted is None:
        return None
    case = session.get(FineCase, notice.id)
    assert case is not None
    detail: dict[str, Any] = {"kind": notice.kind}
    if person:
        detail["advance_notice"] = "the printed slip (현장 고지서가 사전통지)"
        detail["opinion_deadline"] = notice.opinion_deadline.isoformat()
        receivable = notice_ops.receivable_of(session, notice.id)
        if receivable is not None and receivable.payer_ref is None and notice.rrn_hash:
            receivable.payer_ref = payer_ref(notice.rrn_hash)
    _event(session, case, "opened", None, now, Actor.system(), None, detail)
    if notice.status == notice_ops.PAID:
        transition(session, case, "pay", now, Actor.system(), "paid before the case was opened")
    session.flush()
    return case


def case_of(session: Session, notice: Notice, now: datetime, *, for_update: bool = True) -> FineCase:
    """The notice's case (opened if it has none), locked; a case whose notice was voided or cancelled elsewhere (the
    device's void, a clerk's review cancellation) is brought to ``cancelled`` first. Raises ``NotFound`` for a notice
    that never had a case and was withdrawn before it could."""
    stmt = select(FineCase).where(FineCase.notice_id == notice.id)
    if for_update:
        stmt = stmt.with_for_update()
    case = session.scalar(stmt)
    if case is None:
        case = _open_case(session, notice, now) or session.scalar(stmt)
    if case is None:
        raise NotFound("this notice has no fine case (it was withdrawn)", field="notice_no")
    if notice.status in (notice_ops.VOIDED, notice_ops.CANCELLED) and case.stage not in ENDED:
        transition(session, case, "notice_withdrawn", now, Actor.system(), f"the notice is {notice.status}")
    return case


def find_case(session: Session, scope: Scope, notice_no: str, now: datetime) -> tuple[Notice, FineCase]:
    """The notice (locked) and its case in the caller's scope; ``NotFound`` outside it or unknown."""
    notice = notice_ops.find_notice(session, notice_no, for_update=True)
    if notice is None or not scope.allows(notice.jurisdiction):
        raise NotFound("no such notice", field="notice_no")
    return notice, case_of(session, notice, now)


# --- amounts --------------------------------------------------------------------------------------------------------


def schedule_of(session: Session, notice: Notice) -> ScheduleRow:
    rows = schedule_rules(session, notice.violation_code)
    row = next((r for r in rows if r.key == notice.schedule_key), None)
    if row is None:
        row = select_schedule(
            rows, notice.violation_code, notice.vehicle_type, notice.zone, seoul_date(notice.observed_at)
        )
    if row is None:
        raise InvalidInput("no fine schedule in force for this notice", field="violation_code")
    return row


def fine_amount(case: FineCase, notice: Notice) -> int:
    """The fine as it stands before any 자진납부: the printed (or corrected) amount, or as a reduction changed it."""
    return case.fine_amount if case.fine_amount is not None else notice.amount


def principal_amount(session: Session, receivable_id: int) -> int:
    """The principal as charged, net of reductions and corrections (payments and reversals left out)."""
    total = session.scalar(
        select(func.coalesce(func.sum(ledger.LedgerEntry.amount), 0))
        .join(ledger.ChargeHead, ledger.ChargeHead.id == ledger.LedgerEntry.charge_head_id)
        .where(
            ledger.LedgerEntry.receivable_id == receivable_id,
            ledger.ChargeHead.kind == ledger.PRINCIPAL,
            ledger.LedgerEntry.kind.in_(("charge", "reduction", "correction")),
        )
    )
    return int(total or 0)


@dataclass(frozen=True)
class SelfPaymentTerms:
    """자진납부 (법 §18): paying ``reduced`` while ``owed`` is the balance, on or before ``last_day``, ends the case;
    the difference posts as a ``reduction`` with ``memo`` (naming the rule)."""

    owed: int
    reduced: int
    last_day: date
    memo: str


def self_payment_terms(session: Session, notice: Notice, on: date) -> SelfPaymentTerms | None:
    """The 자진납부 terms open on ``on`` for ``notice`` (``None``: none). The hook of ``models.payments``.

    Without a case: the slip's printed terms. With one: only before imposition; the price holds until
    ``reduced_until`` (the later of the slip's and the 사전통지's deadline) and follows a hardship reduction or an
    accepted opinion (``self_payment_amount``).
    """
    case = session.get(FineCase, notice.id)
    if case is None:
        last_day, owed, reduced = notice.opinion_deadline, notice.amount, notice.reduced_amount
        memo = f"자진납부 감경 ({notice.schedule_key})"
    else:
        if case.stage not in BEFORE_IMPOSITION:
            return None
        last_day = max(notice.opinion_deadline, case.reduced_until or notice.opinion_deadline)
        if case.fine_amount is not None and case.self_payment_amount is not None:
            owed, reduced = case.fine_amount, case.self_payment_amount
            memo = f"자진납부 감경 ({case.reduction_rule or notice.schedule_key})"[:200]
        else:
            owed, reduced = notice.amount, notice.reduced_amount
            memo = f"자진납부 감경 ({notice.schedule_key})"
    if on > last_day or reduced >= owed:
        return None
    return SelfPaymentTerms(owed, reduced, last_day, memo)


def note_unpaid(session: Session, notice: Notice, actor: Actor, now: datetime) -> None:
    """The payment that ended the case was cancelled at the gateway after approval (``models.payments`` calls this
    after ``notices.unmark_paid``): a case that ended ``paid`` goes back to the stage it was paid from; audited."""
    case = session.scalar(select(FineCase).where(FineCase.notice_id == notice.id).with_for_update())
    if case is None or case.stage != PAID:
        return
    paid = session.scalar(
        select(FineCaseEvent)
        .where(FineCaseEvent.notice_id == case.notice_id, FineCaseEvent.to_stage == PAID)
        .order_by(FineCaseEvent.id.desc())
        .limit(1)
    )
    before = paid.from_stage if paid is not None and paid.from_stage in OPEN_STAGES else SYNCED
    assert before is not None
    case.stage = before
    case.version += 1
    case.updated_at = now
    _event(session, case, "payment_cancelled", PAID, now, actor)
    device_status = DEVICE_STATUS.get(before)
    if device_status is not None:
        notice_ops.tell_device(session, notice, device_status)
    session.flush()


def note_paid(session: Session, notice: Notice, actor: Actor, now: datetime) -> None:
    """The notice was paid in full (``models.payments`` calls this after ``mark_paid``): its case ends ``paid``."""
    case = session.scalar(select(FineCase).where(FineCase.notice_id == notice.id).with_for_update())
    if case is None:
        _open_case(session, notice, now)  # opens it as paid
        return
    if case.stage in OPEN_STAGES:
        at = notice.paid_at or now
        transition(session, case, "pay", at, actor, None, {"paid_at": at.isoformat()})
