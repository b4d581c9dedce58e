"""의견제출 and 감경 (법 §16, 시행령 §2의2): opinions and their decision, hardship reductions (refused when the
party has another fine in arrears), and 직권취소 before imposition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ledger, rules
from models import notices as notice_ops
from models.base import Actor
from models.errors import InvalidInput, InvalidTransition
from models.fines.cases import act, fine_amount, require, schedule_of, transition
from models.fines.tables import (
    ADVANCE_NOTICED,
    DECIDED,
    IMPOSED,
    OPINION_BASIS,
    OPINION_CANCEL,
    OPINION_DECISIONS,
    OPINION_REDUCE,
    OPINION_REJECT,
    OPINION_SUBMITTED,
    FineCase,
)
from models.notices import Notice
from protocol import seoul_date
from protocol.masking import mask_name

# --- 3. opinions and reductions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitOpinion:
    """의견제출 (법 §16): by the party (``citizen``) or taken down by a clerk; an oral one names who spoke
    (시행령 §3②③)."""

    summary: str
    channel: str = "written"  # written / oral / electronic
    submitted_by: str = "citizen"  # citizen / clerk
    speaker: str | None = None
    contact_sealed: str | None = None  # a contact phone, already encrypted (``PiiCipher.seal_text``); never plaintext


def submit_opinion(
    session: Session, case: FineCase, notice: Notice, cmd: SubmitOpinion, actor: Actor, now: datetime
) -> FineCase:
    """Record an opinion: the case waits for a clerk's decision (``opinion_submitted``). Refused after the
    opinion deadline (``InvalidTransition``): no submission by then counts as "no opinion" (법 §16①)."""
    deadline = case.opinion_deadline or notice.opinion_deadline
    if case.stage == ADVANCE_NOTICED and seoul_date(now) > deadline:
        raise InvalidTransition(f"the opinion period ended on {deadline.isoformat()}", field="stage")
    detail: dict[str, Any] = {"channel": cmd.channel, "submitted_by": cmd.submitted_by, "summary": cmd.summary}
    if cmd.speaker:
        detail["speaker"] = mask_name(cmd.speaker)
    if cmd.contact_sealed:
        detail["contact_sealed"] = cmd.contact_sealed
    transition(session, case, "submit_opinion", now, actor, cmd.summary, detail)
    return case


@dataclass(frozen=True)
class DecideOpinion:
    decision: str  # reject / accept_reduce / accept_cancel
    reason: str
    amount: int | None = None  # the changed fine, for accept_reduce


def decide_opinion(
    session: Session, case: FineCase, notice: Notice, cmd: DecideOpinion, actor: Actor, now: datetime
) -> FineCase:
    """A clerk decides an opinion (법 §16③): ``reject`` → the case continues; ``accept_cancel`` → the notice is
    cancelled (``cancel_notice``); ``accept_reduce`` → the fine becomes ``amount`` (a ``reduction`` entry naming
    the article), and its 자진납부 price follows the schedule's rate."""
    if cmd.decision == OPINION_REJECT:
        transition(session, case, "reject_opinion", now, actor, cmd.reason)
    elif cmd.decision == OPINION_CANCEL:
        transition(session, case, "accept_opinion_cancel", now, actor, cmd.reason)
        notice_ops.cancel_notice(session, notice, f"의견 수용: {cmd.reason}", actor, now)
    elif cmd.decision == OPINION_REDUCE:
        current = fine_amount(case, notice)
        if cmd.amount is None or not 0 < cmd.amount < current:
            raise InvalidInput(f"a reduced fine must be above 0 and below {current}", field="amount")
        require(case, "accept_opinion_reduce")
        schedule = schedule_of(session, notice)
        self_pay = rules.self_payment_reduced(schedule, cmd.amount)
        _reduce(session, notice, current - cmd.amount, now, actor, f"의견 수용 감액 ({OPINION_BASIS})", "opinion")
        case.fine_amount, case.self_payment_amount = cmd.amount, self_pay.amount
        case.reduction_rule = OPINION_BASIS
        transition(
            session,
            case,
            "accept_opinion_reduce",
            now,
            actor,
            cmd.reason,
            {"amount": cmd.amount, "self_payment_amount": self_pay.amount, "basis": OPINION_BASIS},
        )
    else:
        raise InvalidInput(f"decision must be one of {', '.join(OPINION_DECISIONS)}", field="decision")
    return case


