"""The statutory computations of a fine's legal life (질서위반행위규제법; numbers in LAW.md §1), as pure functions
of rule rows. Each takes a ``RuleBook`` and returns a ``Computed``, ``Deadline`` or ``Verdict`` naming the row used.

Which date picks the row (the law in force then applies, 법 §3):

- 가산금 and 중가산금: the first overdue day (due date + 1): the 2016 amendment's 3% applies to fines first overdue
  from 2017-06-03 (부칙 <제14280호> §3), and the 중가산금 row follows the same day so one fine has one pair of rows.
- 이의제기: the day the imposition notice was received; 법원 통보: the day the objection was received.
- 제척기간: the violation's last day; 소멸시효: the first day of the period; 부과 납부기한: the imposition day.
- 감경 and its combination: the day of the 사전통지 (the hardship rule applies to 사전통지 from 2010-01-16).
- 번호판 영치: the day the hotlist is built.

Money is integer won. Reduced amounts reuse ``protocol.reduced_amount`` (truncated to the fine schedule's
``rounding_unit``); surcharges are truncated with ``protocol.truncate_to_unit`` to the ``surcharge_rounding``
row's unit (default 1 won, i.e. 원 미만 절사; LAW.md §6.4 leaves it unconfirmed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from models.errors import InvalidInput
from models.rules.periods import ClosedDay, days_end, full_months_between, law_date, period_end
from models.rules.rows import (
    COURT_REFERRAL,
    HARDSHIP_REDUCTION,
    HARDSHIP_THEN_SELF_PAYMENT,
    IMPOSITION_DUE,
    IMPOSITION_LIMIT,
    MONTHLY_SURCHARGE,
    NOT_WITH_OTHER_UNPAID,
    OBJECTION_PERIOD,
    OPINION_PERIOD,
    PLATE_SEIZURE,
    PRESCRIPTION,
    RATES_ADDED,
    REDUCTION_COMBINATION,
    SURCHARGE,
    SURCHARGE_ROUNDING,
    Computed,
    Deadline,
    RuleBook,
    RuleInvalid,
    RuleRow,
    Verdict,
)
from protocol import ScheduleRow, reduced_amount, truncate_to_unit

DateLike = date | datetime


class ReductionRefused(InvalidInput):
    """A hardship reduction (감경) cannot be granted: no statutory ground, or other 과태료 are unpaid."""

    code = "reduction_refused"


# --- 가산금 / 중가산금 (법 §24) --------------------------------------------------------------------------------------


def _money(principal_unpaid: int) -> int:
    if principal_unpaid < 0:
        raise ValueError("the unpaid principal cannot be negative")
    return principal_unpaid


def surcharge(principal_unpaid: int, first_overdue: DateLike, rules: RuleBook) -> Computed:
    """가산금: the one-time surcharge on the unpaid principal of a fine first overdue on ``first_overdue``.

    3% (5% for fines first overdue before 2017-06-03), truncated to the ``surcharge_rounding`` unit.
    """
    day = law_date(first_overdue)
    row = rules.row(SURCHARGE, day)
    rounding = rules.row(SURCHARGE_ROUNDING, day)
    amount = truncate_to_unit(Decimal(_money(principal_unpaid)) * row.need_rate(), rounding.need_unit())
    return Computed(amount, row.key, row.id, also=(rounding.key,))


def monthly_surcharge_installment(principal_unpaid: int, due_date: DateLike, rules: RuleBook) -> Computed:
    """중가산금 for one full month: the rate times the unpaid principal, truncated to the rounding unit.

    Each month is truncated on its own (what a month-end posting posts); months are never compounded.
    """
    first_overdue = law_date(due_date) + timedelta(days=1)
    row = rules.row(MONTHLY_SURCHARGE, first_overdue)
    rounding = rules.row(SURCHARGE_ROUNDING, first_overdue)
    amount = truncate_to_unit(Decimal(_money(principal_unpaid)) * row.need_rate(), rounding.need_unit())
    return Computed(amount, row.key, row.id, also=(rounding.key,))


def monthly_surcharge_months(due_date: DateLike, as_of: DateLike, rules: RuleBook) -> int:
    """How many months of 중가산금 are due on ``as_of``: the full months since the due date, at most the cap (60)."""
    due = law_date(due_date)
    row = rules.row(MONTHLY_SURCHARGE, due + timedelta(days=1))
    return min(full_months_between(due, law_date(as_of)), row.need_months())


def monthly_surcharge(principal_unpaid: int, due_date: DateLike, as_of: DateLike, rules: RuleBook) -> Computed:
    """중가산금 accrued on ``as_of``: one installment per full month since ``due_date``, for at most 60 months.

    Assumes the principal stayed unpaid over the whole time; with part payments the ledger posts month by month
    with ``monthly_surcharge_installment`` on the principal then unpaid. Months under 징수유예 are the caller's to
    leave out (법 §24의3④).
    """
    one = monthly_surcharge_installment(principal_unpaid, due_date, rules)
    months = monthly_surcharge_months(due_date, as_of, rules)
    return Computed(one.amount * months, one.rule_key, one.rule_id, also=one.also)


@dataclass(frozen=True)
class Arrears:
    """What an unpaid fine amounts to on a day: principal + 가산금 + 중가산금 (both ``None`` before it is overdue)."""

    principal: int
    surcharge: Computed | None
    monthly_surcharge: Computed | None
    months: int

    @property
    def total(self) -> int:
        extra = (self.surcharge.amount if self.surcharge else 0) + (
            self.monthly_surcharge.amount if self.monthly_surcharge else 0
        )
        return self.principal + extra


def arrears(principal_unpaid: int, due_date: DateLike, as_of: DateLike, rules: RuleBook) -> Arrears:
    """The amount owed on ``as_of`` for ``principal_unpaid`` due on ``due_date`` (inclusive last day to pay)."""
    due, day = law_date(due_date), law_date(as_of)
    if day <= due:
        return Arrears(_money(principal_unpaid), None, None, 0)
    return Arrears(
        principal_unpaid,
        surcharge(principal_unpaid, due + timedelta(days=1), rules),
        monthly_surcharge(principal_unpaid, due, day, rules),
        monthly_surcharge_months(due, day, rules),
    )


# --- deadlines ------------------------------------------------------------------------------------------------------


def opinion_period_sufficient(opinion_days: int, on: DateLike, rules: RuleBook) -> Verdict:
    """의견제출기한: a 사전통지 must give at least 10 days (법 §16①); checks a schedule's ``opinion_days``."""
    row = rules.row(OPINION_PERIOD, law_date(on))
    minimum = row.need_days()
    if opinion_days < minimum:
        return Verdict(False, f"{opinion_days} days is less than the minimum {minimum}", row.key, row.id)
    return Verdict(True, f"at least {minimum} days", row.key, row.id)


