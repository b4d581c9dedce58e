"""체납 clock: the business date, the due-date clock of an imposed receivable, and catching it up — every 가산금 and
중가산금 decision, posted or skipped. The lowest arrears module: ``engine``, ``batch``, ``hotlist`` and ``queries``
build on it; it imports none of them.

How a receivable's surcharges are decided (질서위반행위규제법 §24; numbers from ``models.rules``):

- The first overdue day is F = due date + 1. The 가산금 accrues on the first day P ≥ F on which no hold is in force,
  on the principal unpaid at the end of P − 1 (entries dated before P). Its rate follows F (5% before 2017-06-03).
- 중가산금 month n (1 … the cap) accrues on E_n = ``full_month_elapses_on(due, n)``, on the principal unpaid at the
  end of E_n − 1. A month during any day of which a hold was in force is **skipped**, never charged later (법
  §24의3④: no surcharge while relief is in force); skipped months still count towards the cap (the cap is a
  period from the due date) — the reading that favours the payer [U].
- Each decision, posted or skipped, is one ``arrears_postings`` row, unique per (receivable, head, month): running a
  step twice, or two workers at once, posts nothing twice. A posted decision's ledger entry is dated the day it
  accrued (not the day the step ran) and names its rule row in ``source``; the posting row keeps ``rule_key`` and
  ``rule_id``.
- Every decision is a function of entry dates, holds and the day: a receivable caught up once for day D ends in
  the same state as one stepped day by day (the property tests check it). Every write (``engine``) catches the
  receivable up to its business date first (DESIGN.md §4); a write dated before the day a receivable is already
  caught up to is posted as dated but does not re-decide earlier months (not done yet; see ``record_payment``).
- Holds (``collection_holds``): 분납 and 징수유예 (relief, 법 §24의3) and 이의제기 (``suspend``). Relief cannot start
  before a surcharge already decided (it would have to be taken back); a missed installment ends its plan the day
  after (daily step), and after such a default no new relief is granted (시행령 §7의4③); ``end_relief`` with
  ``cancelled`` (changed circumstances) allows a new one.
- The month step decides plain receivables (overdue, 가산금 decided, never held) in bulk (``batch``), the rest one
  by one with ``catch_up``; both decide the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models import ledger, notices
from models.arrears.tables import (
    CURRENT,
    DEFAULTED,
    FINE_ACT,
    INSTALLMENT,
    OVERDUE,
    PAID,
    SKIPPED_HOLD,
    SKIPPED_NOTHING_UNPAID,
    STOPPED,
    SUSPENDED,
    ArrearsPosting,
    BusinessCalendar,
    CollectionHold,
    HoldInstallment,
    ReceivableTerms,
)
from models.base import Actor, Clock, Scope, utcnow
from models.errors import InvalidTransition, NotFound
from models.rules import (
    Computed,
    RuleBook,
    full_month_elapses_on,
    law_date,
    load_rulebook,
    monthly_surcharge_installment,
    surcharge,
)
from models.rules.rows import MONTHLY_SURCHARGE

REVERSAL_OF = "reversal-of:"  # source prefix of a payment's reversal entries
MAX_ID = 2**63 - 1


# --- business date --------------------------------------------------------------------------------------------------


def calendar_row(session: Session, clock: Clock | None, *, for_update: bool = False) -> BusinessCalendar:
    stmt = select(BusinessCalendar).where(BusinessCalendar.id == 1)
    row = session.scalar(stmt.with_for_update() if for_update else stmt)
    if row is None:
        # the first read starts the calendar at today's Asia/Seoul date; from then on only advance moves it (two
        # first reads at once: one row, the other insert does nothing)
        today = law_date((clock or utcnow)())
        session.execute(pg_insert(BusinessCalendar).values(id=1, business_date=today).on_conflict_do_nothing())
        row = session.scalar(stmt.with_for_update() if for_update else stmt)
        assert row is not None
    return row


def business_date(session: Session, clock: Clock | None = None) -> date:
    """The business date (영업일) the steps have run for; started at today's Asia/Seoul date on first use."""
    return calendar_row(session, clock).business_date