def _reduce(session: Session, notice: Notice, by: int, now: datetime, actor: Actor, memo: str, source: str) -> None:
    receivable = notice_ops.receivable_of(session, notice.id)
    assert receivable is not None, "every accepted notice has a receivable"
    post = ledger.Post(ledger.PRINCIPAL, "reduction", -by, seoul_date(now), f"fine:{source}:{notice.notice_no}", memo)
    ledger.post(session, receivable, post, actor)


def other_unpaid(session: Session, case: FineCase, today: date) -> list[str]:
    """The party's other 과태료 in arrears (체납: imposed, past the due date, a balance left), by the party's keyed
    hash (owner's or offender's RRN / business number); their notice numbers."""
    if case.party_hash is None:
        return []
    balance = (
        select(func.coalesce(func.sum(ledger.LedgerEntry.amount), 0))
        .where(ledger.LedgerEntry.receivable_id == ledger.Receivable.id)
        .scalar_subquery()
    )
    stmt = (
        select(Notice.notice_no)
        .join(FineCase, FineCase.notice_id == Notice.id)
        .join(ledger.Receivable, ledger.Receivable.notice_id == Notice.id)
        .where(
            FineCase.party_hash == case.party_hash,
            FineCase.notice_id != case.notice_id,
            FineCase.stage.in_((IMPOSED, DECIDED)),
            FineCase.due_date < today,
            balance > 0,
        )
        .order_by(Notice.notice_no)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class ClaimHardship:
    """감경 (시행령 §2의2): the grounds claimed (``rules.HARDSHIP_GROUNDS``), and the rate if less than the maximum."""

    grounds: Sequence[str]
    reason: str
    rate: Decimal | None = None


def claim_hardship(
    session: Session, case: FineCase, notice: Notice, cmd: ClaimHardship, actor: Actor, now: datetime
) -> FineCase:
    """Grant a hardship reduction before the opinion deadline: the fine is reduced (``reduction`` entry naming the
    rule row), and the 자진납부 price becomes the combined one (``rules.combined_reduced``).

    Raises ``InvalidTransition`` after the deadline, outside the 사전통지 stages or when already reduced;
    ``ReductionRefused`` (422 ``reduction_refused``) without a ground or when the party has other fines in arrears.
    """
    if case.stage not in (ADVANCE_NOTICED, OPINION_SUBMITTED):
        raise InvalidTransition(f"a case that is {case.stage} cannot claim a hardship reduction", field="stage")
    today = seoul_date(now)
    deadline = case.opinion_deadline or notice.opinion_deadline
    if today > deadline:
        raise InvalidTransition(f"a hardship reduction is claimed by the opinion deadline {deadline}", field="stage")
    if case.fine_amount is not None:
        raise InvalidTransition("this fine was already reduced", field="stage")
    book = rules.load_rulebook(session)
    others = other_unpaid(session, case, today)
    schedule = schedule_of(session, notice)
    noticed_on = case.advance_noticed_on or seoul_date(notice.issued_at)
    try:
        hardship = rules.hardship_reduced(
            notice.amount,
            cmd.grounds,
            has_other_unpaid=bool(others),
            on=noticed_on,
            rounding_unit=schedule.rounding_unit,
            rules=book,
            rate=cmd.rate,
        )
    except rules.ReductionRefused as exc:
        if others:
            exc.extra["other_unpaid"] = others
        raise
    combined = rules.combined_reduced(
        schedule,
        cmd.grounds,
        has_other_unpaid=bool(others),
        on=noticed_on,
        rules=book,
        amount=notice.amount,
        hardship_rate=cmd.rate,
    )
    _reduce(session, notice, notice.amount - hardship.amount, now, actor, f"감경 ({hardship.rule_key})", "hardship")
    case.fine_amount, case.self_payment_amount = hardship.amount, combined.amount
    case.reduction_rule = f"{hardship.rule_key} + {combined.rule_key}"[:200]
    act(
        session,
        case,
        "hardship_reduced",
        now,
        actor,
        cmd.reason,
        {
            "grounds": sorted(set(cmd.grounds)),
            "amount": hardship.amount,
            "rule": hardship.rule_key,
            "self_payment_amount": combined.amount,
            "combination_rule": combined.rule_key,
        },
    )
    return case


def cancel_case(session: Session, case: FineCase, notice: Notice, reason: str, actor: Actor, now: datetime) -> FineCase:
    """직권취소 before imposition: the case is ``cancelled`` and the notice cancelled (its receivable reversed)."""
    transition(session, case, "cancel", now, actor, reason)
    notice_ops.cancel_notice(session, notice, reason, actor, now)
    return case