def objection_deadline(notice_received: DateLike, rules: RuleBook, *, closed: ClosedDay | None = None) -> Deadline:
    """이의제기 기간: the last day (inclusive) to object, 60 days after receiving the imposition notice (법 §20①).

    Received on R, the 60 days run R+1 … R+60 (초일불산입). ``closed`` extends a last day on a holiday (민법 §161).
    """
    received = law_date(notice_received)
    row = rules.row(OBJECTION_PERIOD, received)
    return Deadline(days_end(received, row.need_days(), closed), row.key, row.id)


def objection_timely(
    notice_received: DateLike, filed_on: DateLike, rules: RuleBook, *, closed: ClosedDay | None = None
) -> Verdict:
    """Whether an objection filed on ``filed_on`` is within the 이의제기 period (the last day included)."""
    deadline = objection_deadline(notice_received, rules, closed=closed)
    filed = law_date(filed_on)
    if filed > deadline.day:
        return Verdict(
            False, f"filed after the last day {deadline.day.isoformat()}", deadline.rule_key, deadline.rule_id
        )
    return Verdict(True, f"filed by {deadline.day.isoformat()}", deadline.rule_key, deadline.rule_id)


def court_referral_deadline(objection_received: DateLike, rules: RuleBook) -> Deadline:
    """법원 통보: the last day to send the case to court, 14 days after receiving the objection (법 §21①)."""
    received = law_date(objection_received)
    row = rules.row(COURT_REFERRAL, received)
    return Deadline(days_end(received, row.need_days()), row.key, row.id)


def imposition_final_on(notice_received: DateLike, rules: RuleBook, *, closed: ClosedDay | None = None) -> date:
    """The first day an unobjected imposition is final: the day after the 이의제기 period's last day."""
    return objection_deadline(notice_received, rules, closed=closed).day + timedelta(days=1)


