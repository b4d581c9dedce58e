"""기간 계산: how the statutory periods are counted, by the calendar rules of 민법 §157, §160, §161.

행정기본법 §6① applies the 민법 to administrative periods, and 질서위반행위규제법 has no counting rule of its own:

- **초일불산입** (민법 §157): a period counted from an event (a notice received, a violation ended, a due date passed)
  starts on the *next* day. So "within 60 days of receiving the notice on R" ends on R + 60, inclusive.
- **Months and years** (민법 §160②③): a period of *n* months that starts on day S ends on the day before the
  corresponding day of S, *n* months later; if that month has no corresponding day, it ends on that month's last day.
- **Holidays** (민법 §161): a period whose last day is a Saturday or public holiday ends on the next working day. There
  is no holiday calendar in the system yet, so the functions that a citizen's right depends on take an optional
  ``closed`` predicate; without one, no extension is made.

Every date here is an Asia/Seoul calendar date (``law_date`` converts an aware datetime). Pure: no database.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import date, datetime, timedelta

from protocol import seoul_date

ClosedDay = Callable[[date], bool]


def law_date(value: date | datetime) -> date:
    """The Asia/Seoul date of ``value``: a ``date`` as is, an aware ``datetime`` converted (naive ones refused)."""
    if isinstance(value, datetime):
        return seoul_date(value)
    return value


def _month_shift(day: date, months: int) -> tuple[int, int]:
    index = day.year * 12 + (day.month - 1) + months
    return index // 12, index % 12 + 1


def period_end(start: date, months: int) -> date:
    """Last day (inclusive) of a period of ``months`` months whose first counted day is ``start`` (민법 §160②③).

    ``period_end(2024-02-01, 1)`` is 2024-02-29; ``period_end(2024-01-31, 1)`` is 2024-02-29 too (no 2024-02-31, so
    the period ends on the month's last day); ``period_end(2020-03-11, 60)`` is 2025-03-10.
    """
    if months < 1:
        raise ValueError("a period is at least one month long")
    year, month = _month_shift(start, months)
    last = calendar.monthrange(year, month)[1]
    if start.day > last:
        return date(year, month, last)
    return date(year, month, start.day) - timedelta(days=1)


def days_end(event_day: date, days: int, closed: ClosedDay | None = None) -> date:
    """Last day (inclusive) of a period of ``days`` days counted from the day after ``event_day`` (민법 §157).

    With ``closed``, a last day that is closed (Saturday, public holiday) moves to the next open day (민법 §161).
    """
    if days < 0:
        raise ValueError("a period cannot be negative")
    end = event_day + timedelta(days=days)
    if closed is not None:
        while closed(end):
            end += timedelta(days=1)
    return end


def full_month_elapses_on(due_date: date, n: int) -> date:
    """The first date on which ``n`` full months have passed since the due date (납부기한).

    The months are counted from the first overdue day ``due_date + 1`` (민법 §157) and each ends as 민법 §160 says, so
    the n-th month has elapsed on the day after its last day. Due 2024-07-31: overdue from 08-01, the first full month
    ends 08-31 and has elapsed on 09-01. Due 2024-01-31: overdue from 02-01, first month elapsed on 03-01 (not on
    02-29). Due 2024-01-30: overdue from 01-31, no 02-31, so the month ends 02-29 and has elapsed on 03-01.
    """
    if n < 1:
        raise ValueError("n counts months from 1")
    return period_end(due_date + timedelta(days=1), n) + timedelta(days=1)


def full_months_between(due_date: date, as_of: date) -> int:
    """How many full months have passed since ``due_date`` on ``as_of`` (0 on or before the due date).

    Month *n* counts from ``full_month_elapses_on(due_date, n)`` inclusive; see there for the day-of-month rule.
    """
    if as_of <= due_date:
        return 0
    start = due_date + timedelta(days=1)
    n = (as_of.year - start.year) * 12 + (as_of.month - start.month)
    # the estimate is off by at most one either way; settle it on the exact elapse dates
    while n > 0 and full_month_elapses_on(due_date, n) > as_of:
        n -= 1
    while full_month_elapses_on(due_date, n + 1) <= as_of:
        n += 1
    return max(n, 0)