@dataclass
class StepReport:
    """What a step (or an advance) did: receivables looked at, decisions posted and skipped, won posted."""

    business_date: date
    receivables: int = 0
    posted: int = 0
    skipped: int = 0
    amount: int = 0
    defaults: int = 0
    cursor: int | None = None  # a chunk's: the receivable id the next chunk starts after (None: no more)
    chunks: int = 0  # how many transactions a chunked run committed

    def summary(self) -> str:
        return (
            f"business date {self.business_date.isoformat()}: {self.receivables} receivables, {self.posted} "
            f"surcharges posted ({self.amount} won), {self.skipped} months skipped, {self.defaults} defaults"
        )

    def add(self, other: StepReport) -> None:
        self.receivables += other.receivables
        self.posted += other.posted
        self.skipped += other.skipped
        self.amount += other.amount
        self.defaults += other.defaults
        self.chunks += other.chunks


# --- the due-date clock -----------------------------------------------------------------------------------------------


def terms_of(session: Session, receivable_id: int, *, for_update: bool = False) -> ReceivableTerms | None:
    stmt = select(ReceivableTerms).where(ReceivableTerms.receivable_id == receivable_id)
    return session.scalar(stmt.with_for_update() if for_update else stmt)


def need_terms(session: Session, receivable_id: int) -> ReceivableTerms:
    terms = terms_of(session, receivable_id, for_update=True)
    if terms is None:
        raise InvalidTransition("the receivable has no due date: it was never imposed", field="receivable_id")
    return terms


def _cap(terms: ReceivableTerms, rules: RuleBook) -> int:
    return rules.row(MONTHLY_SURCHARGE, terms.due_date + timedelta(days=1)).need_months()


def set_clock(terms: ReceivableTerms, due_date: date, rules: RuleBook) -> None:
    terms.due_date = due_date
    terms.overdue_since = None
    terms.caught_up_to = None
    terms.next_month_no = 1
    terms.next_month_on = None
    if terms.surcharge_rule == FINE_ACT:
        first_overdue = due_date + timedelta(days=1)
        terms.surcharge_rule_key = surcharge(0, first_overdue, rules).rule_key
        terms.monthly_rule_key = monthly_surcharge_installment(0, due_date, rules).rule_key
        terms.next_month_on = full_month_elapses_on(due_date, 1)


def receivable_of(session: Session, receivable_id: int) -> ledger.Receivable:
    receivable = session.get(ledger.Receivable, receivable_id) if 0 < receivable_id <= MAX_ID else None
    if receivable is None:
        raise NotFound("no such receivable", field="receivable_id")
    return receivable


def scoped_receivable(session: Session, scope: Scope, receivable_id: int) -> ledger.Receivable:
    """The receivable, if the caller's scope allows its jurisdiction; ``NotFound`` otherwise (no oracle)."""
    receivable = receivable_of(session, receivable_id)
    if not scope.allows(receivable.jurisdiction):
        raise NotFound("no such receivable", field="receivable_id")
    return receivable


# --- catching up ------------------------------------------------------------------------------------------------------


def holds_for(session: Session, receivable_id: int) -> list[CollectionHold]:
    return list(
        session.scalars(
            select(CollectionHold).where(CollectionHold.receivable_id == receivable_id).order_by(CollectionHold.id)
        )
    )


def end_hold(hold: CollectionHold, on: date, reason: str, actor: Actor) -> None:
    hold.ended_on = on
    hold.end_reason = reason
    hold.ended_by_user_id = actor.user_id


def _dated_amounts(session: Session, receivable_id: int, *, head: str | None = None) -> list[tuple[date, int]]:
    stmt = select(ledger.LedgerEntry.business_date, ledger.LedgerEntry.amount).where(
        ledger.LedgerEntry.receivable_id == receivable_id
    )
    if head is not None:
        stmt = stmt.join(ledger.ChargeHead, ledger.ChargeHead.id == ledger.LedgerEntry.charge_head_id).where(
            ledger.ChargeHead.kind == head
        )
    return [(day, int(amount)) for day, amount in session.execute(stmt)]