def imposition_last_day(violation_ended: DateLike, rules: RuleBook) -> Deadline:
    """제척기간: the last day a fine may still be imposed, 5 years after the violation ended (법 §19①).

    The 5 years run from the day after the violation (초일불산입) and end the day before its anniversary (민법 §160):
    violation 2020-03-10 → last day 2025-03-10; 2025-03-11 is too late. Violation 2020-02-28 (a leap year) → the
    period starts 02-29, 2025 has no 02-29, so it ends 2025-02-28.
    """
    ended = law_date(violation_ended)
    row = rules.row(IMPOSITION_LIMIT, ended)
    return Deadline(period_end(ended + timedelta(days=1), row.need_months()), row.key, row.id)


def imposition_allowed(violation_ended: DateLike, on: DateLike, rules: RuleBook) -> Verdict:
    """Whether a fine for a violation that ended on ``violation_ended`` may still be imposed on ``on`` (제척기간)."""
    last = imposition_last_day(violation_ended, rules)
    if law_date(on) > last.day:
        return Verdict(False, f"제척기간 ended on {last.day.isoformat()}", last.rule_key, last.rule_id)
    return Verdict(True, f"may be imposed until {last.day.isoformat()}", last.rule_key, last.rule_id)


def imposition_due_date(imposed_on: DateLike, revenue_item: str, rules: RuleBook) -> Deadline:
    """납부기한 of an imposition notice: ``imposed_on`` + the item's due days (default row: 60; LAW.md §6.3 [U])."""
    day = law_date(imposed_on)
    row = rules.row(IMPOSITION_DUE, day, scope=revenue_item)
    return Deadline(days_end(day, row.need_days()), row.key, row.id)


def prescription_last_day(period_start: DateLike, rules: RuleBook, *, suspended_days: int = 0) -> Deadline:
    """소멸시효: the last day the fine can be collected, 5 years from ``period_start`` (법 §15①).

    ``period_start`` is the first day counted: the day the imposition (or the court's decision) became final, or the
    day after an interruption (시효중단) ended; finality begins at midnight, so that day counts (민법 §157 단서).
    ``suspended_days`` (시효정지: 분납, 징수유예 …) push the end back day for day. Both follow 국세기본법 §28, which
    LAW.md §1.6 leaves unchecked [U]; deciding them is the caller's job.
    """
    start = law_date(period_start)
    if suspended_days < 0:
        raise ValueError("suspended days cannot be negative")
    row = rules.row(PRESCRIPTION, start)
    return Deadline(period_end(start, row.need_months()) + timedelta(days=suspended_days), row.key, row.id)


def prescribed(period_start: DateLike, on: DateLike, rules: RuleBook, *, suspended_days: int = 0) -> Verdict:
    """Whether the fine is extinguished by 소멸시효 on ``on`` (true from the day after the last day)."""
    last = prescription_last_day(period_start, rules, suspended_days=suspended_days)
    if law_date(on) > last.day:
        return Verdict(True, f"소멸시효 completed on {last.day.isoformat()}", last.rule_key, last.rule_id)
    return Verdict(False, f"collectable until {last.day.isoformat()}", last.rule_key, last.rule_id)


# --- 번호판 영치 hotlist (법 §55, 시행령 §14) ----------------------------------------------------------------


def plate_seizure_eligible(overdue: Iterable[tuple[date, int]], as_of: DateLike, rules: RuleBook) -> Verdict:
    """번호판 영치: whether a party's unpaid vehicle fines put them on the hotlist on ``as_of``.

    ``overdue`` is one ``(due_date, amount owed incl. 가산금 and 중가산금)`` per unpaid vehicle fine. Only fines more
    than 60 days past their due date count, and they must total at least 300,000 won. Counting only those fines in
    the total is the narrower reading of 시행령 §14 (a party is never seized on fines younger than 60 days) [U].
    """
    day = law_date(as_of)
    row = rules.row(PLATE_SEIZURE, day)
    days, threshold = row.need_days(), row.need_amount()
    total = sum(amount for due, amount in overdue if (day - due).days > days)
    if total >= threshold:
        return Verdict(True, f"{total} won more than {days} days overdue", row.key, row.id)
    return Verdict(False, f"{total} won more than {days} days overdue is below {threshold}", row.key, row.id)


