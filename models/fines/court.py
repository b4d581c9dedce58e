"""이의제기 and 과태료 재판 (법 §20, §21): the objection within 60 days of receiving the imposition notice, the 14-day
referral clock, the court's decision and what it does to the receivable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ledger, rules
from models import notices as notice_ops
from models.base import Actor, Scope
from models.errors import InvalidInput, InvalidTransition
from models.fines.cases import act, principal_amount, transition
from models.fines.imposition import resume_arrears, stop_arrears, suspend_arrears
from models.fines.tables import (
    COURT_DISMISSED,
    COURT_OUTCOMES,
    COURT_REDUCED,
    DECIDED,
    IMPOSED,
    OBJECTED,
    REFERRED,
    FineCase,
    ObjectionLate,
)
from models.notices import Notice
from protocol import seoul_date

# --- 5. objection and court -----------------------------------------------------------------------------------------


def record_imposition_receipt(
    session: Session, case: FineCase, received_on: date, actor: Actor, now: datetime
) -> FineCase:
    """The day the party received the 부과 고지서 (delivery confirmation): the objection period counts from it."""
    if case.stage not in (IMPOSED, OBJECTED, REFERRED, DECIDED) or case.imposed_on is None:
        raise InvalidTransition(f"a case that is {case.stage} has no imposition notice", field="stage")
    if received_on < case.imposed_on or received_on > seoul_date(now):
        raise InvalidInput("the notice is received between its imposition and today", field="received_on")
    case.imposition_received_on = received_on
    act(session, case, "imposition_received", now, actor, None, {"received_on": received_on.isoformat()})
    return case


def objection_deadline(session: Session, case: FineCase) -> rules.Deadline | None:
    """The last day to object (``None`` while the notice's receipt is not known)."""
    if case.imposition_received_on is None:
        return None
    return rules.objection_deadline(case.imposition_received_on, rules.load_rulebook(session))


def file_objection(
    session: Session, case: FineCase, notice: Notice, filed_on: date, reason: str, actor: Actor, now: datetime
) -> FineCase:
    """이의제기 (법 §20): within 60 days of receiving the 부과 고지서 (day 60 accepted, day 61 refused with
    ``ObjectionLate``). The imposition loses its effect (collection suspended) and the 14-day court referral clock
    starts (법 §21①). While the receipt is not recorded, an objection cannot be late."""
    if case.stage != IMPOSED:
        raise InvalidTransition(f"a case that is {case.stage} cannot be objected to", field="stage")
    if filed_on > seoul_date(now) or (case.imposed_on is not None and filed_on < case.imposed_on):
        raise InvalidInput("an objection is filed between the imposition and today", field="filed_on")
    book = rules.load_rulebook(session)
    detail: dict[str, Any] = {"filed_on": filed_on.isoformat()}
    if case.imposition_received_on is not None:
        verdict = rules.objection_timely(case.imposition_received_on, filed_on, book)
        if not verdict:
            raise ObjectionLate(f"the objection is late: {verdict.reason}", field="filed_on", rule=verdict.rule_key)
        detail["timely"] = {"reason": verdict.reason, "rule": verdict.rule_key}
    referral = rules.court_referral_deadline(filed_on, book)
    case.objected_on = filed_on
    case.referral_deadline = referral.day
    detail["referral_deadline"] = {"day": referral.day.isoformat(), "rule": referral.rule_key}
    transition(session, case, "object", now, actor, reason, detail)
    receivable = notice_ops.receivable_of(session, notice.id)
    if receivable is not None:
        suspend_arrears(session, receivable.id, filed_on, actor)
    return case


def withdraw_objection(
    session: Session, case: FineCase, notice: Notice, reason: str, actor: Actor, now: datetime
) -> FineCase:
    """The party withdraws the objection before the case goes to court (법 §20③): the imposition stands again."""
    transition(session, case, "withdraw_objection", now, actor, reason)
    case.objected_on = case.referral_deadline = None
    receivable = notice_ops.receivable_of(session, notice.id)
    if receivable is not None:
        resume_arrears(session, receivable.id, seoul_date(now), actor, None)
    return case


def refer_to_court(session: Session, case: FineCase, court: str, reason: str, actor: Actor, now: datetime) -> FineCase:
    """법원 통보 (법 §21): the authority sends its opinion and evidence to the court; late referrals are recorded
    as late (``late_by_days``), never refused."""
    today = seoul_date(now)
    detail: dict[str, Any] = {"court": court}
    if case.referral_deadline is not None and today > case.referral_deadline:
        detail["late_by_days"] = (today - case.referral_deadline).days
    transition(session, case, "refer", now, actor, reason, detail)
    case.referred_on, case.court = today, court
    return case


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


@dataclass(frozen=True)
class CourtDecision:
    outcome: str  # confirmed / reduced / dismissed
    decided_on: date
    reason: str
    amount: int | None = None  # confirmed / reduced: the amount the court fixed


def record_court_decision(
    session: Session, case: FineCase, notice: Notice, cmd: CourtDecision, actor: Actor, now: datetime
) -> FineCase:
    """The court's 결정: ``confirmed`` or ``reduced`` with an amount → ``decided``, collectible again with that
    amount (the difference posts as a ``reduction`` or ``correction``) and a new due date; ``dismissed`` (불처벌) →
    ``closed``, the balance reversed (the notice cancelled when nothing was paid)."""
    if cmd.outcome not in COURT_OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(COURT_OUTCOMES)}", field="outcome")
    if cmd.decided_on > seoul_date(now):
        raise InvalidInput("the decision cannot be dated in the future", field="decided_on")
    receivable = notice_ops.receivable_of(session, notice.id)
    assert receivable is not None
    source = f"court:{notice.notice_no}"
    if cmd.outcome == COURT_DISMISSED:
        transition(session, case, "dismiss", now, actor, cmd.reason, {"decided_on": cmd.decided_on.isoformat()})
        case.court_outcome, case.decided_on, case.court_amount = cmd.outcome, cmd.decided_on, 0
        stop_arrears(session, receivable.id, cmd.decided_on, actor)
        if notice.status in notice_ops.VOIDABLE and not _paid_anything(session, receivable.id):
            notice_ops.cancel_notice(session, notice, f"법원 불처벌 결정: {cmd.reason}", actor, now)
            # the device hears how the case ended, not the ledger's means: ``closed`` (PROTOCOL.md §3: ended
            # without full payment, e.g. dismissed by the court), the latest change of the notice in its feed
            notice_ops.tell_device(session, notice, "closed")
        else:
            # money was paid: the charge goes, what was paid is an overpayment to refund (a refund decision)
            charged = principal_amount(session, receivable.id)
            if charged:
                entry = ledger.Post(
                    ledger.PRINCIPAL, "correction", -charged, cmd.decided_on, source, "법원 불처벌 결정"
                )
                ledger.post(session, receivable, entry, actor)
        return case
    if cmd.amount is None or cmd.amount <= 0:
        raise InvalidInput("a confirmed or reduced fine needs the amount the court fixed", field="amount")
    current = principal_amount(session, receivable.id)
    if cmd.outcome == COURT_REDUCED and cmd.amount >= current:
        raise InvalidInput(f"a reduced fine is below the imposed {current}", field="amount")
    book = rules.load_rulebook(session)
    due = rules.imposition_due_date(cmd.decided_on, receivable.revenue_item, book)
    transition(
        session,
        case,
        "decide",
        now,
        actor,
        cmd.reason,
        {
            "outcome": cmd.outcome,
            "amount": cmd.amount,
            "decided_on": cmd.decided_on.isoformat(),
            "due_date": due.day.isoformat(),
            "rule": due.rule_key,
        },
    )
    if cmd.amount != current:
        kind = "reduction" if cmd.amount < current else "correction"
        memo = f"법원 결정 ({cmd.outcome}) {current}→{cmd.amount}"
        ledger.post(
            session,
            receivable,
            ledger.Post(ledger.PRINCIPAL, kind, cmd.amount - current, cmd.decided_on, source, memo),
            actor,
        )
    case.court_outcome, case.court_amount, case.decided_on = cmd.outcome, cmd.amount, cmd.decided_on
    if resume_arrears(session, receivable.id, cmd.decided_on, actor, due.day) is not None:
        case.due_date, case.due_rule = due.day, due.rule_key
    else:
        # surcharges were already decided on the imposition's due date: the arrears engine keeps it
        act(session, case, "due_date_kept", now, actor, None, {"due_date": case.due_date.isoformat()
                                                               if case.due_date else None})  # fmt: skip
    return case


def _paid_anything(session: Session, receivable_id: int) -> bool:
    found = session.scalar(
        select(ledger.LedgerEntry.id)
        .where(ledger.LedgerEntry.receivable_id == receivable_id, ledger.LedgerEntry.kind == "payment")
        .limit(1)
    )
    return found is not None


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
