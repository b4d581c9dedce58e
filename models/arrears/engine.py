"""체납 operations: starting, suspending, resuming and stopping a receivable's clock (the hooks of imposition and
objection), the daily and month steps and the business date they run for, payments that catch the receivable up
first, and relief holds (분납, 징수유예). How each surcharge is decided is ``clock``'s (its docstring); the month step
hands plain receivables to ``batch``; every change of money or hold rebuilds the plate's ``hotlist`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models import ledger
from models.arrears import batch, hotlist
from models.arrears.clock import (
    MAX_ID,
    REVERSAL_OF,
    StepReport,
    business_date,
    calendar_row,
    catch_up,
    catch_up_receivable,
    end_hold,
    holds_for,
    need_terms,
    receivable_of,
    scoped_receivable,
    set_clock,
    tell_device_overdue,
    terms_of,
)
from models.arrears.tables import (
    CANCELLED,
    CURRENT,
    DEFAULTED,
    FINE_ACT,
    INSTALLMENT,
    OBJECTION,
    OVERDUE,
    RELIEF_KINDS,
    RESUMED,
    STOPPED,
    STOPPED_HOLD,
    SUSPENDED,
    ArrearsPosting,
    CollectionHold,
    HoldInstallment,
    ReceivableTerms,
)
from models.base import Actor, Clock, Scope, utcnow
from models.catalog import SURCHARGE_RULES, RevenueItem
from models.errors import InvalidInput, InvalidTransition, NotFound
from models.rules import law_date, load_rulebook

# --- the business date and the steps ----------------------------------------------------------------------------------


def advance_business_date(
    session: Session, to: date, actor: Actor, clock: Clock | None = None, *, refresh: bool = True
) -> StepReport:
    """Move the business date to ``to`` (never back) and run the daily and month steps for it, in this transaction.

    Days skipped over need no step of their own: catching up to ``to`` decides every day and month on the way as
    if each had run. With ``refresh``, every jurisdiction's hotlist is rebuilt for ``to``. Raises
    ``InvalidTransition`` (code ``business_date_backwards``) for a date before the current one. For a whole city,
    ``services.steps.advance`` does the same a bounded chunk per transaction.
    """
    move_business_date(session, to, actor, clock)
    report = run_daily_step(session, to, actor)
    report.add(run_month_step(session, to, actor))
    if refresh:
        for code in hotlist.jurisdictions_to_refresh(session):
            hotlist.refresh_hotlist(session, code, to, actor)
    return report


def move_business_date(session: Session, to: date, actor: Actor, clock: Clock | None = None) -> date:
    """Set the business date to ``to`` (never back; the same date again is allowed: its steps are rerun, which is
    how an advance cut short resumes). Raises ``InvalidTransition`` (``business_date_backwards``)."""
    row = calendar_row(session, clock, for_update=True)
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
    return to


def advance_to_today(session: Session, now: datetime, actor: Actor) -> StepReport:
    """The worker's job (idempotent, any number of times a day): move the business date to ``now``'s Asia/Seoul
    date if it is behind (never back) and run the steps and the hotlist for it."""
    current = business_date(session, lambda: now)
    return advance_business_date(session, max(current, law_date(now)), actor, lambda: now)


def check_business_date(session: Session, day: date) -> None:
    """Raise ``InvalidInput`` (``after_business_date``) for a day after the business date."""
    current = business_date(session)
    if day > current:
        raise InvalidInput(
            f"{day.isoformat()} is after the business date {current.isoformat()}; advance it first",
            code="after_business_date",
            field="business_date",
        )


def _run(
    session: Session, day: date, actor: Actor, where: object, *, months: bool, after: int, limit: int | None
) -> StepReport:
    report = StepReport(day)
    rules = load_rulebook(session)
    stmt = (
        select(ReceivableTerms)
        .where(where, ReceivableTerms.receivable_id > after)  # type: ignore[arg-type]
        .order_by(ReceivableTerms.receivable_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    done = session.scalars(stmt).all()
    for terms in done:
        report.add(catch_up(session, terms, day, actor, months=months, rules=rules))
    report.cursor = _cursor(done[-1].receivable_id if done else None, len(done), limit)
    return report


def _cursor(last_id: int | None, count: int, limit: int | None) -> int | None:
    """Where the next chunk starts, or ``None`` when this one was the last."""
    return last_id if limit is not None and count >= limit else None


def run_daily_step(
    session: Session, day: date, actor: Actor, *, after: int = 0, limit: int | None = None
) -> StepReport:
    """The daily step for business date ``day``: 분납 defaults, overdue marks and 가산금 (once per receivable).

    Idempotent. Rows another worker holds are skipped (it is doing them). With ``limit``, only that many
    receivables after the id ``after``; the report's ``cursor`` says where the next chunk starts (``None``: done).
    Raises ``InvalidInput`` for a day after the business date."""
    check_business_date(session, day)
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
    return _run(session, day, actor, where, months=False, after=after, limit=limit)


def run_month_step(
    session: Session, day: date, actor: Actor, *, after: int = 0, limit: int | None = None
) -> StepReport:
    """The month step for business date ``day``: every 중가산금 month accrued by ``day`` and not yet decided, for
    every open receivable (missed months are caught up, each posted for its own month). Idempotent. ``after``,
    ``limit`` and the report's ``cursor`` chunk it as ``run_daily_step``'s do."""
    check_business_date(session, day)
    open_receivables = select(ledger.Receivable.id).where(ledger.Receivable.status == ledger.OPEN)
    where = and_(
        ReceivableTerms.state.in_((CURRENT, OVERDUE)),
        ReceivableTerms.next_month_on <= day,
        ReceivableTerms.receivable_id.in_(open_receivables),
        ReceivableTerms.receivable_id > after,
    )
    report = StepReport(day)
    rules = load_rulebook(session)
    ids = session.scalars(
        select(ReceivableTerms.receivable_id)
        .where(where)
        .order_by(ReceivableTerms.receivable_id)
        .limit(limit)
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
    report.cursor = _cursor(ids[-1] if ids else None, len(ids), limit)
    return report


# --- the clock of an imposed receivable ------------------------------------------------------------------------------


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
    existing = terms_of(session, receivable_id, for_update=True)
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
    set_clock(terms, due_date, load_rulebook(session))
    session.add(terms)
    session.flush()
    return terms


def suspend(session: Session, receivable_id: int, on: date, actor: Actor, *, basis: str = "이의제기") -> CollectionHold:
    """이의제기: the imposition loses its effect (법 §20②) from ``on``: nothing is collectible or accrues, and the
    receivable leaves the hotlist, until ``resume`` or ``stop_collection``. Surcharges posted before ``on`` stay
    (cancel them with the ledger if the decision says so). Raises ``InvalidTransition`` when not collecting."""
    terms = need_terms(session, receivable_id)
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
    after_payment(session, receivable_of(session, receivable_id), max(on, business_date(session)), actor)
    return hold


def resume(session: Session, receivable_id: int, on: date, actor: Actor, *, due_date: date | None = None) -> None:
    """The court's decision stands (or the objection was withdrawn): collection resumes on ``on``.

    Months while suspended are never charged. With ``due_date`` (a new 납기 after the court's decision) the clock
    restarts from it; that is refused (``InvalidTransition``) once a surcharge has been decided on the old one.
    """
    terms = need_terms(session, receivable_id)
    if terms.state != SUSPENDED:
        raise InvalidTransition(f"collection is {terms.state}, not suspended", current=terms.state)
    for hold in holds_for(session, receivable_id):
        if hold.kind == OBJECTION and hold.ended_on is None:
            end_hold(hold, max(on, hold.starts_on), RESUMED, actor)
    if due_date is not None and due_date != terms.due_date:
        decided = session.scalar(
            select(func.count()).select_from(ArrearsPosting).where(ArrearsPosting.receivable_id == receivable_id)
        )
        if decided:
            raise InvalidTransition("surcharges were decided on the old due date; it cannot change", field="due_date")
        set_clock(terms, due_date, load_rulebook(session))
    terms.state = CURRENT if terms.overdue_since is None else OVERDUE
    terms.updated_at = utcnow()
    if terms.state == OVERDUE:
        tell_device_overdue(session, receivable_id)
    session.flush()
    catch_up(session, terms, business_date(session), actor)


def stop_collection(session: Session, receivable_id: int, on: date, actor: Actor) -> None:
    """End collection for good (imposition cancelled, the court dismissed the fine, write-off): no step touches the
    receivable again and its holds end on ``on``. The balance is the caller's to reverse with the ledger."""
    terms = need_terms(session, receivable_id)
    if terms.state == STOPPED:
        return
    for hold in holds_for(session, receivable_id):
        if hold.ended_on is None:
            end_hold(hold, max(on, hold.starts_on), STOPPED_HOLD, actor)
    terms.state = STOPPED
    terms.updated_at = utcnow()
    session.flush()
    after_payment(session, receivable_of(session, receivable_id), max(on, business_date(session)), actor)


# --- payments -------------------------------------------------------------------------------------------------------


def record_payment(
    session: Session, receivable_id: int, amount: int, on: date, source: str, actor: Actor
) -> list[ledger.LedgerEntry]:
    """수납: catch the receivable up to ``on``, then allocate ``amount`` by its allocation policy (v1: 체납처분비 →
    principal → 가산금 → 중가산금). A payment dated before the day the receivable is caught up to is allocated as
    dated; earlier months are not re-decided (replaying a back-dated payment is not done yet)."""
    if amount <= 0:
        raise InvalidInput("a payment is a positive amount", field="amount")
    receivable = receivable_of(session, receivable_id)
    catch_up_receivable(session, receivable_id, on, actor)
    posted = ledger.allocate_payment(session, receivable, amount, on, source, actor)
    after_payment(session, receivable, on, actor)
    return posted


def after_payment(session: Session, receivable: ledger.Receivable, on: date, actor: Actor) -> None:
    """After money moved on a receivable (or a hold or objection changed it): its plate's hotlist entry is rebuilt
    for ``on`` at once, so a paid plate leaves the devices' hotlist on their next pull, not on the next business
    day. Call it from any payment path that does not go through ``record_payment``."""
    plate = hotlist.plate_of(session, receivable)
    if plate is not None:
        hotlist.refresh_hotlist(session, receivable.jurisdiction, on, actor, plates=[plate])


def reverse_payment(
    session: Session, receivable_id: int, source: str, on: date, actor: Actor
) -> list[ledger.LedgerEntry]:
    """A payment that did not stand (a bounced transfer, a cancelled card payment): post the opposite of each of its
    allocations, dated ``on``, and reopen the receivable. Raises ``NotFound`` when no payment has that ``source``,
    ``InvalidTransition`` when it was reversed already."""
    receivable = receivable_of(session, receivable_id)
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


def grant_relief(session: Session, scope: Scope, cmd: GrantRelief, actor: Actor) -> CollectionHold:
    """징수유예등 (법 §24의3): no 가산금 or 중가산금 accrues while it is in force; a missed installment (the daily step)
    or ``end_relief`` reinstates them.

    Raises ``InvalidTransition`` when the receivable is not overdue-able (never imposed, suspended, stopped), another
    relief is in force then, an earlier relief was cancelled for default (no new relief, 시행령 §7의4③), or
    surcharges were already decided on or after ``starts_on``; ``InvalidInput`` for an inconsistent plan."""
    scoped_receivable(session, scope, cmd.receivable_id)
    terms = need_terms(session, cmd.receivable_id)
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
    for hold in holds_for(session, cmd.receivable_id):
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
    after_payment(session, receivable_of(session, cmd.receivable_id), today, actor)
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
    terms = need_terms(session, hold.receivable_id)
    catch_up(session, terms, on - timedelta(days=1), actor)
    end_hold(hold, on, reason, actor)
    session.flush()
    today = max(on, business_date(session))
    catch_up(session, terms, today, actor)
    after_payment(session, receivable_of(session, hold.receivable_id), today, actor)
    return hold