def _unpaid_before(dated: Sequence[tuple[date, int]], day: date) -> int:
    """The balance of entries dated before ``day``, never below zero (an overpayment is not a negative base)."""
    return max(0, sum(amount for on, amount in dated if on < day))


def _paid(session: Session, receivable_id: int) -> list[tuple[date, int]]:
    """Money paid in, by date: payments positive, their reversals negative."""
    rows = session.execute(
        select(ledger.LedgerEntry.business_date, ledger.LedgerEntry.amount, ledger.LedgerEntry.kind).where(
            ledger.LedgerEntry.receivable_id == receivable_id,
            or_(
                ledger.LedgerEntry.kind == "payment",
                and_(ledger.LedgerEntry.kind == "reversal", ledger.LedgerEntry.source.startswith(REVERSAL_OF)),
            ),
        )
    )
    return [(day, -int(amount)) for day, amount, _kind in rows]


def _detect_defaults(
    session: Session, receivable_id: int, holds: Iterable[CollectionHold], through: date, actor: Actor
) -> int:
    """A missed installment (분납 불이행) ends its plan the day after the installment's date (법 §24의3⑤)."""
    defaults = 0
    plans = [h for h in holds if h.kind == INSTALLMENT and h.ended_on is None]
    if not plans:
        return 0
    paid = _paid(session, receivable_id)
    everything = _dated_amounts(session, receivable_id)
    for hold in plans:
        installments = session.scalars(
            select(HoldInstallment).where(HoldInstallment.hold_id == hold.id).order_by(HoldInstallment.seq)
        )
        owed = 0
        kept_to: date | None = None
        for installment in installments:
            owed += installment.amount
            default_day = installment.due_on + timedelta(days=1)
            if default_day > through:
                kept_to = None
                break
            paid_in = sum(amount for on, amount in paid if hold.starts_on <= on <= installment.due_on)
            settled = _unpaid_before(everything, default_day) == 0
            if paid_in < owed and not settled:
                end_hold(hold, default_day, DEFAULTED, actor)
                defaults += 1
                kept_to = None
                break
            kept_to = installment.due_on
        if kept_to is not None and hold.ended_on is None:
            # every installment kept: the plan is done the day after its last day (the daily step stops looking)
            last = kept_to if hold.ends_on is None else max(kept_to, hold.ends_on)
            if last < through:
                end_hold(hold, last + timedelta(days=1), PAID, actor)
    return defaults


def _first_free_day(holds: Sequence[CollectionHold], day: date) -> date | None:
    """The first day from ``day`` on which no hold is in force (``None``: an open-ended hold covers the rest)."""
    moved = True
    while moved:
        moved = False
        for hold in holds:
            if hold.in_force_on(day):
                last = hold.last_day()
                if last is None:
                    return None
                day, moved = last + timedelta(days=1), True
    return day


def _decide(
    session: Session,
    receivable: ledger.Receivable,
    head: str,
    month_no: int,
    accrues_on: date,
    base: int,
    computed: Computed,
    skipped: str | None,
    step_day: date,
    actor: Actor,
) -> ArrearsPosting:
    amount = 0 if skipped else computed.amount
    if not skipped and amount <= 0:
        skipped = SKIPPED_NOTHING_UNPAID
    entry_id = None
    if not skipped:
        label = "가산금" if head == ledger.SURCHARGE else f"중가산금 {month_no}개월차"
        memo = f"{label}, 기준 {base}원" + "".join(f"; {key}" for key in computed.also)
        entry = ledger.post(
            session,
            receivable,
            ledger.Post(head, "surcharge", amount, accrues_on, computed.rule_key, memo),
            actor,
        )
        entry_id = entry.id
    posting = ArrearsPosting(
        receivable_id=receivable.id,
        head=head,
        month_no=month_no,
        accrues_on=accrues_on,
        base=base,
        amount=0 if skipped else amount,
        skipped=skipped,
        ledger_entry_id=entry_id,
        rule_key=computed.rule_key,
        rule_id=computed.rule_id,
        business_date=step_day,
    )
    session.add(posting)
    return posting


