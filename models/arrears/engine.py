"""체납 engine: the due-date clock, 가산금 and 중가산금 posting, holds, and the writes that catch a receivable up first.

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
  the same state as one stepped day by day (the property tests check it). Every write here catches the
  receivable up to its business date first (DESIGN.md §4); a write dated before the day a receivable is already
  caught up to is posted as dated but does not re-decide earlier months (not done yet; see ``record_payment``).
- Holds (``collection_holds``): 분납 and 징수유예 (relief, 법 §24의3) and 이의제기 (``suspend``). Relief cannot start
  before a surcharge already decided (it would have to be taken back); a missed installment ends its plan the day
  after (daily step), and after such a default no new relief is granted (시행령 §7의4③); ``end_relief`` with
  ``cancelled`` (changed circumstances) allows a new one.
- The month step decides plain receivables (overdue, 가산금 decided, never held) in bulk (``batch``), the rest one
  by one here; both decide the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models import ledger
from models.arrears.tables import (
    CANCELLED,
    CURRENT,
    DEFAULTED,
    INSTALLMENT,
    OBJECTION,
    OVERDUE,
    PAID,
    RELIEF_KINDS,
    RESUMED,
    SKIPPED_HOLD,
    SKIPPED_NOTHING_UNPAID,
    STOPPED,
    STOPPED_HOLD,
    SUSPENDED,
    ArrearsPosting,
    BusinessCalendar,
    CollectionHold,
    HoldInstallment,
    ReceivableTerms,
)
from models.base import Actor, Clock, Scope, utcnow
from models.catalog import SURCHARGE_RULES, RevenueItem
from models.errors import InvalidInput, InvalidTransition, NotFound
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

FINE_ACT = "fine_act"  # catalog.SURCHARGE_RULES: 질서위반행위규제법 §24 (3% + 1.2%/month)
REVERSAL_OF = "reversal-of:"  # source prefix of a payment's reversal entries
MAX_ID = 2**63 - 1


# --- business date --------------------------------------------------------------------------------------------------


def _calendar(session: Session, clock: Clock | None, *, for_update: bool = False) -> BusinessCalendar:
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
    return _calendar(session, clock).business_date


@dataclass
class StepReport:
    """What a step (or an advance) did: receivables looked at, decisions posted and skipped, won posted."""

    business_date: date
    receivables: int = 0
    posted: int = 0
    skipped: int = 0
    amount: int = 0
    defaults: int = 0

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


def advance_business_date(
    session: Session, to: date, actor: Actor, clock: Clock | None = None, *, refresh: bool = True
) -> StepReport:
    """Move the business date to ``to`` (never back) and run the daily and month steps for it.

    Days skipped over need no step of their own: catching up to ``to`` decides every day and month on the way as
    if each had run. With ``refresh``, every jurisdiction's hotlist is rebuilt for ``to``. Raises
    ``InvalidTransition`` (code ``business_date_backwards``) for a date before the current one.
    """
    from models.arrears import hotlist  # the hotlist builds on this module

    row = _calendar(session, clock, for_update=True)
    if to < row.business_date:
        raise InvalidTransition(
            f"the business date is {row.business_date.isoformat()}; it cannot go back to {to.isoformat()}",
            code="business_date_backwards",
            field="business_date",
        )
    row.business_date = to
    row.advanced_at = utcnow()
    row.advanced_by_user_id = actor.user_id
    session.flush()
    report = run_daily_step(session, to, actor)
    report.add(run_month_step(session, to, actor))
    if refresh:
        for code in hotlist.jurisdictions_to_refresh(session):
            hotlist.refresh_hotlist(session, code, to, actor)
    return report


def advance_to_today(session: Session, now: datetime, actor: Actor) -> StepReport:
    """The worker's job (idempotent, any number of times a day): move the business date to ``now``'s Asia/Seoul
    date if it is behind (never back) and run the steps and the hotlist for it."""
    current = business_date(session, lambda: now)
    return advance_business_date(session, max(current, law_date(now)), actor, lambda: now)


def _not_after_business_date(session: Session, day: date) -> None:
    current = business_date(session)
    if day > current:
        raise InvalidInput(
            f"{day.isoformat()} is after the business date {current.isoformat()}; advance it first",
            code="after_business_date",
            field="business_date",
        )


# --- the due-date clock -----------------------------------------------------------------------------------------------


def _terms(session: Session, receivable_id: int, *, for_update: bool = False) -> ReceivableTerms | None:
    stmt = select(ReceivableTerms).where(ReceivableTerms.receivable_id == receivable_id)
    return session.scalar(stmt.with_for_update() if for_update else stmt)


def _need_terms(session: Session, receivable_id: int) -> ReceivableTerms:
    terms = _terms(session, receivable_id, for_update=True)
    if terms is None:
        raise InvalidTransition("the receivable has no due date: it was never imposed", field="receivable_id")
    return terms


def _cap(terms: ReceivableTerms, rules: RuleBook) -> int:
    return rules.row(MONTHLY_SURCHARGE, terms.due_date + timedelta(days=1)).need_months()


def _set_clock(terms: ReceivableTerms, due_date: date, rules: RuleBook) -> None:
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


def start_collection(
    session: Session,
    receivable_id: int,
    due_date: date,
    *,
    on: date | None = None,
    surcharge_rule: str | None = None,
) -> ReceivableTerms:
    """Start the due-date clock of an imposed receivable (부과): from ``due_date`` + 1 it is overdue (체납).

    Call it in the imposition's transaction. ``on`` is the imposition's business date (default: the business
    date); ``surcharge_rule`` one of ``catalog.SURCHARGE_RULES`` (default: the revenue item's). Only ``fine_act``
    (질서위반행위규제법 §24) posts surcharges; other items are tracked overdue without them. Calling it again with the
    same due date returns the same clock; another due date raises ``InvalidTransition`` (``resume`` sets a new
    one). Raises ``NotFound`` for an unknown receivable.
    """
    receivable = session.get(ledger.Receivable, receivable_id)
    if receivable is None:
        raise NotFound("no such receivable", field="receivable_id")
    existing = _terms(session, receivable_id, for_update=True)
    if existing is not None:
        if existing.due_date == due_date:
            return existing
        raise InvalidTransition(
            f"collection already started with due date {existing.due_date.isoformat()}", field="due_date"
        )
    rule = surcharge_rule
    if rule is not None and rule not in SURCHARGE_RULES:
        raise InvalidInput(f"the surcharge rule is one of {', '.join(SURCHARGE_RULES)}", field="surcharge_rule")
    if rule is None:
        item = session.get(RevenueItem, receivable.revenue_item)
        rule = item.surcharge_rule if item is not None else "none"
    terms = ReceivableTerms(
        receivable_id=receivable_id,
        state=CURRENT,
        surcharge_rule=rule,
        surcharge_done=False,
        started_on=on or business_date(session),
    )
    _set_clock(terms, due_date, load_rulebook(session))
    session.add(terms)
    session.flush()
    return terms


def suspend(session: Session, receivable_id: int, on: date, actor: Actor, *, basis: str = "이의제기") -> CollectionHold:
    """이의제기: the imposition loses its effect (법 §20②) from ``on``: nothing is collectible or accrues, and the
    receivable leaves the hotlist, until ``resume`` or ``stop_collection``. Surcharges posted before ``on`` stay
    (cancel them with the ledger if the decision says so). Raises ``InvalidTransition`` when not collecting."""
    terms = _need_terms(session, receivable_id)
    if terms.state in (SUSPENDED, STOPPED):
        raise InvalidTransition(f"collection is {terms.state}", field="receivable_id", current=terms.state)
    catch_up(session, terms, on - timedelta(days=1), actor)
    hold = CollectionHold(
        receivable_id=receivable_id, kind=OBJECTION, starts_on=on, basis=basis, created_by_user_id=actor.user_id
    )
    session.add(hold)
    terms.state = SUSPENDED
    terms.updated_at = utcnow()
    session.flush()
    after_payment(session, _receivable(session, receivable_id), max(on, business_date(session)), actor)
    return hold


def resume(session: Session, receivable_id: int, on: date, actor: Actor, *, due_date: date | None = None) -> None:
    """The court's decision stands (or the objection was withdrawn): collection resumes on ``on``.

    Months while suspended are never charged. With ``due_date`` (a new 납기 after the court's decision) the clock
    restarts from it; that is refused (``InvalidTransition``) once a surcharge has been decided on the old one.
    """
    terms = _need_terms(session, receivable_id)
    if terms.state != SUSPENDED:
        raise InvalidTransition(f"collection is {terms.state}, not suspended", current=terms.state)
    for hold in _holds(session, receivable_id):
        if hold.kind == OBJECTION and hold.ended_on is None:
            _end(hold, max(on, hold.starts_on), RESUMED, actor)
    if due_date is not None and due_date != terms.due_date:
        decided = session.scalar(
            select(func.count()).select_from(ArrearsPosting).where(ArrearsPosting.receivable_id == receivable_id)
        )
        if decided:
            raise InvalidTransition("surcharges were decided on the old due date; it cannot change", field="due_date")
        _set_clock(terms, due_date, load_rulebook(session))
    terms.state = CURRENT if terms.overdue_since is None else OVERDUE
    terms.updated_at = utcnow()
    if terms.state == OVERDUE:
        _tell_device_overdue(session, receivable_id)
    session.flush()
    catch_up(session, terms, business_date(session), actor)


def stop_collection(session: Session, receivable_id: int, on: date, actor: Actor) -> None:
    """End collection for good (imposition cancelled, the court dismissed the fine, write-off): no step touches the
    receivable again and its holds end on ``on``. The balance is the caller's to reverse with the ledger."""
    terms = _need_terms(session, receivable_id)
    if terms.state == STOPPED:
        return
    for hold in _holds(session, receivable_id):
        if hold.ended_on is None:
            _end(hold, max(on, hold.starts_on), STOPPED_HOLD, actor)
    terms.state = STOPPED
    terms.updated_at = utcnow()
    session.flush()
    after_payment(session, _receivable(session, receivable_id), max(on, business_date(session)), actor)


# --- catching up ------------------------------------------------------------------------------------------------------


def _holds(session: Session, receivable_id: int) -> list[CollectionHold]:
    return list(
        session.scalars(
            select(CollectionHold).where(CollectionHold.receivable_id == receivable_id).order_by(CollectionHold.id)
        )
    )


def _end(hold: CollectionHold, on: date, reason: str, actor: Actor) -> None:
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
                _end(hold, default_day, DEFAULTED, actor)
                defaults += 1
                kept_to = None
                break
            kept_to = installment.due_on
        if kept_to is not None and hold.ended_on is None:
            # every installment kept: the plan is done the day after its last day (the daily step stops looking)
            last = kept_to if hold.ends_on is None else max(kept_to, hold.ends_on)
            if last < through:
                _end(hold, last + timedelta(days=1), PAID, actor)
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
    holds = _holds(session, receivable_id)
    report.defaults = _detect_defaults(session, receivable_id, holds, through, actor)
    first_overdue = terms.due_date + timedelta(days=1)
    if through < first_overdue:
        return report
    if terms.state == CURRENT:
        terms.state = OVERDUE
        terms.overdue_since = first_overdue
        _tell_device_overdue(session, receivable_id)
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
    terms = _terms(session, receivable_id, for_update=True)
    if terms is None:
        return StepReport(through)
    return catch_up(session, terms, through, actor)


# --- the steps ------------------------------------------------------------------------------------------------------


def _run(session: Session, day: date, actor: Actor, where: object, *, months: bool) -> StepReport:
    report = StepReport(day)
    rules = load_rulebook(session)
    stmt = (
        select(ReceivableTerms)
        .where(where)  # type: ignore[arg-type]
        .order_by(ReceivableTerms.receivable_id)
        .with_for_update(skip_locked=True)
    )
    for terms in session.scalars(stmt).all():
        report.add(catch_up(session, terms, day, actor, months=months, rules=rules))
    return report


def run_daily_step(session: Session, day: date, actor: Actor) -> StepReport:
    """The daily step for business date ``day``: 분납 defaults, overdue marks and 가산금 (once per receivable).

    Idempotent. Rows another worker holds are skipped (it is doing them). Raises ``InvalidInput`` for a day after
    the business date."""
    _not_after_business_date(session, day)
    plans_due = (
        select(CollectionHold.receivable_id)
        .join(HoldInstallment, HoldInstallment.hold_id == CollectionHold.id)
        .where(CollectionHold.ended_on.is_(None), HoldInstallment.due_on < day)
    )
    where = and_(
        ReceivableTerms.due_date < day,
        or_(
            ReceivableTerms.state == CURRENT,
            and_(
                ReceivableTerms.state == OVERDUE,
                or_(
                    and_(ReceivableTerms.surcharge_rule == FINE_ACT, ReceivableTerms.surcharge_done.is_(False)),
                    ReceivableTerms.receivable_id.in_(plans_due),
                ),
            ),
        ),
    )
    return _run(session, day, actor, where, months=False)


def run_month_step(session: Session, day: date, actor: Actor) -> StepReport:
    """The month step for business date ``day``: every 중가산금 month accrued by ``day`` and not yet decided, for
    every open receivable (missed months are caught up, each posted for its own month). Idempotent."""
    _not_after_business_date(session, day)
    open_receivables = select(ledger.Receivable.id).where(ledger.Receivable.status == ledger.OPEN)
    where = and_(
        ReceivableTerms.state.in_((CURRENT, OVERDUE)),
        ReceivableTerms.next_month_on <= day,
        ReceivableTerms.receivable_id.in_(open_receivables),
    )
    from models.arrears import batch  # builds on this module

    report = StepReport(day)
    rules = load_rulebook(session)
    ids = session.scalars(
        select(ReceivableTerms.receivable_id)
        .where(where)
        .order_by(ReceivableTerms.receivable_id)
        .with_for_update(skip_locked=True)
    ).all()
    for chunk in batch.chunks(ids):
        counts, left = batch.months_in_bulk(session, chunk, day, actor, rules)
        report.receivables += counts["receivables"]
        report.posted += counts["posted"]
        report.skipped += counts["skipped"]
        report.amount += counts["amount"]
        for terms in session.scalars(select(ReceivableTerms).where(ReceivableTerms.receivable_id.in_(left))):
            report.add(catch_up(session, terms, day, actor, rules=rules))
    session.flush()
    return report


# --- payments -------------------------------------------------------------------------------------------------------


def record_payment(
    session: Session, receivable_id: int, amount: int, on: date, source: str, actor: Actor
) -> list[ledger.LedgerEntry]:
    """수납: catch the receivable up to ``on``, then allocate ``amount`` by its allocation policy (v1: 체납처분비 →
    principal → 가산금 → 중가산금). A payment dated before the day the receivable is caught up to is allocated as
    dated; earlier months are not re-decided (replaying a back-dated payment is not done yet)."""
    if amount <= 0:
        raise InvalidInput("a payment is a positive amount", field="amount")
    receivable = _receivable(session, receivable_id)
    catch_up_receivable(session, receivable_id, on, actor)
    posted = ledger.allocate_payment(session, receivable, amount, on, source, actor)
    after_payment(session, receivable, on, actor)
    return posted


def after_payment(session: Session, receivable: ledger.Receivable, on: date, actor: Actor) -> None:
    """After money moved on a receivable (or a hold or objection changed it): its plate's hotlist entry is rebuilt
    for ``on`` at once, so a paid plate leaves the devices' hotlist on their next pull, not on the next business
    day. Call it from any payment path that does not go through ``record_payment``."""
    from models.arrears import hotlist

    plate = hotlist.plate_of(session, receivable)
    if plate is not None:
        hotlist.refresh_hotlist(session, receivable.jurisdiction, on, actor, plates=[plate])


def reverse_payment(
    session: Session, receivable_id: int, source: str, on: date, actor: Actor
) -> list[ledger.LedgerEntry]:
    """A payment that did not stand (a bounced transfer, a cancelled card payment): post the opposite of each of its
    allocations, dated ``on``, and reopen the receivable. Raises ``NotFound`` when no payment has that ``source``,
    ``InvalidTransition`` when it was reversed already."""
    receivable = _receivable(session, receivable_id)
    catch_up_receivable(session, receivable_id, on, actor)
    reversal_source = f"{REVERSAL_OF}{source}"
    already = session.scalar(
        select(func.count())
        .select_from(ledger.LedgerEntry)
        .where(ledger.LedgerEntry.receivable_id == receivable_id, ledger.LedgerEntry.source == reversal_source)
    )
    if already:
        raise InvalidTransition("the payment was reversed already", field="source")
    paid = session.execute(
        select(ledger.ChargeHead.kind, ledger.LedgerEntry.amount)
        .join(ledger.ChargeHead, ledger.ChargeHead.id == ledger.LedgerEntry.charge_head_id)
        .where(
            ledger.LedgerEntry.receivable_id == receivable_id,
            ledger.LedgerEntry.kind == "payment",
            ledger.LedgerEntry.source == source,
        )
        .order_by(ledger.LedgerEntry.id)
    ).all()
    if not paid:
        raise NotFound("no payment with that source on the receivable", field="source")
    posted = [
        ledger.post(session, receivable, ledger.Post(head, "reversal", -int(amount), on, reversal_source), actor)
        for head, amount in paid
    ]
    if ledger.balance(session, receivable_id) > 0:
        receivable.status = ledger.OPEN
    session.flush()
    after_payment(session, receivable, on, actor)
    return posted


def _receivable(session: Session, receivable_id: int) -> ledger.Receivable:
    receivable = session.get(ledger.Receivable, receivable_id) if 0 < receivable_id <= MAX_ID else None
    if receivable is None:
        raise NotFound("no such receivable", field="receivable_id")
    return receivable


# --- holds: 분납 and 징수유예 ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installment:
    due_on: date
    amount: int


@dataclass(frozen=True)
class GrantRelief:
    """분납 (``installment``, with its installments) or 징수유예 (``deferral``, until ``ends_on``) from ``starts_on``
    (the application date, or the notice date when granted on the authority's own initiative)."""

    receivable_id: int
    kind: str
    starts_on: date
    ends_on: date | None = None
    installments: tuple[Installment, ...] = ()
    basis: str | None = None


def scoped_receivable(session: Session, scope: Scope, receivable_id: int) -> ledger.Receivable:
    """The receivable, if the caller's scope allows its jurisdiction; ``NotFound`` otherwise (no oracle)."""
    receivable = _receivable(session, receivable_id)
    if not scope.allows(receivable.jurisdiction):
        raise NotFound("no such receivable", field="receivable_id")
    return receivable


def grant_relief(session: Session, scope: Scope, cmd: GrantRelief, actor: Actor) -> CollectionHold:
    """징수유예등 (법 §24의3): no 가산금 or 중가산금 accrues while it is in force; a missed installment (the daily step)
    or ``end_relief`` reinstates them.

    Raises ``InvalidTransition`` when the receivable is not overdue-able (never imposed, suspended, stopped), another
    relief is in force then, an earlier relief was cancelled for default (no new relief, 시행령 §7의4③), or
    surcharges were already decided on or after ``starts_on``; ``InvalidInput`` for an inconsistent plan."""
    scoped_receivable(session, scope, cmd.receivable_id)
    terms = _need_terms(session, cmd.receivable_id)
    if terms.state in (SUSPENDED, STOPPED):
        raise InvalidTransition(f"collection is {terms.state}", current=terms.state)
    if cmd.kind not in RELIEF_KINDS:
        raise InvalidInput(f"relief is one of {', '.join(RELIEF_KINDS)}", field="kind")
    ends_on = cmd.ends_on
    if cmd.kind == INSTALLMENT:
        if not cmd.installments:
            raise InvalidInput("an installment plan needs its installments", field="installments")
        days = [i.due_on for i in cmd.installments]
        if days != sorted(set(days)) or days[0] < cmd.starts_on:
            raise InvalidInput("installment dates must rise, from the start date on", field="installments")
        if ends_on is None:
            ends_on = days[-1]
        elif ends_on < days[-1]:
            raise InvalidInput("the plan ends before its last installment", field="ends_on")
    else:
        if cmd.installments:
            raise InvalidInput("a deferral has no installments", field="installments")
        if ends_on is None:
            raise InvalidInput("a deferral needs its last day", field="ends_on")
    if ends_on < cmd.starts_on:
        raise InvalidInput("the relief ends before it starts", field="ends_on")
    today = business_date(session)
    # decide everything due by today first, as the steps would have: the same relief then meets the same decisions
    # whether or not the steps ran (relief cannot reach back over a decided surcharge; see below)
    catch_up(session, terms, today, actor)
    for hold in _holds(session, cmd.receivable_id):
        if hold.kind not in RELIEF_KINDS:
            continue
        if hold.end_reason == DEFAULTED:
            raise InvalidTransition("an earlier relief was cancelled for default: no new relief (시행령 §7의4③)")
        if hold.in_force_between(cmd.starts_on, ends_on):
            raise InvalidTransition(f"relief #{hold.id} is in force then", current=hold.kind)
    decided_after = session.scalar(
        select(func.max(ArrearsPosting.accrues_on)).where(
            ArrearsPosting.receivable_id == cmd.receivable_id,
            or_(
                and_(ArrearsPosting.head == ledger.SURCHARGE, ArrearsPosting.accrues_on >= cmd.starts_on),
                and_(ArrearsPosting.head == ledger.MONTHLY_SURCHARGE, ArrearsPosting.accrues_on > cmd.starts_on),
            ),
        )
    )
    if decided_after is not None:
        raise InvalidTransition(
            f"surcharges were already decided up to {decided_after.isoformat()}; relief cannot start before",
            field="starts_on",
        )
    hold = CollectionHold(
        receivable_id=cmd.receivable_id,
        kind=cmd.kind,
        starts_on=cmd.starts_on,
        ends_on=ends_on,
        basis=cmd.basis,
        created_by_user_id=actor.user_id,
    )
    session.add(hold)
    session.flush()
    for seq, installment in enumerate(cmd.installments, start=1):
        if installment.amount <= 0:
            raise InvalidInput("an installment is a positive amount", field="installments")
        session.add(HoldInstallment(hold_id=hold.id, seq=seq, due_on=installment.due_on, amount=installment.amount))
    session.flush()
    catch_up(session, terms, today, actor)
    after_payment(session, _receivable(session, cmd.receivable_id), today, actor)
    return hold


def end_relief(session: Session, scope: Scope, hold_id: int, on: date, reason: str, actor: Actor) -> CollectionHold:
    """취소 of a 분납 or 징수유예 from ``on`` (법 §24의3⑤): ``default`` (an installment or security order ignored,
    another creditor's enforcement, evasion: no new relief afterwards) or ``cancelled`` (changed circumstances).
    Surcharges accrue again from ``on``; the receivable is caught up to the business date. Raises ``NotFound``,
    ``InvalidTransition`` when the hold is not a relief in force on ``on``."""
    hold = session.get(CollectionHold, hold_id) if 0 < hold_id <= MAX_ID else None
    if hold is None:
        raise NotFound("no such hold", field="hold_id")
    scoped_receivable(session, scope, hold.receivable_id)
    if reason not in (DEFAULTED, CANCELLED):
        raise InvalidInput("the reason is default or cancelled", field="reason")
    if hold.kind not in RELIEF_KINDS or not hold.in_force_on(on):
        raise InvalidTransition(f"hold #{hold.id} is not a relief in force on {on.isoformat()}")
    terms = _need_terms(session, hold.receivable_id)
    catch_up(session, terms, on - timedelta(days=1), actor)
    _end(hold, on, reason, actor)
    session.flush()
    today = max(on, business_date(session))
    catch_up(session, terms, today, actor)
    after_payment(session, _receivable(session, hold.receivable_id), today, actor)
    return hold


def holds_of(session: Session, scope: Scope, receivable_id: int) -> list[tuple[CollectionHold, list[HoldInstallment]]]:
    scoped_receivable(session, scope, receivable_id)
    out = []
    for hold in _holds(session, receivable_id):
        installments = list(
            session.scalars(
                select(HoldInstallment).where(HoldInstallment.hold_id == hold.id).order_by(HoldInstallment.seq)
            )
        )
        out.append((hold, installments))
    return out


# --- the arrears view -------------------------------------------------------------------------------------------------


@dataclass
class ArrearsView:
    """A receivable's arrears: its clock, the balance per charge head, its entries, surcharge decisions and holds."""

    receivable: ledger.Receivable
    terms: ReceivableTerms | None
    heads: dict[str, int]
    balance: int
    entries: list[ledger.LedgerEntry]
    postings: list[ArrearsPosting]
    holds: list[tuple[CollectionHold, list[HoldInstallment]]] = field(default_factory=list)
    business_date: date | None = None
    head_kinds: dict[int, str] = field(default_factory=dict)  # charge head id → kind, to label the entries


def heads_of(session: Session, receivable_id: int) -> dict[str, int]:
    """Balance per charge head (every head the receivable has, zero included)."""
    rows = session.execute(
        select(ledger.ChargeHead.kind, func.coalesce(func.sum(ledger.LedgerEntry.amount), 0))
        .outerjoin(ledger.LedgerEntry, ledger.LedgerEntry.charge_head_id == ledger.ChargeHead.id)
        .where(ledger.ChargeHead.receivable_id == receivable_id)
        .group_by(ledger.ChargeHead.kind)
    )
    return {kind: int(total) for kind, total in rows}


def arrears_view(session: Session, scope: Scope, receivable_id: int, actor: Actor | None = None) -> ArrearsView:
    """What a clerk sees of a receivable; with ``actor``, it is caught up to the business date first."""
    receivable = scoped_receivable(session, scope, receivable_id)
    today = business_date(session)
    if actor is not None:
        catch_up_receivable(session, receivable_id, today, actor)
    postings = list(
        session.scalars(
            select(ArrearsPosting)
            .where(ArrearsPosting.receivable_id == receivable_id)
            .order_by(ArrearsPosting.head, ArrearsPosting.month_no)
        )
    )
    return ArrearsView(
        receivable=receivable,
        terms=_terms(session, receivable_id),
        heads=heads_of(session, receivable_id),
        balance=ledger.balance(session, receivable_id),
        entries=ledger.entries(session, receivable_id),
        postings=postings,
        holds=holds_of(session, scope, receivable_id),
        business_date=today,
        head_kinds={
            head_id: kind
            for head_id, kind in session.execute(
                select(ledger.ChargeHead.id, ledger.ChargeHead.kind).where(
                    ledger.ChargeHead.receivable_id == receivable_id
                )
            )
        },
    )


def _tell_device_overdue(session: Session, receivable_id: int) -> None:
    """The issuing device of a notice's receivable learns it is ``overdue`` (PROTOCOL.md §3)."""
    from models import notices

    receivable = session.get(ledger.Receivable, receivable_id)
    notice = session.get(notices.Notice, receivable.notice_id) if receivable and receivable.notice_id else None
    if notice is not None:
        notices.tell_device(session, notice, "overdue")


# --- the arrears as the back office reads them -----------------------------------------------------------------------


@dataclass(frozen=True)
class HoldDetails:
    hold: CollectionHold
    installments: list[HoldInstallment]


@dataclass(frozen=True)
class HeadBalance:
    head: str
    balance: int


@dataclass(frozen=True)
class ArrearsEntry:
    entry: ledger.LedgerEntry
    head: str  # the charge head's kind
    rule_key: str | None  # a surcharge's rule row


@dataclass(frozen=True)
class ArrearsDetails:
    """``ArrearsView`` with its heads in order, each entry labelled with its head, and each hold's installments."""

    view: ArrearsView
    heads: list[HeadBalance]
    entries: list[ArrearsEntry]
    holds: list[HoldDetails]


def arrears_details(session: Session, scope: Scope, receivable_id: int) -> ArrearsDetails:
    view = arrears_view(session, scope, receivable_id)
    return ArrearsDetails(
        view,
        [HeadBalance(kind, total) for kind, total in sorted(view.heads.items())],
        [
            ArrearsEntry(e, view.head_kinds.get(e.charge_head_id, ""), e.source if e.kind == "surcharge" else None)
            for e in view.entries
        ],
        [HoldDetails(hold, installments) for hold, installments in view.holds],
    )


def hold_details(session: Session, scope: Scope, receivable_id: int) -> list[HoldDetails]:
    """The receivable's holds with their installments."""
    return [HoldDetails(hold, installments) for hold, installments in holds_of(session, scope, receivable_id)]


def hold_of(session: Session, scope: Scope, hold: CollectionHold) -> HoldDetails:
    """One hold with its installments."""
    return next(found for found in hold_details(session, scope, hold.receivable_id) if found.hold.id == hold.id)