# --- 감경 (reductions) ------------------------------------------------------------------------------------------------


def self_payment_reduced(schedule: ScheduleRow, amount: int | None = None) -> Computed:
    """자진납부 감경 (법 §18): the fine schedule's own rate and rounding, through ``protocol.reduced_amount``."""
    base = schedule.amount if amount is None else amount
    return Computed(reduced_amount(base, schedule.reduction_rate, schedule.rounding_unit), schedule.key)


def _hardship_row(grounds: Iterable[str], has_other_unpaid: bool, on: date, rules: RuleBook) -> RuleRow:
    claimed = sorted(set(grounds))
    if not claimed:
        raise ReductionRefused("no hardship ground was claimed", field="grounds")
    rows = [row for row in rules.scoped(HARDSHIP_REDUCTION, on) if row.scope in claimed]
    if not rows:
        raise ReductionRefused(
            f"{', '.join(claimed)}: not a hardship ground on {on.isoformat()}", field="grounds", grounds=claimed
        )
    # grounds do not add up (시행령 §2의2②): the most favourable single ground applies
    row = max(rows, key=lambda r: (r.need_rate(), r.scope))
    if has_other_unpaid and row.need_mode() == NOT_WITH_OTHER_UNPAID:
        raise ReductionRefused("the party has other unpaid 과태료", field="has_other_unpaid", rule=row.key)
    return row


def _hardship_rate(row: RuleRow, rate: Decimal | str | None) -> Decimal:
    maximum = row.need_rate()
    if rate is None:
        return maximum
    chosen = Decimal(rate)
    if not Decimal(0) < chosen <= maximum:
        raise InvalidInput(f"a hardship reduction rate must be above 0 and at most {maximum}", field="rate")
    return chosen


def hardship_reduced(
    amount: int,
    grounds: Iterable[str],
    *,
    has_other_unpaid: bool,
    on: DateLike,
    rounding_unit: int,
    rules: RuleBook,
    rate: Decimal | str | None = None,
) -> Computed:
    """감경 (시행령 §2의2): ``amount`` reduced for a hardship ground, by ``rate`` (default: the maximum, 50%).

    ``grounds`` are the claimed ground codes (``HARDSHIP_GROUNDS``); several do not add up, the best one applies.
    ``on`` is the 사전통지 date; ``rounding_unit`` is the fine schedule's (truncation, as ``reduced_amount``).
    Raises ``ReductionRefused`` when no ground applies or the party has other unpaid 과태료.
    """
    row = _hardship_row(grounds, has_other_unpaid, law_date(on), rules)
    return Computed(reduced_amount(amount, _hardship_rate(row, rate), rounding_unit), row.key, row.id)


def combined_reduced(
    schedule: ScheduleRow,
    grounds: Iterable[str],
    *,
    has_other_unpaid: bool,
    on: DateLike,
    rules: RuleBook,
    amount: int | None = None,
    hardship_rate: Decimal | str | None = None,
) -> Computed:
    """감경 plus 자진납부 감경: what a party with a hardship ground pays within the opinion period.

    Only the self-payment reduction may be combined with a hardship reduction (시행령 §2의2②). How is the
    ``reduction_combination`` row's mode [U]: ``hardship_then_self_payment`` (default) applies the schedule's
    self-payment rate to the already-reduced amount (40,000 → 20,000 → 16,000); ``rates_added`` subtracts both
    rates from the fine at once (→ 12,000). Each step truncates to the schedule's ``rounding_unit``.
    """
    day = law_date(on)
    combination = rules.row(REDUCTION_COMBINATION, day)
    hardship = _hardship_row(grounds, has_other_unpaid, day, rules)
    rate = _hardship_rate(hardship, hardship_rate)
    base = schedule.amount if amount is None else amount
    mode = combination.need_mode()
    if mode == HARDSHIP_THEN_SELF_PAYMENT:
        halved = reduced_amount(base, rate, schedule.rounding_unit)
        result = reduced_amount(halved, schedule.reduction_rate, schedule.rounding_unit)
    elif mode == RATES_ADDED:
        result = reduced_amount(base, min(rate + schedule.reduction_rate, Decimal(1)), schedule.rounding_unit)
    else:
        raise RuleInvalid(f"unknown combination mode {mode}", field="mode", rule=combination.key)
    return Computed(result, combination.key, combination.id, also=(hardship.key, schedule.key))