def catch_up(
    session: Session,
    terms: ReceivableTerms,
    through: date,
    actor: Actor,
    *,
    months: bool = True,
    rules: RuleBook | None = None,
) -> StepReport:
    """Decide everything due on the receivable up to and including ``through``: 분납 defaults, the overdue mark, the
    가산금 and (with ``months``) every 중가산금 month not yet decided. Idempotent; ``terms`` should be locked."""
    report = StepReport(through, receivables=1)
    if terms.state in (STOPPED, SUSPENDED):
        return report
    receivable_id = terms.receivable_id
    holds = holds_for(session, receivable_id)
    report.defaults = _detect_defaults(session, receivable_id, holds, through, actor)
    first_overdue = terms.due_date + timedelta(days=1)
    if through < first_overdue:
        return report
    if terms.state == CURRENT:
        terms.state = OVERDUE
        terms.overdue_since = first_overdue
        tell_device_overdue(session, receivable_id)
    if terms.surcharge_rule != FINE_ACT:
        terms.caught_up_to = max(terms.caught_up_to or through, through)
        return report
    rules = rules or load_rulebook(session)
    receivable = session.get(ledger.Receivable, receivable_id)
    assert receivable is not None
    principal = _dated_amounts(session, receivable_id, head=ledger.PRINCIPAL)

    def count(posting: ArrearsPosting) -> None:
        if posting.skipped:
            report.skipped += 1
        else:
            report.posted += 1
            report.amount += posting.amount

    if not terms.surcharge_done:
        day = _first_free_day(holds, first_overdue)
        if day is not None and day <= through:
            base = _unpaid_before(principal, day)
            computed = surcharge(base, first_overdue, rules)
            count(_decide(session, receivable, ledger.SURCHARGE, 0, day, base, computed, None, through, actor))
            terms.surcharge_done = True
    if months:
        cap = _cap(terms, rules)
        n = terms.next_month_no
        while n <= cap:
            accrues_on = full_month_elapses_on(terms.due_date, n)
            if accrues_on > through:
                break
            month_first = first_overdue if n == 1 else full_month_elapses_on(terms.due_date, n - 1)
            held = any(hold.in_force_between(month_first, accrues_on - timedelta(days=1)) for hold in holds)
            base = 0 if held else _unpaid_before(principal, accrues_on)
            computed = monthly_surcharge_installment(base, terms.due_date, rules)
            skipped = SKIPPED_HOLD if held else None
            count(
                _decide(
                    session,
                    receivable,
                    ledger.MONTHLY_SURCHARGE,
                    n,
                    accrues_on,
                    base,
                    computed,
                    skipped,
                    through,
                    actor,
                )
            )
            n += 1
        terms.next_month_no = n
        terms.next_month_on = full_month_elapses_on(terms.due_date, n) if n <= cap else None
    terms.caught_up_to = max(terms.caught_up_to or through, through)
    terms.updated_at = utcnow()
    session.flush()
    return report


def catch_up_receivable(session: Session, receivable_id: int, through: date, actor: Actor) -> StepReport:
    """Lock the receivable's clock and catch it up to ``through`` (nothing for a receivable without one). Call it
    before any write to a receivable (a payment, a reduction, a reversal) dated ``through``."""
    terms = terms_of(session, receivable_id, for_update=True)
    if terms is None:
        return StepReport(through)
    return catch_up(session, terms, through, actor)


def tell_device_overdue(session: Session, receivable_id: int) -> None:
    """The issuing device of a notice's receivable learns it is ``overdue`` (PROTOCOL.md §3)."""
    receivable = session.get(ledger.Receivable, receivable_id)
    notice = session.get(notices.Notice, receivable.notice_id) if receivable and receivable.notice_id else None
    if notice is not None:
        notices.tell_device(session, notice, "overdue")
